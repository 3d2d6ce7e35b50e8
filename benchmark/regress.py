"""Compare runs with a committed baseline: quality and speed per (task, model); exit 1 on a regression.

Usage:
  python -m benchmark.regress --baseline reports/baselines/NAME.json RUN_OR_MULTIRUN_DIR...
  python -m benchmark.regress --write-baseline reports/baselines/NAME.json RUN_OR_MULTIRUN_DIR...
      [--sigmas K] [--psnr-floor DB] [--ssim-floor X] [--lpips-floor X] [--speed-tolerance FACTOR|none]

A baseline holds, per (task, model), the mean test PSNR and SSIM over several training seeds on
the same test photos, their spread, and a tolerance derived from it: max(K x standard deviation,
floor), recorded with how it was derived. A run fails a check when it falls below the mean by more
than the tolerance, or when its value is not a finite number. Speed is the median over test images
of ``time_ms / reference_time_ms``: the model's time over the reference operator's, both measured
in the same run, a ratio that moves less between machines and loads than milliseconds do (tasks
without an operator have none and are not speed-checked). Exit codes: 0 no regression; 1 a
regression, or a (task, model) of the baseline missing from the runs; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.files import write_json_atomic
from benchmark.evaluation.metrics import METRICS, Metric

# The metrics with a regression floor (benchmark.evaluation.metrics.METRICS); a metric a run could
# not compute (null, e.g. LPIPS without its weights) is skipped, never failed.
CHECKED = tuple(metric for metric in METRICS.values() if metric.regress_floor is not None)
# Tolerance of a quality metric = max(SIGMAS x its spread over the baseline's seeds, its floor). The
# floors sit above the float noise of another CPU or thread count (<= 0.01 dB measured for the
# upsamplers) and far below a real loss (one training step instead of thousands: several dB).
DEFAULT_RULE: dict[str, Any] = {
    "sigmas": 3.0,
    "floors": {metric.key: metric.regress_floor for metric in CHECKED},
    # Timings of the same code vary by 20-30% with load, turbo and cache state; a real slow-down
    # (a lost fused kernel, an extra full-resolution pass) is 2x or more. None: not checked.
    "time_ratio_growth": 1.5,
}
FORMAT = 2
# Must agree between a run and the baseline entry it is compared with, or the numbers mean nothing.
# The seed need not: an entry's tolerance covers the spread over training seeds.
COMPARABLE_KEYS = ("profile", "test_images")


@dataclass(frozen=True)
class Run:
    entry: dict[str, Any]  # what a baseline keeps of a run
    run_dir: Path
    environment: dict[str, Any]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchmarkError(f"{path}: cannot read {what} ({error})") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: not {what} (a JSON object expected)")
    return data


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def read_run(results_path: Path) -> Run:
    """A run's results.json, reduced to what is compared."""
    results = _read_json(results_path, "results")
    try:
        images = results["images"]
        ratios = [row["time_ms"] / row["reference_time_ms"] for row in images if row["reference_time_ms"]]
        entry = {
            "task": results["task"],
            "model": results["model"],
            "profile": results["profile"],
            "seed": results["config"]["seed"],
            "test_images": [f"{row['image']} {row['width']}x{row['height']}" for row in images],
            **{metric.key: results["summary"].get(metric.key) for metric in CHECKED},
            "time_ratio": float(np.median(ratios)) if ratios and len(ratios) == len(images) else None,
            "git_revision": results["environment"]["git_revision"],
        }
        return Run(entry, results_path.parent, results["environment"])
    except (KeyError, TypeError) as error:
        raise BenchmarkError(f"{results_path}: not a results.json of this harness (no {error})") from None


def collect_runs(paths: list[Path]) -> dict[tuple[str, str], list[Run]]:
    """Every finished run (a results.json) in or below ``paths``, grouped by (task, model)."""
    found: dict[Path, None] = {}
    for path in paths:
        results = [path / "results.json"] if (path / "results.json").is_file() else sorted(path.rglob("results.json"))
        if not results:
            raise BenchmarkError(f"{path}: no results.json here or below (expected a run or multirun directory)")
        found.update((result.resolve(), None) for result in results)
    runs: dict[tuple[str, str], list[Run]] = {}
    for results_path in found:
        run = read_run(results_path)
        runs.setdefault((run.entry["task"], run.entry["model"]), []).append(run)
    return runs


def one_run_each(runs: dict[tuple[str, str], list[Run]]) -> dict[tuple[str, str], Run]:
    """For a comparison: exactly one run per (task, model)."""
    for (task, model), group in sorted(runs.items()):
        if len(group) > 1:
            raise BenchmarkError(
                f"{len(group)} runs of task={task} model={model} ({group[0].run_dir}, {group[1].run_dir}, ...); "
                "pass one of them"
            )
    return {key: group[0] for key, group in runs.items()}


def _statistic(metric: str, values: list[float], rule: dict[str, Any]) -> dict[str, Any]:
    """Mean, spread and the tolerance derived from them, with how it was derived."""
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    floor = rule["floors"][metric]
    tolerance = max(rule["sigmas"] * spread, floor)
    how = (f"max({rule['sigmas']:g} x std {spread:.4g} over {len(values)} seeds, floor {floor:g})"
           if len(values) > 1 else f"floor {floor:g} (one seed: no spread measured)")
    return {"mean": float(np.mean(values)), "std": spread, "values": values, "tolerance": tolerance, "derived": how}


def baseline_entry(group: list[Run], rule: dict[str, Any]) -> dict[str, Any]:
    """One (task, model) of a baseline from its runs over several seeds (same data, same profile)."""
    first = group[0].entry
    seeds = [run.entry["seed"] for run in group]
    if len(set(seeds)) < len(seeds):
        raise BenchmarkError(f"task={first['task']} model={first['model']}: two runs with one seed "
                             f"({', '.join(str(run.run_dir) for run in group)}); one run per seed")
    for run in group:
        for key in COMPARABLE_KEYS:
            if run.entry[key] != first[key]:
                raise BenchmarkError(f"{run.run_dir}: {key} differs from {group[0].run_dir}; the seeds of a "
                                     "baseline share data and profile (fix data.split_seed)")
        for metric in CHECKED:
            value = run.entry[metric.key]
            if value is not None and not _finite(value):
                raise BenchmarkError(f"{run.run_dir}: {metric.key}={value}; a baseline is written from finite results only")
    ratios = [run.entry["time_ratio"] for run in group]
    entry = {key: first[key] for key in ("task", "model", "profile", "test_images")}
    entry["seeds"] = sorted(seeds)
    for metric in CHECKED:
        values = [run.entry[metric.key] for run in group]
        if all(value is not None for value in values):  # in the baseline only where every run computed it
            entry[metric.key] = _statistic(metric.key, values, rule)
    entry["time_ratio"] = float(np.median(ratios)) if all(r is not None for r in ratios) else None
    entry["git_revisions"] = sorted({run.entry["git_revision"] for run in group})
    return entry


def write_baseline(path: Path, runs: dict[tuple[str, str], list[Run]], rule: dict[str, Any], command: str) -> None:
    """The baseline file: the tolerance rule, provenance and one entry per (task, model)."""
    first = next(iter(runs.values()))[0]
    entries = [baseline_entry(runs[key], rule) for key in sorted(runs)]
    write_json_atomic(
        {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "tolerance_rule": rule,
            "git_revisions": sorted({rev for entry in entries for rev in entry["git_revisions"]}),
            "environment": {k: v for k, v in first.environment.items() if k != "git_revision"},
            "entries": entries,
        },
        path,
    )


def read_baseline(path: Path) -> dict[str, Any]:
    baseline = _read_json(path, "a baseline")
    if "entries" not in baseline:
        raise BenchmarkError(f"{path}: not a baseline (no entries; write one with --write-baseline)")
    if baseline.get("format") != FORMAT:
        raise BenchmarkError(f"{path}: a baseline of format {baseline.get('format', 1)}, this harness reads "
                             f"format {FORMAT} (mean and spread over seeds); write it again with --write-baseline")
    if not isinstance(baseline.get("entries"), list) or not isinstance(baseline.get("tolerance_rule"), dict):
        raise BenchmarkError(f"{path}: not a baseline (no entries/tolerance_rule; write one with --write-baseline)")
    return baseline


def _check_comparable(expected: dict[str, Any], run: Run) -> None:
    for key in COMPARABLE_KEYS:
        if run.entry[key] != expected.get(key):
            raise BenchmarkError(
                f"{run.run_dir}: {key}={run.entry[key]!r}, but the baseline's task={expected['task']} "
                f"model={expected['model']} has {expected.get(key)!r}: not comparable"
            )


def compare(baseline: dict[str, Any], runs: dict[tuple[str, str], Run]) -> tuple[list[dict[str, str]], int]:
    """One row per (task, model, metric) and the number of failed checks (regressions + missing).

    A quality value fails when it is below the baseline's mean by more than the entry's tolerance,
    or when it is not a finite number (NaN is never "ok").
    """
    rows, failures = [], 0
    growth = baseline["tolerance_rule"].get("time_ratio_growth")
    for expected in baseline["entries"]:
        key = (expected["task"], expected["model"])
        row = {"task": key[0], "model": key[1]}
        if key not in runs:
            rows.append({**row, "metric": "-", "baseline": "", "current": "missing", "delta": "", "tolerance": "",
                         "verdict": "MISSING"})
            failures += 1
            continue
        current = runs[key].entry
        _check_comparable(expected, runs[key])
        for metric in CHECKED:
            if metric.key not in expected:
                continue  # not computed when the baseline was written
            stats, value = expected[metric.key], current[metric.key]
            direction, digits = (1 if metric.higher_is_better else -1), _digits(metric)
            bound = f"{'>=' if direction > 0 else '<='} {-direction * stats['tolerance']:+.{digits}f}"
            if value is None:
                regressed, shown, change, verdict = False, "not computed", "", "skipped"
            elif _finite(value):
                delta = value - stats["mean"]
                regressed, shown, change = direction * delta < -stats["tolerance"], f"{value:.{digits}f}", f"{delta:+.{digits}f}"
                verdict = "REGRESSION" if regressed else "ok"
            else:
                regressed, shown, change, verdict = True, str(value), "non-finite", "REGRESSION"
            rows.append({**row, "metric": f"{metric.key} {metric.unit}".strip(),
                         "baseline": f"{stats['mean']:.{digits}f}±{stats['std']:.{digits}f}", "current": shown,
                         "delta": change, "tolerance": bound, "verdict": verdict})
            failures += regressed
        before, after = expected["time_ratio"], current["time_ratio"]
        if before is None or after is None:
            continue  # no reference operator: nothing to compare the model's time with
        regressed = growth is not None and not after <= before * growth
        rows.append({**row, "metric": "time/ref", "baseline": f"{before:.3f}", "current": f"{after:.3f}",
                     "delta": f"x{after / before:.2f}",
                     "tolerance": "not checked" if growth is None else f"<= x{growth}",
                     "verdict": "skipped" if growth is None else "REGRESSION" if regressed else "ok"})
        failures += regressed
    return rows, failures


def _tolerance(minimum: float, allow_none: bool = False) -> Callable[[str], float | None]:
    """An argparse type: a number >= ``minimum`` (or 'none' when allowed)."""

    def parse(text: str) -> float | None:
        if allow_none and text == "none":
            return None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number >= {minimum}{' or none' if allow_none else ''}")
        return value
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m benchmark.regress",
        description="Compare runs (run or multirun directories) with a baseline: mean PSNR, SSIM, LPIPS and the "
        "model/reference time ratio per (task, model). Exit 0: no regression; 1: a regression, a "
        "non-finite value or a baseline (task, model) missing from the runs; 2: bad input.",
        epilog="A baseline is written from runs of several seeds of each (task, model) on the same data "
        "(e.g. `python -m benchmark -m model=hdrnet seed=0,1,2 data.split_seed=0`); each metric's "
        "tolerance is max(SIGMAS x its standard deviation over the seeds, its floor), stored in the file "
        "with how it was derived.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--baseline", type=Path, metavar="FILE", help="compare the runs with this baseline")
    mode.add_argument("--write-baseline", type=Path, metavar="FILE", help="write the runs as a new baseline")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run or multirun directories")
    rule = DEFAULT_RULE
    parser.add_argument("--sigmas", type=_tolerance(0.0), default=rule["sigmas"], metavar="K",
                        help=f"with --write-baseline: tolerance in standard deviations over seeds (default {rule['sigmas']:g})")
    for metric in CHECKED:
        change = "drop" if metric.higher_is_better else "rise"
        parser.add_argument(f"--{metric.key.replace('_', '-')}-floor", type=_tolerance(0.0), dest=f"{metric.key}_floor",
                            default=metric.regress_floor, metavar=(metric.unit or "X").upper(),
                            help=f"with --write-baseline: smallest allowed {metric.column} {change} "
                            f"(default {metric.regress_floor})")
    parser.add_argument("--speed-tolerance", type=_tolerance(1.0, allow_none=True),
                        default=rule["time_ratio_growth"], metavar="FACTOR",
                        help="with --write-baseline: allowed growth of time/reference time, or 'none' to "
                        f"skip speed (default {rule['time_ratio_growth']})")
    return parser.parse_args(argv)


def _digits(metric: Metric) -> int:
    """One decimal more than the metric's table format ("{:.2f}" -> 3)."""
    return int(metric.fmt.split(".")[1][0]) + 1


@command
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    runs = collect_runs(args.runs)
    if args.write_baseline is not None:
        floors = {metric.key: getattr(args, f"{metric.key}_floor") for metric in CHECKED}
        rule = {"sigmas": args.sigmas, "floors": floors,
                "time_ratio_growth": args.speed_tolerance}
        write_baseline(args.write_baseline, runs, rule, "python -m benchmark.regress " + shlex.join(argv))
        seeds = sorted({len(group) for group in runs.values()})
        print(f"wrote {args.write_baseline}: {len(runs)} (task, model) entries from {'/'.join(map(str, seeds))} "
              f"seed(s) each, tolerance rule {rule}")
        return 0
    baseline = read_baseline(args.baseline)
    single = one_run_each(runs)
    rows, failures = compare(baseline, single)
    print(f"baseline {args.baseline} (git {', '.join(baseline.get('git_revisions', []))}) against {len(single)} run(s)")
    print(pd.DataFrame(rows).to_string(index=False))
    unchecked = sorted(set(single) - {(e["task"], e["model"]) for e in baseline["entries"]})
    if unchecked:
        print("not in the baseline (not checked): " + ", ".join(f"{task}/{model}" for task, model in unchecked))
    print(f"REGRESSION: {failures} check(s) failed" if failures else "no regression")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
