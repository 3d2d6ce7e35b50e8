"""Tests for operators.local_laplacian against a direct (slow) Paris et al. 2011 implementation.

Tolerances are measured values with margin (numbers in each test). The direct reference below
is the naive O(N^2) algorithm of Paris, Hasinoff, Kautz 2011 (the commented "naive version" in
the authors' lapfilter_core.m), built on the same pyramid and remapping functions as the fast
operator, so the only difference is Aubry 2014's discretisation of g into K samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.imaging.colour import COLOR_EPS, lapfilter_intensity
from benchmark.imaging.pyramids import (
    collapse,
    default_levels,
    gaussian_pyramid,
    laplacian_pyramid,
)
from operators.local_laplacian import (
    PRESETS,
    local_laplacian,
    local_laplacian_gray,
    remap,
)
from tests.conftest import (
    assert_operator_contract,
    high_freq,
    low_freq,
    psnr,
    synthetic_image,
)


def direct_local_laplacian_gray(
    gray: np.ndarray, alpha: float, sigma_r: float, beta: float, levels: int
) -> np.ndarray:
    """Paris 2011, literally: every coefficient (x, y, l) from its own remapped image's pyramid."""
    gauss = gaussian_pyramid(gray, levels)
    out = [np.zeros_like(g) for g in gauss[:-1]] + [gauss[-1]]
    for level in range(levels - 1):
        for (y, x), g in np.ndenumerate(gauss[level]):
            bands = laplacian_pyramid(remap(gray, float(g), alpha, sigma_r, beta), level + 2)
            out[level][y, x] = bands[level][y, x]
    return collapse(out)


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return synthetic_image(40, 48)


@pytest.fixture(scope="module")
def direct_small(small: np.ndarray) -> dict[str, np.ndarray]:
    gray = lapfilter_intensity(small)
    levels = default_levels(*gray.shape)
    return {
        name: direct_local_laplacian_gray(gray, **params, levels=levels)
        for name, params in PRESETS.items()
    }


# --- building blocks -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 45), (513, 771), (1, 7)])
def test_pyramid_collapse_is_exact_inverse(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    levels = default_levels(*shape) + 2  # also past the 1-pixel level
    assert np.abs(collapse(laplacian_pyramid(image, levels)) - image).max() < 1e-6


def test_remap_follows_paris_2011() -> None:
    sigma_r, g = 0.2, 0.5
    i = np.array([0.1, 0.2, 0.45, 0.5, 0.505, 0.55, 0.7, 0.9], np.float32)
    d = i - g
    for alpha, beta in [(0.25, 1.0), (0.5, 0.3), (2.0, 0.0)]:
        r = remap(i, g, alpha, sigma_r, beta)
        edge = np.abs(d) > sigma_r
        expected_edge = g + np.sign(d) * (beta * (np.abs(d) - sigma_r) + sigma_r)
        np.testing.assert_allclose(r[edge], expected_edge[edge], atol=1e-6)
        detail = ~edge & (np.abs(d) >= 0.02)  # past lapfilter.m's noise smooth step for α<1
        expected_detail = g + np.sign(d) * sigma_r * (np.abs(d) / sigma_r) ** alpha
        np.testing.assert_allclose(r[detail], expected_detail[detail], atol=1e-6)
    # below the 0.01 noise level α<1 leaves differences alone; α=1 and β=1 is the identity
    assert remap(i, g, 0.25, sigma_r, 1.0)[4] == pytest.approx(0.505, abs=1e-7)
    # in between, lapfilter.m blends x^α and x with tau = smooth_step(0.01, 0.02, |i-g|)
    t = 0.5  # |i-g| = 0.015
    tau = t**2 * (t - 2) ** 2
    x = 0.015 / sigma_r
    expected = g + sigma_r * (tau * x**0.25 + (1 - tau) * x)
    assert remap(np.array([g + 0.015], np.float32), g, 0.25, sigma_r, 1.0)[0] == pytest.approx(
        expected, abs=1e-6
    )
    np.testing.assert_allclose(remap(i, g, 1.0, sigma_r, 1.0), i, atol=1e-7)
    # continuous across |i-g| = σ_r
    for alpha, beta in [(0.25, 1.0), (0.5, 0.3)]:
        near = remap(np.array([0.7 - 1e-4, 0.7 + 1e-4], np.float32), g, alpha, sigma_r, beta)
        assert abs(near[1] - near[0]) < 1e-3


# --- the operator ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(40, 48), (37, 45), (513, 771)])
@pytest.mark.parametrize("sigma_r", [0.05, 0.2, 0.6])
def test_alpha_one_beta_one_is_identity(shape: tuple[int, int], sigma_r: float) -> None:
    image = synthetic_image(*shape)
    out = local_laplacian(image, alpha=1.0, sigma_r=sigma_r, beta=1.0)
    assert np.abs(out - image).max() < 1e-5  # measured ~1e-7 (float32 rounding only)


@pytest.mark.parametrize(
    "preset, min_psnr, max_abs",
    # measured on this 40x48 image: strong 27.5 dB / 0.14, normal 33.9 dB / 0.066 (K = 8);
    # same on 48x32 Kodak crops (strong 27-29 dB), so it is the K = 8 discretisation, not the image
    [("strong", 26.0, 0.2), ("normal", 32.0, 0.1)],
)
def test_fast_matches_direct(
    small: np.ndarray, direct_small: dict, preset: str, min_psnr: float, max_abs: float
) -> None:
    gray = lapfilter_intensity(small)
    levels = default_levels(*gray.shape)
    fast = local_laplacian_gray(gray, **PRESETS[preset], levels=levels, n_samples=8)
    direct = direct_small[preset]
    assert psnr(fast, direct) > min_psnr
    assert np.abs(fast - direct).max() < max_abs


@pytest.mark.parametrize("n_samples, min_psnr", [(16, 31.0), (64, 45.0), (256, 62.0)])
def test_fast_converges_to_direct(
    small: np.ndarray, direct_small: dict, n_samples: int, min_psnr: float
) -> None:
    # measured (strong): K=16 33.0 dB, K=64 48.1 dB, K=256 67.7 dB; error ~ 1/K^2 as expected
    # for linear interpolation in g, and no floor from the 16-bit remapping table
    gray = lapfilter_intensity(small)
    levels = default_levels(*gray.shape)
    fast = local_laplacian_gray(gray, **PRESETS["strong"], levels=levels, n_samples=n_samples)
    assert psnr(fast, direct_small["strong"]) > min_psnr


def test_detail_boost_increases_high_frequencies() -> None:
    image = synthetic_image(96, 128)
    hf_in = high_freq(lapfilter_intensity(image))
    hf_normal = high_freq(lapfilter_intensity(local_laplacian(image, **PRESETS["normal"])))
    hf_strong = high_freq(lapfilter_intensity(local_laplacian(image, **PRESETS["strong"])))
    assert hf_in * 1.2 < hf_normal < hf_strong  # measured ratios 1.38 (normal), 1.81 (strong)
    assert hf_strong > 1.5 * hf_in


def test_beta_below_one_compresses_large_scale_range() -> None:
    image = synthetic_image(96, 128)
    out = local_laplacian(image, alpha=1.0, sigma_r=0.1, beta=0.3)
    assert low_freq(lapfilter_intensity(out)) < 0.75 * low_freq(lapfilter_intensity(image))  # measured ratio 0.66


def test_colour_ratios_are_kept() -> None:
    image = synthetic_image(64, 80)
    out = local_laplacian(image, **PRESETS["strong"])
    gray = lapfilter_intensity(image)
    levels = default_levels(64, 80)
    filtered = local_laplacian_gray(gray, **PRESETS["strong"], levels=levels, n_samples=8)
    inside = (out > 1e-3).all(-1) & (out < 1 - 1e-3).all(-1)  # not clipped
    assert inside.mean() > 0.9
    # luminance of the output is the filtered luminance
    np.testing.assert_allclose(lapfilter_intensity(out)[inside], filtered[inside], atol=1e-5)
    # chroma (rgb - lum) scales by one factor per pixel, (out_lum + eps) / (in_lum + eps)
    ratio = (filtered + COLOR_EPS) / (gray + COLOR_EPS)
    expected = (image - gray[..., None]) * ratio[..., None]
    chroma = out - lapfilter_intensity(out)[..., None]
    np.testing.assert_allclose(chroma[inside], expected[inside], atol=1e-5)


@pytest.mark.parametrize("shape", [(513, 771), (33, 17), (5, 7), (2, 3), (1, 1)])
def test_output_contract_on_odd_sizes(shape: tuple[int, int]) -> None:
    image = synthetic_image(*shape, seed=3)
    assert_operator_contract(lambda x: local_laplacian(x, **PRESETS["strong"]), image)


def test_explicit_levels_and_samples() -> None:
    image = synthetic_image(40, 48)
    shallow = local_laplacian(image, levels=2)
    deep = local_laplacian(image, levels=default_levels(40, 48))
    assert not np.array_equal(shallow, deep)
    np.testing.assert_allclose(local_laplacian(image, levels=1), image, atol=1e-6)  # residual only
    assert local_laplacian(image, n_samples=2).shape == image.shape


def test_presets() -> None:
    assert PRESETS["strong"] == {"alpha": 0.25, "sigma_r": 0.2, "beta": 1.0}
    assert PRESETS["normal"]["alpha"] > PRESETS["strong"]["alpha"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"sigma_r": 0.0}, "sigma_r"),
        ({"sigma_r": float("inf")}, "sigma_r"),
        ({"beta": -0.1}, "beta"),
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 8.0}, "n_samples"),
        ({"levels": 0}, "levels"),
        ({"levels": 2.5}, "levels"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs: dict, name: str) -> None:
    call = {"image": np.full((8, 8, 3), 0.5, np.float32), **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        local_laplacian(**call)
