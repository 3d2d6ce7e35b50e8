"""HDRNet's CUDA kernel (benchmark/hdrnet/triton_kernels.py) run by Triton's interpreter on CPU
tensors, against the PyTorch reference apply_affine(bilateral_slice(...)): forward within 1e-5,
gradients (image, grid, the guide's weights) within 1e-5 of each gradient's largest magnitude."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")  # before Triton compiles anything: CPU tensors, no GPU
DEVICE = "cpu" if os.environ["TRITON_INTERPRET"] == "1" else "cuda"  # scripts/device_check.sh sets 0 on a GPU

import pytest  # noqa: E402
import torch  # noqa: E402

from benchmark import PROJECT_ROOT  # noqa: E402
from benchmark.hdrnet import triton_kernels  # noqa: E402
from benchmark.hdrnet.bilateral import apply_affine, bilateral_slice  # noqa: E402
from benchmark.hdrnet.model import PointwiseGuide  # noqa: E402
from tests.conftest import move_off_init  # noqa: E402


@pytest.fixture
def guide() -> PointwiseGuide:
    torch.manual_seed(0)
    guide = PointwiseGuide()
    move_off_init(guide.parameters(), 0.3)  # away from the initialisation's symmetry
    return guide


def _both(guide: PointwiseGuide, image: torch.Tensor, grid: torch.Tensor, window: torch.Tensor | None = None):
    guide, image, grid = guide.to(DEVICE), image.to(DEVICE), grid.to(DEVICE)
    ours = triton_kernels.guided_slice_apply(
        image, grid, guide.hidden.weight, guide.hidden.bias, guide.out.weight, guide.out.bias, window)
    with torch.no_grad():
        reference = apply_affine(bilateral_slice(grid, guide(image), window), image)
    return ours, reference


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 37, 53), (1, 3, 5, 300)])
def test_forward_equals_the_pytorch_reference(guide, shape):
    """Odd sizes, a grid finer than the image along one axis, several blocks per photo."""
    torch.manual_seed(1)
    identity = torch.zeros(shape[0], 12, 8, 5, 7)
    identity[:, [0, 5, 10]] = 1.0
    grid = identity + 0.1 * torch.randn_like(identity)
    ours, reference = _both(guide, torch.rand(shape), grid)
    assert (ours - reference).abs().max() < 1e-5


def test_crop_windows_slice_at_the_crops_place(guide):
    torch.manual_seed(2)
    grid = torch.randn(2, 12, 4, 6, 9)
    window = torch.tensor([[0, 0, 37, 53], [3, 11, 50, 80]])
    ours, reference = _both(guide, torch.rand(2, 3, 37, 53), grid, window)
    assert (ours - reference).abs().max() < 1e-5 * reference.abs().max()


def test_a_nan_pixel_stays_inside_the_grid(guide):
    image = torch.rand(1, 3, 8, 8)
    image[0, :, 3, 4] = float("nan")
    guide = guide.to(DEVICE)
    ours = triton_kernels.guided_slice_apply(image.to(DEVICE), torch.randn(1, 12, 8, 4, 4, device=DEVICE),
                                             guide.hidden.weight, guide.hidden.bias, guide.out.weight, guide.out.bias)
    assert torch.isnan(ours[0, :, 3, 4]).all() and torch.isfinite(ours[0, :, :3]).all()


def test_gradients_equal_the_pytorch_reference(guide):
    """Every input's gradient, crop windows included (measured: 1e-6 of each gradient's scale)."""
    torch.manual_seed(3)
    reference_guide = copy.deepcopy(guide).to(DEVICE)
    guide = guide.to(DEVICE)
    image, grid = torch.rand(2, 3, 21, 30, device=DEVICE), torch.randn(2, 12, 8, 5, 7, device=DEVICE)
    window = torch.tensor([[0, 0, 21, 30], [3, 11, 50, 80]])
    weight = torch.randn(2, 3, 21, 30, device=DEVICE)  # d loss / d output
    gradients = []
    for model, slice_apply in ((guide, None), (reference_guide, "reference")):
        inputs = [image.clone().requires_grad_(), grid.clone().requires_grad_()]
        if slice_apply is None:
            out = triton_kernels.guided_slice_apply(*inputs, model.hidden.weight, model.hidden.bias,
                                                    model.out.weight, model.out.bias, window)
        else:
            out = apply_affine(bilateral_slice(inputs[1], model(inputs[0]), window), inputs[0])
        (out * weight).sum().backward()
        gradients.append([inputs[0].grad, inputs[1].grad, *(p.grad for p in model.parameters())])
    for ours, reference in zip(*gradients):
        assert (ours - reference).abs().max() < 1e-5 * reference.abs().max()


@pytest.mark.slow
def test_device_check_dry_run_runs_end_to_end(tmp_path):
    """scripts/device_check.sh --dry-run: the interpreter tests and a tiny speed run, exit 0."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "OUT": str(tmp_path / "check"), "PY": sys.executable}
    result = subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "device_check.sh"), "--dry-run"], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "check" / "speed.json").is_file()
