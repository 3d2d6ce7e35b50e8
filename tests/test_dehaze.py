"""Tests for operators.dehaze on hazy images made with the haze model I = J·t + A·(1 − t).

The haze-free J are bundled Kodak photos (whose dark channel is low but not zero) and a fully
saturated synthetic scene (dark channel exactly 0); t is a smooth known depth map, far at the
top, with a band of sky near t = 0 as in He 2009's photos; A is known. Thresholds are measured
values with margin (numbers in each test, measured at the default parameters).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmark.core.images import read_image, resize
from benchmark.data.photos import BUNDLED_PHOTOS
from operators.dehaze import (
    atmospheric_light,
    dark_channel,
    dehaze,
    raw_transmission,
    refine_transmission,
    scaled_sizes,
)
from tests.conftest import assert_operator_contract, psnr

AIRLIGHT = np.array([0.85, 0.88, 0.92], np.float32)  # slightly blue haze
SKY = np.array([0.55, 0.70, 0.95], np.float32)  # haze-free sky colour, seen through t = 0.05


def add_haze(
    clear: np.ndarray, sky_fraction: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(haze-free J, hazy I, transmission t): depth grows towards the top (with a slight tilt);
    t = 0.9 · (0.3 / 0.9)^(d / max d) = exp(-β d) from 0.9 (bottom) to 0.3; the top rows are sky
    (t = 0.05, J = SKY), the densest haze, where He 2009's estimate of A looks."""
    height, width = clear.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = (1 - y / height) * (0.8 + 0.2 * x / width)
    t = (0.9 * (0.3 / 0.9) ** (depth / depth.max())).astype(np.float32)
    clear = clear.copy()
    sky_rows = int(sky_fraction * height)
    t[:sky_rows] = 0.05
    clear[:sky_rows] = SKY
    hazy = clear * t[..., None] + AIRLIGHT * (1 - t[..., None])
    return clear, hazy.astype(np.float32), t


def kodak(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = read_image(BUNDLED_PHOTOS / f"{name}.png")
    return image if size is None else resize(image, size)


def saturated_scene(height: int, width: int) -> np.ndarray:
    """Smoothly varying hues at full HSV saturation (one channel is 0 everywhere), textured value."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    hue = ((np.sin(x / 23) + np.cos(y / 17) + 0.5 * np.sin((x + y) / 9)) * 60 + 180) % 360
    value = 0.35 + 0.25 * (1 + np.sin(x / 5) * np.cos(y / 7))
    hsv = np.stack([hue, np.ones_like(hue), value], -1).astype(np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


# --- building blocks -------------------------------------------------------------------------

@pytest.mark.parametrize("patch", [1, 2, 5, 15])
def test_dark_channel_is_min_over_channels_and_window(patch: int) -> None:
    image = random_image(23, 31)
    darkest = image.min(axis=2)
    expected = np.empty_like(darkest)
    before, after = patch // 2, (patch - 1) // 2  # OpenCV's anchor (ksize // 2) for even sizes
    for y, x in np.ndindex(darkest.shape):  # window cut off at the border
        rows = slice(max(0, y - before), y + after + 1)
        cols = slice(max(0, x - before), x + after + 1)
        expected[y, x] = darkest[rows, cols].min()
    np.testing.assert_array_equal(dark_channel(image, patch), expected)


def test_sizes_scale_with_the_longer_side() -> None:
    assert scaled_sizes(400, 600, 15, 60, 600) == (15, 60)  # the papers' setting
    assert scaled_sizes(512, 768, 15, 60, 600) == (19, 77)  # Kodak
    assert scaled_sizes(768, 512, 15, 60, 600) == (19, 77)
    assert scaled_sizes(1080, 1920, 15, 60, 600) == (49, 192)
    assert scaled_sizes(256, 384, 15, 60, 600) == (9, 38)
    assert scaled_sizes(1, 1, 15, 60, 600) == (1, 1)
    assert scaled_sizes(1080, 1920, 15, 60, None) == (15, 60)
    for side in range(1, 2000, 37):
        patch, radius = scaled_sizes(side, side, 15, 60, 600)
        assert patch % 2 == 1 and patch >= 1 and radius >= 1


def test_refinement_is_he_2013_guided_filter() -> None:
    # He 2013 Algorithm 1 with mean = (2r+1)^2 box (reflected border) and eps added to var(I):
    # this pins OpenCV's conventions (eps is not squared, r is a radius).
    image = random_image(40, 50, seed=1)
    raw = np.random.default_rng(2).random((40, 50), dtype=np.float32)
    radius, eps = 3, 1e-2
    guide = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    def mean(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, (2 * radius + 1,) * 2, borderType=cv2.BORDER_REFLECT)

    a = (mean(guide * raw) - mean(guide) * mean(raw)) / (mean(guide * guide) - mean(guide) ** 2 + eps)
    b = mean(raw) - a * mean(guide)
    expected = mean(a) * guide + mean(b)
    assert np.abs(refine_transmission(image, raw, radius, eps) - expected).max() < 1e-5  # measured 6e-6


# --- recovering a known haze-free image -------------------------------------------------------

@pytest.mark.parametrize("name", ["kodim02", "kodim05", "kodim18"])
def test_recovers_kodak_photo(name: str) -> None:
    clear, hazy, t = add_haze(kodak(name))
    out = dehaze(hazy)
    ground = t >= 0.2  # not the sky, where the prior does not hold (He 2009 §6)
    # measured: hazy 11.7-12.3 dB; dehazed 21.5-21.6 dB overall, 27.5-28.0 dB on the ground
    assert psnr(hazy, clear) < 13.0
    assert psnr(out, clear) > 20.0
    assert psnr(out[ground], clear[ground]) > 26.0
    assert psnr(out, clear) > psnr(hazy, clear) + 8.0


def test_recovers_scene_with_zero_dark_channel() -> None:
    scene = saturated_scene(512, 768)
    assert dark_channel(scene, 1).max() == 0.0
    clear, hazy, t = add_haze(scene)
    ground = t >= 0.2
    # measured: hazy 11.8 dB; ω = 0.95: 21.1 dB overall, 25.9 dB on the ground; ω = 1: 28.8 dB there
    out = dehaze(hazy)
    assert psnr(out, clear) > 20.0 and psnr(out[ground], clear[ground]) > 24.5
    exact = dehaze(hazy, omega=1.0)
    assert psnr(exact[ground], clear[ground]) > 27.0
    # ω < 1 deliberately keeps some haze
    assert psnr(exact[ground], clear[ground]) > psnr(out[ground], clear[ground]) + 2.0


def test_transmission_estimate_follows_the_true_one() -> None:
    clear, hazy, t = add_haze(kodak("kodim05"))
    patch, radius = scaled_sizes(*hazy.shape[:2], 15, 60, 600)
    airlight = atmospheric_light(hazy, dark_channel(hazy, patch))
    raw = raw_transmission(hazy, airlight, 1.0, patch)
    estimate = np.clip(refine_transmission(hazy, raw, radius, 1e-4), 0, 1)
    ground = t >= 0.2
    # measured: mean |error| 0.034 on the ground (the photo's dark channel is not quite 0, so t
    # comes out a little low: t̃ = t·(1 − dark(J/A))); correlation with the truth 0.957
    assert np.abs(estimate - t)[ground].mean() < 0.05
    assert np.corrcoef(estimate[ground], t[ground])[0, 1] > 0.93


@pytest.mark.parametrize("name", ["kodim02", "kodim05", "kodim18"])
def test_atmospheric_light_is_close_to_the_true_one(name: str) -> None:
    clear, hazy, t = add_haze(kodak(name))
    # a small white object close to the camera, brighter than A: the brightest pixel overall,
    # but narrower than the patch, so the dark channel (He 2009 §4.4) ignores it
    height, width = hazy.shape[:2]
    cv2.circle(hazy, (int(0.7 * width), int(0.85 * height)), 5, (0.99, 0.99, 0.99), -1)  # 11 px wide
    assert np.abs(hazy.reshape(-1, 3)[hazy.sum(axis=2).argmax()] - 0.99).max() < 1e-6
    patch, _ = scaled_sizes(*hazy.shape[:2], 15, 60, 600)
    estimate = atmospheric_light(hazy, dark_channel(hazy, patch))
    assert estimate.shape == (3,) and estimate.dtype == np.float32
    assert np.abs(estimate - AIRLIGHT).max() < 0.03  # measured 0.015 (the sky is 95% haze)


def test_scaled_sizes_keep_low_resolution_runs_consistent() -> None:
    # The upsampling baselines run the operator at low resolution. With sizes that scale,
    # dehaze(downscaled) stays close to downscaled(dehaze); with fixed 15 px / 60 px, a bright
    # object wider than 15 px at 1536 px survives the dark channel and is taken for A.
    for name in ("kodim02", "kodim18"):
        _, hazy, _ = add_haze(kodak(name, (1024, 1536)))
        small = resize(hazy, (256, 384))
        scaled = psnr(resize(dehaze(hazy), (256, 384)), dehaze(small))
        fixed = psnr(
            resize(dehaze(hazy, reference_side=None), (256, 384)), dehaze(small, reference_side=None)
        )
        # measured: scaled 35.4 / 30.6 dB, fixed 15.9 / 16.1 dB
        assert scaled > 28.0
        assert fixed < scaled - 8.0


# --- contract --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (513, 771), (5, 7), (2, 3), (1, 1)])
def test_output_contract_on_odd_sizes(shape: tuple[int, int]) -> None:
    _, hazy, _ = add_haze(random_image(*shape, seed=3) * 0.3)
    assert_operator_contract(dehaze, hazy)


def test_pixel_sizes_larger_than_the_image() -> None:
    _, hazy, _ = add_haze(random_image(37, 53, seed=4) * 0.3)
    out = dehaze(hazy, patch=45, radius=60, reference_side=None)
    assert out.shape == hazy.shape and 0.0 <= out.min() and out.max() <= 1.0


def test_t0_one_is_identity_and_t0_limits_the_gain() -> None:
    _, hazy, _ = add_haze(kodak("kodim05", (128, 192)))
    np.testing.assert_allclose(dehaze(hazy, t0=1.0), hazy, atol=1e-6)
    # J − A = (I − A) / max(t, t0): no pixel moves away from A by more than 1/t0
    patch, _ = scaled_sizes(128, 192, 15, 60, 600)
    airlight = atmospheric_light(hazy, dark_channel(hazy, patch))
    for t0 in (0.1, 0.3, 0.6):
        out = dehaze(hazy, t0=t0)
        assert (np.abs(out - airlight) <= np.abs(hazy - airlight) / t0 + 1e-5).all()
    stronger = [psnr(dehaze(hazy, t0=t0), hazy) for t0 in (0.6, 0.3, 0.1)]
    assert stronger[0] > stronger[1] > stronger[2]


def test_constant_and_black_images() -> None:
    black = np.zeros((20, 30, 3), np.float32)
    np.testing.assert_array_equal(dehaze(black), black)
    grey = np.full((20, 30, 3), 0.6, np.float32)  # all airlight: stays as it is
    np.testing.assert_allclose(dehaze(grey), grey, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"omega": 0.0}, "omega"),
        ({"omega": 1.5}, "omega"),
        ({"omega": float("nan")}, "omega"),
        ({"omega": True}, "omega"),
        ({"t0": 0.0}, "t0"),
        ({"t0": -0.1}, "t0"),
        ({"t0": 2.0}, "t0"),
        ({"patch": 0}, "patch"),
        ({"patch": 15.0}, "patch"),
        ({"patch": True}, "patch"),
        ({"radius": 0}, "radius"),
        ({"radius": 2.5}, "radius"),
        ({"eps": 0.0}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"reference_side": 0}, "reference_side"),
        ({"reference_side": "600"}, "reference_side"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs: dict, name: str) -> None:
    call = {"image": np.full((8, 8, 3), 0.5, np.float32), **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        dehaze(**call)
