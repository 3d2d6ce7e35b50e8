"""benchmark.core.buffers: outputs reused once dropped, never while anything refers to them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from benchmark.core.buffers import OutputPool
from benchmark.hdrnet.model import HDRNet


def test_a_dropped_output_is_reused_and_a_held_one_or_its_view_never() -> None:
    pool = OutputPool(keep=2)
    first = pool.empty((4, 5, 3), np.float32)
    address = first.ctypes.data
    del first
    second = pool.empty((4, 5, 3), np.float32)
    assert second.ctypes.data == address  # dropped: the same memory again
    second[:] = 1
    view = second[1:, ::2]
    del second
    third = pool.empty((4, 5, 3), np.float32)
    assert third.ctypes.data != address and np.all(view == 1)  # a view keeps its base in use
    assert pool.empty((4, 5, 3), np.uint8).dtype == np.uint8 and pool.empty((5, 4, 3), np.float32).shape == (5, 4, 3)


def test_concurrent_callers_never_share_an_output() -> None:
    """Each thread fills the array it got with its own number, lets the others run, and checks it."""
    pool, clashes = OutputPool(keep=2), []

    def take(number: int) -> None:
        for _ in range(300):
            array = pool.empty((16, 16), np.float64)
            array[:] = number
            time.sleep(0)  # let another thread take an array (the same one, were the pool wrong)
            if not np.all(array == number):
                clashes.append(number)

    threads = [threading.Thread(target=take, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not clashes


def test_enhance_reuses_a_dropped_output_and_keeps_a_held_one_intact() -> None:
    model = HDRNet().eval()
    photo = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    kept = model.enhance(photo)
    expected = kept.copy()
    address = model.enhance(photo[::-1].copy()).ctypes.data  # dropped at once
    assert model.enhance(photo[:, ::-1].copy()).ctypes.data == address
    assert kept.ctypes.data != address and np.array_equal(kept, expected)


_FAULTS_PER_STEP = """
import resource, sys
import numpy as np
from benchmark.core.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for step in range(12):  # a step's churn: 40 arrays of 256 KB made, written, freed
    before = faults()
    arrays = [np.ones(2**16, np.float32) for _ in range(40)]
    del arrays
    counts.append(faults() - before)
print(sum(counts[4:]) / 8)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_kept_for_the_next_step_without_page_faults() -> None:
    """In a fresh process each, as the setting lasts for the process: by default glibc hands a
    step's freed 10 MB back to the kernel and every page faults again the next step (2528 faults a
    step here; a quick HDRNet training step faulted 500-700 times, DESIGN §10); kept, none do."""
    glibc_defaults = {key: value for key, value in os.environ.items()
                      if not key.startswith(("GLIBC_TUNABLES", "MALLOC_"))}  # malloc as glibc sets it
    per_step = {mode: float(subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, mode], capture_output=True,
                                           text=True, check=True, env=glibc_defaults).stdout)
                for mode in ("default", "keep")}
    assert per_step["default"] > 2000 and per_step["keep"] < 50, per_step
