"""Jobs started at once on one empty cache: both finish, agree, and leave only whole entries."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark.data.pairs import make_pairs
from benchmark.data.photos import Photo
from tests.conftest import cli_env

OPERATOR_SECONDS = 0.5  # long enough that two processes released together both miss the cache


def _slow_darken(image: np.ndarray) -> np.ndarray:
    time.sleep(OPERATOR_SECONDS)
    return image * 0.5


def _photos() -> list[Photo]:
    rng = np.random.default_rng(0)
    return [Photo(f"p{i}", rng.random((12, 16, 3), dtype=np.float32), f"hash{i}") for i in range(3)]


def _fill_cache(cache_dir: Path, barrier: Any, results: Any) -> None:
    photos = _photos()
    barrier.wait()
    pairs, reused = make_pairs(photos, "t", _slow_darken, {}, cache_dir)
    results.put((reused, [pair.target for pair in pairs]))


def test_make_pairs_in_two_processes_writes_each_entry_whole(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_fill_cache, args=(tmp_path, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    (reused_a, targets_a), (reused_b, targets_b) = results.get(timeout=60), results.get(timeout=60)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert reused_a == reused_b == 0  # both made and wrote every pair: the writes raced
    cached, reused = make_pairs(_photos(), "t", _slow_darken, {}, tmp_path)
    assert reused == 3
    for a, b, c in zip(targets_a, targets_b, (pair.target for pair in cached), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert sorted(path.suffix for path in tmp_path.rglob("*") if path.is_file()) == [".npz"] * 3


def _start(tmp_path: Path, name: str, model: str) -> subprocess.Popen:
    """A smoke job writing into ``tmp_path/name``, sharing the cache ``tmp_path/cache``."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark", "profile=smoke", model, f"hydra.run.dir={tmp_path / name}"],
        cwd=tmp_path, env=cli_env(tmp_path / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_jobs_fill_one_empty_cache_at_once(tmp_path):
    jobs = [_start(tmp_path, name, "model=bicubic") for name in ("first", "second")]  # both before either runs
    for job in jobs:
        _, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr

    first, second = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("first", "second"))
    for key in ("psnr", "ssim", "delta_e", "identity_psnr"):
        assert [row[key] for row in first["images"]] == [row[key] for row in second["images"]]
    assert first["split"] == second["split"]

    entries = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert entries and all(path.suffix == ".npz" for path in entries)  # no temp files left behind
    assert len(entries) == len(first["split"]["train"]) + len(first["split"]["test"])
    for path in entries:
        with np.load(path) as pair:
            assert pair["input"].shape == pair["target"].shape and pair["input"].dtype == np.uint16


@pytest.mark.slow  # 6-12 s on 2 shared cores
def test_two_identical_hdrnet_jobs_train_one_checkpoint(tmp_path):
    """The second job waits on the checkpoint's lock, then reuses the finished training."""
    outputs = []
    for job in [_start(tmp_path, name, "model=hdrnet") for name in ("first", "second")]:
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
        outputs.append(stdout)
    assert sum("at step 16/16" in stdout for stdout in outputs) == 1  # never resumed half-way: one trained it all
    first, second = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("first", "second"))
    assert [row["psnr"] for row in first["images"]] == [row["psnr"] for row in second["images"]]
