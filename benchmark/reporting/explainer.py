"""Why HDRNet may interpolate matrices (DESIGN.md §5): measured, not asserted.

The output is linear in the affine coefficients A, so slicing the grid (trilinear blend of the 8
neighbouring cells' A) and then applying the blended A to a pixel equals applying each of the 8
cells' A to the pixel and blending the 8 outputs with the same weights. ``apply_then_blend`` is an
independent implementation of the right-hand side (explicit cell indices and tent weights, no
``grid_sample``); the report states the largest difference on a real photo and a random grid.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from benchmark.core.files import write_json_atomic
from benchmark.core.images import read_image, resize, to_tensor
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.hdrnet.bilateral import N_COEFFS, apply_affine, bilateral_slice
from benchmark.imaging.colour import REC601_WEIGHTS
from benchmark.reporting.figures import save

EXPLAINER_PHOTO = BUNDLED_PHOTOS / "kodim03.png"
IMAGE_SIZE = (128, 192)  # (height, width): small, the identity holds at any size
GRID_SHAPE = (8, 16, 16)  # luma bins, spatial rows, spatial columns: HDRNet's default


@dataclass(frozen=True)
class Explainer:
    max_abs_difference: float
    photo: str
    image_size: tuple[int, int]
    grid_shape: tuple[int, int, int]
    row: int
    image: str  # the figure's PNG, relative to the report folder
    pdf: str | None  # its PDF (report --pdf)


def _hat_weight(t: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1 - t.abs(), min=0)


def apply_then_blend(grid: torch.Tensor, guide: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply each of the 8 neighbouring cells' affine to every pixel, blend with trilinear weights.

    Cell-centred coordinates as in ``bilateral_slice``: gx = (x + 0.5) * Wg / W - 0.5, gy likewise,
    gz = guide * D - 0.5; cell indices clamped to the grid (edge replicate). Shapes: grid
    ``(B, 12, D, Hg, Wg)``, guide ``(B, H, W)``, image ``(B, 3, H, W)``; returns ``(B, 3, H, W)``.
    """
    batch, _, depth, grid_height, grid_width = grid.shape
    height, width = guide.shape[1:]
    gx = ((torch.arange(width, dtype=grid.dtype) + 0.5) * grid_width / width - 0.5).view(1, 1, width)
    gy = ((torch.arange(height, dtype=grid.dtype) + 0.5) * grid_height / height - 0.5).view(1, height, 1)
    gz = guide * depth - 0.5
    cells = grid.permute(0, 2, 3, 4, 1)  # (B, D, Hg, Wg, 12): one affine per cell
    batch_index = torch.arange(batch).view(batch, 1, 1)
    output = torch.zeros_like(image)
    for dz, dy, dx in itertools.product((0, 1), repeat=3):
        zi, yi, xi = torch.floor(gz) + dz, torch.floor(gy) + dy, torch.floor(gx) + dx
        weight = _hat_weight(gz - zi) * _hat_weight(gy - yi) * _hat_weight(gx - xi)  # (B, H, W)
        affine = cells[
            batch_index,
            zi.clamp(0, depth - 1).long(),
            yi.clamp(0, grid_height - 1).long(),
            xi.clamp(0, grid_width - 1).long(),
        ].permute(0, 3, 1, 2)  # (B, 12, H, W): this corner's cell for every pixel
        output += weight.unsqueeze(1) * apply_affine(affine.contiguous(), image)
    return output


def random_grid(seed: int = 0) -> torch.Tensor:
    """Identity affines plus noise: a grid as different per cell as a trained one, or more."""
    generator = torch.Generator().manual_seed(seed)
    identity = torch.eye(3, 4).reshape(N_COEFFS, 1, 1, 1)
    return (identity + 0.15 * torch.randn(N_COEFFS, *GRID_SHAPE, generator=generator)).unsqueeze(0)


def write_explainer(folder: Path, pdf: bool = False) -> Explainer:
    """Compare both sides on a bundled photo; draw one row of it; write the figure and a JSON."""
    photo = resize(read_image(EXPLAINER_PHOTO), IMAGE_SIZE)
    image = to_tensor(photo)
    guide = (image * torch.from_numpy(REC601_WEIGHTS).view(1, 3, 1, 1)).sum(dim=1)
    grid = random_grid()
    sliced = apply_affine(bilateral_slice(grid, guide), image)
    blended = apply_then_blend(grid, guide, image)
    difference = float((sliced - blended).abs().max())

    row = IMAGE_SIZE[0] // 2
    grid_width, width = GRID_SHAPE[2], IMAGE_SIZE[1]
    x = torch.arange(width, dtype=torch.float32)
    gx = ((x + 0.5) * grid_width / width - 0.5).clamp(0, grid_width - 1)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
    for column in range(grid_width):
        # one grid column, sliced in y and luma only: that column's transform applied along the row
        column_affine = bilateral_slice(grid[..., column : column + 1], guide)
        column_output = apply_affine(column_affine, image)[0, 0, row]
        top.plot(x, column_output, color="grey", alpha=0.3, linewidth=0.8,
                 label="each grid column's transform applied" if column == 0 else None)
        bottom.plot(x, _hat_weight(gx - column), color="grey", alpha=0.6, linewidth=0.8)
    top.plot(x, blended[0, 0, row], color="C0", linewidth=2.5, label="outputs blended (8 cells, trilinear)")
    top.plot(x, sliced[0, 0, row], color="C1", linestyle="--", linewidth=1.2, label="grid sliced, then applied")
    top.set_ylabel("red channel of the output")
    top.set_title(f"Row {row} of {EXPLAINER_PHOTO.stem} ({IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}), random "
                  f"{GRID_SHAPE[1]}x{GRID_SHAPE[2]}x{GRID_SHAPE[0]} grid: max |difference| = {difference:.2e}",
                  fontsize=9)
    top.legend(fontsize=7)
    bottom.set_xlabel("x (pixels)")
    bottom.set_ylabel("weight per column")
    result = Explainer(difference, EXPLAINER_PHOTO.name, IMAGE_SIZE, GRID_SHAPE, row, *save(figure, folder, "explainer_slicing", pdf))
    write_json_atomic(asdict(result), folder / "explainer_slicing.json")
    return result
