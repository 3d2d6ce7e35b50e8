"""Antialiased bilinear downsampling in one pass over the photo (HDRNet's 256x256 view, §3.1).

``antialiased_resize(image, (h, w))`` equals ``F.interpolate(nchw, (h, w), mode="bilinear",
align_corners=False, antialias=True)`` (the triangle filter stretched by the scale, PIL's and torch's
definition) up to float rounding, but reads the HWC photo once, as float32 or as uint8 pixels
(scaled by 1/255 at the end: no float copy of an 8-bit photo), and writes only the small output.
Each output row sums its input rows (streaming, vectorised, four rows per pass), then filters that one row across:
split into R, G, B planes so that each output pixel is three contiguous dot products over the taps
(vectorised; strided reads of the interleaved row made that pass most of the time: 1080p float32,
one thread, 3.9 -> 3.0 ms in all; uint8 2.7 -> 1.4 ms).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import prange

from benchmark.core.runtime import match_numba_threads


def filter_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index the first input index and the normalised triangle-filter weights
    ``(out_size, taps)`` (zero-padded), as torch's ``_compute_indices_min_size_weights_aa``:
    centre ``scale (i + 0.5)``, support ``scale`` when shrinking (1 when enlarging)."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    inverse = 1.0 / max(scale, 1.0)
    centres = scale * (np.arange(out_size) + 0.5)
    first = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centres + support + 0.5).astype(np.int64), in_size)
    taps = int((last - first).max())
    offsets = first[:, None] + np.arange(taps)[None, :]
    weights = np.maximum(1.0 - np.abs((offsets - centres[:, None] + 0.5) * inverse), 0.0)
    weights[offsets >= last[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    return first, weights.astype(np.float32)


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _resize_hwc(
    image: np.ndarray, y_first: np.ndarray, y_weights: np.ndarray, x_first: np.ndarray, x_weights: np.ndarray,
    scale: float, out: np.ndarray,
) -> None:
    height, width, x_taps = image.shape[0], image.shape[1], x_weights.shape[1]
    no_row = np.zeros(width * 3, image.dtype)  # stands in for taps past the last row (weight 0)
    for oy in prange(out.shape[0]):
        rows = np.zeros(width * 3, np.float32)  # the output row's weighted sum of input rows, HWC
        # four input rows per pass over the sum (a pass per row: 1080p, one thread, 1.75 -> 1.40 ms)
        for k in range(0, y_weights.shape[1], 4):
            w0, w1, w2, w3 = y_weights[oy, k], y_weights[oy, k + 1], y_weights[oy, k + 2], y_weights[oy, k + 3]
            y = y_first[oy] + k
            s0 = image[y].reshape(-1) if y < height else no_row
            s1 = image[y + 1].reshape(-1) if y + 1 < height else no_row
            s2 = image[y + 2].reshape(-1) if y + 2 < height else no_row
            s3 = image[y + 3].reshape(-1) if y + 3 < height else no_row
            for i in range(width * 3):
                rows[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
        planes = np.empty((3, width + x_taps), np.float32)  # the summed row as R, G, B planes (padded by the taps)
        planes[:, width:] = 0
        for x in range(width):
            planes[0, x], planes[1, x], planes[2, x] = rows[3 * x], rows[3 * x + 1], rows[3 * x + 2]
        for ox in range(out.shape[1]):
            weights, x0 = x_weights[ox], x_first[ox]
            red, green, blue = planes[0, x0:x0 + x_taps], planes[1, x0:x0 + x_taps], planes[2, x0:x0 + x_taps]
            sum_r = sum_g = sum_b = np.float32(0)
            for k in range(x_taps):
                sum_r += weights[k] * red[k]
                sum_g += weights[k] * green[k]
                sum_b += weights[k] * blue[k]
            out[oy, ox, 0] = sum_r * scale
            out[oy, ox, 1] = sum_g * scale
            out[oy, ox, 2] = sum_b * scale


@functools.lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int, group: int) -> tuple[np.ndarray, np.ndarray]:
    """``filter_taps`` with the weights zero-padded to whole groups of ``group`` taps, made once per
    size (photos of one size share them: made afresh, the two took 0.13-0.19 ms of a 1080p
    ``HDRNet.enhance``, DESIGN §10). Shared, so read-only."""
    first, weights = filter_taps(in_size, out_size)
    weights = np.pad(weights, ((0, 0), (0, -weights.shape[1] % group)))
    for shared in (first, weights):
        shared.flags.writeable = False
    return first, weights


def antialiased_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` float32 in [0, 1] or uint8 -> ``(h, w, 3)`` float32 in [0, 1], ``size = (h, w)``:
    HWC like the photo, so ``torch.from_numpy(view).permute(2, 0, 1)`` is the channels-last tensor the
    network reads, without torch's copy into that layout (0.03 ms for a 256x256 view in a loop)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.float32, np.uint8):
        raise ValueError(f"expected an (H, W, 3) float32 or uint8 image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    y_first, y_weights = _taps(height, size[0], 4)  # whole groups of four taps
    x_first, x_weights = _taps(width, size[1], 1)
    out = np.empty((*size, 3), np.float32)
    scale = 1 / 255 if image.dtype == np.uint8 else 1.0
    match_numba_threads()
    _resize_hwc(np.ascontiguousarray(image), y_first, y_weights, x_first, x_weights, scale, out)
    return out
