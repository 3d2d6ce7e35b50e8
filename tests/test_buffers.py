"""benchmark.core.buffers: outputs reused once dropped, never while anything refers to them."""

from __future__ import annotations

import threading
import time

import numpy as np

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
