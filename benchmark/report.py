"""Report over any set of runs: tables (Markdown, LaTeX, CSV), figures (PNG, PDF) and index.html.

Usage: python -m benchmark.report RUN_OR_MULTIRUN_DIR [...] [speed.json ...] --out reports/NAME
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from benchmark import PROJECT_ROOT
from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.files import staging_folder, write_errors
from benchmark.evaluation.metrics import METRICS
from benchmark.reporting.explainer import write_explainer
from benchmark.reporting.figures import comparison_images, write_figures
from benchmark.reporting.html import write_html
from benchmark.reporting.tables import (
    environment_table,
    published_fivek_table,
    quality_table,
    select_table_runs,
    sources_table,
    speed_stages_table,
    speed_table,
    write_table,
)

RESULTS_NAME = "results.json"
SPEED_NAME = "speed.json"
RESULTS_KEYS = ("task", "model", "config", "environment", "images", "summary")
SPEED_KEYS = ("method", "stage", "task", "width", "height", "megapixels", "median_ms", "p10_ms", "p90_ms",
              "threads", "device")


def find_inputs(paths: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """results.json and speed.json files under ``paths`` (files may be given directly), and run
    folders (with ``.hydra/``) that have no results.json: interrupted or failed runs."""
    results, speed, incomplete = [], [], []
    for path in paths:
        if path.is_file():
            (results if path.name == RESULTS_NAME else speed).append(path)
            continue
        if not path.is_dir():
            raise BenchmarkError(f"{path}: no such file or directory")
        found, found_speed = sorted(path.rglob(RESULTS_NAME)), sorted(path.rglob(SPEED_NAME))
        if not found and not found_speed:
            raise BenchmarkError(f"{path}: no {RESULTS_NAME} or {SPEED_NAME} found (not a run, multirun or speed directory)")
        results += found
        speed += found_speed
        incomplete += sorted(h.parent for h in path.rglob(".hydra") if not (h.parent / RESULTS_NAME).is_file())
    return results, speed, incomplete


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchmarkError(f"{path}: unreadable or corrupt JSON ({error})") from None


def load_results(path: Path) -> dict[str, Any]:
    """A results.json, checked for the keys the report reads."""
    results = _read_json(path)
    if not isinstance(results, dict):
        raise BenchmarkError(f"{path}: expected a JSON object, got {type(results).__name__}")
    missing = [key for key in RESULTS_KEYS if key not in results]
    missing += [f"summary.{k}" for k in METRICS if k not in results.get("summary", {})]
    if missing:
        raise BenchmarkError(f"{path}: not a complete results file (missing {', '.join(missing)})")
    return results


def load_speed(paths: list[Path]) -> pd.DataFrame:
    """All speed.json rows (a JSON list of measurements each) in one frame."""
    rows = []
    for path in paths:
        data = _read_json(path)
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise BenchmarkError(f"{path}: expected a JSON list of speed rows")
        timings = [row for row in data if row.get("stage") != "peak_memory"]  # memory rows hold bytes, not times
        for row in timings:
            missing = [key for key in SPEED_KEYS if key not in row]
            if missing:
                raise BenchmarkError(f"{path}: speed row {row} lacks {', '.join(missing)}")
        rows += [{"device_name": None, "needs_operator": None, "parameters": None, **row} for row in timings]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["parameters"] = frame["parameters"].astype("Int64")  # null for the reference operator
    return frame


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    return {k: v for key, value in node.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}


def model_overrides(model: str, model_config: dict[str, Any]) -> dict[str, Any] | None:
    """Keys of the run's model config that differ from ``conf/model/<model>.yaml`` (None: no such file)."""
    path = PROJECT_ROOT / "conf" / "model" / f"{model}.yaml"
    if not path.is_file():
        return None
    default = {k.rstrip("."): v for k, v in _flatten(OmegaConf.to_container(OmegaConf.load(path))).items()}
    ran = {k.rstrip("."): v for k, v in _flatten(model_config).items()}
    return {key: ran[key] for key in sorted(default.keys() & ran.keys()) if ran[key] != default[key]}


def has_non_finite_summary(results: dict[str, Any]) -> bool:
    """A diverged or broken run: a quality mean or the time is NaN or infinite (None = skipped, fine)."""
    values = [results["summary"].get(key) for key in (*METRICS, "time_ms")]
    return any(isinstance(value, (int, float)) and not math.isfinite(value) for value in values)


def load_runs(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """One row per run (flags, config, summary means), one row per (run, test image), and the runs
    left out because their summary holds non-finite values (listed as a caveat)."""
    runs, images, non_finite = [], [], []
    for path in paths:
        results = load_results(path)
        if has_non_finite_summary(results):
            non_finite.append(path)
            continue
        model_config = results["config"].get("model", {})
        overrides = model_overrides(results["model"], model_config) or {}
        grid = model_config.get("grid") or {}
        run = {
            "run_dir": str(path.parent),
            "task": results["task"],
            "model": results["model"],
            "profile": results.get("profile"),
            "synthetic": bool(results.get("synthetic", False)),
            "upper_bound": bool(results.get("upper_bound", False)),
            "needs_operator": results.get("needs_operator"),
            "parameters": results.get("parameters"),
            "default_config": not overrides,
            "overrides": ", ".join(f"{k}={v}" for k, v in overrides.items()),
            "override_keys": tuple(overrides),
            "grid_spatial": grid.get("spatial"),
            "grid_luma_bins": grid.get("luma_bins"),
            "finished": path.stat().st_mtime,
            "lpips_status": results.get("lpips_status"),
            "environment": results["environment"],
            **{key: results["summary"].get(key) for key in ("identity_psnr", "time_ms", "reference_time_ms")},
            **{key: results["summary"][key] for key in METRICS},
        }
        run["label"] = run["model"] + (f" ({run['overrides']})" if run["overrides"] else "")
        runs.append(run)
        images += [{"run_dir": run["run_dir"], "task": run["task"], "model": run["model"], **row}
                   for row in results["images"]]
    if non_finite and not runs:
        raise BenchmarkError(f"no run with finite results among {len(paths)}: {', '.join(map(str, non_finite[:3]))}")
    frame = pd.DataFrame(runs)
    for metric in METRICS:
        frame[metric] = frame[metric].astype(float)
    return frame, pd.DataFrame(images), non_finite


def caveats(runs: pd.DataFrame, selected: pd.DataFrame, incomplete: list[Path], non_finite: list[Path]) -> list[str]:
    """What a reader must know before comparing the numbers."""
    notes = []
    if selected["upper_bound"].any():
        bounds = ", ".join(sorted(set(selected.loc[selected["upper_bound"], "model"])))
        notes.append(f"Upper bounds ({bounds}) fit on the full-resolution output: not speed-ups, never 'best'.")
    if selected["synthetic"].any():
        tasks = ", ".join(sorted(set(selected.loc[selected["synthetic"], "task"])))
        notes.append(f"Synthetic targets (built-in stand-in looks, not human edits): {tasks}.")
    if selected["lpips"].isna().any():
        statuses = "; ".join(sorted(set(selected.loc[selected["lpips"].isna(), "lpips_status"].dropna())))
        notes.append(f"LPIPS not computed for some or all runs: {statuses or 'skipped'}.")
    for task, profiles in selected.groupby("task")["profile"].unique().items():
        if len(profiles) > 1:
            notes.append(f"{task}: Table 1 mixes profiles {sorted(map(str, profiles))} (different images/budgets).")
    by_reason: dict[str, list[str]] = {}  # one line per distinct reason, not one per folder
    for folder in incomplete:
        error = folder / "error.txt"
        reason = " ".join(error.read_text().split()) if error.is_file() else "interrupted (no error.txt)"
        by_reason.setdefault(reason, []).append(folder.name)
    for reason, folders in by_reason.items():
        notes.append(f"{reason} — {len(folders)} run folder(s) without results.json ignored: {', '.join(folders)}")
    if non_finite:
        notes.append(f"{len(non_finite)} run(s) with NaN or infinite results left out: "
                     + ", ".join(str(path.parent) for path in non_finite))
    return notes


def build_report(runs: pd.DataFrame, images: pd.DataFrame, speed: pd.DataFrame, incomplete: list[Path],
                 non_finite: list[Path], folder: Path, pdf: bool = False) -> None:
    """Every table, figure and the index page into ``folder``."""
    selected = select_table_runs(runs)
    quality = [quality_table(selected, metric) for metric in METRICS]
    published = published_fivek_table(selected)
    speeds = [] if speed.empty else [speed_table(speed)]
    if not speed.empty and (speed["stage"] != "total").any():
        speeds.append(speed_stages_table(speed))
    sources, environment = sources_table(runs, selected), environment_table(runs, speed)
    for table in [*quality, *speeds, sources, environment, *([published] if published else [])]:
        write_table(table, folder / "tables")
    figures = write_figures(runs, images, selected, folder / "figures", pdf)
    comparisons = [comparison for task in sorted(selected["task"].unique())
                   if (comparison := comparison_images(task, selected[selected["task"] == task],
                                                       folder / "figures" / "compare")) is not None]
    explainer = write_explainer(folder / "figures", pdf)
    write_html(folder / "index.html", quality, published, speeds, figures, comparisons, explainer, sources,
               environment, caveats(runs, selected, incomplete, non_finite))


def write_report(paths: list[Path], out: Path, profile: str | None = None, pdf: bool = False) -> None:
    """Load and check everything first, build in a temp folder beside ``out``, then rename into
    place: a failed report leaves no half-written output (and a previous report intact)."""
    results_files, speed_files, incomplete = find_inputs(paths)
    runs, images, non_finite = load_runs(results_files)
    if profile is not None:
        runs = runs[runs["profile"] == profile]
        if runs.empty:
            raise BenchmarkError(f"--profile {profile}: none of the {len(results_files)} runs used it")
        images = images[images["run_dir"].isin(runs["run_dir"])]
    speed = load_speed(speed_files)
    if out.exists() and not (out / "index.html").is_file():
        raise BenchmarkError(f"--out {out}: exists and is not a previous report; not replacing it")
    staging = staging_folder(out)
    try:
        with write_errors(out):
            build_report(runs, images, speed, incomplete, non_finite, staging, pdf)
        if out.exists():
            previous = staging.with_suffix(".old")
            os.replace(out, previous)
            os.replace(staging, out)
            shutil.rmtree(previous)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m benchmark.report",
        description=(
            "Tables, figures and a static index.html over run directories of `python -m benchmark` "
            "(every results.json found below each one, so a Hydra multirun folder works) and any "
            "speed.json of `python -m benchmark.speed` found there or given as a file."
        ),
        epilog=(
            "Writes OUT/index.html, OUT/tables/*.{md,tex,csv} and OUT/figures/*.png (photo panels .jpg; "
            "with --pdf also *.pdf for papers). "
            "Several runs of one (task, model): Table 1 uses the latest with the model's default "
            "config, else the latest; OUT/tables/sources.csv says which run fills which cell."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="run or multirun directory, or a speed.json / results.json file")
    parser.add_argument("--out", type=Path, required=True,
                        help="report folder, e.g. reports/local_laplacian (replaced if it holds a report)")
    parser.add_argument("--profile", help="only runs of this profile (smoke, quick, long, paper)")
    parser.add_argument("--pdf", action="store_true", help="also write every figure as a vector PDF (for papers)")
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_report(args.paths, args.out, args.profile, args.pdf)
    print(f"report: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
