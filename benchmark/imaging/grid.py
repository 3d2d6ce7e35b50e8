"""Bilateral-grid geometry shared by HDRNet's slicers, BGU and JBU (DESIGN §5).

Grids are cell-centred: pixel p of an n-pixel axis sits at grid coordinate (p + 0.5) · cells / n
− 0.5, so cell centres line up with pixel-block centres and a grid as large as the image samples
it exactly; coordinates outside [0, cells − 1] are clamped (edge replication). The luma axis
works the same way with the guide in [0, 1] as a one-pixel-wide axis of ``depth`` cells.

>>> cell_coordinate(np.arange(4), 4, 2)
array([-0.25,  0.25,  0.75,  1.25])
>>> tent(cell_coordinate(np.arange(4), 4, 2), 2)
(array([0, 0, 0, 1]), array([1, 1, 1, 1]), array([0.  , 0.25, 0.75, 0.  ]))
"""

from __future__ import annotations

import numpy as np


def cell_coordinate(position, n_pixels, n_cells):  # noqa: ANN001, ANN201 - numpy arrays, floats, numba scalars
    """Grid coordinate of pixel ``position`` on an ``n_pixels`` axis of ``n_cells`` cells, unclamped.

    Plain arithmetic, so numba kernels compile this same function (``benchmark.hdrnet.fused``).
    """
    return (position + 0.5) * n_cells / n_pixels - 0.5


def tent(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clamp grid coordinates to [0, size-1]; return lower index, upper index, upper weight."""
    coord = np.clip(coord, 0.0, size - 1)
    lower = np.minimum(np.floor(coord).astype(np.int64), size - 1)
    return lower, np.minimum(lower + 1, size - 1), coord - lower


def cell_centres(n_pixels: int, n_cells: int) -> np.ndarray:
    """Grid coordinates (float64, unclamped) of the ``n_pixels`` pixel centres of an axis."""
    return cell_coordinate(np.arange(n_pixels, dtype=np.float64), n_pixels, n_cells)


def splat_weights(guide: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear weights of every pixel onto the grid's vertices (cell-centred, clamped).

    Returns ``vertices`` and ``weights``, both (P, 8) for the P = H*W pixels in row-major order;
    vertex index (iy * gw + ix) * D + iz. Each row of weights sums to 1.
    """
    gh, gw, depth = shape
    height, width = guide.shape
    y0, y1, fy = tent(cell_centres(height, gh), gh)
    x0, x1, fx = tent(cell_centres(width, gw), gw)
    z0, z1, fz = tent(guide.astype(np.float64) * depth - 0.5, depth)
    vertices = np.empty((height, width, 8), np.int64)
    weights = np.empty((height, width, 8), np.float64)
    corner = 0
    for iy, wy in ((y0, 1 - fy), (y1, fy)):
        for ix, wx in ((x0, 1 - fx), (x1, fx)):
            for iz, wz in ((z0, 1 - fz), (z1, fz)):
                vertices[..., corner] = (iy[:, None] * gw + ix[None, :]) * depth + iz
                weights[..., corner] = (wy[:, None] * wx[None, :]) * wz
                corner += 1
    return vertices.reshape(-1, 8), weights.reshape(-1, 8)
