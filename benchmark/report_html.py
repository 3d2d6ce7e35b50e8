"""index.html: one static page (relative links only, no scripts) over the report's tables and figures."""

from __future__ import annotations

import html
from itertools import groupby
from pathlib import Path

from benchmark.report_explainer import Explainer
from benchmark.report_figures import Figure
from benchmark.report_tables import Table, to_html

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
table.table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
table.table td, table.table th { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
figcaption { font-size: 0.9em; color: #333; max-width: 60em; }
img { max-width: 100%; }
.note { color: #666; font-style: italic; }
"""


def _links(table: Table) -> str:
    files = [f"tables/{table.name}.{extension}" for extension in ("md", "tex", "csv")]
    return " · ".join(f'<a href="{html.escape(f)}">{html.escape(Path(f).suffix[1:])}</a>' for f in files)


def _table_section(table: Table) -> str:
    return f"{to_html(table)}\n<p>{_links(table)}</p>"


def _figure(figure: Figure) -> str:
    if figure.stem is None:
        return f'<p class="note">{html.escape(figure.title)}: {html.escape(figure.note)}</p>'
    src = html.escape(figure.stem)
    return (
        f'<figure><img src="{src}.png" alt="{html.escape(figure.task)}: {html.escape(figure.title)}">'
        f'<figcaption>{html.escape(figure.task)}: {html.escape(figure.title)} '
        f'(<a href="{src}.pdf">pdf</a>)</figcaption></figure>'
    )


def _explainer(explainer: Explainer) -> str:
    src = html.escape(explainer.stem)
    height, width = explainer.image_size
    return (
        "<p>HDRNet interpolates affine matrices, not outputs. Because the output is linear in the "
        "matrix, slicing the grid (trilinear blend of the 8 neighbouring cells' matrices) and then "
        "applying the blended matrix equals applying each neighbouring cell's matrix to the pixel and "
        "blending the 8 outputs with the same weights. Measured on "
        f"{html.escape(explainer.photo)} at {width}x{height} with a random "
        f"{explainer.grid_shape[1]}x{explainer.grid_shape[2]}x{explainer.grid_shape[0]} grid of affines "
        f"(float32): largest absolute difference <b>{explainer.max_abs_difference:.2e}</b> "
        "(benchmark/report_explainer.py: <code>apply_then_blend</code> against "
        "<code>apply_affine(bilateral_slice(...))</code>).</p>"
        f'<figure><img src="{src}.png" alt="slicing explainer"><figcaption>One image row: each grey '
        "line is one grid column's transform applied along the row; the blue line blends them with "
        f'the tent weights below; the dashed line is the sliced result (<a href="{src}.pdf">pdf</a>, '
        f'<a href="{src}.json">json</a>).</figcaption></figure>'
    )


def write_html(
    path: Path,
    quality: list[Table],
    speeds: list[Table],
    figures: list[Figure],
    explainer: Explainer,
    sources: Table,
    environment: Table,
    caveats: list[str],
) -> None:
    """The whole page; every link is relative to ``path``'s folder."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>bilateral-bench report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>bilateral-bench report</h1>",
        "<h2>Caveats</h2>",
        "<ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in caveats) + "</ul>"
        if caveats else '<p class="note">none</p>',
        "<h2>Table 1: quality</h2>",
        *[_table_section(table) for table in quality],
        "<h2>Speed</h2>",
        *([_table_section(table) for table in speeds]
          or ['<p class="note">No speed.json found (run <code>python -m benchmark.speed</code>).</p>']),
        "<h2>Figures</h2>",
    ]
    for task, task_figures in groupby(figures, key=lambda figure: figure.task):
        parts += [f"<h3>{html.escape(task)}</h3>", *[_figure(figure) for figure in task_figures]]
    parts += [
        "<h2>Why slicing matrices is sound</h2>",
        _explainer(explainer),
        "<h2>Run sources</h2>",
        _table_section(sources),
        "<h2>Environment</h2>",
        _table_section(environment),
        "</body></html>",
    ]
    path.write_text("\n".join(parts) + "\n")
