"""Output arrays handed out again once their caller has let go of them.

A fresh array above glibc's mmap threshold (32 MB at most: a 3840x2160 float32 photo is 100 MB)
comes from the kernel as new pages on every call, and the first write to each page faults: at 4K a
new output costs the fused kernel ~4 ms, and where numpy asks for huge pages the kernel sometimes
stops to compact memory first (p90 80 ms, one call 186 ms; DESIGN §10). ``OutputPool.empty`` keeps
the last few arrays it made and returns one again when nothing outside the pool refers to it any
more (no view of it either: a view keeps its base array alive), so an output dropped by its caller
is reused by the next call instead of being unmapped and faulted in again.
"""

from __future__ import annotations

import sys
import threading

import numpy as np


class OutputPool:
    """The ``keep`` most recently made arrays, reused once unreferenced (thread-safe)."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._arrays: list[np.ndarray] = []
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array, as ``np.empty(shape, dtype)``."""
        dtype = np.dtype(dtype)
        with self._lock:
            for index in range(len(self._arrays)):
                array = self._arrays[index]
                # referred to by the list, `array` and getrefcount's argument alone: by nobody else
                if array.shape == shape and array.dtype == dtype and sys.getrefcount(array) == 3:
                    self._arrays.insert(0, self._arrays.pop(index))
                    return array
            array = np.empty(shape, dtype)
            self._arrays = [array, *self._arrays[: self.keep - 1]]
            return array
