"""Tests for operators.detail: multi-scale domain-transform detail enhancement.

Tolerances are measured values with margin (numbers in each test). References: Farbman et al.
2008 (multi-scale base/detail recombination), Gastal & Oliveira 2011 (domain transform RF filter).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate

from benchmark.imaging.colour import lapfilter_intensity
from operators.detail import DEFAULT_BOOSTS, DEFAULT_SIGMA_S, decompose, detail_enhance
from tests.conftest import (
    assert_operator_contract,
    compose_config,
    high_freq,
    low_freq,
    synthetic_image,
)


def step_image(height: int = 64, width: int = 96, texture: float = 0.0) -> np.ndarray:
    """Grey 0.2 | 0.8 vertical step (0.6 >> sigma_r), optionally with fine noise texture."""
    image = np.full((height, width, 3), 0.2, np.float32)
    image[:, width // 2 :] = 0.8
    if texture:
        noise = np.random.default_rng(0).standard_normal((height, width)).astype(np.float32)
        image += texture * noise[..., None]
    return image


@pytest.mark.parametrize("shape", [(40, 48), (37, 53), (513, 771)])
@pytest.mark.parametrize("sigma_r", [0.03, 0.1, 0.5])
def test_unit_boosts_are_identity(shape: tuple[int, int], sigma_r: float) -> None:
    image = synthetic_image(*shape)
    out = detail_enhance(image, sigma_r=sigma_r, boosts=(1.0, 1.0, 1.0))
    assert np.abs(out - image).max() < 1e-5  # measured ~3e-8 (float32 rounding of the telescoping sum)


def test_decomposition_telescopes_and_coarsens() -> None:
    gray = lapfilter_intensity(synthetic_image(96, 128))
    base, details = decompose(gray, DEFAULT_SIGMA_S, 0.1)
    assert len(details) == len(DEFAULT_SIGMA_S)
    np.testing.assert_allclose(base + sum(details), gray, atol=1e-6)
    # each layer is smoother than the one before: high frequencies fall scale by scale
    layers = [gray]
    for detail in details:
        layers.append(layers[-1] - detail)
    energies = [high_freq(layer) for layer in layers]
    assert all(a > b for a, b in zip(energies, energies[1:]))


def test_boost_increases_high_frequencies_only() -> None:
    image = synthetic_image(96, 128)
    gray = lapfilter_intensity(image)
    fine = lapfilter_intensity(detail_enhance(image, boosts=(2.0, 1.0, 1.0)))
    default = lapfilter_intensity(detail_enhance(image))
    stronger = lapfilter_intensity(detail_enhance(image, boosts=(3.0, 3.0, 3.0)))
    # measured hf ratios: fine-only 1.52, default 1.62, 3x 2.43
    assert 1.35 < high_freq(fine) / high_freq(gray)
    assert high_freq(fine) < high_freq(default) < high_freq(stronger)
    # boosting the finest scale leaves the large-scale structure alone (measured ratio 1.0007)
    assert low_freq(fine) / low_freq(gray) == pytest.approx(1.0, abs=0.02)


def test_zero_boosts_smooth() -> None:
    image = synthetic_image(96, 128)
    out = detail_enhance(image, boosts=(0.0, 0.0, 0.0))
    assert high_freq(lapfilter_intensity(out)) < 0.75 * high_freq(lapfilter_intensity(image))  # measured 0.60


def test_edges_are_not_boosted() -> None:
    """A step much larger than sigma_r is base, not detail: no halo, unlike unsharp masking."""
    step = step_image()
    out = detail_enhance(step, boosts=(3.0, 3.0, 3.0))
    assert np.abs(out - step).max() < 1e-3  # measured 5.8e-5
    unsharp = np.clip(step + 2 * (step - cv2.GaussianBlur(step, (0, 0), 4)), 0, 1)
    assert np.abs(unsharp - step).max() > 0.1  # the test would catch an edge-blind filter (0.2)
    # fine texture on both sides of the step is boosted (measured 3.0x on each side)
    textured = step_image(texture=0.01)
    boosted = detail_enhance(textured, boosts=(3.0, 3.0, 3.0))
    for side in (np.s_[:, :40], np.s_[:, 56:]):  # away from the step itself
        before = lapfilter_intensity(textured)[side]
        after = lapfilter_intensity(boosted)[side]
        assert high_freq(after) > 2.5 * high_freq(before)


def test_luminance_changes_and_chroma_is_kept() -> None:
    image = synthetic_image(64, 80)
    gray = lapfilter_intensity(image)
    base, details = decompose(gray, DEFAULT_SIGMA_S, 0.1)
    expected = base + sum(b * d for b, d in zip(DEFAULT_BOOSTS, details))
    out = detail_enhance(image)
    inside = (out > 1e-3).all(-1) & (out < 1 - 1e-3).all(-1)  # not clipped
    assert inside.mean() > 0.9
    np.testing.assert_allclose(lapfilter_intensity(out)[inside], expected[inside], atol=1e-5)
    chroma_in = image - gray[..., None]
    chroma_out = out - lapfilter_intensity(out)[..., None]
    np.testing.assert_allclose(chroma_out[inside], chroma_in[inside], atol=1e-5)


@pytest.mark.parametrize("shape", [(513, 771), (37, 53), (5, 7), (2, 3), (1, 1)])
def test_output_contract_on_odd_sizes(shape: tuple[int, int]) -> None:
    image = synthetic_image(*shape, seed=3)
    assert_operator_contract(detail_enhance, image)


def test_any_number_of_scales_and_list_arguments() -> None:
    image = synthetic_image(40, 48)
    one = detail_enhance(image, sigma_s=[8.0], boosts=[2.0])
    two = detail_enhance(image, sigma_s=(4, 16), boosts=(2, 1.5))
    assert one.shape == two.shape == image.shape
    assert not np.array_equal(one, two)


def test_task_config_matches_defaults() -> None:
    cfg = compose_config(["task=detail_enhancement"])
    assert cfg.task.name == "detail_enhancement"
    image = synthetic_image(37, 53)
    np.testing.assert_array_equal(instantiate(cfg.task.operator)(image), detail_enhance(image))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sigma_s": []}, "sigma_s"),
        ({"sigma_s": 4.0}, "sigma_s"),
        ({"sigma_s": "4"}, "sigma_s"),
        ({"sigma_s": (4.0, 0.0, 64.0)}, "sigma_s"),
        ({"sigma_s": (4.0, float("nan"), 64.0)}, "sigma_s"),
        ({"boosts": (2.0, -1.0, 1.0)}, "boosts"),
        ({"boosts": (2.0, 1.0)}, "boosts"),
        ({"boosts": (2.0, float("inf"), 1.0)}, "boosts"),
        ({"boosts": (2.0, True, 1.0)}, "boosts"),
        ({"sigma_r": 0.0}, "sigma_r"),
        ({"sigma_r": float("nan")}, "sigma_r"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 3.0}, "iterations"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs: dict, name: str) -> None:
    call = {"image": np.full((8, 8, 3), 0.5, np.float32), **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        detail_enhance(**call)
