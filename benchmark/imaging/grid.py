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
