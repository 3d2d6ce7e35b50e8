"""One seed, one result: the same HDRNet job trained twice from scratch gives the same metrics, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import cli_env

METRICS = ("psnr", "ssim", "delta_e", "identity_psnr")  # everything per image but the timings


def test_same_seed_same_metrics(tmp_path):
    jobs = [  # own caches: both train from scratch, neither resumes the other's checkpoint
        subprocess.Popen(
            [sys.executable, "-m", "benchmark", "profile=smoke", "model=hdrnet", "seed=3",
             f"hydra.run.dir={tmp_path / name}"],
            cwd=tmp_path, env=cli_env(tmp_path / name / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for job in jobs:
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
        assert "Resuming" not in stdout
    first, second = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("first", "second"))
    assert first["split"] == second["split"]
    assert first["training"]["loss_after"] == second["training"]["loss_after"]
    assert [{key: row[key] for key in METRICS} for row in first["images"]] == [
        {key: row[key] for key in METRICS} for row in second["images"]
    ]
