"""The one timing utility: warm-up, then median and spread of repeated runs (DESIGN.md §8)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Timing:
    """Wall-clock statistics of ``runs`` timed calls after ``warmup`` untimed ones."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    warmup: int
    threads: int
    device: str

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def ms_per_megapixel(self, width: int, height: int) -> float:
        """Median time divided by the image area in megapixels (10^6 pixels)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got width={width}, height={height}")
        return self.median_ms / (width * height / 1e6)


def time_callable(
    fn: Callable[[], object], *, warmup: int = 2, repeats: int = 5, device: str = "cpu"
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` calls timed with perf_counter.

    On a CUDA device the GPU is synchronised before and after each timed call, so queued
    kernels count in the call that launched them. Percentiles use linear interpolation.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r}; expected an integer >= 0")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}; expected an integer >= 1")
    on_cuda = str(device).startswith("cuda")
    for _ in range(warmup):
        fn()
    times_ms = []
    for _ in range(repeats):
        if on_cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if on_cuda:
            torch.cuda.synchronize(device)
        times_ms.append((time.perf_counter() - start) * 1e3)
    samples = np.asarray(times_ms)
    return Timing(
        median_ms=float(np.median(samples)),
        p10_ms=float(np.percentile(samples, 10)),
        p90_ms=float(np.percentile(samples, 90)),
        mean_ms=float(np.mean(samples)),
        runs=repeats,
        warmup=warmup,
        threads=torch.get_num_threads(),
        device=str(device),
    )
