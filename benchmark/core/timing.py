"""The timing utility: warm-up, then median and spread of repeated runs, of one call or of several
timed against each other in interleaved rounds (DESIGN.md §8)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
    return time_rounds({"call": fn}, warmup=warmup, repeats=repeats, device=device)["call"]


def time_rounds(
    fns: Mapping[str, Callable[[], object]], *, warmup: int = 2, repeats: int = 5, device: str = "cpu"
) -> dict[str, Timing]:
    """Time several calls against each other: ``warmup`` untimed calls of each, then ``repeats``
    rounds, each timing every call once, in an order shuffled per round (seeded, so every run
    takes the same orders). A drift in the machine's speed within the run then hits every call
    alike, and their ratios hold; one after the other, a slow minute could fall on one alone.
    Each timed call comes right after an untimed one of its own, so that it finds the caches as
    in a loop of it, not as the call before left them; it is timed as ``time_callable`` times it."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r}; expected an integer >= 0")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}; expected an integer >= 1")
    on_cuda = str(device).startswith("cuda")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times_ms: dict[str, list[float]] = {name: [] for name in names}
    order = np.random.default_rng(0)
    for _ in range(repeats):
        for index in order.permutation(len(names)):
            name = names[index]
            if len(names) > 1:  # alone, the call before is its own already
                fns[name]()
            if on_cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fns[name]()
            if on_cuda:
                torch.cuda.synchronize(device)
            times_ms[name].append((time.perf_counter() - start) * 1e3)
    return {name: _statistics(np.asarray(times_ms[name]), warmup, device) for name in names}


def _statistics(samples: np.ndarray, warmup: int, device: str) -> Timing:
    return Timing(
        median_ms=float(np.median(samples)),
        p10_ms=float(np.percentile(samples, 10)),
        p90_ms=float(np.percentile(samples, 90)),
        mean_ms=float(np.mean(samples)),
        runs=len(samples),
        warmup=warmup,
        threads=torch.get_num_threads(),
        device=str(device),
    )
