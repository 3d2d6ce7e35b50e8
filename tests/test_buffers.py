"""benchmark.core.buffers: outputs reused once dropped, never while anything refers to them."""

from __future__ import annotations

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
import resource, sys, numpy as np, torch
from benchmark.core.runtime import keep_freed_memory
from benchmark.data.pairs import Pair
from benchmark.hdrnet.model import HDRNet
from benchmark.training.losses import mse_loss
from benchmark.training.train import CropSampler, adam, adam_step
if sys.argv[1] == "keep":
    assert keep_freed_memory()
photos = [np.random.default_rng(i).random((512, 768, 3), np.float32) for i in range(6)]
model = HDRNet()
optimizer = adam(model, 1e-4, 0.0)
sampler = CropSampler([Pair(str(i), p, p**2) for i, p in enumerate(photos)], 256, 4, seed=0, lowres=model.lowres)
def step():
    inputs, targets, views, windows = sampler.sample()
    optimizer.zero_grad(set_to_none=True)
    mse_loss(model(inputs, views, windows), targets).backward()
    adam_step(optimizer)
for _ in range(40):  # every flipped photo's view made, the kernels compiled
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_training_steps_reuse_freed_memory_without_page_faults() -> None:
    """Quick-profile training steps (batch 4 of 256x256 crops) in a fresh process each, as the
    setting lasts for the process: by default each step's tensors come back as new pages (500-2800
    page faults a step here), with ``keep_freed_memory`` almost none (0-4)."""
    per_step = {mode: float(subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, mode], capture_output=True,
                                           text=True, check=True).stdout) for mode in ("default", "keep")}
    assert per_step["default"] > 200 and per_step["keep"] < 50, per_step
