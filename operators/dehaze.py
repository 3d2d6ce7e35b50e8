"""Dark-channel-prior haze removal (the ``dehaze`` task's reference operator).

Algorithm: He, Sun, Tang 2009/2011, "Single Image Haze Removal Using Dark Channel Prior" (CVPR
2009; TPAMI 33(12)), with the soft-matting refinement of the transmission replaced by the guided
filter, as He, Sun, Tang 2013, "Guided Image Filtering" (TPAMI 35(6)) suggest. With the haze
model I = J·t + A·(1 − t) (He 2009 eq. 1):

1. dark channel  dark(I)(x) = min over the patch Ω(x) of min over c of I^c(y)   (eq. 5)
2. atmospheric light A: among the 0.1% pixels with the brightest dark channel, the input pixel
   of highest intensity (§4.4); intensity here is the HSI one, (R + G + B) / 3
3. transmission  t̃ = 1 − ω·dark(I / A), ω = 0.95 keeps a little haze for depth (eq. 12)
4. refinement: guided filter of t̃ with the grey input as guide, radius 60, ε = 1e-4 (He 2013,
   the haze-removal example), then t clamped to [t0, 1]
5. radiance  J = (I − A) / max(t, t0) + A, t0 = 0.1 (eq. 22), clipped to [0, 1]

The model is applied to the sRGB-encoded values, as the papers do (no linearisation).

Sizes scale with the image: He 2009 uses a 15x15 patch and He 2013 a radius of 60 on photos of
about 600 px, so ``patch`` and ``radius`` are given at ``reference_side`` = 600 px (the longer
side) and multiplied by ``max(H, W) / reference_side``. A fixed pixel size would make the operator
see a different scene at different resolutions: the upsampling baselines run it at 256 px, where a
15 px patch spans 2.3x as much of the scene as at 600 px; at 1920 px it spans 3.2x less (and a
dark channel over a small patch follows texture rather than depth). Scaling keeps
the output of a downscaled photo close to the downscaled output; with fixed sizes, a bright
object wider than 15 px at 1536 px survives the dark channel and is taken for A, and the two
disagree by ~16 dB PSNR where scaled sizes give 31-35 dB (tests/test_dehaze.py).
``reference_side=None`` uses ``patch`` and ``radius`` as pixel sizes, literally.

Building blocks: OpenCV ``erode`` with a rectangular kernel is the min filter (its default
border ignores pixels outside the image); ``cv2.ximgproc.guidedFilter`` (opencv-contrib) is He
2013's Algorithm 1 with a (2r+1)² box and ε added to the guide's variance, as written there.

Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    >>> out = dehaze(image)
    >>> out.shape, out.dtype, bool(0.0 <= out.min() and out.max() <= 1.0)
    ((37, 53, 3), dtype('float32'), True)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from operators.checks import check_image, check_number

# He 2009 §4.4: the brightest 0.1% of the dark channel are the candidates for the airlight.
TOP_FRACTION = 0.001
# Floor for each channel of A, so that I / A stays finite for a black (or single-hue) image.
MIN_AIRLIGHT = 1e-3


def scaled_sizes(
    height: int, width: int, patch: int, radius: int, reference_side: float | None
) -> tuple[int, int]:
    """(patch side, guided-filter radius) in pixels for an image of this size.

    With a ``reference_side`` both scale by ``max(height, width) / reference_side``; the patch is
    rounded to the nearest odd size (so it is centred on its pixel), both are at least 1.
    """
    if reference_side is None:
        return patch, radius
    scale = max(height, width) / reference_side
    return (
        max(1, 2 * round((patch * scale - 1) / 2) + 1),
        max(1, round(radius * scale)),
    )


def dark_channel(image: np.ndarray, patch: int) -> np.ndarray:
    """He 2009 eq. 5: min over the colour channels, then over a ``patch`` x ``patch`` window.

    Windows are cut off at the image border (OpenCV's erode border value is +inf for erosion).
    """
    darkest = np.ascontiguousarray(image.min(axis=2), dtype=np.float32)
    if patch == 1:
        return darkest
    return cv2.erode(darkest, cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch)))


def atmospheric_light(
    image: np.ndarray, dark: np.ndarray, top_fraction: float = TOP_FRACTION
) -> np.ndarray:
    """He 2009 §4.4: among the ``top_fraction`` pixels with the brightest dark channel, the input
    pixel of highest intensity (R + G + B) / 3. Returns A as float32 (3,).

    Deterministic: every pixel tied with the cut-off value is a candidate, and among candidates
    of equal intensity the first in row-major order wins.
    """
    flat_dark = dark.ravel()
    count = max(1, math.ceil(top_fraction * flat_dark.size))
    cutoff = np.partition(flat_dark, flat_dark.size - count)[flat_dark.size - count]
    candidates = np.flatnonzero(flat_dark >= cutoff)
    pixels = image.reshape(-1, 3)[candidates]
    brightest = candidates[int(np.argmax(pixels.sum(axis=1, dtype=np.float64)))]
    return image.reshape(-1, 3)[brightest].astype(np.float32)


def raw_transmission(image: np.ndarray, airlight: np.ndarray, omega: float, patch: int) -> np.ndarray:
    """He 2009 eq. 12: t̃ = 1 − ω·dark(I / A)."""
    normalised = image / np.maximum(airlight, np.float32(MIN_AIRLIGHT)).astype(np.float32)
    return (np.float32(1.0) - np.float32(omega) * dark_channel(normalised, patch)).astype(np.float32)


def refine_transmission(
    image: np.ndarray, transmission: np.ndarray, radius: int, eps: float
) -> np.ndarray:
    """He 2013 guided filter of the raw transmission, guided by the grey input (Rec. 601 luma)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.ximgproc.guidedFilter(grey, transmission, radius, eps)


def _check(image: np.ndarray, omega: float, t0: float, patch: int, radius: int, eps: float,
           reference_side: float | None) -> None:
    """Raise ValueError naming the argument, what was expected and what came."""
    check_image(image)
    for name, value, ok, expected in [
        ("omega", omega, lambda v: 0 < v <= 1, "in (0, 1]"),
        ("t0", t0, lambda v: 0 < v <= 1, "in (0, 1]"),
        ("eps", eps, lambda v: v > 0, "> 0"),
    ]:
        check_number(name, value, ok, expected)
    for name, value in [("patch", patch), ("radius", radius)]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    if reference_side is not None and not (
        isinstance(reference_side, (int, float, np.number)) and not isinstance(reference_side, bool)
        and math.isfinite(reference_side) and reference_side > 0
    ):
        raise ValueError(
            f"reference_side: expected None or a finite number > 0, got {reference_side!r}"
        )


def dehaze(
    image: np.ndarray,
    omega: float = 0.95,
    t0: float = 0.1,
    patch: int = 15,
    radius: int = 60,
    eps: float = 1e-4,
    reference_side: float | None = 600,
) -> np.ndarray:
    """Remove haze from an RGB image with the dark channel prior and a guided-filter refinement.

    Args:
        image: (H, W, 3) float32 sRGB-encoded RGB in [0, 1]; any size.
        omega: share of the haze removed, in (0, 1] (He 2009: 0.95).
        t0: lower bound of the transmission, in (0, 1] (He 2009: 0.1).
        patch: dark-channel window side at ``reference_side`` (He 2009: 15).
        radius: guided-filter radius at ``reference_side`` (He 2013: 60).
        eps: guided-filter regularisation on the [0, 1] grey guide (He 2013: 1e-4).
        reference_side: longer image side at which ``patch`` and ``radius`` hold; they scale
            with ``max(H, W) / reference_side``. None: use them as pixel sizes.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    _check(image, omega, t0, patch, radius, eps, reference_side)
    height, width = image.shape[:2]
    patch_px, radius_px = scaled_sizes(height, width, patch, radius, reference_side)
    airlight = atmospheric_light(image, dark_channel(image, patch_px))
    raw = raw_transmission(image, airlight, omega, patch_px)
    transmission = refine_transmission(image, raw, radius_px, eps)
    np.clip(transmission, np.float32(t0), np.float32(1.0), out=transmission)
    out = image - airlight
    out /= transmission[..., None]
    out += airlight
    return np.clip(out, 0.0, 1.0, out=out)
