"""The report's figures, per task: quality vs time (Pareto), grid-size heatmap, training curves,
per-image PSNR, and a visual comparison strip. Each is written as PNG and PDF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from benchmark.core.images import read_image, resize, write_image
from benchmark.reporting import FEATURED_MODEL
from benchmark.reporting.tables import IDENTITY, model_order

ERROR_GAIN = 4  # |output - target| is multiplied by this so small errors are visible
GRID_KEYS = ("grid.spatial", "grid.luma_bins")
EXAMPLE_IMAGES = 2
COMPARE_SIDE = 640  # longer side of the before/after slider's JPEGs: keeps the report small
JPEG_QUALITY = 85  # the slider's images and the example panels: ~0.5 MB per task, the report under 10 MB


@dataclass(frozen=True)
class Figure:
    """A written figure (``path`` of its PNG or JPEG, ``pdf`` when asked for, both relative to the
    report folder) or a skip note (``path`` None)."""

    task: str
    title: str
    path: str | None
    pdf: str | None = None
    note: str = ""


def save(figure: plt.Figure, folder: Path, name: str, pdf: bool, photo: bool = False) -> tuple[str, str | None]:
    """``<folder>/<name>.png`` (``.jpg`` for a figure of photos: a tenth of the size), and ``.pdf``
    when ``pdf``; returns both paths relative to the report folder (None: no PDF)."""
    folder.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    raster = f"{name}.{'jpg' if photo else 'png'}"
    figure.savefig(folder / raster, dpi=120, **({"pil_kwargs": {"quality": JPEG_QUALITY}} if photo else {}))
    if pdf:
        figure.savefig(folder / f"{name}.pdf")
    plt.close(figure)
    return f"{folder.name}/{raster}", f"{folder.name}/{name}.pdf" if pdf else None


def latest_per_label(runs: pd.DataFrame) -> pd.DataFrame:
    """One run per (task, label): repeated runs of one configuration count once (the latest)."""
    return runs.sort_values("finished").groupby(["task", "label"]).tail(1)


def pareto_front(times: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both time (lower) and quality (higher), by time."""
    front, best = [], -np.inf
    for index in np.lexsort((-quality, times)):
        if quality[index] > best:
            front.append(index)
            best = quality[index]
    return np.array(front, dtype=int)


def pareto_figure(task: str, runs: pd.DataFrame, folder: Path, pdf: bool = False) -> Figure:
    """PSNR against time. A model run in several configurations (a grid sweep) is one series with
    one legend entry; only its default configuration (or its single run) gets a text label."""
    title = "quality vs time per image"
    points = latest_per_label(runs).dropna(subset=["time_ms", "psnr"])
    figure, axis = plt.subplots(figsize=(6.5, 5.2))
    for upper_bound, marker, face in ((False, "o", None), (True, "s", "none")):
        subset = points[points["upper_bound"] == upper_bound]
        labelled = subset[(subset["label"] == subset["model"]) | ~subset["model"].duplicated(keep=False)]
        axis.scatter(labelled["time_ms"], labelled["psnr"], marker=marker, facecolors=face,
                     edgecolors="C0", label="upper bound (fits on the output)" if upper_bound else "model")
        for _, row in labelled.iterrows():
            axis.annotate(row["label"], (row["time_ms"], row["psnr"]), fontsize=7,
                          xytext=(4, 3), textcoords="offset points")
        variants = subset.drop(labelled.index)
        for number, (model, series) in enumerate(variants.groupby("model"), start=2):
            keys = sorted({key for keys in series["override_keys"] for key in keys})
            axis.scatter(series["time_ms"], series["psnr"], marker="^" if not upper_bound else "s", s=18,
                         color=f"C{number}", alpha=0.8,
                         label=f"{model}: {len(series)} other configurations ({', '.join(keys)})")
    candidates = points[~points["upper_bound"]]
    front = pareto_front(candidates["time_ms"].to_numpy(), candidates["psnr"].to_numpy())
    if len(front):
        axis.plot(candidates["time_ms"].to_numpy()[front], candidates["psnr"].to_numpy()[front],
                  drawstyle="steps-post", color="C1", label="Pareto front")
    reference_ms = points["reference_time_ms"].dropna()
    if len(reference_ms):
        axis.axvline(reference_ms.median(), color="k", linestyle="--",
                     label=f"reference operator ({reference_ms.median():.1f} ms)")
    axis.set_xscale("log")
    # ticks at 10, 20, 50, 100 ... ms in plain numbers (matplotlib's default labels every minor tick
    # as 2x10^1, 3x10^1, ... over spans under two decades, and they overlap)
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("time per image (ms, log)")
    axis.set_ylabel("mean PSNR (dB)")
    axis.set_title(f"{task}: {title}")
    axis.grid(alpha=0.3, which="both")
    # below the axes: inside, it covers a point whichever corner it takes once sweeps add entries
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    return Figure(task, title, *save(figure, folder, f"{task}_pareto", pdf))


def grid_figure(task: str, runs: pd.DataFrame, folder: Path, pdf: bool = False) -> Figure:
    title = "HDRNet grid size → PSNR"
    hdrnet = runs[(runs["model"] == FEATURED_MODEL) & runs["override_keys"].map(lambda keys: set(keys) <= set(GRID_KEYS))]
    hdrnet = hdrnet.dropna(subset=["grid_spatial", "grid_luma_bins"]).sort_values("finished")
    configs = hdrnet.groupby(["grid_spatial", "grid_luma_bins"])["psnr"].last()
    if len(configs) < 2:
        return Figure(task, title, None, note="skipped: needs hdrnet runs with at least two grid configurations "
                      "(e.g. `python -m benchmark -m model.grid.luma_bins=4,8,16`)")
    table = configs.unstack("grid_luma_bins").sort_index()
    figure, axis = plt.subplots(figsize=(1.2 * table.shape[1] + 2.5, 0.8 * table.shape[0] + 2))
    image = axis.imshow(table.to_numpy(dtype=float), cmap="viridis")
    middle = np.nanmean(table.to_numpy(dtype=float))
    for (row, column), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isnan(value):
            axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="w" if value < middle else "k")  # readable on viridis' dark and light ends
    axis.set_xticks(range(table.shape[1]), [int(v) for v in table.columns])
    axis.set_yticks(range(table.shape[0]), [int(v) for v in table.index])
    axis.set_xlabel("model.grid.luma_bins")
    axis.set_ylabel("model.grid.spatial")
    axis.set_title(f"{task}: {title}")
    figure.colorbar(image, ax=axis, label="mean PSNR (dB)")
    return Figure(task, title, *save(figure, folder, f"{task}_grid", pdf))


def training_figure(task: str, runs: pd.DataFrame, folder: Path, pdf: bool = False) -> Figure:
    title = "training curves"
    curves = [(row["label"], Path(row["run_dir"]) / "training_curve.csv") for _, row in latest_per_label(runs).iterrows()]
    curves = [(label, path) for label, path in curves if path.is_file()]
    if not curves:
        return Figure(task, title, None, note="skipped: no run of a learned model (no training_curve.csv)")
    figure, axis = plt.subplots(figsize=(6.5, 4.5 + 0.14 * len(curves)))
    for number, (label, path) in enumerate(curves):
        curve = pd.read_csv(path)
        # the colour cycle has 10 colours: a sweep's 11th curve gets the 1st colour, dashed
        axis.plot(curve["train_seconds"], curve["test_psnr"], marker=".", label=label,
                  linestyle=("-", "--", ":")[number // 10 % 3])
    axis.set_xlabel("training time (s, excluding evaluation)")
    axis.set_ylabel("held-out PSNR (dB)")
    axis.set_title(f"{task}: {title}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    return Figure(task, title, *save(figure, folder, f"{task}_training", pdf))


def per_image_figure(task: str, selected: pd.DataFrame, images: pd.DataFrame, folder: Path, pdf: bool = False) -> Figure:
    title = "per-image PSNR"
    models = model_order(selected)
    rows = images[images["run_dir"].isin(selected["run_dir"])]
    groups = {model: rows.loc[rows["model"] == model, "psnr"].to_numpy() for model in models}
    groups = {IDENTITY: rows.loc[rows["model"] == models[0], "identity_psnr"].to_numpy(), **groups}
    figure, axis = plt.subplots(figsize=(1.1 * len(groups) + 2, 4.5))
    axis.boxplot(list(groups.values()), showfliers=False)
    jitter = np.random.default_rng(0)  # fixed: the figure is the same on every report
    for position, values in enumerate(groups.values(), start=1):
        axis.scatter(position + jitter.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.7, color="C0")
    axis.set_xticks(range(1, len(groups) + 1), list(groups), rotation=30, ha="right")
    axis.set_ylabel("PSNR (dB), one point per test image")
    axis.set_title(f"{task}: {title}")
    axis.grid(alpha=0.3, axis="y")
    return Figure(task, title, *save(figure, folder, f"{task}_per_image", pdf))


def _example_files(run_dir: str) -> dict[str, Path]:
    return {p.name[: -len("_output.png")]: p.parent for p in sorted((Path(run_dir) / "examples").glob("*_output.png"))}


def examples_figure(task: str, selected: pd.DataFrame, folder: Path, pdf: bool = False) -> Figure:
    title = f"input, target, outputs; below: |output − target| × {ERROR_GAIN}"
    runs = selected.set_index("model").loc[model_order(selected)]
    outputs = {model: _example_files(run_dir) for model, run_dir in runs["run_dir"].items()}
    outputs = {model: files for model, files in outputs.items() if files}
    if not outputs:
        return Figure(task, title, None, note="skipped: no run saved example outputs (runs before examples/ existed)")
    names = sorted(next(iter(outputs.values())))[:EXAMPLE_IMAGES]
    columns = 2 + len(outputs)
    figure, axes = plt.subplots(2 * len(names), columns, figsize=(2.2 * columns, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        source = next(files[name] for files in outputs.values() if name in files)
        target = read_image(source / f"{name}_target.png")
        panels = {"input": read_image(source / f"{name}_input.png"), "target": target}
        panels |= {model: read_image(files[name] / f"{name}_output.png") for model, files in outputs.items()
                   if name in files}
        for column in range(columns):
            top, bottom = axes[2 * row, column], axes[2 * row + 1, column]
            top.axis("off")
            bottom.axis("off")
        for column, (label, image) in enumerate(panels.items()):
            axes[2 * row, column].imshow(image)
            axes[2 * row, column].set_title(f"{name}: {label}" if column == 0 else label, fontsize=8)
            if label != "target":
                error = np.clip(np.abs(image - target).max(axis=2) * ERROR_GAIN, 0, 1)
                axes[2 * row + 1, column].imshow(error, cmap="inferno", vmin=0, vmax=1)
                axes[2 * row + 1, column].set_title(f"error × {ERROR_GAIN}", fontsize=7)
    figure.suptitle(f"{task}: {title}", fontsize=9)
    return Figure(task, title, *save(figure, folder, f"{task}_examples", pdf, photo=True))


@dataclass(frozen=True)
class Comparison:
    """One test photo of a task for the before/after slider: label (input, target, model) -> JPEG
    path relative to the report folder."""

    task: str
    image: str
    panels: dict[str, str]


def comparison_images(task: str, selected: pd.DataFrame, folder: Path) -> Comparison | None:
    """The first example photo's input, target and every selected model's output, shrunk to
    ``COMPARE_SIDE`` and written as JPEGs into ``folder``; None when no run saved examples."""
    runs = selected.set_index("model").loc[model_order(selected)]
    outputs = {model: _example_files(run_dir) for model, run_dir in runs["run_dir"].items()}
    outputs = {model: files for model, files in outputs.items() if files}
    if not outputs:
        return None
    name = sorted(next(iter(outputs.values())))[0]
    source = next(files[name] for files in outputs.values() if name in files)
    sources = {"input": source / f"{name}_input.png", "target": source / f"{name}_target.png"}
    sources |= {model: files[name] / f"{name}_output.png" for model, files in outputs.items() if name in files}
    panels = {}
    for label, path in sources.items():
        image = read_image(path)
        scale = min(1.0, COMPARE_SIDE / max(image.shape[:2]))
        size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
        write_image(folder / f"{task}_{name}_{label}.jpg", resize(image, size), jpeg_quality=JPEG_QUALITY)
        panels[label] = f"{folder.parent.name}/{folder.name}/{task}_{name}_{label}.jpg"
    return Comparison(task, name, panels)


def write_figures(
    runs: pd.DataFrame, images: pd.DataFrame, selected: pd.DataFrame, folder: Path, pdf: bool = False
) -> list[Figure]:
    """Every figure for every task, in a stable order; skipped ones carry the reason."""
    figures = []
    for task in sorted(runs["task"].unique()):
        task_runs, task_selected = runs[runs["task"] == task], selected[selected["task"] == task]
        figures += [
            pareto_figure(task, task_runs, folder, pdf),
            grid_figure(task, task_runs, folder, pdf),
            training_figure(task, task_runs, folder, pdf),
            per_image_figure(task, task_selected, images, folder, pdf),
            examples_figure(task, task_selected, folder, pdf),
        ]
    return figures
