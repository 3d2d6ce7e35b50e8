"""The report's tables: one builder per table, each a ``Table`` rendered as Markdown, LaTeX, HTML, CSV.

A builder takes the frames ``benchmark.report`` loads (one row per run, one row per speed
measurement) and returns plain numbers in ``Table.values`` (what the CSV holds) plus what the
rendered versions add: bold cells, display labels with markers, a caption.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.metrics import METRICS
from benchmark.reporting import FEATURED_MODEL

IDENTITY = "identity"  # the untouched input scored against the target: the floor of every row
UPPER_BOUND_MARK = "†"
SYNTHETIC_MARK = "*"
MISSING = "—"

_LATEX_REPLACEMENTS = {
    "\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
    "†": r"\textsuperscript{\dag}", "Δ": r"$\Delta$", "×": r"$\times$", "–": "--", "—": "---",
}


@dataclass
class Table:
    """Numbers plus how to show them. ``bold`` is a boolean frame shaped like ``values``."""

    name: str
    caption: str
    values: pd.DataFrame
    formats: dict[str, str] = field(default_factory=dict)  # column -> format; others: str()
    bold: pd.DataFrame | None = None
    row_labels: dict[str, str] = field(default_factory=dict)  # display names with markers
    column_labels: dict[str, str] = field(default_factory=dict)
    show_index: bool = True  # False: the index is a row number, left out of every rendering

    def cells(self, bold_markup: tuple[str, str], escape: Callable[[str], str]) -> pd.DataFrame:
        """Formatted, escaped cell strings with ``bold_markup`` (open, close) around bold ones; the
        index (when shown) becomes the first column."""
        frame = pd.DataFrame(index=self.values.index, columns=self.values.columns, dtype=object)
        for column in self.values.columns:
            for index, value in self.values[column].items():
                text = _format(value, self.formats.get(column))
                if self.bold is not None and bool(self.bold.at[index, column]):
                    text = f"{bold_markup[0]}{escape(text)}{bold_markup[1]}"
                else:
                    text = escape(text)
                frame.at[index, column] = text
        frame.columns = [escape(self.column_labels.get(c, str(c))) for c in self.values.columns]
        if self.show_index:
            labels = [escape(self.row_labels.get(i, str(i))) for i in self.values.index]
            frame.insert(0, escape(str(self.values.index.name or "")), labels)
        return frame.reset_index(drop=True)


def _format(value: object, number_format: str | None) -> str:
    if value is None or (not isinstance(value, (str, tuple, list, dict)) and pd.isna(value)):
        return MISSING
    if number_format and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return number_format.format(value)
    return str(value)


def latex_escape(text: str) -> str:
    return "".join(_LATEX_REPLACEMENTS.get(char, char) for char in text)


def to_markdown(table: Table) -> str:
    cells = table.cells(("**", "**"), lambda text: text.replace("|", r"\|"))
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.values.tolist()]
    return f"{table.caption}\n\n" + "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    cells = table.cells((r"\textbf{", "}"), latex_escape)
    return cells.to_latex(
        index=False, escape=False, caption=latex_escape(table.caption), label=f"tab:{table.name}",
        column_format="l" + "r" * (len(cells.columns) - 1),
    )


def to_html(table: Table) -> str:
    cells = table.cells(("<b>", "</b>"), html.escape)
    body = cells.to_html(index=False, escape=False, border=0, classes="table")
    return f"<figure><figcaption>{html.escape(table.caption)}</figcaption>\n{body}</figure>"


def write_table(table: Table, folder: Path) -> None:
    """``<folder>/<name>.md``, ``.tex`` and ``.csv`` (the CSV holds the unformatted numbers)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{table.name}.md").write_text(to_markdown(table))
    (folder / f"{table.name}.tex").write_text(to_latex(table))
    table.values.to_csv(folder / f"{table.name}.csv", index=table.show_index)


# ---------------------------------------------------------------------------------------------
# Which run fills a cell


def select_table_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One run per (task, model): the latest run with the model's default config, else the latest."""
    ordered = runs.sort_values(["default_config", "finished"])
    return ordered.groupby(["task", "model"], sort=False).tail(1).reset_index(drop=True)


def model_order(selected: pd.DataFrame) -> list[str]:
    """The featured model (HDRNet) first, then the other models by name, upper bounds last."""
    flags = selected.groupby("model")["upper_bound"].any()
    return sorted(flags.index, key=lambda model: (bool(flags[model]), model != FEATURED_MODEL, model))


def _row_labels(selected: pd.DataFrame) -> dict[str, str]:
    synthetic = selected.groupby("task")["synthetic"].any()
    return {task: task + (SYNTHETIC_MARK if flag else "") for task, flag in synthetic.items()}


def _column_labels(selected: pd.DataFrame) -> dict[str, str]:
    upper = selected.groupby("model")["upper_bound"].any()
    return {model: model + (UPPER_BOUND_MARK if flag else "") for model, flag in upper.items()}


def _identity_runs(selected: pd.DataFrame, models: list[str]) -> pd.Series:
    """Per task, the run whose ``identity_psnr`` fills the identity column (first model column)."""
    rank = {model: i for i, model in enumerate(models)}
    ordered = selected.assign(rank=selected["model"].map(rank)).sort_values("rank")
    return ordered.groupby("task").head(1).set_index("task")["run_dir"]


# ---------------------------------------------------------------------------------------------
# Builders


def quality_table(selected: pd.DataFrame, metric: str) -> Table:
    """Rows = tasks, columns = models, mean ``metric`` over test images; best non-upper-bound bold.

    The PSNR table adds the identity column (input vs target), never a candidate for best.
    """
    name, number_format, higher_is_better = METRICS[metric].label, METRICS[metric].fmt, METRICS[metric].higher_is_better
    models = model_order(selected)
    values = selected.pivot(index="task", columns="model", values=metric).reindex(columns=models)
    values = values.astype(float)
    if metric == "psnr":
        identity = selected.set_index("run_dir").loc[_identity_runs(selected, models), ["task", "identity_psnr"]]
        values.insert(0, IDENTITY, identity.set_index("task")["identity_psnr"].reindex(values.index))
    values.index.name, values.columns.name = "task", None
    upper = {m for m in models if selected.loc[selected["model"] == m, "upper_bound"].any()}
    candidates = values[[m for m in models if m not in upper]]
    best = candidates.max(axis=1) if higher_is_better else candidates.min(axis=1)
    bold = candidates.eq(best, axis=0).reindex(columns=values.columns, fill_value=False)
    caption = (
        f"Mean {name} on the held-out test images ({'higher' if higher_is_better else 'lower'} is "
        f"better); bold: best per task excluding upper bounds."
    )
    if metric == "psnr":
        caption += f" {IDENTITY}: the untouched input against the target (the floor)."
    if upper:
        caption += f" {UPPER_BOUND_MARK} upper bound: fitted on the full-resolution output, not a speed-up."
    if selected["synthetic"].any():
        caption += f" {SYNTHETIC_MARK} synthetic targets (built-in stand-in, not human edits)."
    if values[models].isna().all().all():
        caption += f" Not computed in any run ({_skip_reason(selected, metric)})."
    return Table(
        f"quality_{metric}", caption, values, dict.fromkeys(values.columns, number_format), bold,
        _row_labels(selected), _column_labels(selected),
    )


def _skip_reason(selected: pd.DataFrame, metric: str) -> str:
    if metric == "lpips":
        statuses = sorted(set(selected["lpips_status"].dropna()))
        return "LPIPS " + "; ".join(statuses) if statuses else "LPIPS skipped"
    return "no values"


# Published FiveK figures for the protocol of the 480p release (expert C, 4,500 training photos,
# mean PSNR on the 500 test photos, sRGB inputs), each with where it was reported. Never mixed
# with measured cells: they come from other code, other training budgets and the full data set.
PUBLISHED_FIVEK = [
    ("hdrnet", 24.32, "Zeng et al. 2020, Image-adaptive 3D LUTs (TPAMI), FiveK comparison table"),
    ("hdrnet", 24.66, "Yang et al. 2022, AdaInt (CVPR), Table 1"),
    ("lut3d", 25.21, "Zeng et al. 2020, Image-adaptive 3D LUTs (TPAMI), FiveK comparison table"),
    ("AdaInt", 25.49, "Yang et al. 2022, AdaInt (CVPR), Table 1"),
]


def published_fivek_table(selected: pd.DataFrame) -> Table | None:
    """The published FiveK figures beside our measured ones (None without fivek runs)."""
    fivek = selected[selected["task"] == "fivek"].set_index("model")["psnr"]
    if fivek.empty:
        return None
    rows = [{"model": model, "published PSNR (dB)": value, "source": source,
             "measured here (dB)": fivek.get(model, float("nan"))} for model, value, source in PUBLISHED_FIVEK]
    caption = ("Published FiveK figures (480p release, expert C, mean PSNR on its 500 test photos), as "
               "reported in the papers named: not measured here. 'measured here' is this report's fivek "
               "cell, on the data.root it was run on (the same protocol only when that is the full 480p "
               "release with its official split).")
    return Table("published_fivek", caption, pd.DataFrame(rows),
                 {"published PSNR (dB)": ".2f", "measured here (dB)": ".2f"}, show_index=False)


def sources_table(runs: pd.DataFrame, selected: pd.DataFrame) -> Table:
    """Every run found, and which Table 1 cells each one fills (a model column or the identity)."""
    models = model_order(selected)
    identity_runs = set(_identity_runs(selected, models))
    chosen = set(selected["run_dir"])
    frame = runs.sort_values(["task", "model", "finished"])[
        ["task", "model", "run_dir", "profile", "overrides", "default_config", "finished"]
    ].copy()
    frame["table1"] = [
        ", ".join(["model"] * (run in chosen) + [IDENTITY] * (run in identity_runs)) or "no"
        for run in frame["run_dir"]
    ]
    frame["finished"] = pd.to_datetime(frame["finished"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    frame = frame.reset_index(drop=True)
    frame.index.name = "run"
    caption = (
        "Runs read. table1: which cell of Table 1 (and companions) a run fills: 'model' = its "
        "(task, model) cell, 'identity' = that task's identity column. Several runs of one "
        "(task, model): the latest with the model's default config, else the latest."
    )
    return Table("sources", caption, frame, show_index=False)


SPEED_SIZES_NOTE = "ms: median (p10–p90) of repeated runs after warm-up; MP = megapixels"


def speed_table(speed: pd.DataFrame) -> Table:
    """Stage ``total`` per method, task and size, with the speed-up over the task's reference row
    of the same size and thread count."""
    total = speed[speed["stage"] == "total"].copy()
    reference = total[total["method"] == "reference"].set_index(["task", "width", "height", "threads"])["median_ms"]
    reference = reference[~reference.index.duplicated(keep="last")]
    keys = pd.MultiIndex.from_frame(total[["task", "width", "height", "threads"]])
    total["speedup"] = reference.reindex(keys).to_numpy() / total["median_ms"].to_numpy()
    total["size"] = [f"{w}×{h}" for w, h in zip(total["width"], total["height"])]
    total["ms_per_mp"] = total["median_ms"] / total["megapixels"]
    total["spread_ms"] = [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(total["p10_ms"], total["p90_ms"])]
    total = total.sort_values(["task", "megapixels", "device", "threads", "median_ms"])
    columns = ["task", "size", "megapixels", "method", "median_ms", "spread_ms", "ms_per_mp", "speedup",
               "needs_operator", "parameters", "device", "threads"]
    values = total[columns].reset_index(drop=True)
    values.index.name = "row"
    devices = "; ".join(sorted({f"{d}: {n}" for d, n in zip(speed["device"], speed["device_name"].fillna(""))}))
    caption = (
        f"Speed (stage 'total', whole predict at full resolution). {SPEED_SIZES_NOTE}. speedup = "
        f"reference ms / method ms for the same task, size and threads. Devices: {devices}."
    )
    formats = {"megapixels": "{:.2f}", "median_ms": "{:.2f}", "ms_per_mp": "{:.1f}", "speedup": "{:.2f}x",
               "parameters": "{:.0f}"}
    return Table("speed", caption, values, formats, show_index=False)


def speed_stages_table(speed: pd.DataFrame) -> Table:
    """Every stage other than ``total`` (network, full-res stage, bandwidth bound, training step)."""
    stages = speed[speed["stage"] != "total"].copy()
    stages["size"] = [f"{w}×{h}" for w, h in zip(stages["width"], stages["height"])]
    stages["ms_per_mp"] = stages["median_ms"] / stages["megapixels"]
    columns = ["task", "size", "method", "stage", "median_ms", "ms_per_mp", "device", "threads"]
    values = stages.sort_values(["task", "megapixels", "method", "stage"])[columns].reset_index(drop=True)
    values.index.name = "row"
    caption = (
        "Speed by stage. method 'bound' / stage 'fullres_bandwidth': the memory-bandwidth lower "
        f"bound of the full-resolution stage. {SPEED_SIZES_NOTE}."
    )
    return Table("speed_stages", caption, values, {"median_ms": "{:.3f}", "ms_per_mp": "{:.2f}"}, show_index=False)


ENVIRONMENT_KEYS = ("processor", "cpu_count", "device", "device_name", "torch_threads", "torch", "git_revision")


def environment_table(runs: pd.DataFrame, speed: pd.DataFrame) -> Table:
    """Each distinct machine/software setting the runs (and speed measurements) came from."""
    rows = [{"source": "results.json", **{k: env.get(k) for k in ENVIRONMENT_KEYS}} for env in runs["environment"]]
    if not speed.empty:
        rows += [{"source": "speed.json", **dict.fromkeys(ENVIRONMENT_KEYS), "device": device, "device_name": name,
                  "torch_threads": threads}
                 for device, name, threads in zip(speed["device"], speed["device_name"], speed["threads"])]
    frame = pd.DataFrame(rows, dtype=object).map(lambda value: "" if value is None else str(value))
    values = frame.groupby(list(frame.columns), dropna=False, sort=False).size().rename("count").reset_index()
    caption = "Where the numbers come from: CPU, device, threads and git revision (count = runs or speed rows)."
    return Table("environment", caption, values, show_index=False)
