"""index.html: one static page (relative links only, no server) over the report's tables and figures.

First what a reader needs to judge the numbers: the caveats (one line each), Table 1 (PSNR), the
quality-vs-time figures of every task and a before/after slider per task; then the other metrics,
speed, the per-task figures, the explainer, the run sources and the environment. Two small inline
scripts: the slider, and a check that marks the page (``data-broken-images``) and warns when an
image did not load.
"""

from __future__ import annotations

import html
from itertools import groupby
from pathlib import Path

from benchmark.reporting import FEATURED_MODEL
from benchmark.reporting.explainer import Explainer
from benchmark.reporting.figures import Comparison, Figure
from benchmark.reporting.tables import Table, to_html

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
table.table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
table.table td, table.table th { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
figcaption { font-size: 0.9em; color: #333; max-width: 60em; }
img { max-width: 100%; }
.note { color: #666; font-style: italic; }
.caveats li { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; list-style-position: inside; }
.pareto { display: flex; flex-wrap: wrap; gap: 0.5em; }
.pareto figure { width: 48%; margin: 0; }
.compare { display: inline-block; margin: 0 1em 1.5em 0; vertical-align: top; }
.compare .frame { position: relative; line-height: 0; }
.compare .frame img { display: block; width: 480px; height: auto; }
.compare input[type=range] { width: 480px; }
.compare .over { position: absolute; left: 0; top: 0; }
.warning { color: #a00; font-weight: bold; }
"""

SCRIPT = """
for (const box of document.querySelectorAll(".compare")) {
  const over = box.querySelector(".over"), under = box.querySelector(".under");
  const split = box.querySelector(".split");
  const show = () => { over.style.clipPath = "inset(0 " + (100 - split.value) + "% 0 0)"; };
  box.querySelector(".left").addEventListener("change", event => { over.src = event.target.value; });
  box.querySelector(".right").addEventListener("change", event => { under.src = event.target.value; });
  split.addEventListener("input", show);
  show();
}
window.addEventListener("load", () => {
  const broken = [...document.images].filter(image => !image.complete || image.naturalWidth === 0);
  document.body.dataset.brokenImages = broken.length;
  if (broken.length) {
    const warning = document.createElement("p");
    warning.className = "warning";
    warning.textContent = broken.length + " image(s) did not load: " + broken.map(image => image.src).join(", ");
    document.body.prepend(warning);
  }
});
"""


def _links(table: Table) -> str:
    files = [f"tables/{table.name}.{extension}" for extension in ("md", "tex", "csv")]
    return " · ".join(f'<a href="{html.escape(f)}">{html.escape(Path(f).suffix[1:])}</a>' for f in files)


def _table_section(table: Table) -> str:
    return f"{to_html(table)}\n<p>{_links(table)}</p>"


def _figure(figure: Figure) -> str:
    if figure.path is None:
        return f'<p class="note">{html.escape(figure.title)}: {html.escape(figure.note)}</p>'
    return (
        f'<figure><img src="{html.escape(figure.path)}" alt="{html.escape(figure.task)}: {html.escape(figure.title)}">'
        f'<figcaption>{html.escape(figure.task)}: {html.escape(figure.title)}{_pdf_link(figure.pdf)}</figcaption></figure>'
    )


def _pdf_link(pdf: str | None) -> str:
    return f' (<a href="{html.escape(pdf)}">pdf</a>)' if pdf else ""


def _explainer(explainer: Explainer) -> str:
    height, width = explainer.image_size
    return (
        "<p>HDRNet interpolates affine matrices, not outputs. Because the output is linear in the "
        "matrix, slicing the grid (trilinear blend of the 8 neighbouring cells' matrices) and then "
        "applying the blended matrix equals applying each neighbouring cell's matrix to the pixel and "
        "blending the 8 outputs with the same weights. Measured on "
        f"{html.escape(explainer.photo)} at {width}x{height} with a random "
        f"{explainer.grid_shape[1]}x{explainer.grid_shape[2]}x{explainer.grid_shape[0]} grid of affines "
        f"(float32): largest absolute difference <b>{explainer.max_abs_difference:.2e}</b> "
        "(benchmark/reporting/explainer.py: <code>apply_then_blend</code> against "
        "<code>apply_affine(bilateral_slice(...))</code>).</p>"
        f'<figure><img src="{html.escape(explainer.image)}" alt="slicing explainer"><figcaption>One image row: each grey '
        "line is one grid column's transform applied along the row; the blue line blends them with "
        f'the tent weights below; the dashed line is the sliced result{_pdf_link(explainer.pdf)} '
        '(<a href="figures/explainer_slicing.json">json</a>).</figcaption></figure>'
    )


def _options(comparison: Comparison, chosen: str) -> str:
    return "".join(f'<option value="{html.escape(src)}"{" selected" if label == chosen else ""}>'
                   f"{html.escape(label)}</option>" for label, src in comparison.panels.items())


def _comparison(comparison: Comparison) -> str:
    """Before/after slider: the left image is shown left of the handle, the right one right of it."""
    models = [label for label in comparison.panels if label not in ("input", "target")]
    left = FEATURED_MODEL if FEATURED_MODEL in models else (models[0] if models else "input")
    return (
        f'<div class="compare"><p>{html.escape(comparison.task)} ({html.escape(comparison.image)}): '
        f'left <select class="left">{_options(comparison, left)}</select> '
        f'right <select class="right">{_options(comparison, "target")}</select></p>'
        f'<div class="frame"><img class="under" src="{html.escape(comparison.panels["target"])}" '
        f'alt="{html.escape(comparison.task)}: target">'
        f'<img class="over" src="{html.escape(comparison.panels[left])}" alt="{html.escape(comparison.task)}: {left}">'
        '</div><input class="split" type="range" min="0" max="100" value="50" '
        f'aria-label="{html.escape(comparison.task)}: split position"></div>'
    )


def write_html(
    path: Path,
    quality: list[Table],
    published: Table | None,
    speeds: list[Table],
    figures: list[Figure],
    comparisons: list[Comparison],
    explainer: Explainer,
    sources: Table,
    environment: Table,
    caveats: list[str],
) -> None:
    """The whole page; every link is relative to ``path``'s folder. ``quality[0]`` is Table 1 (PSNR)."""
    pareto = [figure for figure in figures if figure.path is not None and figure.path.endswith("_pareto.png")]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>bilateral-bench report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>bilateral-bench report</h1>",
        "<h2>Table 1: quality</h2>",
        _table_section(quality[0]),
        *([f"<h3>Published FiveK figures (not measured here)</h3>{_table_section(published)}"] if published else []),
        "<h3>Caveats</h3>",
        '<ul class="caveats">' + "".join(f'<li title="{html.escape(note)}">{html.escape(note)}</li>'
                                          for note in caveats) + "</ul>"
        if caveats else '<p class="note">none</p>',
        '<div class="pareto">' + "".join(_figure(figure) for figure in pareto) + "</div>",
        "<h2>Before / after</h2>",
        "".join(_comparison(comparison) for comparison in comparisons)
        or '<p class="note">No run saved example outputs.</p>',
        "<h2>More quality metrics</h2>",
        *[_table_section(table) for table in quality[1:]],
        "<h2>Speed</h2>",
        *([_table_section(table) for table in speeds]
          or ['<p class="note">No speed.json found (run <code>python -m benchmark.speed</code>).</p>']),
        "<h2>Figures</h2>",
    ]
    for task, task_figures in groupby((figure for figure in figures if figure not in pareto), key=lambda f: f.task):
        parts += [f"<h3>{html.escape(task)}</h3>", *[_figure(figure) for figure in task_figures]]
    parts += [
        "<h2>Why slicing matrices is sound</h2>",
        _explainer(explainer),
        "<h2>Run sources</h2>",
        _table_section(sources),
        "<h2>Environment</h2>",
        _table_section(environment),
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    path.write_text("\n".join(parts) + "\n")
