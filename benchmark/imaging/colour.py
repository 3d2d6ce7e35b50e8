"""Grey-level definitions (one name each) and the luminance-ratio colour reconstruction.

Each operator or model names the definition its paper uses; they differ on purpose:

>>> import numpy as np
>>> red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
>>> [round(float(f(red)[0, 0]), 4) for f in (lapfilter_intensity, rec601_luma, bgu_luma, rec709_luminance)]
[0.3279, 0.299, 0.25, 0.2126]
"""

from __future__ import annotations

import numpy as np

LAPFILTER_WEIGHTS = np.array([20.0, 40.0, 1.0], np.float32)  # / 61: Paris 2011 lapfilter.m, Durand 2002
REC601_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # luma Y' of gamma-encoded RGB (OpenCV grey)
BGU_WEIGHTS = np.array([0.25, 0.5, 0.25], np.float32)  # google/bgu color2luma, Halide apps/bgu
REC709_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)  # luminance Y of *linear* sRGB
# Halide apps/local_laplacian's eps: stops near-black pixels' colour noise from being scaled up.
COLOR_EPS = 0.01


def _weighted(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (image @ weights.astype(image.dtype, copy=False)).astype(image.dtype, copy=False)


def lapfilter_intensity(image: np.ndarray) -> np.ndarray:
    """(20R + 40G + B) / 61 of an (H, W, 3) image, (H, W), same dtype (Paris 2011; Durand 2002)."""
    return _weighted(image, LAPFILTER_WEIGHTS) / image.dtype.type(61.0)


def rec601_luma(image: np.ndarray) -> np.ndarray:
    """0.299 R + 0.587 G + 0.114 B of an (H, W, 3) image, (H, W), same dtype."""
    return _weighted(image, REC601_WEIGHTS)


def bgu_luma(image: np.ndarray) -> np.ndarray:
    """0.25 R + 0.5 G + 0.25 B of an (H, W, 3) image, (H, W), same dtype: BGU's guide."""
    return _weighted(image, BGU_WEIGHTS)


def rec709_luminance(linear: np.ndarray) -> np.ndarray:
    """Luminance of an (H, W, 3) *linear* sRGB image, (H, W), same dtype."""
    return _weighted(linear, REC709_WEIGHTS)


def recolour(image: np.ndarray, grey: np.ndarray, new_grey: np.ndarray, max_gain: float | None = None) -> np.ndarray:
    """Give ``image`` (H, W, 3) the grey level ``new_grey`` (H, W), keeping colour ratios.

    out = new_grey + (image - grey) · r with r = (new_grey + eps) / (grey + eps) (Paris 2011 §6,
    lapfilter.m 'lum'; eps from Halide): the output's grey level is ``new_grey`` exactly, eps only
    tempers the chroma scaling of near-black pixels, and new_grey = grey returns the input.
    ``max_gain`` caps r. Returns float32 (H, W, 3) clipped to [0, 1].
    """
    ratio = (new_grey + np.float32(COLOR_EPS)) / (grey + np.float32(COLOR_EPS))
    if max_gain is not None:
        np.minimum(ratio, np.float32(max_gain), out=ratio)
    out = image - grey[..., None]
    out *= ratio[..., None]
    out += new_grey[..., None]
    return np.clip(out, 0.0, 1.0, out=out)
