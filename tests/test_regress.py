"""`python -m benchmark.regress`: baselines written and compared, tolerances, exit codes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import PROJECT_ROOT
from benchmark.core.files import write_json_atomic
from benchmark.regress import main

ENVIRONMENT = {"python": "3.11", "torch": "2.14.1", "torch_threads": 2, "device": "cpu", "git_revision": "abc123"}


def write_run(
    run_dir: Path, model: str, psnr: float, ssim: float = 0.9, times: tuple[float, ...] = (10.0, 30.0),
    reference_ms: float | None = 20.0, task: str = "local_laplacian", profile: str = "quick", seed: int = 0,
    lpips: float | None = None,
) -> Path:
    """A results.json with what regress reads: two test images timed against the reference."""
    images = [
        {"image": f"kodim0{i}", "width": 768, "height": 512, "time_ms": time_ms, "reference_time_ms": reference_ms}
        for i, time_ms in enumerate(times, start=1)
    ]
    results = {
        "task": task, "model": model, "profile": profile, "config": {"seed": seed}, "environment": ENVIRONMENT,
        "images": images, "summary": {"psnr": psnr, "ssim": ssim, "lpips": lpips},
    }
    write_json_atomic(results, run_dir / "results.json")
    return run_dir


HDRNET_SEEDS = ((29.00, 0.9000), (29.02, 0.9005), (28.98, 0.8995))  # std 0.02 dB and 0.0005


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    """A baseline of HDRNet and bicubic over three seeds (one multirun-like folder), default rule."""
    for seed, (psnr, ssim) in enumerate(HDRNET_SEEDS):
        write_run(tmp_path / "base" / f"{seed}_hdrnet", "hdrnet", psnr, ssim, seed=seed)
        write_run(tmp_path / "base" / f"{seed}_bicubic", "bicubic", 24.0, 0.60, times=(5.0, 5.0), seed=seed)
    path = tmp_path / "baseline.json"
    assert main(["--write-baseline", str(path), str(tmp_path / "base")]) == 0
    return path


def verdicts(output: str) -> dict[tuple[str, str], str]:
    """(model, metric) -> verdict, from the printed table."""
    rows = [line.split() for line in output.splitlines() if line.startswith("local_laplacian")]
    return {(row[1], row[2]): row[-1] for row in rows}


def test_baseline_records_tolerances_and_provenance_and_matches_its_own_runs(baseline, tmp_path, capsys):
    written = json.loads(baseline.read_text())
    assert written["format"] == 2
    assert written["tolerance_rule"] == {"sigmas": 3.0, "floors": {"psnr": 0.05, "ssim": 0.001, "lpips": 0.002}, "time_ratio_growth": 1.5}
    assert written["git_revisions"] == ["abc123"]
    assert written["environment"]["torch"] == "2.14.1" and "--write-baseline" in written["command"]
    hdrnet, bicubic = (next(e for e in written["entries"] if e["model"] == m) for m in ("hdrnet", "bicubic"))
    assert hdrnet["seeds"] == [0, 1, 2] and hdrnet["time_ratio"] == 1.0  # median of 10/20 and 30/20
    assert hdrnet["test_images"] == ["kodim01 768x512", "kodim02 768x512"]
    # tolerance from the measured spread: 3 x std over seeds, or the floor where the spread is smaller
    assert hdrnet["psnr"]["mean"] == pytest.approx(29.0) and hdrnet["psnr"]["std"] == pytest.approx(0.02)
    assert hdrnet["psnr"]["tolerance"] == pytest.approx(0.06) and "3 x std" in hdrnet["psnr"]["derived"]
    assert hdrnet["ssim"]["tolerance"] == pytest.approx(0.0015)
    assert bicubic["psnr"]["std"] == 0 and bicubic["psnr"]["tolerance"] == 0.05
    capsys.readouterr()

    assert main(["--baseline", str(baseline), str(tmp_path / "base" / "1_hdrnet"), str(tmp_path / "base" / "1_bicubic")]) == 0
    output = capsys.readouterr().out
    assert set(verdicts(output).values()) == {"ok"} and "no regression" in output
    assert {"baseline", "current", "delta", "tolerance", "verdict"} <= set(output.split())


@pytest.mark.parametrize(
    "psnr, ssim, times, expected_code, failed",
    [
        (28.95, 0.899, (10.0, 30.0), 0, set()),  # within 3 std (0.06 dB, 0.0015) of the mean
        (28.93, 0.90, (10.0, 30.0), 1, {("hdrnet", "psnr")}),
        (29.00, 0.898, (10.0, 30.0), 1, {("hdrnet", "ssim")}),
        (29.00, 0.90, (14.0, 42.0), 0, set()),  # 1.4x slower relative to the reference: timing noise
        (29.00, 0.90, (16.0, 48.0), 1, {("hdrnet", "time/ref")}),
        (31.00, 0.95, (5.0, 15.0), 0, set()),  # better is never a regression
    ],
)
def test_each_metric_fails_beyond_its_tolerance_only(
    baseline, tmp_path, capsys, psnr, ssim, times, expected_code, failed
):
    write_run(tmp_path / "now" / "hdrnet", "hdrnet", psnr, ssim, times)
    write_run(tmp_path / "now" / "bicubic", "bicubic", 24.0, 0.60, times=(5.0, 5.0))
    capsys.readouterr()
    assert main(["--baseline", str(baseline), str(tmp_path / "now")]) == expected_code
    output = capsys.readouterr().out
    assert {key for key, verdict in verdicts(output).items() if verdict == "REGRESSION"} == failed
    assert ("REGRESSION: " in output) == bool(failed)


def test_a_baseline_entry_missing_from_the_runs_fails_and_extra_runs_are_listed(baseline, tmp_path, capsys):
    write_run(tmp_path / "hdrnet", "hdrnet", 29.0)
    write_run(tmp_path / "jbu", "jbu", 27.0)
    capsys.readouterr()
    assert main(["--baseline", str(baseline), str(tmp_path / "hdrnet"), str(tmp_path / "jbu")]) == 1
    output = capsys.readouterr().out
    assert verdicts(output)[("bicubic", "-")] == "MISSING"
    assert "not in the baseline (not checked): local_laplacian/jbu" in output


def test_speed_is_skipped_without_a_reference_operator_or_a_speed_tolerance(tmp_path, capsys):
    write_run(tmp_path / "a" / "fivek", "hdrnet", 21.0, task="fivek", reference_ms=None)
    write_run(tmp_path / "a" / "ll", "hdrnet", 29.0)
    path = tmp_path / "baseline.json"
    assert main(["--write-baseline", str(path), str(tmp_path / "a"), "--speed-tolerance", "none"]) == 0
    write_run(tmp_path / "b" / "fivek", "hdrnet", 21.0, task="fivek", reference_ms=None, times=(99.0, 99.0))
    write_run(tmp_path / "b" / "ll", "hdrnet", 29.0, times=(100.0, 300.0))  # 10x slower: not checked
    capsys.readouterr()
    assert main(["--baseline", str(path), str(tmp_path / "b")]) == 0
    output = capsys.readouterr().out
    assert "fivek hdrnet time/ref" not in " ".join(output.split())
    assert verdicts(output)[("hdrnet", "time/ref")] == "skipped"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--baseline", "{baseline}", "{tmp}/nowhere"], "nowhere: no results.json here or below"),
        (["--baseline", "{tmp}/missing.json", "{tmp}/base"], "missing.json: cannot read a baseline"),
        (["--baseline", "{tmp}/base/0_hdrnet/results.json", "{tmp}/base"], "not a baseline"),
        (["--baseline", "{baseline}", "{tmp}/corrupt"], "corrupt/results.json: cannot read results"),
        (["--baseline", "{baseline}", "{tmp}/base"], "3 runs of task=local_laplacian model=bicubic"),
        (["--write-baseline", "{tmp}/new.json", "{tmp}/base", "{tmp}/twice"], "two runs with one seed"),
        (["--baseline", "{tmp}/old.json", "{tmp}/twice"], "a baseline of format 1"),
        (["--baseline", "{baseline}", "{tmp}/smoke"],
         "profile='smoke', but the baseline's task=local_laplacian model=hdrnet has 'quick'"),
        (["--write-baseline", "{tmp}/new.json", "{tmp}/base", "--speed-tolerance", "0.5"],
         "'0.5' is not a number >= 1.0 or none"),
        (["{tmp}/base"], "one of the arguments --baseline --write-baseline is required"),
    ],
    ids=["no-runs", "no-baseline", "not-a-baseline", "corrupt-results", "several-runs", "one-seed-twice",
         "old-format", "incomparable", "tolerance", "no-mode"],
)
def test_bad_input_is_one_error_line_and_exit_2(baseline, tmp_path, capsys, args, message):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "results.json").write_text("{truncated")
    write_run(tmp_path / "twice", "hdrnet", 29.0)
    write_run(tmp_path / "smoke", "hdrnet", 29.0, profile="smoke")
    (tmp_path / "old.json").write_text(json.dumps({"tolerances": {}, "entries": []}))
    capsys.readouterr()
    assert main([arg.format(baseline=baseline, tmp=tmp_path) for arg in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("error: ") and message in captured.err, captured.err
    assert not (tmp_path / "new.json").exists()


def test_cli_exit_code_as_ci_sees_it(baseline, tmp_path):
    write_run(tmp_path / "now" / "hdrnet", "hdrnet", 28.0)
    write_run(tmp_path / "now" / "bicubic", "bicubic", 24.0, 0.60, times=(5.0, 5.0))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "benchmark.regress", "--baseline", str(baseline), str(tmp_path / "now")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "REGRESSION: 1 check(s) failed" in result.stdout


def test_lpips_rising_beyond_its_tolerance_is_a_regression_and_not_computed_is_skipped(tmp_path, capsys):
    for seed, lpips in enumerate((0.100, 0.102, 0.098)):  # std 0.002: tolerance 0.006
        write_run(tmp_path / "base" / f"{seed}_hdrnet", "hdrnet", 29.0, seed=seed, lpips=lpips)
    path = tmp_path / "baseline.json"
    assert main(["--write-baseline", str(path), str(tmp_path / "base")]) == 0
    entry = json.loads(path.read_text())["entries"][0]
    assert entry["lpips"]["tolerance"] == pytest.approx(0.006)
    capsys.readouterr()
    for lpips, code, verdict in ((0.105, 0, "ok"), (0.090, 0, "ok"), (0.107, 1, "REGRESSION"), (None, 0, "skipped")):
        write_run(tmp_path / "now", "hdrnet", 29.0, lpips=lpips)
        assert main(["--baseline", str(path), str(tmp_path / "now")]) == code
        assert verdicts(capsys.readouterr().out)[("hdrnet", "lpips")] == verdict
