"""Where and how a command computes: the device, the thread count, deterministic kernels.

What holds (README "Determinism"): the same command with the same seed and the same thread count
on one machine gives bit-identical weights and metrics, loaded or idle. ``benchmark/__init__.py``
fixes MKL's reproducibility mode before torch loads; ``use_threads`` fixes the thread count of
torch (OpenMP, MKL, oneDNN), numba (which follows torch) and OpenCV, and asks torch for its
deterministic algorithms. Another CPU (other SIMD widths in MKL, oneDNN and numba) or another
thread count (oneDNN's reductions) gives results that differ in the last bits, and after
thousands of training steps by a few hundredths of a dB.
"""

from __future__ import annotations

import ctypes
import os

import cv2
import numba
import torch

from benchmark.core.errors import BenchmarkError


def _start_numba_threads() -> None:
    """numba's kernels run on its OpenMP layer where GNU OpenMP is present (else its own pool,
    workqueue), and its threads start now, keeping torch's thread count.

    Under workqueue the calling thread only waits while pool threads, woken per call, compete with
    torch's still-spinning OpenMP threads; OpenMP runs the calling thread in the team (2 threads: quick
    training step 26.9 -> 23.0 ms, 1080p end to end 23.5 -> 16.9 ms; DESIGN §10). Starting numba's OpenMP
    threads sets the process's OpenMP thread count to all cores (numba issue #9387): torch's count
    is put back, so ``torch.set_num_threads`` before or after this still holds.
    """
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # numba wants all three named
    threads = torch.get_num_threads()
    numba.get_num_threads()  # starts the threading layer
    torch.set_num_threads(threads)


_start_numba_threads()


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchmarkError(f"device={name!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"device={name!r} asked for CUDA, but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise BenchmarkError(f"device={name!r} is not one of auto, cpu, cuda, cuda:N")
    return device


def use_threads(threads: int | None) -> int:
    """Fix the thread count (None: torch's default, one per physical core), denormal flushing and
    deterministic kernels; returns the thread count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    cv2.setNumThreads(torch.get_num_threads())
    # Denormals flushed to zero for every model, not only after a learned one was built (it needs
    # them flushed: CPU steps ~100x slower otherwise): the flag is the CPU's, process-wide, and
    # numpy code such as JBU's range weights near underflow changed with what ran before in a sweep.
    torch.set_flush_denormal(True)
    # CUDA's deterministic cuBLAS needs this before the first call; CPU kernels are unaffected.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: an op without a deterministic CUDA kernel (grid_sample's backward) warns, not stops
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.get_num_threads()


def match_numba_threads() -> None:
    """Run numba's kernels on as many threads as torch uses, so the two are comparable."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Have malloc keep the memory the process frees for its next allocations (up to 256 MB free;
    allocations under 32 MB from its heap) instead of handing it back to the kernel at once; whether
    this malloc has ``mallopt`` (glibc) to do so.

    A training step allocates and frees its batch, activations and gradients (~30 MB): handed back,
    they return as new pages whose first write faults, ~1 us each, 500-700 faults in a quick HDRNet
    step (DESIGN §10). Results stay bit for bit the same: only where memory comes from changes."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    # setting either fixes glibc's self-adjusting thresholds: both are set
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(mallopt(_M_TRIM_THRESHOLD, 256 * 2**20))


def reproducibility_settings() -> dict[str, str | None]:
    """The environment variables that decide bit-for-bit reproducibility, for results.json."""
    keys = ("MKL_CBWR", "MKL_DYNAMIC", "OMP_DYNAMIC", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")
    return {key: os.environ.get(key) for key in keys}
