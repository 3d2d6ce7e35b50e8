"""The fused CPU kernels equal the PyTorch reference path (bilateral_slice + apply_affine), forward
and backward, and the model's fused inference equals its grid_sample inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
