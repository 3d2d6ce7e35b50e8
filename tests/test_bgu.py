"""Bilateral Guided Upsampling (baselines/bgu.py): conventions, exactness, quality, harness run.

Quality floors are measured values minus a margin; the measurements (2-core CPU, seed-free,
deterministic) are in the comments next to each number.
"""

from __future__ import annotations

from functools import cache, partial

import numpy as np
import pytest
import torch

from baselines.bgu import (
    BilateralGuidedUpsample,
    FastBilateralGuidedUpsample,
    data_matrix,
    grid_shape,
    identity_grid,
    slice_and_apply,
)
from baselines.upsample import BicubicUpsample
from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import read_image, resize, to_tensor
from benchmark.data.photos import BUNDLED_PHOTOS, fit_max_side
from benchmark.evaluation.metrics import psnr
from benchmark.hdrnet.bilateral import apply_affine, bilateral_slice
from benchmark.imaging.colour import bgu_luma
from operators.local_laplacian import local_laplacian
from tests.conftest import compose_config

MODELS = {"bgu": BilateralGuidedUpsample, "bgu_fast": FastBilateralGuidedUpsample}
# out = M·rgb + c with rows of M summing to <= 0.92 and c >= 0: stays inside [0, 1] for rgb in [0, 1].
COLOUR_MATRIX = np.array([[0.70, 0.15, 0.05], [0.10, 0.60, 0.20], [0.05, 0.25, 0.55]], np.float32)
COLOUR_OFFSET = np.array([0.05, 0.04, 0.08], np.float32)
LOCAL_LAPLACIAN = partial(local_laplacian, preset="strong", n_samples=16)  # the task's default


@cache
def kodak(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = read_image(BUNDLED_PHOTOS / f"{name}.png")
    return image if size is None else resize(image, size)


@cache
def local_laplacian_full(name: str, preset: str = "strong") -> np.ndarray:
    return local_laplacian(kodak(name), preset=preset, n_samples=16)


def affine_colour(image: np.ndarray) -> np.ndarray:
    return (image @ COLOUR_MATRIX.T + COLOUR_OFFSET).astype(np.float32)


def grid_to_torch(grid: np.ndarray) -> torch.Tensor:
    """(gh, gw, D, 3, 4) → HDRNet's (1, 12, D, gh, gw) layout, coefficient c * 4 + j."""
    gh, gw, depth = grid.shape[:3]
    return torch.from_numpy(grid.reshape(gh, gw, depth, 12).transpose(3, 2, 0, 1).astype(np.float32)).unsqueeze(0)


def random_grid(rng: np.random.Generator, shape: tuple[int, int, int], spread: float = 0.3) -> np.ndarray:
    return identity_grid(shape) + spread * rng.standard_normal((*shape, 3, 4))


# --------------------------------------------------------------------------------------------
# Conventions


def test_grid_size_is_round_of_lowres_over_16_with_matlab_rounding():
    assert grid_shape(171, 256, 16, 8) == (11, 16, 8)  # 768x512 photo at lowres_size 256
    assert grid_shape(128, 192, 16, 8) == (8, 12, 8)  # lowres_size 192
    assert grid_shape(168, 24, 16, 8) == (11, 2, 8)  # 10.5 and 1.5 round up, as MATLAB's round
    assert grid_shape(5, 7, 16, 4) == (1, 1, 4)  # never fewer than one cell


def test_slice_matches_hdrnet_bilateral_slice(rng):
    """The fast row-batched slice is the cell-centred trilinear slice of benchmark.hdrnet.bilateral."""
    grid = random_grid(rng, (5, 7, 8))
    image = rng.random((37, 53, 3), dtype=np.float32)
    ours = slice_and_apply(grid, image)
    pixels = to_tensor(image)
    guide = torch.from_numpy(bgu_luma(image)).unsqueeze(0)
    reference = apply_affine(bilateral_slice(grid_to_torch(grid), guide), pixels)
    reference = reference[0].permute(1, 2, 0).clamp(0, 1).numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_fit_data_term_uses_the_same_slice(rng):
    """Row p of the least-squares matrix J applied to a grid = the sliced, applied grid at pixel p."""
    grid = random_grid(rng, (3, 4, 8))
    image = rng.random((41, 59, 3), dtype=np.float32)
    jacobian = data_matrix(image, grid.shape[:3])
    ours = np.stack([jacobian @ grid[..., c, :].reshape(-1) for c in range(3)], axis=-1).reshape(image.shape)
    guide = torch.from_numpy(bgu_luma(image)).unsqueeze(0)
    reference = apply_affine(bilateral_slice(grid_to_torch(grid), guide), to_tensor(image))
    np.testing.assert_allclose(ours, reference[0].permute(1, 2, 0).numpy(), atol=2e-5)


# --------------------------------------------------------------------------------------------
# Exactness: operators an affine grid represents exactly


@pytest.mark.parametrize("model_name", MODELS)
def test_reproduces_a_global_affine_colour_change(model_name):
    image = kodak("kodim23", (256, 384))
    model = MODELS[model_name](model_name, lowres_size=128)  # 3x downsampling
    out = model.predict(image, affine_colour)
    # measured (dB): bgu 100 (exact, the PSNR cap), bgu_fast 51.6 (its ridge pulls towards identity)
    assert psnr(out, affine_colour(image)) > 45


@pytest.mark.parametrize("model_name", MODELS)
def test_identity_operator_gives_back_the_input(model_name):
    image = kodak("kodim05", (256, 384))
    out = MODELS[model_name](model_name, lowres_size=128).predict(image, lambda x: x)
    assert psnr(out, image) > 45  # measured: 100 dB (cap) for both; bgu starts CG at the identity grid



def _dense_bgu(lowres: np.ndarray, target: np.ndarray, shape: tuple[int, int, int], lambda_spatial: float,
               lambda_intensity: float) -> np.ndarray:
    """bguFit.m's energy written out from the module docstring with loops and dense matrices (no
    code shared with baselines.bgu but the luma definition), solved by np.linalg.lstsq.

    Unknown k = ((iy * gw + ix) * D + iz) * 4 + j, the same for each output channel.
    """
    gh, gw, depth = shape
    height, width = lowres.shape[:2]
    guide = bgu_luma(lowres.astype(np.float64))
    tent = lambda t: max(0.0, 1.0 - abs(t))  # noqa: E731
    clamp = lambda value, top: min(max(value, 0.0), top)  # noqa: E731
    unknowns = gh * gw * depth * 4
    rows = []
    for y in range(height):
        for x in range(width):
            gy = clamp((y + 0.5) * gh / height - 0.5, gh - 1)
            gx = clamp((x + 0.5) * gw / width - 0.5, gw - 1)
            gz = clamp(guide[y, x] * depth - 0.5, depth - 1)
            row = np.zeros(unknowns)
            for iy in range(gh):
                for ix in range(gw):
                    for iz in range(depth):
                        weight = tent(gy - iy) * tent(gx - ix) * tent(gz - iz)
                        base = ((iy * gw + ix) * depth + iz) * 4
                        row[base : base + 4] += weight * np.append(lowres[y, x], 1.0)
            rows.append(row)
    data = np.array(rows)
    bin_x, bin_y, bin_z = width / gw, height / gh, 1.0 / depth

    def index(iy: int, ix: int, iz: int, j: int) -> int:
        return ((iy * gw + ix) * depth + iz) * 4 + j

    smooth = []
    for j in range(4):
        for iy in range(gh):
            for ix in range(gw):
                for iz in range(depth):
                    for (dy, dx, scale) in ((1, 0, bin_x * bin_z / bin_y), (0, 1, bin_y * bin_z / bin_x)):
                        if iy + dy < gh and ix + dx < gw:
                            row = np.zeros(unknowns)
                            row[index(iy + dy, ix + dx, iz, j)], row[index(iy, ix, iz, j)] = 1.0, -1.0
                            smooth.append(lambda_spatial * scale * row)
                z_rows = [{0: -1.0, 1: 1.0}] + [{z: 1.0, z + 1: -2.0, z + 2: 1.0} for z in range(depth - 2)] + \
                    [{depth - 2: 1.0, depth - 1: -1.0}]
                for taps in z_rows:
                    row = np.zeros(unknowns)
                    for iz, value in taps.items():
                        row[index(iy, ix, iz, j)] = value
                    smooth.append(lambda_intensity * bin_x * bin_y / bin_z**2 * row)
    system = np.vstack([data, np.array(smooth)])
    grid = np.empty((gh, gw, depth, 3, 4))
    for c in range(3):
        rhs = np.concatenate([target[..., c].reshape(-1), np.zeros(len(smooth))])
        grid[..., c, :] = np.linalg.lstsq(system, rhs, rcond=None)[0].reshape(gh, gw, depth, 4)
    return grid


def test_global_fit_equals_a_dense_least_squares_solve_of_the_papers_energy(rng):
    """A 24x16 photo crop, a 3x2x4 grid, every term switched on: the sparse PCG fit and the dense
    solve of the energy written out independently agree to 1e-6 (measured: 5.4e-12)."""
    lowres = resize(read_image(BUNDLED_PHOTOS / "kodim03.png"), (16, 24)).astype(np.float64)
    target = np.clip(lowres**0.7 * np.array([1.1, 1.0, 0.9]) + 0.02 * rng.standard_normal(lowres.shape), 0, 1)
    model = BilateralGuidedUpsample("bgu", cell_size=8, luma_bins=4, lambda_spatial=0.3, lambda_intensity=1e-3,
                                    cg_tol=1e-13, cg_max_iter=20000)
    shape = model.grid_shape(lowres)
    assert shape == (2, 3, 4)
    fitted = model.fit_grid(lowres, target)
    reference = _dense_bgu(lowres, target, shape, 0.3, 1e-3)
    assert np.abs(fitted - reference).max() < 1e-6, np.abs(fitted - reference).max()


def test_normal_equations_residual_is_below_the_solver_tolerance():
    image = kodak("kodim03")
    lowres = fit_max_side(image, 256)
    target = LOCAL_LAPLACIAN(lowres)
    model = BilateralGuidedUpsample("bgu", cg_tol=1e-8)
    grid = model.fit_grid(lowres, target)
    assert model.last_converged and max(model.last_iterations) < model.cg_max_iter  # measured ~500 per channel
    matrix, rhs = model.normal_equations(lowres, target)
    solution = grid.transpose(0, 1, 2, 4, 3).reshape(-1, 3)
    residual = np.linalg.norm(matrix @ solution - rhs) / np.linalg.norm(rhs)
    assert residual < 1e-7  # 10x the tolerance; measured 9e-9
    assert model.last_residual == pytest.approx(residual, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Quality on the strong local Laplacian at the photos' full 768x512

# Measured PSNR (dB) against the operator at full resolution (bicubic = baselines.upsample):
#                 lowres 256 (3x down)          lowres 192 (4x down)
#   photo      bgu    bgu_fast  bicubic      bgu    bgu_fast  bicubic
#   kodim03   32.65    31.03    26.57       32.88    30.98    25.77
#   kodim05   30.99    30.28    21.33       30.55    30.07    20.09
# Below the paper's mid-30s: with the grid fitted on the FULL-resolution pair itself (the best a
# 16x11x8 affine grid can do) kodim03 reaches only 35.05 dB and kodim05 32.01 dB, and the
# operator at 256 px differs from the downsampled full-res output by 34.4 / 32.5 dB (the local
# Laplacian is not scale-invariant: α = 0.25 boosts detail that only exists at full res). With
# the milder "normal" preset (α = 0.5) bgu reaches 38.76 / 36.77 dB (test below).
MEASURED = {
    ("kodim03", 256): (32.65, 31.03),
    ("kodim03", 192): (32.88, 30.98),
    ("kodim05", 256): (30.99, 30.28),
    ("kodim05", 192): (30.55, 30.07),
}
MARGIN_DB = 0.5


@pytest.mark.parametrize(("photo", "lowres_size"), list(MEASURED))
def test_local_laplacian_quality(photo, lowres_size):
    image, reference = kodak(photo), local_laplacian_full(photo)
    scores = {
        name: psnr(model.predict(image, LOCAL_LAPLACIAN), reference)
        for name, model in {
            "bgu": BilateralGuidedUpsample("bgu", lowres_size=lowres_size),
            "bgu_fast": FastBilateralGuidedUpsample("bgu_fast", lowres_size=lowres_size),
            "bicubic": BicubicUpsample("bicubic", lowres_size),
        }.items()
    }
    bgu, fast = MEASURED[photo, lowres_size]
    assert scores["bgu"] > bgu - MARGIN_DB, scores
    assert scores["bgu_fast"] > fast - MARGIN_DB, scores
    assert scores["bgu"] > scores["bicubic"] + 3 and scores["bgu_fast"] > scores["bicubic"] + 3, scores
    assert scores["bgu"] > scores["bgu_fast"], scores  # the global fit beats the local one (>= 0.48 dB)


def test_milder_local_laplacian_reaches_the_papers_range():
    image, reference = kodak("kodim03"), local_laplacian_full("kodim03", "normal")
    out = BilateralGuidedUpsample("bgu").predict(image, partial(local_laplacian, preset="normal", n_samples=16))
    assert psnr(out, reference) > 38.2  # measured 38.76


# --------------------------------------------------------------------------------------------
# Output contract and settings


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("size", [(37, 53), (5, 7), (1, 1), (300, 17)])
def test_output_contract_odd_sizes(model_name, size, rng):
    image = rng.random((*size, 3), dtype=np.float32)
    before = image.copy()
    out = MODELS[model_name](model_name, lowres_size=16).predict(image, lambda x: np.clip(x * 1.8 - 0.2, 0, 1))
    assert out.shape == image.shape and out.dtype == np.float32 and out.flags.c_contiguous
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("model_name", MODELS)
def test_flat_and_black_images(model_name):
    model = MODELS[model_name](model_name)
    flat = np.full((40, 60, 3), 0.3, np.float32)
    np.testing.assert_allclose(model.predict(flat, lambda x: x * 0.5), 0.15, atol=1e-3)
    np.testing.assert_allclose(model.predict(flat, np.zeros_like), 0, atol=1e-3)


@pytest.mark.parametrize("model_name", MODELS)
def test_needs_the_operator(model_name):
    with pytest.raises(BenchmarkError, match="needs the task's reference operator"):
        MODELS[model_name](model_name).predict(np.zeros((8, 8, 3), np.float32), None)


@pytest.mark.parametrize(
    ("model_name", "key", "value"),
    [
        ("bgu", "lowres_size", 4),
        ("bgu", "lowres_size", 256.5),
        ("bgu", "cell_size", 0),
        ("bgu", "luma_bins", 1),
        ("bgu", "lambda_spatial", 0),
        ("bgu", "lambda_intensity", -1e-7),
        ("bgu", "lambda_identity", float("nan")),
        ("bgu", "cg_tol", 1.5),
        ("bgu", "cg_tol", "1e-8"),
        ("bgu", "cg_max_iter", 0),
        ("bgu", "preconditioner", "ilu"),
        ("bgu_fast", "lowres_size", True),
        ("bgu_fast", "blur_radius", 4),
        ("bgu_fast", "lambda_ridge", 0),
    ],
)
def test_bad_settings_raise_a_benchmark_error(model_name, key, value):
    with pytest.raises(BenchmarkError, match=rf"^model\.{key}=.* (must|is not one of) "):
        MODELS[model_name](model_name, **{key: value})


# --------------------------------------------------------------------------------------------
# Through the harness


@pytest.mark.parametrize("model_name", MODELS)
def test_smoke_run_through_the_harness(model_name, tmp_path, photo_dir):
    cfg = compose_config(["profile=smoke", f"model={model_name}", f"data.root={photo_dir}", f"data.cache_dir={tmp_path}"])
    results = run(cfg, tmp_path / "run")
    assert results["model"] == model_name and results["needs_operator"] is True and results["parameters"] == 0
    summary = results["summary"]
    # One 96x64 test photo (kodim04, already below lowres_size, so fitted at full resolution; a
    # 6x4x8 grid is coarse there). Measured: bgu 32.89 dB, bgu_fast 30.80 dB, input 25.92 dB.
    assert summary["psnr"] > summary["identity_psnr"] + 3 and summary["psnr"] > 30, summary
    assert summary["time_ms"] > 0
    assert (tmp_path / "run" / "results.json").exists()
