"""Tests for operators.looks: the synthetic Photoshop-like looks and their building blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from benchmark.core.images import read_image, resize
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.imaging.colour import rec601_luma
from operators.looks import (
    LOOKS,
    LUT_SIZE,
    apply_curve,
    apply_look,
    channel_mix,
    saturation,
    split_tone,
    tone_curve,
    vibrance,
    vignette,
    vignette_gain,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A colourful real photo (bundled Kodak parrots), shrunk for speed."""
    return resize(read_image(BUNDLED_PHOTOS / "kodim23.png"), (128, 192))


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def colour_distance(image: np.ndarray) -> np.ndarray:
    """max − min of each pixel: 0 for grey."""
    return image.max(axis=2) - image.min(axis=2)


# --- building blocks -------------------------------------------------------------------------

def test_tone_curve_is_monotone_and_passes_through_its_points() -> None:
    points = [(0.0, 0.07), (0.25, 0.24), (0.5, 0.5), (0.75, 0.77), (1.0, 0.95)]
    lut = tone_curve(points)
    assert lut.shape == (LUT_SIZE,) and lut.dtype == np.float32
    assert (np.diff(lut) >= 0).all()
    for x, y in points:
        assert lut[round(x * (LUT_SIZE - 1))] == pytest.approx(y, abs=2e-5)  # nearest 16-bit level
    # a steep S-curve: PCHIP does not overshoot [0, 1] or turn back between points
    steep = tone_curve([(0.0, 0.0), (0.1, 0.01), (0.2, 0.9), (1.0, 1.0)])
    assert (np.diff(steep) >= 0).all() and steep.min() >= 0.0 and steep.max() <= 1.0
    identity = tone_curve([(0.0, 0.0), (1.0, 1.0)])
    np.testing.assert_allclose(identity, np.linspace(0, 1, LUT_SIZE), atol=1e-6)
    with pytest.raises(ValueError, match="^points:"):
        tone_curve([(0.1, 0.0), (1.0, 1.0)])


def test_apply_curve_matches_the_spline() -> None:
    image = random_image(31, 17, seed=1)
    points = [(0.0, 0.0), (0.18, 0.10), (0.5, 0.5), (0.82, 0.92), (1.0, 1.0)]
    expected = PchipInterpolator(*np.array(points).T)(image.astype(np.float64))
    out = apply_curve(image, tone_curve(points))
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.abs(out - expected).max() < 2e-5  # 16-bit level rounding; measured 1.1e-5
    per_channel = np.stack(
        [tone_curve(points), tone_curve([(0.0, 1.0), (1.0, 0.0)]), tone_curve([(0.0, 0.0), (1.0, 1.0)])]
    )
    out = apply_curve(image, per_channel)
    np.testing.assert_allclose(out[..., 1], 1 - image[..., 1], atol=2e-5)
    np.testing.assert_allclose(out[..., 2], image[..., 2], atol=1e-5)


def test_channel_mix_saturation_vibrance() -> None:
    image = random_image(20, 30, seed=2)
    np.testing.assert_allclose(channel_mix(image, np.eye(3)), image, atol=1e-7)
    mono = channel_mix(image, [[0.5, 0.4, 0.1]])
    np.testing.assert_allclose(mono[..., 0], image @ np.float32([0.5, 0.4, 0.1]), atol=1e-6)
    np.testing.assert_allclose(saturation(image, 1.0), image, atol=1e-6)
    grey = np.repeat(rec601_luma(image)[..., None], 3, -1)
    np.testing.assert_allclose(saturation(image, 0.0), grey, atol=1e-6)
    np.testing.assert_allclose(vibrance(image, 0.0), image, atol=1e-6)
    # vibrance boosts muted colours more than vivid ones
    muted = np.array([[[0.5, 0.45, 0.4]]], np.float32)
    vivid = np.array([[[0.9, 0.3, 0.1]]], np.float32)
    gain = [colour_distance(vibrance(x, 0.5))[0, 0] / colour_distance(x)[0, 0] for x in (muted, vivid)]
    assert gain[0] > gain[1] >= 1.0


def test_split_tone_keeps_luma_and_tints_by_brightness() -> None:
    ramp = np.repeat(np.linspace(0.2, 0.8, 64, dtype=np.float32)[None, :, None], 3, axis=2)  # grey ramp
    out = split_tone(ramp, shadow_hue=185.0, shadow_amount=0.1, highlight_hue=35.0, highlight_amount=0.15)
    np.testing.assert_allclose(rec601_luma(out), rec601_luma(ramp), atol=1e-6)  # nothing clipped on this ramp
    shadows, highlights = out[0, 0], out[0, -1]
    assert shadows[2] > shadows[0] and shadows[1] > shadows[0]  # teal: blue and green over red
    assert highlights[0] > highlights[1] > highlights[2]  # orange: red over green over blue


def test_vignette_darkens_corners_and_is_resolution_independent() -> None:
    flat = np.full((101, 151, 3), 0.6, np.float32)
    out = vignette(flat, amount=0.4, start=0.4)
    centre, corners = out[50, 75, 0], [out[0, 0, 0], out[0, -1, 0], out[-1, 0, 0], out[-1, -1, 0]]
    assert centre == pytest.approx(0.6, abs=1e-7)
    assert all(c < 0.6 * 0.65 for c in corners)  # corner gain just above 1 − 0.4
    np.testing.assert_allclose(corners, corners[0], atol=1e-6)  # symmetric
    # the gain depends on the relative position only: the 4x image, sampled at the same pixel
    # centres, has the same gain
    small, large = vignette_gain(20, 30, 0.4), vignette_gain(80, 120, 0.4)
    y, x = np.mgrid[0:20, 0:30]
    # pixel centre (x + 0.5) / 30 of the small image is (4x + 2) / 120 of the large one: between
    # large pixels 4x + 1 and 4x + 2, so compare with their mean
    between = (large[4 * y + 1, 4 * x + 1] + large[4 * y + 2, 4 * x + 2]) / 2
    assert np.abs(small - between).max() < 2e-3  # measured 3.6e-4 (the average of a curved falloff)
    # monotone along the diagonal from the centre out
    diagonal = large[np.arange(40, 80), np.arange(60, 100)]
    assert (np.diff(diagonal) <= 1e-7).all()


# --- the looks -------------------------------------------------------------------------------

def test_there_are_at_least_three_looks() -> None:
    assert len(LOOKS) >= 3
    assert {"warm_film", "crisp_bw", "vivid_vignette"} <= set(LOOKS)
    for name, look in LOOKS.items():
        assert look.__doc__ and len(look.__doc__) > 40, f"{name} is not documented"


@pytest.mark.parametrize("name", sorted(LOOKS))
@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (1, 1), (2, 3), (513, 771)])
def test_look_contract(name: str, shape: tuple[int, int]) -> None:
    image = random_image(*shape, seed=3)
    before = image.copy()
    out = apply_look(image, name)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(image, before)  # pure
    np.testing.assert_array_equal(out, apply_look(image, name))  # deterministic
    np.testing.assert_array_equal(out, LOOKS[name](image))


@pytest.mark.parametrize("name", sorted(LOOKS))
def test_look_extremes_stay_in_range(name: str) -> None:
    for value in (0.0, 1.0):
        out = apply_look(np.full((9, 11, 3), value, np.float32), name)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_looks_differ_from_identity_and_each_other(photo: np.ndarray) -> None:
    outputs = {name: apply_look(photo, name) for name in LOOKS}
    for name, out in outputs.items():
        assert np.abs(out - photo).mean() > 0.015, name  # measured 0.024 (warm_film) - 0.11
    for (a, out_a), (b, out_b) in itertools.combinations(outputs.items(), 2):
        assert np.abs(out_a - out_b).mean() > 0.03, (a, b)  # measured 0.052 - 0.15


def test_crisp_bw_is_monochrome_with_more_contrast(photo: np.ndarray) -> None:
    out = apply_look(photo, "crisp_bw")
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    mono = channel_mix(photo, [[0.5, 0.4, 0.1]])[..., 0]
    assert out[..., 0].std() > 1.15 * mono.std()  # S-curve; measured 1.31


def test_warm_film_lifts_blacks_warms_highlights_and_mutes(photo: np.ndarray) -> None:
    black = apply_look(np.zeros((4, 4, 3), np.float32), "warm_film")[0, 0]
    assert rec601_luma(black[None, None])[0, 0] > 0.05  # lifted blacks
    assert black[2] > black[0] and black[1] > black[0]  # teal shadows
    white = apply_look(np.ones((4, 4, 3), np.float32), "warm_film")[0, 0]
    assert white.max() < 1.0 and white[0] > white[2]  # rolled-off, warm highlights
    out = apply_look(photo, "warm_film")
    assert colour_distance(out).mean() < 0.95 * colour_distance(photo).mean()  # muted; measured 0.87


def test_vivid_vignette_is_more_colourful_with_dark_corners(photo: np.ndarray) -> None:
    out = apply_look(photo, "vivid_vignette")
    height, width = photo.shape[:2]
    centre = (slice(height // 3, 2 * height // 3), slice(width // 3, 2 * width // 3))
    # measured 1.56
    assert colour_distance(out[centre]).mean() > 1.3 * colour_distance(photo[centre]).mean()
    flat = np.full((64, 96, 3), 0.5, np.float32)
    grey = apply_look(flat, "vivid_vignette")
    assert grey[0, 0, 0] < 0.7 * grey[32, 48, 0]  # measured 0.60


def test_cross_process_tints_shadows_blue_and_highlights_yellow() -> None:
    ramp = np.repeat(np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :, None], 3, axis=2)
    out = apply_look(ramp, "cross_process")[0]
    assert out[2, 2] > out[2, 0] and out[2, 2] > out[2, 1]  # dark: blue
    assert out[-3, 2] < out[-3, 0] and out[-3, 2] < out[-3, 1]  # bright: yellow


def test_unknown_look_lists_the_valid_ones() -> None:
    image = np.full((4, 4, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match="^look:") as error:
        apply_look(image, "sepia")
    for name in LOOKS:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="^look:"):
        apply_look(image, None)  # type: ignore[arg-type]


