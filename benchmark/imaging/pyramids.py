"""Gaussian and Laplacian pyramids (Burt & Adelson 1983) with OpenCV's 5-tap binomial filter, and
the piecewise-linear interpolation between sampled results that the fast local Laplacian filter
and Durand's bilateral use."""

from __future__ import annotations

import math

import cv2
import numpy as np


def default_levels(height: int, width: int) -> int:
    """Pyramid depth down to a coarsest level of 1-2 pixels (Paris 2011 gaussian_pyramid.m)."""
    return max(1, math.ceil(math.log2(min(height, width))))


def gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """[G_0 = image, ..., G_{levels-1}] with OpenCV's 5-tap binomial ``pyrDown``."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def _upsample(coarse: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.pyrUp(coarse, dstsize=(like.shape[1], like.shape[0]))


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """[L_0, ..., L_{levels-2}, G_{levels-1}]; ``collapse`` inverts it exactly (up to rounding)."""
    gauss = gaussian_pyramid(image, levels)
    bands = [fine - _upsample(coarse, fine) for fine, coarse in zip(gauss[:-1], gauss[1:])]
    return bands + [gauss[-1]]


def collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    """Sum a Laplacian pyramid back into an image, the same upsampling as the analysis."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + _upsample(image, band)
    return image


def add_hat_weighted(acc: np.ndarray, values: np.ndarray, position: np.ndarray, sample: int,
                     scratch: np.ndarray) -> None:
    """acc += max(0, 1 - |position - sample|) * values: linear interpolation between sampled
    results (Aubry 2014; Durand 2002's piecewise-linear bilateral). In place in ``scratch``:
    full-size temporaries cost page faults."""
    np.subtract(position, np.float32(sample), out=scratch)
    np.abs(scratch, out=scratch)
    np.subtract(np.float32(1.0), scratch, out=scratch)
    np.maximum(scratch, np.float32(0.0), out=scratch)
    scratch *= values
    acc += scratch
