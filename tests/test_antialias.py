"""The one-pass antialiased resize against torch's F.interpolate(bilinear, antialias=True)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.imaging import antialias
from benchmark.imaging.antialias import antialiased_resize, filter_taps


def torch_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``F.interpolate``'s resize, HWC in and out."""
    nchw = torch.from_numpy(image).permute(2, 0, 1)[None]
    return F.interpolate(nchw, size=size, mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("shape", [(512, 768), (1080, 1920), (77, 203), (300, 255), (256, 256), (100, 120)])
def test_equals_torch_when_shrinking_enlarging_and_at_odd_sizes(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    assert np.abs(antialiased_resize(image, (256, 256)) - torch_resize(image, (256, 256))).max() < 1e-6
    assert np.abs(antialiased_resize(image, (31, 64)) - torch_resize(image, (31, 64))).max() < 1e-6


def test_uint8_pixels_equal_the_float_photo_resized() -> None:
    pixels = (np.random.default_rng(1).random((333, 500, 3)) * 255).astype(np.uint8)
    expected = torch_resize(pixels.astype(np.float32) / 255, (256, 256))
    assert np.abs(antialiased_resize(pixels, (256, 256)) - expected).max() < 1e-6


def test_taps_are_a_normalised_triangle() -> None:
    first, weights = filter_taps(1024, 256)  # scale 4: support 4, so 8 taps centred on 4i + 2
    assert weights.shape == (256, 8) and first[10] == 38
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(weights[10], np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 32, atol=1e-7)


def test_taps_are_made_once_per_size_read_only_and_padded_to_whole_groups() -> None:
    image = np.random.default_rng(2).random((301, 203, 3), dtype=np.float32)
    first = antialiased_resize(image, (31, 64))
    hits = antialias._taps.cache_info().hits
    assert np.array_equal(antialiased_resize(image, (31, 64)), first)
    assert antialias._taps.cache_info().hits == hits + 2  # the y and the x taps
    starts, weights = antialias._taps(301, 31, 4)
    expected_starts, expected = filter_taps(301, 31)
    assert weights.shape[1] % 4 == 0 and np.array_equal(starts, expected_starts)
    assert np.array_equal(weights[:, : expected.shape[1]], expected) and not weights[:, expected.shape[1]:].any()
    assert not starts.flags.writeable and not weights.flags.writeable  # shared by every photo of the size


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="float32 or uint8"):
        antialiased_resize(np.zeros((8, 8, 3), np.float64), (4, 4))
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        antialiased_resize(np.zeros((8, 8), np.float32), (4, 4))


def test_runs_on_torchs_thread_count() -> None:
    """Every caller (HDRNet.photo_view, OnnxHDRNet) gets numba's threads matched to torch's, as the
    fused kernel does: a process asked for one thread uses one."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        antialiased_resize(np.zeros((64, 48, 3), np.float32), (16, 16))
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
