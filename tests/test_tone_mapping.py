"""Tests for operators.tone_mapping: the HDR+ stand-in (Durand & Dorsey 2002 local tone mapping).

Tolerances are measured values with margin (numbers in each test). The fast bilateral filter is
checked against a direct (brute-force) bilateral filter written out below.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate

from benchmark.core.images import read_image
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.imaging.colour import lapfilter_intensity
from operators.tone_mapping import (
    DURAND_SIGMA_R_STOPS,
    expansion_gain,
    fast_bilateral,
    linear_to_srgb,
    srgb_to_linear,
    tone_map,
)
from tests.conftest import assert_operator_contract, compose_config, synthetic_image

REC709 = np.array([0.2126, 0.7152, 0.0722], np.float32)  # display luminance for the statistics


def direct_bilateral(values: np.ndarray, sigma_s: float, sigma_r: float) -> np.ndarray:
    """Tomasi & Manduchi's bilateral filter, literally: Gaussian space x Gaussian range weights
    over a 3σ_s window, mirrored borders (cv2.BORDER_REFLECT, as the fast filter), float64."""
    radius = math.ceil(3 * sigma_s)
    height, width = values.shape
    padded = np.pad(values.astype(np.float64), radius, mode="symmetric")
    numerator = np.zeros((height, width))
    denominator = np.zeros((height, width))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
            weight = math.exp(-(dx * dx + dy * dy) / (2 * sigma_s**2)) * np.exp(
                -((shifted - values) ** 2) / (2 * sigma_r**2)
            )
            numerator += weight * shifted
            denominator += weight
    return numerator / denominator


def log_intensity(image: np.ndarray) -> np.ndarray:
    return np.log2(np.maximum(lapfilter_intensity(srgb_to_linear(image)), 2.0**-14)).astype(np.float32)


def log_high_freq(image: np.ndarray, region: tuple) -> float:
    """Local contrast in stops: std of log2 intensity minus its Gaussian(2 px) blur."""
    log_i = log_intensity(image)
    return float((log_i - cv2.GaussianBlur(log_i, (0, 0), 2.0))[region].std())


def band_scene(height: int = 96, width: int = 144, texture: float = 0.15) -> np.ndarray:
    """Three bands in linear light, dark 0.004 | key grey 0.18 | white 1, with a ±0.15-stop
    log texture (clipped at 1), grey RGB, sRGB-encoded."""
    linear = np.empty((height, width), np.float32)
    linear[:, : width // 3] = 0.004
    linear[:, width // 3 : 2 * width // 3] = 0.18
    linear[:, 2 * width // 3 :] = 1.0
    noise = np.random.default_rng(0).standard_normal((height, width)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 1.0)
    linear = np.minimum(linear * np.exp2(texture * noise / noise.std()), 1.0)
    return np.repeat(linear_to_srgb(linear)[..., None], 3, axis=-1)


# band interiors (8 px from the band edges) of band_scene(96, 144)
DARK, GREY, WHITE = np.s_[8:-8, 8:40], np.s_[8:-8, 56:88], np.s_[8:-8, 104:136]


# --- building blocks -------------------------------------------------------------------------

def test_srgb_transfer_functions_are_exact() -> None:
    codes = np.arange(256, dtype=np.float64) / 255
    expected = np.where(codes <= 0.04045, codes / 12.92, ((codes + 0.055) / 1.055) ** 2.4)  # IEC 61966-2-1
    linear = srgb_to_linear(codes.astype(np.float32))
    assert linear.dtype == np.float32
    np.testing.assert_allclose(linear, expected, rtol=1e-6, atol=1e-9)
    assert np.abs(linear_to_srgb(linear) - codes).max() < 5e-7  # measured 1.2e-7
    # continuous at both thresholds, and the end points
    assert srgb_to_linear(np.float32([0.04045]))[0] == pytest.approx(0.04045 / 12.92, rel=1e-6)
    assert linear_to_srgb(np.float32([0.0, 1.0])).tolist() == pytest.approx([0.0, 1.0], abs=1e-7)
    near = linear_to_srgb(np.float32([0.0031308 - 1e-7, 0.0031308 + 1e-7]))
    assert abs(near[1] - near[0]) < 1e-5


def test_expansion_inverts_reinhard_curve() -> None:
    y = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    for stops in (0.0, 1.0, 3.0, 6.0):
        white = 2.0**stops
        x = (y * expansion_gain(y, white)).astype(np.float64)
        reinhard = x * (1 + x / white**2) / (1 + x)  # Reinhard et al. 2002, eq. 4
        np.testing.assert_allclose(reinhard, y, atol=2e-6)
        assert x[-1] == pytest.approx(white, rel=1e-5)  # input white lands on the white point
        assert np.all(np.diff(x) > 0)  # monotonic
    np.testing.assert_array_equal(expansion_gain(y, 1.0), np.ones_like(y))  # w = 1: identity
    assert expansion_gain(np.float32([0.0]), 8.0)[0] == 1.0  # slope 1 at black: shadows untouched


@pytest.mark.parametrize(
    "shape, sigma_s, max_error, rms_error",
    # measured (stops): 48x64 σ 2 (no downsampling) 0.027 / 0.0043; 96x128 σ 12 (3x downsampled)
    # 0.057 / 0.0088, against ~0.4 stops between the input and the filtered image
    [((48, 64), 2.0, 0.05, 0.008), ((96, 128), 12.0, 0.1, 0.015)],
)
def test_fast_bilateral_matches_direct(shape, sigma_s, max_error, rms_error) -> None:
    photo = read_image(BUNDLED_PHOTOS / "kodim17.png")
    values = log_intensity(cv2.resize(photo, shape[::-1], interpolation=cv2.INTER_AREA))
    direct = direct_bilateral(values, sigma_s, DURAND_SIGMA_R_STOPS)
    fast = fast_bilateral(values, sigma_s, DURAND_SIGMA_R_STOPS)
    assert fast.dtype == np.float32
    assert np.abs(fast - direct).max() < max_error
    assert np.sqrt(np.mean((fast - direct) ** 2)) < rms_error
    assert np.sqrt(np.mean((values - direct) ** 2)) > 0.3  # the filter does something


def test_fast_bilateral_flat_and_step() -> None:
    flat = np.full((20, 30), -3.0, np.float32)
    np.testing.assert_array_equal(fast_bilateral(flat, 4.0, 1.0), flat)
    step = np.zeros((40, 60), np.float32)
    step[:, 30:] = 8.0  # 8 stops >> σ_r: an edge the base must keep
    np.testing.assert_allclose(fast_bilateral(step, 6.0, DURAND_SIGMA_R_STOPS), step, atol=1e-3)


# --- the operator ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(40, 48), (37, 53), (513, 771)])
@pytest.mark.parametrize("compression", [1.0, None])  # None picks c = 1 when range_stops = 0
def test_no_expansion_no_compression_is_identity(shape: tuple[int, int], compression) -> None:
    image = synthetic_image(*shape)
    out = tone_map(image, range_stops=0.0, compression=compression, detail=1.0)
    assert np.abs(out - image).max() < 1e-5  # measured 1.8e-7 (sRGB round trip, float32)


def test_bundled_photos_shadows_lifted_highlights_held() -> None:
    """Every bundled Kodak photo, default settings: the darkest decile rises, clipping barely grows.

    Measured: darkest-decile luminance +0.07 to +0.13 (mean 0.151 -> 0.243); clipped fraction
    (any channel >= 254.5/255) grows by at most 0.009 (kodim13), falls on 9 photos.
    """
    for path in sorted(BUNDLED_PHOTOS.glob("*.png")):
        image = read_image(path)
        out = tone_map(image)
        lum_in, lum_out = image @ REC709, out @ REC709
        darkest = lum_in <= np.percentile(lum_in, 10)
        lift = lum_out[darkest].mean() - lum_in[darkest].mean()
        assert lift > 0.05, f"{path.name}: darkest decile lifted by only {lift:.3f}"
        clipped_in = (image >= 254.5 / 255).any(-1).mean()
        clipped_out = (out >= 254.5 / 255).any(-1).mean()
        assert clipped_out < clipped_in + 0.02, f"{path.name}: clipped {clipped_in:.4f} -> {clipped_out:.4f}"


def test_white_held_key_kept_shadows_lifted_no_halo() -> None:
    scene = band_scene()
    out = tone_map(scene)
    # measured: dark 0.051 -> 0.198, grey 0.464 -> 0.483, white 0.982 -> 0.949
    assert out[DARK].mean() > scene[DARK].mean() + 0.1
    assert out[GREY].mean() == pytest.approx(scene[GREY].mean(), abs=0.04)
    assert out[WHITE].mean() > 0.9
    # edge-aware base: the dark band right next to the grey one is as dark as its interior
    # (a Gaussian base would brighten it); measured columns 38-47: 0.195-0.200
    next_to_edge = out[8:-8, 38:48].mean(axis=(0, 2))
    assert np.abs(next_to_edge - out[DARK].mean()).max() < 0.02


def test_local_contrast_is_kept_in_shadows() -> None:
    scene = band_scene()
    before = log_high_freq(scene, DARK)
    # measured (stops): 0.109 in, 0.106 out (detail 1), 0.158 (detail 1.5), 0.005 (detail 0)
    assert log_high_freq(tone_map(scene), DARK) == pytest.approx(before, rel=0.15)
    assert log_high_freq(tone_map(scene, detail=1.5), DARK) > 1.3 * before
    assert log_high_freq(tone_map(scene, detail=0.0), DARK) < 0.2 * before


def test_stronger_compression_lifts_shadows_more() -> None:
    scene = band_scene()
    strong, mild = tone_map(scene, compression=0.3), tone_map(scene, compression=0.6)
    assert strong[DARK].mean() > mild[DARK].mean() + 0.05  # measured 0.266 vs 0.145


def test_colour_ratios_are_kept() -> None:
    image = synthetic_image(64, 80)
    out = tone_map(image)
    lin_in, lin_out = srgb_to_linear(image), srgb_to_linear(out)
    inside = (out > 1e-3).all(-1) & (out < 1 - 1e-3).all(-1)
    assert inside.mean() > 0.9
    ratio = lin_out / np.maximum(lin_in, 1e-6)  # one gain per pixel, the same for R, G and B
    assert np.abs(ratio[..., 0] - ratio[..., 1])[inside].max() < 1e-3 * ratio[..., 1][inside].max()
    assert np.abs(ratio[..., 2] - ratio[..., 1])[inside].max() < 1e-3 * ratio[..., 1][inside].max()


@pytest.mark.parametrize("shape", [(513, 771), (37, 53), (5, 7), (2, 3), (1, 1)])
def test_output_contract_on_odd_sizes(shape: tuple[int, int]) -> None:
    image = synthetic_image(*shape, seed=3)
    assert_operator_contract(tone_map, image)


def test_black_and_white_images() -> None:
    black = np.zeros((16, 24, 3), np.float32)
    np.testing.assert_array_equal(tone_map(black), black)
    white = np.ones((16, 24, 3), np.float32)
    np.testing.assert_allclose(tone_map(white), white, atol=1e-5)  # white held exactly (auto c)


def test_task_config_matches_defaults() -> None:
    cfg = compose_config(["task=tone_mapping"])
    assert cfg.task.name == "tone_mapping"
    image = synthetic_image(37, 53)
    np.testing.assert_array_equal(instantiate(cfg.task.operator)(image), tone_map(image))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"range_stops": -1.0}, "range_stops"),
        ({"range_stops": 20.0}, "range_stops"),
        ({"range_stops": float("nan")}, "range_stops"),
        ({"compression": 0.0}, "compression"),
        ({"compression": float("inf")}, "compression"),
        ({"compression": "auto"}, "compression"),
        ({"key": 0.0}, "key"),
        ({"key": 1.0}, "key"),
        ({"detail": -0.5}, "detail"),
        ({"sigma_s": 0.0}, "sigma_s"),
        ({"sigma_r": -1.0}, "sigma_r"),
        ({"sigma_r": True}, "sigma_r"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs: dict, name: str) -> None:
    call = {"image": np.full((8, 8, 3), 0.5, np.float32), **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        tone_map(**call)
