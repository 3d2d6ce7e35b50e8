"""Tests for operators.style_transfer (tone + textureness transfer to an exemplar photo).

Inputs are bundled Kodak photos shrunk to 256 px (their longer side) unless a test says
otherwise; the exemplar statistics are then taken at 256 px too. Thresholds are measured values
with margin (numbers in each test). Measures, all on luminance (20R+40G+B)/61:
- tone: 1-D Wasserstein distance between the luminance distributions of two images;
- detail energy: mean square of the high-pass L - G_2(L) (Gaussian σ = 2 px), compared with the
  exemplar's as a log-ratio |log(E / E_exemplar)|.
"""

from __future__ import annotations

import cv2
import hydra
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from benchmark.core.images import read_image, resize, write_image
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.imaging.colour import lapfilter_intensity
from operators import style_transfer as st
from operators.style_transfer import (
    EXEMPLAR_DIR,
    WORK_SIDE,
    available_exemplars,
    style_transfer,
)
from tests.conftest import assert_operator_contract, compose_config, psnr

EXEMPLARS = ["bright", "dramatic", "soft"]
# (Kodak photo, exemplar) pairs that move tone and detail in both directions: soft inputs to the
# dramatic look (more detail), textured ones to the soft and bright looks (less).
PAIRS = [("kodim03", "dramatic"), ("kodim23", "dramatic"), ("kodim05", "soft"),
         ("kodim13", "soft"), ("kodim14", "bright")]


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    return resize(image, (round(height * scale), round(width * scale)), "area")


def photo(name: str, side: int = 256) -> np.ndarray:
    return shrink(read_image(BUNDLED_PHOTOS / f"{name}.png"), side)


def exemplar_photo(name: str, side: int = 256) -> np.ndarray:
    return shrink(read_image(EXEMPLAR_DIR / f"{name}.png"), side)


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Ramps, a bright disc, texture and noise with a colour tint; any size."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = (x - 0.6 * width) ** 2 + (y - 0.4 * height) ** 2 < (0.25 * min(height, width)) ** 2
    texture = 0.05 * np.sin(1.3 * x) * np.cos(0.9 * y) + 0.02 * rng.standard_normal(x.shape)
    lum = np.clip(0.2 + 0.5 * x / width + 0.2 * disc + texture, 0.02, 0.98)
    tint = np.stack([1.0 + 0.15 * np.sin(x / 9), np.ones_like(x), 1.0 - 0.15 * np.cos(y / 7)], -1)
    return np.clip(lum[..., None] * tint, 0.0, 1.0).astype(np.float32)


def detail_energy(gray: np.ndarray) -> float:
    return float(np.mean((gray - cv2.GaussianBlur(gray, (0, 0), 2.0)) ** 2))


# --- identity, blending, contract ----------------------------------------------------------

@pytest.mark.parametrize("exemplar", EXEMPLARS)
@pytest.mark.parametrize("image", [photo("kodim05"), synthetic_image(37, 53), synthetic_image(1, 1)],
                         ids=["kodim05", "37x53", "1x1"])
def test_strength_zero_is_exactly_the_input(image: np.ndarray, exemplar: str) -> None:
    out = style_transfer(image, exemplar, strength=0.0)
    np.testing.assert_array_equal(out, image)
    assert out.dtype == np.float32 and out is not image


def test_strength_blends_linearly_towards_the_input() -> None:
    image = photo("kodim05")
    full = style_transfer(image, "soft", strength=1.0)
    half = style_transfer(image, "soft", strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (image + full), atol=1e-6)
    assert np.abs(full - image).mean() > 0.05  # measured 0.082: full strength does change it


@pytest.mark.parametrize(
    "shape", [(37, 53), (53, 37), (513, 771), (33, 17), (5, 7), (2, 3), (1, 1), (700, 3)]
)
@pytest.mark.parametrize("exemplar", ["dramatic", "soft"])
def test_output_contract_on_odd_sizes(shape: tuple[int, int], exemplar: str) -> None:
    image = synthetic_image(*shape, seed=3)
    assert_operator_contract(lambda x: style_transfer(x, exemplar), image)


def test_cache_does_not_change_results() -> None:
    image = photo("kodim23")
    cached = style_transfer(image, "bright")
    st._exemplar_image.cache_clear()
    st._exemplar_stats.cache_clear()
    np.testing.assert_array_equal(style_transfer(image, "bright"), cached)


def test_exemplar_statistics_are_read_only() -> None:
    stats = st._exemplar_stats(str(st.resolve_exemplar("soft")), WORK_SIDE, 0.2)
    with pytest.raises(ValueError):
        stats.base[0] = 1.0
    with pytest.raises(ValueError):
        st._exemplar_image(str(st.resolve_exemplar("soft")))[0, 0, 0] = 1.0


# --- it transfers the look ------------------------------------------------------------------

@pytest.mark.parametrize("name, exemplar", PAIRS)
def test_tone_distribution_moves_to_the_exemplar(name: str, exemplar: str) -> None:
    image = photo(name)
    target = lapfilter_intensity(exemplar_photo(exemplar)).ravel()
    before = wasserstein_distance(lapfilter_intensity(image).ravel(), target)
    after = wasserstein_distance(lapfilter_intensity(style_transfer(image, exemplar)).ravel(), target)
    # measured after/before: 0.28, 0.34, 0.20, 0.19, 0.16 (over all 69 Kodak x exemplar pairs
    # at 768x512: median 0.18-0.45 by exemplar, worst 0.79 for dramatic)
    assert after < 0.5 * before


@pytest.mark.parametrize("name, exemplar", PAIRS)
def test_detail_energy_moves_to_the_exemplar(name: str, exemplar: str) -> None:
    image = photo(name)
    e_in = detail_energy(lapfilter_intensity(image))
    e_out = detail_energy(lapfilter_intensity(style_transfer(image, exemplar)))
    e_ex = detail_energy(lapfilter_intensity(exemplar_photo(exemplar)))
    assert np.sign(e_out - e_in) == np.sign(e_ex - e_in)  # the right direction
    # log-gap to the exemplar, after / before: measured 0.27, 0.39, 0.18, 0.09, 0.21
    assert abs(np.log(e_out / e_ex)) < 0.5 * abs(np.log(e_in / e_ex))


def test_max_gain_bounds_the_detail_transfer() -> None:
    """A larger max_gain lets the detail move further (max_gain = 1: tone curve only)."""
    image = photo("kodim03")
    e_ex = detail_energy(lapfilter_intensity(exemplar_photo("dramatic")))
    gaps = [abs(np.log(detail_energy(lapfilter_intensity(style_transfer(image, "dramatic", max_gain=g))) / e_ex))
            for g in (1.0, 2.0, 3.0)]
    assert gaps[0] > gaps[1] > gaps[2]  # measured 1.87, 0.94, 0.52


def test_different_exemplars_give_different_looks() -> None:
    image = photo("kodim23")
    outs = {name: style_transfer(image, name) for name in EXEMPLARS}
    for a in EXEMPLARS:
        for b in EXEMPLARS:
            if a < b:
                assert np.abs(outs[a] - outs[b]).mean() > 0.05  # measured 0.15-0.29
    lum = {name: lapfilter_intensity(out) for name, out in outs.items()}
    assert lum["bright"].mean() > lum["soft"].mean() + 0.1  # measured 0.65 vs 0.33
    assert detail_energy(lum["dramatic"]) > 2 * detail_energy(lum["soft"])  # measured 6.7x


@pytest.mark.parametrize("exemplar", EXEMPLARS)
def test_an_exemplar_applied_to_itself_is_nearly_the_identity(exemplar: str) -> None:
    image = read_image(EXEMPLAR_DIR / f"{exemplar}.png")
    assert psnr(style_transfer(image, exemplar), image) > 40.0  # measured 51-54 dB


def test_result_depends_little_on_resolution() -> None:
    """Exemplar statistics at a fixed working size: 512 px and its 2x upscale agree."""
    image = photo("kodim05", side=WORK_SIDE)
    small = style_transfer(image, "dramatic")
    height, width = image.shape[:2]
    large = style_transfer(resize(image, (2 * height, 2 * width), "bicubic"), "dramatic")
    assert psnr(resize(large, (height, width), "area"), small) > 32.0  # measured 38.9 dB
    assert psnr(small, image) < 20.0  # while the transfer itself changes a lot (16.0 dB)


# --- exemplars: names, paths, errors --------------------------------------------------------

def test_bundled_exemplars() -> None:
    assert available_exemplars() == EXEMPLARS
    sources = (EXEMPLAR_DIR / "SOURCES.md").read_text()
    for name in EXEMPLARS:
        pixels = cv2.imread(str(EXEMPLAR_DIR / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert pixels.dtype == np.uint8 and pixels.shape[2] == 3 and max(pixels.shape[:2]) == WORK_SIDE
        assert f"`{name}.png`" in sources


def test_exemplar_by_path(tmp_path) -> None:
    image = photo("kodim23", side=128)
    by_name = style_transfer(image, "soft")
    np.testing.assert_array_equal(style_transfer(image, str(EXEMPLAR_DIR / "soft.png")), by_name)
    # any image file, any size and orientation (a 512x768 portrait JPEG here)
    path = tmp_path / "portrait.jpg"
    write_image(path, read_image(BUNDLED_PHOTOS / "kodim04.png"))
    out = style_transfer(image, path)
    assert out.shape == image.shape and not np.array_equal(out, by_name)


@pytest.mark.parametrize("exemplar", ["nope", "", 3, None, "data/exemplars/missing.png"])
def test_unknown_exemplar_names_the_parameter_and_the_choices(exemplar: object) -> None:
    with pytest.raises(ValueError, match=r"^exemplar:.*bright, dramatic, soft|^exemplar:.*\['bright'"):
        style_transfer(synthetic_image(8, 8), exemplar)


def test_unreadable_exemplar_file_names_the_parameter(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(ValueError, match=r"^exemplar: .*notes\.png"):
        style_transfer(synthetic_image(8, 8), str(path))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"strength": -0.1}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"strength": True}, "strength"),
        ({"strength": "1"}, "strength"),
        ({"max_gain": 0.5}, "max_gain"),
        ({"max_gain": float("inf")}, "max_gain"),
        ({"sigma_r": 0.0}, "sigma_r"),
        ({"sigma_r": -0.2}, "sigma_r"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs: dict, name: str) -> None:
    call = {"image": np.full((8, 8, 3), 0.5, np.float32), **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        style_transfer(**call)


# --- the task config ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "overrides, exemplar",
    [([], "dramatic"), (["task.exemplar=soft"], "soft"), (["task.operator.exemplar=bright"], "bright")],
)
def test_task_config(overrides: list[str], exemplar: str) -> None:
    cfg = compose_config(["task=style_transfer", *overrides])
    assert cfg.task.name == "style_transfer"
    operator = hydra.utils.instantiate(cfg.task.operator, _convert_="all")
    image = photo("kodim23", side=96)
    np.testing.assert_array_equal(
        operator(image), style_transfer(image, exemplar, strength=1.0, max_gain=3.0, sigma_r=0.2)
    )
