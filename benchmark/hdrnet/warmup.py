"""Compile HDRNet's numba kernels into numba's on-disk cache: ``python -m benchmark.hdrnet.warmup``
(``make install`` runs it).

numba optimises the code it has just compiled and the code it loads from its cache differently
(numba issue #10617), and their float results differ in the last bits: the first HDRNet run after
installing (or after a change to the kernels) would train differently from every later one (smoke
profile: loss 0.0015212714077 against 0.0015212714206). With the cache filled first, every run loads
the same code: the same command gives the same bits, the first run included (README, "Determinism").
numba keys its cache on the kernels' source files' modification times, so a ``git pull`` or
``git checkout`` that rewrites one empties it as surely as an edit: ``ensure_kernel_cache`` (every
harness HDRNet calls it) refills it in a subprocess before this process compiles anything. numba
does not look at the files whose code is inlined into a kernel (``INLINED``): one newer than a
kernel's cache index makes the cache stale too, and the refill empties it first.
"""

from __future__ import annotations

import functools
import inspect
import os
import subprocess
import sys

import numpy as np
import torch
from numba.core.dispatcher import Dispatcher

from benchmark import PROJECT_ROOT
from benchmark.core.errors import BenchmarkError
from benchmark.hdrnet import fused, simd_backward, simd_lookup
from benchmark.hdrnet.model import HDRNet
from benchmark.imaging import antialias, grid
from benchmark.training import losses

# The kernels Python calls (of inference's two, the one this CPU runs for compile_kernels' model; in
# training, the lookup forward on such a CPU besides the portable one, which the curves guide runs);
# the kernels they call are compiled (and cached) with them.
_LUMA_BINS = inspect.signature(HDRNet).parameters["luma_bins"].default
_LOOKUP = fused.slices_by_lookup(_LUMA_BINS)
_INFERENCE = fused._lookup_guided_slice_apply_hwc if _LOOKUP else fused._guided_slice_apply_hwc
_TRAINING = (fused._slice_apply_nchw, fused._slice_apply_backward_nchw) + ((fused._lookup_slice_apply_nchw,) if _LOOKUP else ())
ENTRY_POINTS = (_INFERENCE, *_TRAINING, losses._squared_error_and_gradient, antialias._resize_hwc)
# Source files compiled into those kernels besides their own (an intrinsic, an inlined function).
INLINED = (simd_lookup.__file__, simd_backward.__file__, grid.__file__)


def compile_kernels() -> None:
    """Run every numba kernel specialisation a harness run uses once: inference on float32 and uint8
    photos, and a training step with each guide (a crop sliced from its whole photo's grid, no image
    gradient)."""
    model = HDRNet()
    photo = np.random.default_rng(0).random((48, 64, 3), dtype=np.float32)
    model.enhance(photo)
    model.enhance(np.rint(photo * 255).astype(np.uint8))
    crop = torch.from_numpy(photo).permute(2, 0, 1)[None, :, 8:40, 16:48].contiguous()
    window = torch.tensor([[8, 16, 48, 64]])
    for trained in (model, HDRNet(guide="curves")):
        losses.mse_loss(trained(crop, trained.photo_view(photo), window), crop).backward()


def _cached_kernels() -> list[Dispatcher]:
    """Every numba kernel of the entry points' modules, each with its own cache entry (a kernel
    another one calls is loaded from its own entry when that one is compiled)."""
    modules = {sys.modules[kernel.py_func.__module__] for kernel in ENTRY_POINTS}
    return [value for module in modules for value in vars(module).values() if isinstance(value, Dispatcher)]


def kernel_cache_is_current() -> bool:
    """Whether numba's on-disk cache holds every entry point compiled from its source file as it is now
    (numba's own index reader answers {} for a missing index or one stamped with another mtime/size)
    and from the ``INLINED`` files as they are now (none modified after the index was written)."""
    newest_inlined = max(os.path.getmtime(path) for path in INLINED)
    for kernel in ENTRY_POINTS:
        cache_file = kernel._cache._cache_file
        if not cache_file._load_index() or os.path.getmtime(cache_file._index_path) < newest_inlined:
            return False
    return True


@functools.cache
def ensure_kernel_cache() -> None:
    """Fill numba's cache in a subprocess (``python -m benchmark.hdrnet.warmup``) when it lacks the
    current kernels, so that this process loads them from it like every later run; once per process."""
    if kernel_cache_is_current():
        return
    print("numba's cache lacks HDRNet's current kernels (a fresh install, or a kernel source file rewritten "
          "since): compiling them into it first", file=sys.stderr, flush=True)
    result = subprocess.run([sys.executable, "-m", "benchmark.hdrnet.warmup"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"compiling HDRNet's kernels into numba's cache failed: {reason}")


if __name__ == "__main__":
    for kernel in _cached_kernels():  # indexes numba would still trust (an INLINED file changed): emptied
        kernel._cache.flush()
    compile_kernels()
