"""The training loss's one-pass kernel against torch's ``F.mse_loss`` (the reference)."""

from __future__ import annotations

import numba
import pytest
import torch
import torch.nn.functional as F

from benchmark.training.losses import mse_loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(4, 3, 64, 48), (2, 3, 17, 13), (5,)])
def test_loss_and_gradient_equal_torch(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    """The gradient bit for bit (training's weights do not change); the loss within float rounding
    of torch's (summed in float64 in another order). Sizes that split unevenly into the kernel's
    chunks, and fewer values than chunks."""
    generator = torch.Generator().manual_seed(0)
    prediction = torch.rand(shape, dtype=dtype, generator=generator).requires_grad_()
    target = torch.rand(shape, dtype=dtype, generator=generator)
    ours, theirs = mse_loss(prediction, target), F.mse_loss(prediction, target)
    assert ours.dtype == dtype and ours.shape == ()
    assert abs(ours.item() - theirs.item()) <= 1e-6 * theirs.item()
    assert torch.equal(*(torch.autograd.grad(loss, prediction)[0] for loss in (ours, theirs)))
    scaled = torch.autograd.grad(3 * mse_loss(prediction, target), prediction)[0]  # an upstream gradient not 1
    assert torch.equal(scaled, torch.autograd.grad(3 * F.mse_loss(prediction, target), prediction)[0])


def test_the_loss_is_the_same_for_any_thread_count() -> None:
    prediction, target = torch.rand(3, 3, 100, 70), torch.rand(3, 3, 100, 70)
    threads = numba.get_num_threads()
    losses = []
    for count in (1, numba.config.NUMBA_NUM_THREADS):
        torch.set_num_threads(count)  # mse_loss gives numba torch's thread count
        losses.append(mse_loss(prediction, target).item())
    torch.set_num_threads(threads)
    assert losses[0] == losses[1]


def test_what_the_kernel_does_not_take_goes_to_torch() -> None:
    """A target that needs a gradient, or tensors of two dtypes, are torch's ``F.mse_loss``."""
    prediction, target = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = mse_loss(prediction, target)
    assert loss.grad_fn.name() == "MseLossBackward0"
    of_prediction, of_target = torch.autograd.grad(loss, [prediction, target])
    assert torch.equal(of_target, -of_prediction)
    assert mse_loss(prediction.detach(), target.detach().double()).grad_fn is None
