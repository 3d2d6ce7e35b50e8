"""Compare runs with a committed baseline: quality and speed per (task, model); exit 1 on a regression.

Usage:
  python -m benchmark.regress --baseline reports/baselines/NAME.json RUN_OR_MULTIRUN_DIR...
  python -m benchmark.regress --write-baseline reports/baselines/NAME.json RUN_OR_MULTIRUN_DIR...
      [--psnr-tolerance DB] [--ssim-tolerance X] [--speed-tolerance FACTOR|none]

Quality is the mean test PSNR and SSIM of results.json. Speed is the median over test images of
``time_ms / reference_time_ms``: the model's time over the reference operator's, both measured in
the same run, a ratio that moves less between machines and loads than milliseconds do (tasks
without an operator have none and are not speed-checked). Exit codes: 0 no regression; 1 a
regression, or a (task, model) of the baseline missing from the runs; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import ArgumentParser, BenchmarkError
from benchmark.results import write_json_atomic

DEFAULT_TOLERANCES: dict[str, float | None] = {
    # Seeded runs repeat to 1e-9 dB on one machine: any drop is a change. 0.1 dB is below what
    # anyone sees, and above the float noise of another CPU or thread count (~1e-3 dB measured).
    "psnr_drop_db": 0.1,
    "ssim_drop": 0.002,  # roughly what 0.1 dB of PSNR costs at SSIM 0.9
    # Timings of the same code vary by 20-30% with load, turbo and cache state; a real slow-down
    # (a lost fused kernel, an extra full-resolution pass) is 2x or more. None: not checked.
    "time_ratio_growth": 1.5,
}
# Must agree between a run and the baseline entry it is compared with, or the numbers mean nothing.
COMPARABLE_KEYS = ("profile", "seed", "test_images")


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
            "psnr": results["summary"]["psnr"],
            "ssim": results["summary"]["ssim"],
            "time_ratio": float(np.median(ratios)) if ratios and len(ratios) == len(images) else None,
            "git_revision": results["environment"]["git_revision"],
        }
        return Run(entry, results_path.parent, results["environment"])
    except (KeyError, TypeError) as error:
        raise BenchmarkError(f"{results_path}: not a results.json of this harness (no {error})") from None


def collect_runs(paths: list[Path]) -> dict[tuple[str, str], Run]:
    """Every finished run (a results.json) in or below ``paths``, one per (task, model)."""
    found: dict[Path, None] = {}
    for path in paths:
        results = [path / "results.json"] if (path / "results.json").is_file() else sorted(path.rglob("results.json"))
        if not results:
            raise BenchmarkError(f"{path}: no results.json here or below (expected a run or multirun directory)")
        found.update((result.resolve(), None) for result in results)
    runs: dict[tuple[str, str], Run] = {}
    for results_path in found:
        run = read_run(results_path)
        key = (run.entry["task"], run.entry["model"])
        if key in runs:
            raise BenchmarkError(
                f"two runs of task={key[0]} model={key[1]}: {runs[key].run_dir} and {run.run_dir}; pass one of them"
            )
        runs[key] = run
    return runs


def write_baseline(
    path: Path, runs: dict[tuple[str, str], Run], tolerances: dict[str, float | None], command: str
) -> None:
    """The baseline file: tolerances, provenance and one entry per (task, model)."""
    first = next(iter(runs.values()))
    write_json_atomic(
        {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "tolerances": tolerances,
            "profiles": sorted({run.entry["profile"] for run in runs.values()}),
            "seeds": sorted({run.entry["seed"] for run in runs.values()}),
            "git_revisions": sorted({run.entry["git_revision"] for run in runs.values()}),
            "environment": {k: v for k, v in first.environment.items() if k != "git_revision"},
            "entries": [runs[key].entry for key in sorted(runs)],
        },
        path,
    )


def read_baseline(path: Path) -> dict[str, Any]:
    baseline = _read_json(path, "a baseline")
    if not isinstance(baseline.get("entries"), list) or not isinstance(baseline.get("tolerances"), dict):
        raise BenchmarkError(f"{path}: not a baseline (no entries/tolerances; write one with --write-baseline)")
    missing = DEFAULT_TOLERANCES.keys() - baseline["tolerances"].keys()
    if missing:
        raise BenchmarkError(f"{path}: tolerances lack {', '.join(sorted(missing))}")
    return baseline


def _check_comparable(expected: dict[str, Any], run: Run) -> None:
    for key in COMPARABLE_KEYS:
        if run.entry[key] != expected.get(key):
            raise BenchmarkError(
                f"{run.run_dir}: {key}={run.entry[key]!r}, but the baseline's task={expected['task']} "
                f"model={expected['model']} has {expected.get(key)!r}: not comparable"
            )


def compare(baseline: dict[str, Any], runs: dict[tuple[str, str], Run]) -> tuple[list[dict[str, str]], int]:
    """One row per (task, model, metric) and the number of failed checks (regressions + missing)."""
    tolerances = baseline["tolerances"]
    rows, failures = [], 0
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
        for metric, tolerance, digits in (("psnr", "psnr_drop_db", 3), ("ssim", "ssim_drop", 4)):
            drop = tolerances[tolerance]
            delta = current[metric] - expected[metric]
            regressed = delta < -drop
            rows.append({**row, "metric": metric + (" dB" if metric == "psnr" else ""),
                         "baseline": f"{expected[metric]:.{digits}f}", "current": f"{current[metric]:.{digits}f}",
                         "delta": f"{delta:+.{digits}f}", "tolerance": f">= -{drop}",
                         "verdict": "REGRESSION" if regressed else "ok"})
            failures += regressed
        before, after = expected["time_ratio"], current["time_ratio"]
        if before is None or after is None:
            continue  # no reference operator: nothing to compare the model's time with
        growth = tolerances["time_ratio_growth"]
        regressed = growth is not None and after > before * growth
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
        description="Compare runs (run or multirun directories) with a baseline: mean PSNR, SSIM and the "
        "model/reference time ratio per (task, model). Exit 0: no regression; 1: a regression or a "
        "baseline (task, model) missing from the runs; 2: bad input.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--baseline", type=Path, metavar="FILE", help="compare the runs with this baseline")
    mode.add_argument("--write-baseline", type=Path, metavar="FILE", help="write the runs as a new baseline")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run or multirun directories")
    defaults = DEFAULT_TOLERANCES
    parser.add_argument("--psnr-tolerance", type=_tolerance(0.0), default=defaults["psnr_drop_db"], metavar="DB",
                        help=f"with --write-baseline: allowed PSNR drop (default {defaults['psnr_drop_db']})")
    parser.add_argument("--ssim-tolerance", type=_tolerance(0.0), default=defaults["ssim_drop"], metavar="X",
                        help=f"with --write-baseline: allowed SSIM drop (default {defaults['ssim_drop']})")
    parser.add_argument("--speed-tolerance", type=_tolerance(1.0, allow_none=True),
                        default=defaults["time_ratio_growth"], metavar="FACTOR",
                        help="with --write-baseline: allowed growth of time/reference time, or 'none' to "
                        f"skip speed (default {defaults['time_ratio_growth']})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        runs = collect_runs(args.runs)
        if args.write_baseline is not None:
            tolerances = {"psnr_drop_db": args.psnr_tolerance, "ssim_drop": args.ssim_tolerance,
                          "time_ratio_growth": args.speed_tolerance}
            write_baseline(args.write_baseline, runs, tolerances, "python -m benchmark.regress " + shlex.join(argv))
            print(f"wrote {args.write_baseline}: {len(runs)} (task, model) entries, tolerances {tolerances}")
            return 0
        baseline = read_baseline(args.baseline)
        rows, failures = compare(baseline, runs)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"baseline {args.baseline} (git {', '.join(baseline.get('git_revisions', []))}) against {len(runs)} run(s)")
    print(pd.DataFrame(rows).to_string(index=False))
    unchecked = sorted(set(runs) - {(e["task"], e["model"]) for e in baseline["entries"]})
    if unchecked:
        print("not in the baseline (not checked): " + ", ".join(f"{task}/{model}" for task, model in unchecked))
    print(f"REGRESSION: {failures} check(s) failed" if failures else "no regression")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
