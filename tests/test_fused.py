"""The fused CPU kernels equal the PyTorch reference path (bilateral_slice + apply_affine), forward
and backward, and the model's fused inference equals its grid_sample inference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import PROJECT_ROOT
from benchmark.core.errors import BenchmarkError
from benchmark.hdrnet import fused, simd_lookup
from benchmark.hdrnet.bilateral import apply_affine, bilateral_slice
from benchmark.hdrnet.fused import (
    fused_guided_slice_apply,
    fused_slice_apply,
    guided_slice_apply,
)
from benchmark.hdrnet.model import HDRNet
from tests.conftest import move_off_init


def _perturbed_model(fullres: str, guide: str = "pointwise") -> HDRNet:
    """A model away from its identity init, so every coefficient and guide weight matters."""
    torch.manual_seed(0)
    model = HDRNet(spatial_bins=8, luma_bins=8, lowres_size=64, guide=guide, fullres=fullres).eval()
    move_off_init(model.parameters(), 0.05)
    return model


@pytest.mark.parametrize("size", [(37, 53), (8, 5), (1, 1), (64, 96)])
def test_forward_equals_grid_sample_path(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    height, width = size
    grid = torch.randn(2, 12, 8, 4, 6)
    guide = torch.rand(2, height, width) * 1.4 - 0.2  # also outside [0, 1]: clamped to the edge bins
    image = torch.rand(2, 3, height, width)
    expected = apply_affine(bilateral_slice(grid, guide), image)
    assert torch.allclose(fused_slice_apply(grid, guide, image), expected, atol=1e-5, rtol=0)


def test_gradients_pass_gradcheck() -> None:
    torch.manual_seed(2)
    grid = torch.randn(2, 12, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    guide = (torch.rand(2, 6, 7, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused_slice_apply, (grid, guide, image))


def test_gradients_equal_grid_sample_path() -> None:
    torch.manual_seed(3)
    grid = torch.randn(2, 12, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    guide = (torch.rand(2, 20, 30, dtype=torch.float64) * 1.2 - 0.1).requires_grad_()
    image = torch.rand(2, 3, 20, 30, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 20, 30, dtype=torch.float64)
    fused = torch.autograd.grad(fused_slice_apply(grid, guide, image), (grid, guide, image), upstream)
    reference = torch.autograd.grad(apply_affine(bilateral_slice(grid, guide), image), (grid, guide, image), upstream)
    for ours, theirs in zip(fused, reference):
        assert torch.allclose(ours, theirs, atol=1e-10, rtol=0)


def test_gradients_without_an_image_gradient_are_the_same_bits() -> None:
    """Training crops need no image gradient: numba compiles the backward without it, and the grid
    and guide-weight gradients must not change by a bit (float64)."""
    torch.manual_seed(5)
    grid = torch.randn(2, 12, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    hidden, out = torch.nn.Linear(3, 16).double(), torch.nn.Linear(16, 1).double()
    upstream = torch.randn(2, 3, 20, 30, dtype=torch.float64)
    weights = (grid, hidden.weight, hidden.bias, out.weight, out.bias)
    gradients = []
    for image_grad in (True, False):
        image = torch.rand(2, 3, 20, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
        image.requires_grad_(image_grad)
        output = fused_guided_slice_apply(grid, image, hidden, out)
        inputs = weights + ((image,) if image_grad else ())
        gradients.append(torch.autograd.grad(output, inputs, upstream)[: len(weights)])
    for with_image, without_image in zip(*gradients):
        assert torch.equal(with_image, without_image)


@pytest.mark.parametrize("guide", ["pointwise", "curves"])
def test_model_inference_equals_grid_sample_model(guide: str) -> None:
    fused, reference = _perturbed_model("fused", guide), _perturbed_model("grid_sample", guide)
    image = np.random.default_rng(4).random((70, 110, 3), dtype=np.float32)
    ours, theirs = fused.enhance(image), reference.enhance(image)
    assert ours.shape == image.shape and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-5
    assert ours.min() >= 0 and ours.max() <= 1
    for model, expected in ((fused, ours), (reference, theirs)):  # into a frame buffer (video), either path
        frame = np.empty_like(image)
        assert model.enhance(image, out=frame) is frame and np.array_equal(frame, expected)
        with pytest.raises(ValueError, match="out must be"):
            model.enhance(image, out=np.empty((70, 110, 3), np.uint8))


def test_inference_on_a_strided_view_equals_its_contiguous_copy() -> None:
    """A flipped or cropped view of a photo (not C-contiguous) is read as its copy would be."""
    model = _perturbed_model("fused")
    image = np.random.default_rng(5).random((40, 60, 3), dtype=np.float32)
    grid = model.coefficients(model.photo_view(image)).detach().numpy()
    hidden, out = model.guide.hidden, model.guide.out
    weights = [w.detach().numpy() for w in (hidden.weight, hidden.bias, out.weight, out.bias)]
    for view in (image[::-1, 5:50], np.rint(image * 255).astype(np.uint8)[:, ::2]):
        assert not view.flags.c_contiguous
        copy = np.ascontiguousarray(view)
        assert np.array_equal(guided_slice_apply(view, grid, *weights), guided_slice_apply(copy, grid, *weights))


def test_training_gradients_of_model_equal_grid_sample_model() -> None:
    fused, reference = _perturbed_model("fused"), _perturbed_model("grid_sample")
    image = torch.rand(2, 3, 48, 40)
    target = torch.rand(2, 3, 48, 40)
    for model in (fused, reference):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(image), target).backward()
    for (name, ours), theirs in zip(fused.named_parameters(), reference.parameters()):
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-6, rtol=1e-4), name


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="grid must be"):
        fused_slice_apply(torch.zeros(1, 9, 2, 2, 2), torch.zeros(1, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="guide"):
        fused_slice_apply(torch.zeros(1, 12, 2, 2, 2), torch.zeros(1, 4, 5), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="float32"):
        guided_slice_apply(np.zeros((4, 4, 3)), np.zeros((1, 12, 2, 2, 2)), *[np.zeros(s) for s in ((16, 3), 16, 16)], 0.0)


def test_a_crop_window_slices_the_crop_as_the_whole_photo_does() -> None:
    """Issue 12: a crop sliced at its place in the photo equals that crop of the whole-photo output,
    in the reference path and in the fused kernel, and the two agree with each other."""
    torch.manual_seed(3)
    grid = torch.randn(2, 12, 8, 4, 6, dtype=torch.float64)
    guide = torch.rand(2, 50, 70, dtype=torch.float64)
    image = torch.rand(2, 3, 50, 70, dtype=torch.float64)
    whole_reference = apply_affine(bilateral_slice(grid, guide), image)
    whole_fused = fused_slice_apply(grid, guide, image)
    crops = [(7, 11), (29, 40)]  # (top, left) of a 21x30 crop in each photo
    window = torch.tensor([[top, left, 50, 70] for top, left in crops])
    crop_guide = torch.stack([guide[b, t:t + 21, l:l + 30] for b, (t, l) in enumerate(crops)])
    crop_image = torch.stack([image[b, :, t:t + 21, l:l + 30] for b, (t, l) in enumerate(crops)])
    expected = torch.stack([whole_reference[b, :, t:t + 21, l:l + 30] for b, (t, l) in enumerate(crops)])
    reference = apply_affine(bilateral_slice(grid, crop_guide, window), crop_image)
    fused = fused_slice_apply(grid, crop_guide, crop_image, window)
    assert torch.allclose(reference, expected, atol=1e-12, rtol=0)
    assert torch.allclose(fused, torch.stack([whole_fused[b, :, t:t + 21, l:l + 30] for b, (t, l) in enumerate(crops)]),
                          atol=1e-12, rtol=0)
    assert torch.allclose(fused, reference, atol=1e-12, rtol=0)


def test_windowed_gradients_pass_gradcheck_and_bad_windows_are_refused() -> None:
    torch.manual_seed(4)
    grid = torch.randn(2, 12, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    guide = (torch.rand(2, 6, 7, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    window = torch.tensor([[3, 2, 20, 11], [0, 9, 6, 16]])
    assert torch.autograd.gradcheck(lambda g, gd, im: fused_slice_apply(g, gd, im, window), (grid, guide, image))
    with pytest.raises(ValueError, match="does not fit its window"):
        fused_slice_apply(grid, guide, image, torch.tensor([[15, 0, 20, 11], [0, 0, 6, 7]]))
    with pytest.raises(ValueError, match=r"window must be \(B, 4\)"):
        bilateral_slice(grid, guide, torch.zeros(2, 3))


@pytest.mark.parametrize("fullres, guide", [("fused", "pointwise"), ("fused", "curves"), ("grid_sample", "pointwise")])
def test_the_model_on_a_crop_with_whole_photo_context_equals_that_crop_of_the_whole_output(fullres, guide) -> None:
    model = _perturbed_model(fullres, guide)
    torch.manual_seed(5)
    photos = torch.rand(2, 3, 90, 120)
    with torch.no_grad():
        whole = model(photos)
        crops = [(10, 33), (54, 0)]
        window = torch.tensor([[top, left, 90, 120] for top, left in crops])
        crop_images = torch.stack([photos[b, :, t:t + 36, l:l + 48] for b, (t, l) in enumerate(crops)])
        output = model(crop_images, model.lowres(photos), window)
    expected = torch.stack([whole[b, :, t:t + 36, l:l + 48] for b, (t, l) in enumerate(crops)])
    assert torch.allclose(output, expected, atol=2e-6, rtol=0)


def _lookup_cases() -> list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """Photos (float32 and 8-bit; widths from 1 to 300, so segments narrower and wider than a SIMD
    block) with grids of 2 to 8 luma bins, and a guide whose values cover every bin and its edges."""
    rng = np.random.default_rng(8)
    cases = []
    for (height, width), (depth, cells_y, cells_x) in [
        ((1, 1), (8, 2, 2)), ((3, 40), (2, 2, 20)), ((17, 33), (5, 3, 4)), ((20, 300), (8, 4, 6)), ((9, 129), (3, 2, 1)),
    ]:
        image = rng.random((height, width, 3), dtype=np.float32)
        grid = rng.standard_normal((1, 12, depth, cells_y, cells_x)).astype(np.float32)
        weights = [rng.standard_normal(shape).astype(np.float32) * 3 for shape in ((16, 3), 16, (1, 16), 1)]
        cases += [(image, grid, weights), (np.rint(image * 255).astype(np.uint8), grid, weights)]
    return cases


def _assert_slices_agree(ours: np.ndarray, theirs: np.ndarray) -> None:
    if ours.dtype == np.uint8:  # rounded: a value within float rounding of a half level may round either way
        difference = np.abs(ours.astype(int) - theirs)
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    else:  # the guides' float32 sums of 16 products (weights ~ 3) differ in order: ~1e-5 of the output's scale
        assert np.abs(ours - theirs).max() < 1e-5 * max(1.0, np.abs(theirs).max())


def test_lookup_slice_equals_the_bin_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-pixel lookup slice (x86 SIMD) against the portable sweep over luma bins (itself
    checked against the PyTorch reference above)."""
    if simd_lookup.LANES == 0:
        pytest.skip("this CPU has neither AVX2 nor AVX-512: the lookup slice is not built")
    cases = _lookup_cases()
    ours = [guided_slice_apply(image, grid, *weights) for image, grid, weights in cases]
    unclipped = [guided_slice_apply(image, grid, *weights, clip=False) for image, grid, weights in cases[::2]]
    monkeypatch.setattr(fused, "LANES", 0)
    for (image, grid, weights), out in zip(cases, ours):
        _assert_slices_agree(out, guided_slice_apply(image, grid, *weights))
    assert min(out.min() for out in unclipped) < 0 and max(out.max() for out in unclipped) > 1
    for (image, grid, weights), out in zip(cases[::2], unclipped):  # float32: values outside [0, 1] kept
        _assert_slices_agree(out, guided_slice_apply(image, grid, *weights, clip=False))


def test_hidden_units_dead_on_the_unit_cube_are_skipped_only_inside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guide unit whose pre-activation cannot be positive on [0, 1]^3 adds exactly 0 there: the
    SIMD block skips it for pixels in [0, 1] (the same bits as computing it) and computes it for a
    block holding any pixel outside (float photos beyond [0, 1], against the portable sweep)."""
    if simd_lookup.LANES == 0:
        pytest.skip("this CPU has neither AVX2 nor AVX-512: the lookup slice is not built")
    cases, live_units = _lookup_cases(), 0
    for image, grid, (w1, b1, w2, b2) in cases:
        constants = fused._guide_constants((w1, b1, w2.ravel(), b2))
        live_units += int(constants[-16:].sum())
        every_unit = constants.copy()
        every_unit[-16:] = 1
        outputs = []
        for guide in (constants, every_unit):
            out = np.empty_like(image)
            fused._lookup_guided_slice_apply_hwc(image, *fused._lookup_tables(grid), guide, grid.shape[2], True, out)
            outputs.append(out)
        assert np.array_equal(*outputs)
    assert 0 < live_units < 16 * len(cases)  # the cases have dead units and live ones
    stretched = [(image * 3 - 1, grid, weights) for image, grid, weights in cases[::2]]  # float32 in [-1, 2]
    ours = [guided_slice_apply(image, grid, *weights, clip=False) for image, grid, weights in stretched]
    monkeypatch.setattr(fused, "LANES", 0)
    for (image, grid, weights), out in zip(stretched, ours):
        _assert_slices_agree(out, guided_slice_apply(image, grid, *weights, clip=False))


def test_a_read_only_photo_and_an_in_place_output_give_the_same_result() -> None:
    """The SIMD path reads each block of pixels before writing it, so ``out`` may be the photo
    itself (a video pipeline's buffer); a read-only photo (a memory map) is read as any other."""
    for image, grid, weights in _lookup_cases()[6:8]:  # 300 px wide: blocks across segment edges
        expected = guided_slice_apply(image, grid, *weights)
        frozen = image.copy()
        frozen.flags.writeable = False
        assert np.array_equal(guided_slice_apply(frozen, grid, *weights), expected)
        in_place = image.copy()
        assert guided_slice_apply(in_place, grid, *weights, out=in_place) is in_place
        assert np.array_equal(in_place, expected)


def _simd_training_agrees() -> bool:
    """Training's x86 SIMD kernels (float32, no image gradient: the forward's lookup blocks, the
    backward's per-segment sums) against the portable loops: output, grid and guide-weight
    gradients, crops 1 to 300 px wide at their windows, 2 to 8 bins (segments narrower and wider
    than a vector, blocks ending inside them), pixels inside and outside [0, 1]."""
    rng = np.random.default_rng(9)
    torch.manual_seed(9)
    hidden, out = torch.nn.Linear(3, 16), torch.nn.Linear(16, 1)
    move_off_init([*hidden.parameters(), *out.parameters()], 1.0)

    def gradients(grid: torch.Tensor, image: torch.Tensor, window: torch.Tensor, upstream: torch.Tensor) -> list:
        grid = grid.clone().requires_grad_()
        result = fused_guided_slice_apply(grid, image, hidden, out, window)
        return [result.detach(), *torch.autograd.grad(result, [grid, *hidden.parameters(), *out.parameters()], upstream)]

    simd_lanes, agree = fused.LANES, True
    for depth, width in ((8, 300), (8, 1), (5, 37), (2, 64), (3, 17), (8, 256)):
        grid = torch.from_numpy(rng.standard_normal((2, 12, depth, 3, 5)).astype(np.float32))
        image = torch.from_numpy(rng.random((2, 3, 9, width), dtype=np.float32))
        image[1, :, 4:] = image[1, :, 4:] * 3 - 1  # rows of pixels outside [0, 1]: every guide unit computed
        window = torch.tensor([[4, 7, 20, width + 11], [0, 0, 9, width]])
        upstream = torch.from_numpy(rng.standard_normal((2, 3, 9, width)).astype(np.float32))
        fused.LANES = simd_lanes
        ours = gradients(grid, image, window, upstream)
        fused.LANES = 0  # the kernels' Python side then asks for the portable loop
        portable = gradients(grid, image, window, upstream)
        fused.LANES = simd_lanes
        # float32 sums in other orders (the guide's too): within 1e-5 of each result's scale
        agree &= all((a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max()) for a, b in zip(ours, portable))
    return agree


def test_simd_training_kernels_equal_the_portable_ones() -> None:
    if simd_lookup.LANES == 0:
        pytest.skip("this CPU has neither AVX2 nor AVX-512: the SIMD kernels are not built")
    assert _simd_training_agrees()


def test_the_avx2_lookup_equals_the_bin_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 8-lane (AVX2) build, in a process of its own, where this CPU has AVX-512 too: the lookup
    slice, and the training kernels against the portable loops."""
    if simd_lookup.LANES < 8:
        pytest.skip("this CPU has no AVX2: the lookup slice is not built")
    code = (
        "import numpy as np, sys\n"
        "from benchmark.hdrnet import simd_lookup\n"
        "from benchmark.hdrnet.fused import guided_slice_apply\n"
        "from tests.test_fused import _lookup_cases\n"
        "assert simd_lookup.LANES == 8\n"
        "outs = [guided_slice_apply(i, g, *w) for i, g, w in _lookup_cases()]\n"
        "np.savez(sys.argv[1], *outs)\n"
        "from tests.test_fused import _simd_training_agrees\n"
        "assert _simd_training_agrees(), 'the 8-lane SIMD training kernels differ from the portable ones'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), simd_lookup.LANES_VARIABLE: "8",
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.npz")], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    saved = np.load(tmp_path / "out.npz")
    monkeypatch.setattr(fused, "LANES", 0)
    for index, (image, grid, weights) in enumerate(_lookup_cases()):
        _assert_slices_agree(saved[f"arr_{index}"], guided_slice_apply(image, grid, *weights))


def test_asking_for_more_simd_lanes_than_the_cpu_has_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(simd_lookup.LANES_VARIABLE, "32")
    with pytest.raises(BenchmarkError, match=simd_lookup.LANES_VARIABLE):
        simd_lookup._lanes()
