"""Shared fixtures: small photo folders and the composed Hydra config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from benchmark import PROJECT_ROOT
from benchmark.core.images import read_image, resize, write_image
from benchmark.data.photos import BUNDLED_PHOTOS


def compose_config(overrides: list[str]) -> DictConfig:
    """The config a `python -m benchmark ...` command would run with."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def move_off_init(parameters: Iterable[torch.nn.Parameter], scale: float) -> None:
    """Add ``scale`` x N(0, 1) noise (torch's global generator) to each parameter, in place: a test net
    whose every weight matters, away from the identity or the symmetry it starts at."""
    with torch.no_grad():
        for parameter in parameters:
            parameter.add_(scale * torch.randn_like(parameter))


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python -m benchmark ARGS` as a user runs it, from ``cwd`` (``env``: default this process's)."""
    env = env or {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
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

# ---------------------------------------------------------------------------------------------
# Helpers shared by test modules (import them from here, never from another test module)


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Deterministic RGB test image: ramps, a bright disc, a dark bar, texture, noise, tint."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.25 + 0.5 * (x / width) * (0.6 + 0.4 * y / height)
    disc = (x - 0.6 * width) ** 2 + (y - 0.4 * height) ** 2 < (0.25 * min(height, width)) ** 2
    base += 0.25 * disc
    base -= 0.2 * ((x > 0.15 * width) & (x < 0.35 * width) & (y > 0.55 * height))
    texture = 0.04 * np.sin(1.3 * x) * np.cos(0.9 * y) + 0.02 * rng.standard_normal((height, width))
    lum = np.clip(base + texture, 0.03, 0.97)
    tint = np.stack([1.0 + 0.15 * np.sin(x / 9), np.ones_like(x), 1.0 - 0.15 * np.cos(y / 7)], -1)
    return np.clip(lum[..., None] * tint, 0.0, 1.0).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of any two same-shape arrays in [0, 1] (masked pixels, grey images, tensors as
    arrays); the harness's own ``benchmark.evaluation.metrics.psnr`` takes HxWx3 images only."""
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def high_freq(gray: np.ndarray) -> float:
    return float(np.std(gray - cv2.GaussianBlur(gray, (0, 0), 2.0)))


def low_freq(gray: np.ndarray) -> float:
    return float(np.std(cv2.GaussianBlur(gray, (0, 0), 8.0)))
