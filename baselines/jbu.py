"""Joint bilateral upsampling (Kopf, Cohen, Lischinski, Uyttendaele 2007, SIGGRAPH, eq. 2).

Run the operator at low resolution, then give every full-resolution pixel p a normalised,
edge-aware average of the low-resolution output samples S_q↓ around it:

    S̃_p = (1 / k_p) Σ_{q↓ ∈ Ω} S_q↓ · f(‖p↓ − q↓‖) · g(‖Ĩ_p − Ĩ_q‖),   k_p = Σ_{q↓ ∈ Ω} f · g

with f a spatial Gaussian (σ = ``sigma_spatial`` low-resolution pixels) on the low-resolution
grid and g a range Gaussian (σ = ``sigma_range``, Euclidean RGB distance in [0, 1] units) on the
guide. This module computes that sum exactly, over the (2·radius + 1)² low-resolution samples
q↓ around each pixel, vectorised in numpy (one pass per window tap, in row blocks that stay in
cache). The choices the paper leaves open:

- p↓ is the cell-centred position of p on the low-resolution grid, p↓ = (p + ½)·(w / W) − ½
  per axis (the convention of DESIGN.md §5 and of OpenCV's resize), and Ω is the square window
  of samples centred on the nearest low-resolution sample round(p↓). Samples that fall outside
  the image are left out of the sum (not border-replicated, which would count edge samples twice).
- Ĩ_p is the full-resolution input at p. Ĩ_q is the guide's value at q↓: the area-downsampled
  input the operator was run on. The paper writes "the high-resolution image at q"; at a
  non-integer scale no full-resolution pixel sits at q↓'s centre, and the area average is the
  colour the operator actually mapped to S_q↓, so (Ĩ_q, S_q↓) is a consistent pair.
- When k_p underflows to 0 (a very small ``sigma_range``), S̃_p is the nearest sample S_round(p↓).
- When the input is already no larger than ``lowres_size`` there is nothing to upsample: the
  operator's output is returned as is.

Why not ``cv2.ximgproc.jointBilateralFilter`` on a bicubically upsampled S: that filter sums over
full-resolution pixels q of an *interpolated* solution, with range weights on the full-resolution
guide at q. It is a dense joint bilateral filter of the bicubic baseline, not the paper's sum over
the low-resolution samples q↓ (each low-resolution value weighted once by its own colour); and
covering the same ±radius low-resolution neighbourhood at a 7.5x upsampling (256 px → 1920 px)
needs a diameter of ~2·radius·7.5 + 1 full-resolution pixels, i.e. O(30²) taps per pixel
against the 25 taps here (its d=9 alone takes ~240 ms at 1920x1080 on the 2-core dev machine).

JBU is a normalised average of low-resolution samples: it cannot create full-resolution detail
that the low-resolution output lacks, and it does not model the operator (an affine colour change
is reproduced only up to the smoothing of the average; see tests/test_upsampling_baselines.py).
"""

from __future__ import annotations

import numpy as np

from baselines.upsample import LowResUpsampler
from benchmark.core import settings
from benchmark.imaging.grid import cell_coordinate

ROW_BLOCK = 32  # full-resolution rows per block: the per-tap buffers stay in L2 cache


class JointBilateralUpsample(LowResUpsampler):
    """``jbu``: the exact Kopf 2007 sum over a window of low-res samples."""

    def __init__(
        self, name: str, lowres_size: int = 256, sigma_spatial: float = 1.0, sigma_range: float = 0.05,
        radius: int = 2,
    ) -> None:
        super().__init__(name, lowres_size)
        self.sigma_spatial = settings.number("model.sigma_spatial", sigma_spatial, 0, above=True)  # low-res px
        self.sigma_range = settings.number("model.sigma_range", sigma_range, 0, above=True)  # RGB units in [0, 1]
        self.radius = settings.integer("model.radius", radius, 1)  # low-res px

    def upsample(self, lowres_output: np.ndarray, lowres_guide: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """Kopf 2007 eq. 2: S̃ at the size of ``guide`` from S = ``lowres_output`` (see module doc)."""
        height, width = guide.shape[:2]
        low_height, low_width = lowres_output.shape[:2]
        # Planar float32: channels 0-2 the low-res guide Ĩ_q, 3-5 the low-res solution S_q↓.
        samples = np.ascontiguousarray(
            np.concatenate([lowres_guide, lowres_output], axis=2).transpose(2, 0, 1), dtype=np.float32
        )
        full = np.ascontiguousarray(guide.transpose(2, 0, 1), dtype=np.float32)
        rows, row_weights = self._taps(height, low_height)  # (taps, H) each
        cols, col_weights = self._taps(width, low_width)  # (taps, W) each
        centre = self.radius
        range_scale = np.float32(-0.5 / self.sigma_range**2)
        out = np.empty((3, height, width), np.float32)
        for top in range(0, height, ROW_BLOCK):
            block = slice(top, min(top + ROW_BLOCK, height))
            guide_block = full[:, block]
            n = guide_block.shape[1]
            acc = np.zeros((3, n, width), np.float32)
            norm = np.zeros((n, width), np.float32)
            weight = np.empty((n, width), np.float32)
            diff = np.empty((n, width), np.float32)
            nearest = None
            for i in range(rows.shape[0]):
                row_samples = samples[:, rows[i, block]]  # (6, n, w)
                wy = row_weights[i, block, None]
                for j in range(cols.shape[0]):
                    tap = np.take(row_samples, cols[j], axis=2)  # (6, n, W)
                    if i == centre and j == centre:
                        nearest = tap[3:]
                    np.subtract(tap[0], guide_block[0], out=weight)
                    np.multiply(weight, weight, out=weight)
                    for c in (1, 2):
                        np.subtract(tap[c], guide_block[c], out=diff)
                        np.multiply(diff, diff, out=diff)
                        weight += diff
                    weight *= range_scale
                    np.exp(weight, out=weight)  # g(‖Ĩ_p − Ĩ_q‖)
                    weight *= wy  # f, separable: f_y · f_x, 0 for samples outside the image
                    weight *= col_weights[j]
                    norm += weight
                    for c in range(3):
                        np.multiply(tap[3 + c], weight, out=diff)
                        acc[c] += diff
            empty = norm <= 0
            np.maximum(norm, np.finfo(np.float32).tiny, out=norm)
            acc /= norm
            if empty.any():
                acc[:, empty] = nearest[:, empty]
            out[:, block] = acc
        return np.clip(out.transpose(1, 2, 0), 0, 1)

    def _taps(self, size: int, low_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Per axis: sample indices round(p↓)+d, d ∈ [−radius, radius] (clamped), and f's weights."""
        position = cell_coordinate(np.arange(size, dtype=np.float64), size, low_size)  # p↓
        offsets = np.arange(-self.radius, self.radius + 1)[:, None]
        index = np.floor(position + 0.5).astype(np.int64)[None, :] + offsets
        inside = (index >= 0) & (index < low_size)
        weights = np.exp(-0.5 * ((position[None, :] - index) / self.sigma_spatial) ** 2) * inside
        return np.clip(index, 0, low_size - 1), weights.astype(np.float32)

