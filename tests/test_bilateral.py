"""Slicing and affine apply: conventions of eq. 5 (cell-centred), layout, gradients."""

import math

import pytest
import torch

from benchmark.hdrnet.bilateral import apply_affine, bilateral_slice


def identity_grid(depth: int = 8, height: int = 16, width: int = 16) -> torch.Tensor:
    return torch.eye(3, 4).flatten().view(1, 12, 1, 1, 1).expand(1, 12, depth, height, width).clone()


def tent(t: float) -> float:
    return max(1.0 - abs(t), 0.0)


def slice_by_hand(grid: torch.Tensor, x: int, y: int, guide_value: float, height: int, width: int) -> torch.Tensor:
    """Eq. 5 with the cell-centre convention, written out: 8 neighbours, tent weights, clamped indices."""
    _, _, depth, grid_h, grid_w = grid.shape
    gx = (x + 0.5) * grid_w / width - 0.5
    gy = (y + 0.5) * grid_h / height - 0.5
    gz = guide_value * depth - 0.5
    total = torch.zeros(grid.shape[1], dtype=grid.dtype)
    for k in (math.floor(gz), math.floor(gz) + 1):
        for j in (math.floor(gy), math.floor(gy) + 1):
            for i in (math.floor(gx), math.floor(gx) + 1):
                weight = tent(gx - i) * tent(gy - j) * tent(gz - k)
                ci, cj, ck = min(max(i, 0), grid_w - 1), min(max(j, 0), grid_h - 1), min(max(k, 0), depth - 1)
                total += weight * grid[0, :, ck, cj, ci]
    return total


def test_constant_grid_gives_constant_map():
    grid = torch.full((2, 12, 8, 16, 16), 0.7)
    coeffs = bilateral_slice(grid, torch.rand(2, 40, 56))
    assert coeffs.shape == (2, 12, 40, 56)
    torch.testing.assert_close(coeffs, torch.full_like(coeffs, 0.7))


def test_identity_grid_returns_input_exactly():
    image = torch.rand(2, 3, 33, 47)
    out = apply_affine(bilateral_slice(identity_grid().expand(2, -1, -1, -1, -1), torch.rand(2, 33, 47)), image)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


@pytest.mark.parametrize("x, y", [(121, 145), (3, 509), (0, 0), (511, 256)])
def test_pixel_matches_cell_centred_eq5(x, y):
    torch.manual_seed(0)
    grid = torch.randn(1, 12, 8, 16, 16, dtype=torch.float64)
    guide = torch.rand(1, 512, 512, dtype=torch.float64)
    coeffs = bilateral_slice(grid, guide)
    expected = slice_by_hand(grid, x, y, guide[0, y, x].item(), 512, 512)
    torch.testing.assert_close(coeffs[0, :, y, x], expected, atol=1e-10, rtol=0)


def test_worked_example_coordinates():
    """The paper summary's example: x=121 in a 512-px image, 16 cells -> 3.296875 cell-centred
    (3.78125 by eq. 5 as printed). A grid that is linear in x reads the coordinate back."""
    grid = torch.arange(16, dtype=torch.float64).view(1, 1, 1, 1, 16).expand(1, 12, 8, 16, 16)
    coeffs = bilateral_slice(grid, torch.full((1, 512, 512), 0.5, dtype=torch.float64))
    assert coeffs[0, 0, 145, 121].item() == pytest.approx(3.296875, abs=1e-12)
    assert coeffs[0, 0, 145, 121].item() != pytest.approx(121 * 16 / 512, abs=1e-3)


def test_axes_are_not_swapped():
    """x indexes the grid's width, y its height, the guide its depth."""
    grid = torch.zeros(1, 12, 4, 8, 8)
    grid[:, :, :, :, 4:] = 1.0  # varies along grid width only
    coeffs = bilateral_slice(grid, torch.rand(1, 32, 64))
    torch.testing.assert_close(coeffs[0, 0, :, :16], torch.zeros(32, 16))
    torch.testing.assert_close(coeffs[0, 0, :, -16:], torch.ones(32, 16))
    assert torch.allclose(coeffs[0, 0, 0], coeffs[0, 0, -1])
    depth_grid = torch.arange(4.0).view(1, 1, 4, 1, 1).expand(1, 12, 4, 8, 8)
    guide = torch.tensor([0.125, 0.375, 0.625, 0.875]).view(1, 1, 4).expand(1, 8, 4)
    torch.testing.assert_close(bilateral_slice(depth_grid, guide)[0, 0, 0], torch.arange(4.0))


def test_affine_coefficient_layout():
    coeffs = torch.zeros(1, 12, 2, 2)
    coeffs[0, 0 * 4 + 1] = 2.0  # red output takes 2 x green
    coeffs[0, 1 * 4 + 3] = 0.5  # green output offset
    coeffs[0, 2 * 4 + 2] = -1.0  # blue output takes -blue
    image = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = apply_affine(coeffs, image)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.4, 0.5, -0.3]))


def test_gradcheck_grid_and_guide():
    torch.manual_seed(0)
    grid = torch.randn(1, 12, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    guide = (torch.rand(1, 7, 6, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    image = torch.rand(1, 3, 7, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda g, z: apply_affine(bilateral_slice(g, z), image), (grid, guide))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="grid must be"):
        bilateral_slice(torch.rand(12, 8, 16, 16), torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="coeffs .* differ"):
        apply_affine(torch.rand(1, 12, 8, 8), torch.rand(1, 3, 8, 9))
