"""Bilateral-grid slicing and the per-pixel affine apply of HDRNet (Gharbi et al. 2017, eq. 5-6).

These are the clear, differentiable PyTorch reference ops. Grid layout: ``(B, 12, D, Hg, Wg)``
with coefficient ``c * 4 + j`` multiplying input channel ``j`` of output channel ``c`` (``j = 3``
is the offset).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_COEFFS = 12  # 3x4 affine colour transform per grid cell


def _check_slice_inputs(grid: torch.Tensor, guide: torch.Tensor) -> None:
    if grid.ndim != 5:
        raise ValueError(f"grid must be (B, C, D, Hg, Wg), got shape {tuple(grid.shape)}")
    if guide.ndim != 3:
        raise ValueError(f"guide must be (B, H, W), got shape {tuple(guide.shape)}")
    if grid.shape[0] != guide.shape[0]:
        raise ValueError(f"batch sizes differ: grid {grid.shape[0]}, guide {guide.shape[0]}")


def checked_window(window: torch.Tensor | None, batch: int, height: int, width: int) -> torch.Tensor:
    """Crop windows ``(B, 4)`` int64 rows ``(top, left, full_height, full_width)``, checked to hold a
    ``height x width`` crop; None means whole photos, ``(0, 0, height, width)``."""
    if window is None:
        return torch.tensor([[0, 0, height, width]] * batch, dtype=torch.int64)
    window = torch.as_tensor(window, dtype=torch.int64).cpu()
    if window.shape != (batch, 4):
        raise ValueError(f"window must be (B, 4) = (top, left, full_height, full_width), got {tuple(window.shape)}")
    top, left, full_height, full_width = window.unbind(1)
    if bool(((top < 0) | (left < 0) | (top + height > full_height) | (left + width > full_width)).any()):
        raise ValueError(f"a {height}x{width} crop does not fit its window {window.tolist()}")
    return window


def bilateral_slice(grid: torch.Tensor, guide: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """Trilinearly sample the grid at (x, y, guide(x, y)) for every full-resolution pixel.

    Args:
        grid: ``(B, C, D, Hg, Wg)`` bilateral grid (C = 12 for HDRNet's affine coefficients).
        guide: ``(B, H, W)`` guide map in [0, 1]; values outside are clamped to the edge bins.
        window: ``(B, 4)`` rows ``(top, left, full_height, full_width)``: item ``b`` is a crop at
            (top, left) of a photo of that size, whose grid this is, and its pixels are sliced at
            their positions in the photo (x -> left + x). None: whole photos.

    Returns:
        ``(B, C, H, W)`` per-pixel coefficients.

    Sampling is cell-centred, as in the official google/hdrnet code rather than eq. 5 as printed:
    gx = (x + 0.5) * Wg / W - 0.5, gy likewise, gz = guide * D - 0.5, tent weights, indices
    clamped to the grid. That is exactly ``grid_sample(align_corners=False,
    padding_mode="border")`` with normalised coordinates ``[x, y, guide]`` (x indexes Wg, y Hg,
    z D — the order of the last dimension is the classic porting pitfall).

    Example:
        >>> grid = torch.ones(1, 12, 8, 16, 16)
        >>> bilateral_slice(grid, torch.rand(1, 32, 48)).shape
        torch.Size([1, 12, 32, 48])
    """
    _check_slice_inputs(grid, guide)
    batch, height, width = guide.shape
    if window is None:
        xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=guide.device, dtype=guide.dtype)
        ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=guide.device, dtype=guide.dtype)
        xs, ys = xs.view(1, 1, width), ys.view(1, height, 1)
    else:
        top, left, full_height, full_width = checked_window(window, batch, height, width).to(
            device=guide.device, dtype=guide.dtype).unbind(1)
        columns = torch.arange(width, device=guide.device, dtype=guide.dtype)
        rows = torch.arange(height, device=guide.device, dtype=guide.dtype)
        xs = ((left[:, None] + columns + 0.5) / full_width[:, None] * 2 - 1).view(batch, 1, width)
        ys = ((top[:, None] + rows + 0.5) / full_height[:, None] * 2 - 1).view(batch, height, 1)
    coords = torch.stack(
        [xs.expand(batch, height, width), ys.expand(batch, height, width), guide * 2 - 1], dim=-1
    )  # (B, H, W, 3): pixel centres (x + 0.5) / W mapped to [-1, 1]
    sampled = F.grid_sample(
        grid, coords.unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
    )  # (B, C, 1, H, W)
    return sampled.squeeze(2)


def apply_affine(coeffs: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply per-pixel 3x4 affine colour transforms: ``O_c = sum_j A[c, j] I_j + A[c, 3]``.

    Args:
        coeffs: ``(B, 12, H, W)``, coefficient ``c * 4 + j``.
        image: ``(B, 3, H, W)``.

    Returns:
        ``(B, 3, H, W)``.
    """
    if coeffs.ndim != 4 or coeffs.shape[1] != N_COEFFS:
        raise ValueError(f"coeffs must be (B, 12, H, W), got shape {tuple(coeffs.shape)}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
    if coeffs.shape[-2:] != image.shape[-2:] or coeffs.shape[0] != image.shape[0]:
        raise ValueError(f"coeffs {tuple(coeffs.shape)} and image {tuple(image.shape)} differ in size")
    batch, _, height, width = coeffs.shape
    matrix = coeffs.view(batch, 3, 4, height, width)
    return (matrix[:, :, :3] * image.unsqueeze(1)).sum(dim=2) + matrix[:, :, 3]
