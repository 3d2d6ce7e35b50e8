"""Photographic style transfer to an exemplar photo (the ``style_transfer`` task's reference operator).

Transfers an exemplar's *tonal* look (global contrast, brightness) and its *textureness* (how
much local detail it has, per scale) to an image, without moving any content:

1. Luminance ``L`` as in ``operators.local_laplacian`` (sRGB-encoded values, (20R+40G+B)/61).
2. Two-scale split (Bae, Paris, Durand 2006, "Two-scale Tone Management for Photographic Look",
   SIGGRAPH): base ``B`` = edge-preserving smoothing of ``L``, detail ``D = L - B``. Bae et al.
   use a bilateral filter with σ_s = min(w, h)/16; we use the guided filter (He, Sun, Tang 2013,
   "Guided Image Filtering", TPAMI; ``cv2.ximgproc.guidedFilter``) with radius min(w, h)/16 and
   eps = σ_r², an O(N) edge-preserving smoother whose cost does not grow with the radius.
3. Tone (Bae 2006): the base's histogram is matched to the exemplar base's histogram, as a
   monotone curve fitted on the working-size copy and applied to the full-resolution base: B'.
   Its slope is limited to MAX_TONE_SLOPE (as in contrast-limited equalisation), or a narrow
   histogram peak such as a blown-out sky is stretched into blotches.
4. Texture, per scale: Aubry, Paris, Hasinoff, Kautz, Durand 2014 ("Fast Local Laplacian
   Filters: Theory and Applications", ToG, §6) transfer Bae 2006's look on a Laplacian pyramid,
   i.e. band by band. Textureness of band l is its local RMS amplitude T_l = sqrt(G_σ ⊗ L_l²),
   σ = 2 pixels of level l (the local energy of Shih, Paris, Barnes, Freeman, Durand 2014,
   "Style Transfer for Headshot Portraits"). As in Bae 2006, the wanted textureness T' is the
   input's textureness histogram-matched to the exemplar's (per band, measured on the whole
   luminance), and the detail band is scaled by ρ = (T' - T(B')) / T(D), so that the new base's
   own contribution (edges it gained from the tone curve) is counted. Bae et al. keep ρ >= 0;
   we clamp it to [1/max_gain, max_gain] as Shih et al. clamp their gains, which bounds both
   noise amplification in flat areas and detail removal next to strong edges.
5. Output luminance ``B' + collapse(ρ · D)``; colour as in ``local_laplacian`` (chroma scaled
   by the luminance ratio, Paris et al. 2011 §6), the factor capped at MAX_CHROMA_GAIN;
   ``strength`` blends with the input.

Resolution: every statistic (the exemplar's and the input's) is taken on a copy whose longer
side is ``WORK_SIDE`` px (or the input's own size when smaller; the exemplar is then shrunk to
the same size), so a photo and its 2x upscaled copy are matched against the same exemplar
statistics; the full-resolution detail pyramid is aligned with the working one by the nearest
power-of-two scale, and bands finer than the working size get the finest working band's gain.
Simplified from Bae 2006: no Poisson correction of gradient reversals, and textureness is
smoothed with a Gaussian rather than their cross-bilateral filter.

Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((37, 50, 3), dtype=np.float32)
    >>> out = style_transfer(image, exemplar="soft")
    >>> out.shape, out.dtype, bool(0.0 <= out.min() and out.max() <= 1.0)
    ((37, 50, 3), dtype('float32'), True)
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmark.core.images import ImageError, read_image, resize
from benchmark.imaging.colour import lapfilter_intensity, recolour
from benchmark.imaging.pyramids import collapse, laplacian_pyramid
from operators.checks import check_image, check_number

EXEMPLAR_DIR = Path(__file__).resolve().parents[1] / "data" / "exemplars"
# Longer side (px) of the copies every statistic is computed on; the bundled exemplars are
# stored at this size, so they are used as they are.
WORK_SIDE = 512
# Bae 2006: bilateral σ_s = min(w, h)/16; the guided filter's radius is set the same way.
BASE_RADIUS_FRACTION = 1.0 / 16.0
# Detail pyramid depth at the working size: bands of 1-16 px; coarser structure is the base's.
DETAIL_LEVELS = 5
# Shih 2014: local energy blurred with σ = 2^(l+1) input pixels, i.e. 2 pixels of level l.
ENERGY_SIGMA = 2.0
# Floor of the detail amplitude T(D) in ρ (about 1/4 of an 8-bit step): avoids 0/0 in flat areas.
AMPLITUDE_FLOOR = 1e-3
# The exemplar's quantile functions are stored at this many points (base and each band's textureness).
QUANTILES = 1025
# Tone curve table size (step 1/4096, 1/16 of an 8-bit level).
CURVE_SAMPLES = 4097
# Steepest tone curve slope: more blows faint gradients (skies) up into blotches (_tone_curve).
MAX_TONE_SLOPE = 3.0
# Cap of the chroma factor out_lum / in_lum: brightening a near-black pixel 4x with its colour
# ratios kept turns film noise and faint casts into saturated colour (red pupils, blue shadows).
MAX_CHROMA_GAIN = 2.0
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


# ---------------------------------------------------------------------------------------------
# Exemplars


def available_exemplars() -> list[str]:
    """Names (file stems) of the bundled exemplars in ``data/exemplars/``."""
    if not EXEMPLAR_DIR.is_dir():
        return []
    return sorted(p.stem for p in EXEMPLAR_DIR.iterdir()
                  if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."))


def resolve_exemplar(exemplar: str | os.PathLike) -> Path:
    """A bundled exemplar's name, or a path to an image file -> the file's absolute path."""
    names = available_exemplars()
    if isinstance(exemplar, str) and exemplar in names:
        matches = sorted(p for p in EXEMPLAR_DIR.iterdir() if p.stem == exemplar)
        return matches[0].resolve()
    if not isinstance(exemplar, (str, os.PathLike)) or not str(exemplar):
        raise ValueError(f"exemplar: expected a bundled exemplar name {names} or a path to an "
                         f"image file, got {exemplar!r}")
    path = Path(exemplar).expanduser()
    if not path.is_file():
        raise ValueError(f"exemplar: {str(exemplar)!r} is neither a bundled exemplar "
                         f"(available: {', '.join(names)}) nor an existing image file")
    return path.resolve()


@functools.lru_cache(maxsize=8)
def _exemplar_image(path: str) -> np.ndarray:
    """The exemplar's pixels, read once per path and shrunk to WORK_SIDE (read-only)."""
    try:
        image = read_image(path)
    except ImageError as error:  # "<path>: <reason>": unreadable, truncated, unsupported
        raise ValueError(f"exemplar: {error}") from None
    image = _shrink(image, WORK_SIDE)
    image.setflags(write=False)
    return image


@dataclass(frozen=True)
class _Stats:
    """Quantile functions (QUANTILES points, probability grid ``_GRID``) of an image's layers."""

    base: np.ndarray                   # base-layer luminance
    texture: tuple[np.ndarray, ...]    # textureness of each luminance band, finest first


_GRID = np.linspace(0.0, 1.0, QUANTILES)


@functools.lru_cache(maxsize=32)
def _exemplar_stats(path: str, side: int, sigma_r: float) -> _Stats:
    """Exemplar statistics at longer side ``side`` (WORK_SIDE, or a small input's own size)."""
    gray = lapfilter_intensity(_shrink(_exemplar_image(path), side))
    base, _ = _split(gray, sigma_r)
    texture = [np.quantile(t, _GRID) for t in _textureness(gray, _detail_levels(*gray.shape))]
    stats = _Stats(base=np.quantile(base, _GRID), texture=tuple(texture))
    for array in (stats.base, *stats.texture):
        array.setflags(write=False)  # shared by every later call
    return stats


# ---------------------------------------------------------------------------------------------
# Building blocks


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """Area-resize so the longer side is at most ``side`` (never enlarges)."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image.copy()
    scale = side / max(height, width)
    return resize(image, (max(1, round(height * scale)), max(1, round(width * scale))), "area")


def _split(gray: np.ndarray, sigma_r: float) -> tuple[np.ndarray, np.ndarray]:
    """Base (guided filter of ``gray`` by itself) and detail ``gray - base`` (Bae 2006)."""
    radius = max(1, round(min(gray.shape) * BASE_RADIUS_FRACTION))
    base = cv2.ximgproc.guidedFilter(gray, gray, radius, sigma_r**2)  # eps in intensity²
    return base, gray - base


def _detail_levels(height: int, width: int) -> int:
    """Detail bands at the working size: DETAIL_LEVELS, fewer when the image is too small."""
    return max(0, min(DETAIL_LEVELS, int(math.floor(math.log2(max(1, min(height, width)))))))


def _textureness(gray: np.ndarray, levels: int) -> list[np.ndarray]:
    """Local RMS amplitude sqrt(G_σ ⊗ L_l²) of the first ``levels`` Laplacian bands of ``gray``."""
    bands = laplacian_pyramid(gray, levels + 1)[:-1]
    return [np.sqrt(cv2.GaussianBlur(band * band, (0, 0), ENERGY_SIGMA, borderType=cv2.BORDER_REFLECT))
            for band in bands]


def _match(source: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram matching of ``source`` to a template quantile function (sampled on ``_GRID``).

    As ``skimage.exposure.match_histograms`` (unique source values, their CDF, the template's
    inverse CDF), with the CDF at mid-rank so that a constant source maps to the template's
    median. Returns (sorted unique source values, their matched values, inverse indices).
    """
    values, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    cdf = (np.cumsum(counts) - 0.5 * counts) / source.size
    return values, np.interp(cdf, _GRID, template), inverse


def _tone_curve(base: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Slope-limited histogram matching of ``base`` to ``template``, as a uniform table on [0, 1].

    The matched curve's slope is f_base / f_exemplar: a narrow peak in the input's histogram
    (a clear or blown-out sky) becomes a steep segment that blows its faint gradients and the
    smoothing filter's halos up into blotches. As in contrast-limited equalisation (Pizer et al.
    1987, CLAHE), the slope is clipped, at MAX_TONE_SLOPE; the clipped curve is anchored at the
    input's median, so tones move towards the exemplar's and never past its range.
    """
    values, matched, _ = _match(base, template)
    table = np.interp(np.linspace(0.0, 1.0, CURVE_SAMPLES), values, matched)
    steps = np.minimum(np.diff(table), MAX_TONE_SLOPE / (CURVE_SAMPLES - 1))
    limited = np.concatenate([[0.0], np.cumsum(steps)])
    anchor = int(np.clip(round(float(np.median(base)) * (CURVE_SAMPLES - 1)), 0, CURVE_SAMPLES - 1))
    return (limited + (table[anchor] - limited[anchor])).astype(np.float32)


def _apply_curve(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The curve ``table`` (uniform samples of [0, 1]) at ``x``, linearly interpolated.

    Same as np.interp on the uniform grid, without its binary search (0.2 s at 1920x1080 over a
    ~10^5-point curve); values outside [0, 1] take the end values.
    """
    last = table.size - 1
    position = np.clip(x, 0.0, 1.0) * np.float32(last)
    index = np.minimum(position.astype(np.int32), last - 1)  # floor, as position >= 0
    position -= index
    low = table[index]
    return low + position * (table[index + 1] - low)


# ---------------------------------------------------------------------------------------------
# The operator


def _check(image: np.ndarray, strength: float, max_gain: float, sigma_r: float) -> None:
    """Raise ValueError naming the argument, what was expected and what came."""
    check_image(image)
    for name, value, ok, expected in [
        ("strength", strength, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        ("max_gain", max_gain, lambda v: v >= 1.0, ">= 1"),
        ("sigma_r", sigma_r, lambda v: v > 0.0, "> 0"),
    ]:
        check_number(name, value, ok, expected)


def style_transfer(
    image: np.ndarray,
    exemplar: str = "dramatic",
    strength: float = 1.0,
    max_gain: float = 3.0,
    sigma_r: float = 0.2,
) -> np.ndarray:
    """Give ``image`` the tonal balance and per-scale textureness of an exemplar photo.

    Args:
        image: (H, W, 3) float32 sRGB-encoded RGB in [0, 1]; any size.
        exemplar: a bundled exemplar's name (``available_exemplars()``: "bright", "dramatic",
            "soft") or a path to an image file. Read once per path and cached.
        strength: 0 returns the input exactly, 1 the full transfer; linear in between.
        max_gain: per-band detail gains ρ are clamped to [1/max_gain, max_gain].
        sigma_r: range scale of the base/detail split (guided filter eps = σ_r²): luminance
            steps well above it stay in the base, texture below it goes to the detail layer.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    _check(image, strength, max_gain, sigma_r)
    path = str(resolve_exemplar(exemplar))
    sigma_r = float(sigma_r)
    height, width = image.shape[:2]
    side = min(WORK_SIDE, max(height, width))
    target = _exemplar_stats(path, side, sigma_r)

    gray = lapfilter_intensity(image)
    small = lapfilter_intensity(_shrink(image, side))
    small_base, small_detail = _split(small, sigma_r)
    base, detail = _split(gray, sigma_r)

    # Tone (Bae 2006): histogram-match the base (slope-limited); the curve is fitted at the
    # working size and applied, interpolated, to the full-resolution base.
    curve = _tone_curve(small_base, target.base)
    out = _apply_curve(base, curve)
    small_new_base = _apply_curve(small_base, curve)

    # Texture (Bae 2006's ρ = (T' - T(B')) / T(D), band by band as Aubry 2014 §6): gains at the
    # working size, applied to the full-resolution detail pyramid.
    levels = min(_detail_levels(*small.shape), len(target.texture))
    gains = []
    for have, template, new_base, detail_t in zip(
        _textureness(small, levels), target.texture,
        _textureness(small_new_base, levels), _textureness(small_detail, levels),
    ):
        _, wanted, inverse = _match(have, template)
        wanted = wanted[inverse].reshape(have.shape).astype(np.float32)
        gain = (wanted - new_base) / np.maximum(detail_t, np.float32(AMPLITUDE_FLOOR))
        gains.append(np.clip(gain, np.float32(1.0 / max_gain), np.float32(max_gain)))
    # full-resolution level j sees the working level j - offset (nearest power-of-two scale);
    # the finer full-resolution bands, absent at the working size, take the finest gain
    offset = max(0, round(math.log2(max(height, width) / side)))
    if gains:
        pyramid = laplacian_pyramid(detail, len(gains) + offset + 1)
        for j, band in enumerate(pyramid[:-1]):
            gain = gains[max(0, j - offset)]
            if gain.shape != band.shape:
                gain = cv2.resize(gain, (band.shape[1], band.shape[0]), interpolation=cv2.INTER_LINEAR)
            band *= gain
        out += collapse(pyramid)  # the residual (coarsest) band of the detail is kept as it is
    else:
        out += detail  # too small for a single detail band: only the tone is transferred
    np.clip(out, 0.0, 1.0, out=out)  # before the colour ratio: a negative luminance flips chroma

    # Colour ratios kept, as operators.local_laplacian does (Paris 2011 §6, eps from Halide),
    # up to MAX_CHROMA_GAIN: the output luminance is `out` whatever the chroma factor.
    styled = recolour(image, gray, out, MAX_CHROMA_GAIN)
    # strength blends the (clipped) result with the input in RGB: the same as blending the
    # luminance and rescaling chroma, since both are linear in the luminance change; exact at 0.
    styled -= image
    styled *= np.float32(strength)
    styled += image
    return np.clip(styled, 0.0, 1.0, out=styled)
