"""Argument checks shared by the reference operators: ValueErrors that start with the argument's name."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def check_image(image: np.ndarray) -> None:
    """An (H, W, 3) float32 array with values in [0, 1] (NaN refused)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image: expected an (H, W, 3) RGB array, got {got}")
    if image.dtype != np.float32:
        raise ValueError(f"image: expected dtype float32, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"image: expected a non-empty image, got shape {image.shape}")
    low, high = image.min(), image.max()
    if not (low >= 0.0 and high <= 1.0):  # also catches NaN
        raise ValueError(f"image: expected values in [0, 1], got range [{low}, {high}]")


def is_number(value: object) -> bool:
    """A finite real number (bools excluded)."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(name: str, value: object, ok: Callable[[float], bool], expected: str) -> None:
    """A finite number for which ``ok`` holds; ``expected`` says which, e.g. "> 0"."""
    if not (is_number(value) and ok(value)):
        raise ValueError(f"{name}: expected a finite number {expected}, got {value!r}")
