"""Shared fixtures: small photo folders and the composed Hydra config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from benchmark import PROJECT_ROOT
from benchmark.core.images import read_image, resize, write_image
from benchmark.data.photos import BUNDLED_PHOTOS


def compose_config(overrides: list[str]) -> DictConfig:
    """The config a `python -m benchmark ...` command would run with."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m benchmark ARGS` as a user runs it, from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def cli_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a `python -m benchmark` process with its own pair/checkpoint cache."""
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "BILATERAL_BENCH_CACHE": str(cache_dir)}


def run_multirun(args: list[str], cwd: Path, cache_dir: Path, sweep_dir: Path) -> subprocess.CompletedProcess:
    """`python -m benchmark -m ARGS` as a user runs a sweep, writing its jobs under ``sweep_dir``."""
    return subprocess.run(
        [sys.executable, "-m", "benchmark", "-m", f"hydra.sweep.dir={sweep_dir}", *args],
        cwd=cwd, env=cli_env(cache_dir), capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Four small real photos (bundled Kodak, shrunk to 96 px) in a folder of their own."""
    folder = tmp_path / "photos"
    for name in ("kodim01", "kodim03", "kodim04", "kodim07"):
        image = read_image(BUNDLED_PHOTOS / f"{name}.png")
        height, width = image.shape[:2]
        write_image(folder / f"{name}.png", resize(image, (height * 96 // width if width >= height else 96,
                                                          96 if width >= height else width * 96 // height)))
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def assert_operator_contract(operator: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> None:
    """A reference operator's promise: same shape, float32, finite, in [0, 1], pure, deterministic."""
    before = image.copy()
    out = operator(image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(image, before)  # pure: input untouched
    np.testing.assert_array_equal(out, operator(image))  # deterministic
