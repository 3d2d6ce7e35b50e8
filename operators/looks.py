"""Synthetic Photoshop-like looks: the ``photoshop`` task's operator when no folder of human-made
input/output exports is given (results labelled synthetic).

Each look is a pure, deterministic function float32 RGB [0, 1] (H, W, 3) → same size, composed
of the adjustments a retoucher stacks as layers, each clipped to [0, 1] as an 8/16-bit editor does:

- ``tone_curve`` / ``apply_curve``: a Curves layer; control points joined by a monotone cubic
  (PCHIP, Fritsch & Carlson 1980, ``scipy.interpolate.PchipInterpolator``), so that, unlike a
  natural cubic spline, the curve never overshoots or reverses between points; tabulated at the
  2^16 levels of a 16-bit document and applied by rounding each value to its level (one table
  lookup; the rounding moves a value by at most 2^-17).
- ``channel_mix``: a Channel Mixer layer, each output channel a weighted sum of R, G, B.
- ``saturation``: extrapolation away from the grey image, out = Y + k·(rgb − Y) (Haeberli &
  Voorhies 1994, "Image Processing by Linear Interpolation and Extrapolation").
- ``vibrance``: the same with a per-pixel k = 1 + amount·(1 − s), s = max − min of RGB, so muted
  colours gain more than saturated ones, which then clip less (the behaviour Adobe describes for
  Vibrance; the exact Adobe formula is not published).
- ``split_tone``: Lightroom-style split toning: a shadow hue weighted by (1 − Y)² and a highlight
  hue weighted by Y², each added as a zero-luma colour offset, so luma is kept (before clipping).
- ``vignette``: a gain that falls from 1 to 1 − amount along the frame's ellipse (radius 1 at the
  corners), a smoothstep from ``start`` to the corners; it depends only on the relative position
  in the frame, so it is the same at every resolution.

Luma Y is Rec. 601 (0.299 R + 0.587 G + 0.114 B), as OpenCV's RGB→grey and Photoshop's
luminosity. Everything works on the sRGB-encoded values, like the editors' layers in an sRGB
document.

Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    >>> out = apply_look(image, "warm_film")
    >>> out.shape, out.dtype, bool(0.0 <= out.min() and out.max() <= 1.0)
    ((37, 53, 3), dtype('float32'), True)
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from benchmark.imaging.colour import REC601_WEIGHTS, rec601_luma
from operators.checks import check_image

LUT_SIZE = 2**16  # one entry per 16-bit level

Curve = Sequence[tuple[float, float]]


# ---------------------------------------------------------------------------------------------
# Adjustments


def tone_curve(points: Curve) -> np.ndarray:
    """A Curves layer as a ``LUT_SIZE`` table over [0, 1]: the monotone cubic (PCHIP) through
    ``points`` (x strictly increasing, from 0 to 1), clipped to [0, 1]."""
    x, y = np.asarray(points, np.float64).T
    if x[0] != 0.0 or x[-1] != 1.0 or np.any(np.diff(x) <= 0):
        raise ValueError(f"points: expected x increasing from 0 to 1, got {list(x)}")
    grid = np.linspace(0.0, 1.0, LUT_SIZE)
    return np.clip(PchipInterpolator(x, y)(grid), 0.0, 1.0).astype(np.float32)


def apply_curve(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map values through a ``tone_curve`` table (each value rounded to the nearest of its
    ``LUT_SIZE`` levels); a (3, LUT_SIZE) table gives each channel its own curve."""
    levels = lut.shape[-1] - 1
    index = np.rint(np.clip(image, 0.0, 1.0) * np.float32(levels)).astype(np.int32)
    if lut.ndim == 1:
        return lut[index]
    return np.stack([lut[channel][index[..., channel]] for channel in range(3)], axis=-1)


def channel_mix(image: np.ndarray, matrix: Sequence[Sequence[float]]) -> np.ndarray:
    """Channel Mixer: out_c = Σ_j matrix[c][j]·in_j, clipped. A (1, 3) matrix gives monochrome
    (the one output copied to R, G and B)."""
    weights = np.asarray(matrix, np.float32)
    out = image @ weights.T
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.clip(out, 0.0, 1.0, out=out)


def saturation(image: np.ndarray, amount: float) -> np.ndarray:
    """Y + amount·(rgb − Y), clipped: 0 is grey, 1 the identity, > 1 more colourful."""
    grey = rec601_luma(image)[..., None]
    out = grey + np.float32(amount) * (image - grey)
    return np.clip(out, 0.0, 1.0, out=out)


def vibrance(image: np.ndarray, amount: float) -> np.ndarray:
    """Saturation scaled by 1 + amount·(1 − s), s = max − min of the pixel: muted colours first."""
    grey = rec601_luma(image)[..., None]
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]  # faster than max(axis=2)
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    chroma = chroma[..., None]
    out = grey + (np.float32(1.0) + np.float32(amount) * (np.float32(1.0) - chroma)) * (image - grey)
    return np.clip(out, 0.0, 1.0, out=out)


def _zero_luma_tint(hue_degrees: float) -> np.ndarray:
    """The fully saturated colour of this hue minus its luma: a pure colour offset."""
    colour = np.array(colorsys.hsv_to_rgb((hue_degrees % 360) / 360, 1.0, 1.0), np.float32)
    return colour - np.float32(colour @ REC601_WEIGHTS)


def split_tone(
    image: np.ndarray,
    shadow_hue: float,
    shadow_amount: float,
    highlight_hue: float,
    highlight_amount: float,
) -> np.ndarray:
    """Tint shadows towards ``shadow_hue`` (weight (1 − Y)²) and highlights towards
    ``highlight_hue`` (weight Y²); hues in degrees (0 red, 120 green, 240 blue)."""
    y = rec601_luma(image)[..., None]
    out = image + (np.float32(shadow_amount) * (1 - y) ** 2) * _zero_luma_tint(shadow_hue)
    out += (np.float32(highlight_amount) * y**2) * _zero_luma_tint(highlight_hue)
    return np.clip(out, 0.0, 1.0, out=out)


def vignette_gain(height: int, width: int, amount: float, start: float = 0.4) -> np.ndarray:
    """(H, W) gain: 1 inside the ellipse of normalised radius ``start``, falling smoothly to
    1 − amount at the corners (radius 1). Pixel centres at ((x + 0.5)/W, (y + 0.5)/H)."""
    u = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
    v = (np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1
    radius = np.sqrt(v[:, None] ** 2 + u[None, :] ** 2) / np.float32(np.sqrt(2.0))
    s = np.clip((radius - start) / (1 - start), 0.0, 1.0)
    return (1 - np.float32(amount) * s * s * (3 - 2 * s)).astype(np.float32)


def vignette(image: np.ndarray, amount: float, start: float = 0.4) -> np.ndarray:
    """Darken towards the corners by ``vignette_gain`` (a multiplicative exposure falloff)."""
    return image * vignette_gain(*image.shape[:2], amount, start)[..., None]


# ---------------------------------------------------------------------------------------------
# Looks

# Faded print: blacks lifted to 0.07, whites rolled off to 0.95, a gentle S between.
_FILM_CURVE = tone_curve([(0.0, 0.07), (0.25, 0.24), (0.5, 0.5), (0.75, 0.77), (1.0, 0.95)])
# Strong S-curve for monochrome: deeper shadows, brighter highlights, ends pinned.
_BW_CURVE = tone_curve([(0.0, 0.0), (0.18, 0.10), (0.5, 0.5), (0.82, 0.92), (1.0, 1.0)])
# Moderate contrast S-curve.
_CONTRAST_CURVE = tone_curve([(0.0, 0.0), (0.25, 0.2), (0.5, 0.5), (0.75, 0.8), (1.0, 1.0)])
# Cross processing (slide film in negative chemistry, the classic Curves recipe): contrasty red
# and green, blue flattened with lifted blacks and lowered whites: blue shadows, yellow highlights.
_CROSS_CURVES = np.stack([
    tone_curve([(0.0, 0.0), (0.25, 0.17), (0.75, 0.86), (1.0, 1.0)]),
    tone_curve([(0.0, 0.0), (0.25, 0.21), (0.75, 0.82), (1.0, 1.0)]),
    tone_curve([(0.0, 0.14), (0.5, 0.5), (1.0, 0.84)]),
])


def _check_image(image: np.ndarray) -> None:
    """Raise ValueError("image: ...") for anything but a non-empty float32 (H, W, 3) in [0, 1]."""
    check_image(image)


def warm_film(image: np.ndarray) -> np.ndarray:
    """Warm faded film: lifted blacks and soft highlights (curve), colours muted to 85%, then
    split toning with teal shadows (hue 185°) and warm orange highlights (hue 35°)."""
    _check_image(image)
    out = saturation(apply_curve(image, _FILM_CURVE), 0.85)
    return split_tone(
        out, shadow_hue=185.0, shadow_amount=0.10, highlight_hue=35.0, highlight_amount=0.15
    )


def crisp_bw(image: np.ndarray) -> np.ndarray:
    """Crisp black and white: monochrome channel mix 0.5 R + 0.4 G + 0.1 B (a red-filter look:
    blue skies darker, skin lighter than plain luma), then a strong S-curve. R = G = B."""
    _check_image(image)
    return apply_curve(channel_mix(image, [[0.5, 0.4, 0.1]]), _BW_CURVE)


def vivid_vignette(image: np.ndarray) -> np.ndarray:
    """Vivid with vignette: vibrance +0.6 (muted colours first), a moderate contrast S-curve, and
    corners darkened by 40% from a normalised radius of 0.4 outwards."""
    _check_image(image)
    out = apply_curve(vibrance(image, 0.6), _CONTRAST_CURVE)
    return vignette(out, amount=0.4, start=0.4)


def cross_process(image: np.ndarray) -> np.ndarray:
    """Cross-processed: a different curve per channel (contrasty red and green; flat blue with
    lifted blacks and lowered whites, so shadows go blue and highlights yellow), saturation 1.1."""
    _check_image(image)
    return saturation(apply_curve(image, _CROSS_CURVES), 1.1)


LOOKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "warm_film": warm_film,
    "crisp_bw": crisp_bw,
    "vivid_vignette": vivid_vignette,
    "cross_process": cross_process,
}


def apply_look(image: np.ndarray, look: str = "warm_film") -> np.ndarray:
    """Apply the named synthetic look (a key of ``LOOKS``) to a float32 RGB [0, 1] image.

    Raises ValueError("look: ...") listing the available looks for an unknown name, and
    ValueError("image: ...") for an image that is not (H, W, 3) float32 in [0, 1].
    """
    if not isinstance(look, str) or look not in LOOKS:
        raise ValueError(f"look: unknown look {look!r}; expected one of {sorted(LOOKS)}")
    return LOOKS[look](image)
