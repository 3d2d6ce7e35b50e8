"""Guided-filter upsampling: the Fast Guided Filter (He & Sun 2015) with the operator at low res.

He, Sun, Tang 2013, "Guided Image Filtering" (TPAMI 35(6)) model the output as a local linear
function of a guide I in every window ω_k of radius r. With a colour guide (their §3.5; eq. 19-21),
for each output channel

    a_k = (Σ_k + ε·U)⁻¹ · ((1/|ω|) Σ_{i∈ω_k} I_i·p_i − μ_k·p̄_k)      (eq. 19; Σ_k: 3x3 covariance of I in ω_k)
    b_k = p̄_k − a_kᵀ·μ_k                                            (eq. 20)
    q_i = ā_iᵀ·I_i + b̄_i,   ā_i, b̄_i the means of a_k, b_k over the windows containing i  (eq. 21)

and with a grey guide the scalar forms a_k = cov_k(I, p) / (σ_k² + ε), b_k = p̄_k − a_k·μ_k and
q_i = ā_i·I_i + b̄_i (eq. 5, 6, 8). He & Sun 2015, "Fast Guided Filter" (arXiv:1505.00996,
Algorithm 2), compute a and b and their window means on subsampled I and p, upsample ā and b̄
bilinearly, and apply q = ā·I + b̄ with the full-resolution guide. Here the subsampled p is the
operator's output on the area-downsampled input (longer side ``lowres_size``), and the
subsampled I is that downsampled input, so:

1. I↓ = area-downsample(I), p↓ = operator(I↓)                        [low resolution]
2. a, b per window of (2·radius + 1)² low-res pixels (eq. 19-20, or 5-6 for ``guide: gray``),
   then their window means ā, b̄ (eq. 21's averaging)                  [low resolution]
3. ā, b̄ bilinearly upsampled (cell-centred, cv2.INTER_LINEAR) and q = ā·I + b̄ with the
   full-resolution I (eq. 21 / 8)                                       [full resolution]

Windows are truncated at the image border and every mean divides by the number of pixels
actually in the window (the authors' ``boxfilter`` with N = boxfilter(ones)). Low-res statistics
are computed in float64 (covariances of near-flat windows cancel badly in float32).

With the colour guide an operator that is one global affine colour change p = M·I + c is
recovered exactly up to ε (a_k → Mᵀ row by row wherever Σ_k is well conditioned), which a grey
guide cannot do (it maps one luma value to each output channel). ε is in squared [0, 1] RGB units.
When the input is already no larger than ``lowres_size``, the operator's output is returned as is.
"""

from __future__ import annotations

import cv2
import numpy as np

from baselines.upsample import LowResUpsampler
from benchmark.core import settings
from benchmark.imaging.colour import rec601_luma

GUIDES = ("color", "gray")


class GuidedFilterUpsample(LowResUpsampler):
    """``guided_filter``: fast guided filter upsampling (He & Sun 2015, Algorithm 2)."""

    def __init__(
        self, name: str, lowres_size: int = 256, radius: int = 2, eps: float = 1e-4, guide: str = "color"
    ) -> None:
        super().__init__(name, lowres_size)
        self.radius = settings.integer("model.radius", radius, 1)  # low-res px
        self.eps = settings.number("model.eps", eps, 0, above=True)  # squared [0, 1] intensity units
        settings.choice("model.guide", guide, GUIDES)
        self.guide = guide

    def upsample(self, lowres_output: np.ndarray, lowres_guide: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """Steps 2-3 of the module doc: q at the size of ``guide`` from p↓ = ``lowres_output``."""
        coefficients = self.coefficients(lowres_output, lowres_guide)  # (h, w, C·3 + 3): ā then b̄
        height, width = guide.shape[:2]
        full = cv2.resize(coefficients, (width, height), interpolation=cv2.INTER_LINEAR)
        full_guide = self._guide(guide.astype(np.float32, copy=False))
        channels = full_guide.shape[2]
        a = full[..., : channels * 3].reshape(height, width, channels, 3)
        out = np.einsum("hwjc,hwj->hwc", a, full_guide)  # eq. 21 (8): q_i = ā_iᵀ·I_i + b̄_i
        out += full[..., channels * 3 :]
        return np.clip(out, 0, 1, out=out)

    def coefficients(self, lowres_output: np.ndarray, lowres_guide: np.ndarray) -> np.ndarray:
        """ā[j, c] (guide channel j, output channel c; flattened j-major) and b̄_c per low-res pixel.

        Per-pixel statistics are kept as separate contiguous (h, w) planes (numpy is slow on
        (h, w, 3, 3) arrays' small trailing axes); the 3x3 solve is a closed-form inverse.
        """
        g = list(np.ascontiguousarray(self._guide(lowres_guide).transpose(2, 0, 1), dtype=np.float64))
        p = list(np.ascontiguousarray(lowres_output.transpose(2, 0, 1), dtype=np.float64))
        channels = len(g)
        pairs = [(j, k) for j in range(channels) for k in range(j, channels)]
        count = self._box(np.ones(g[0].shape))

        def mean(plane: np.ndarray) -> np.ndarray:  # window mean; windows truncated at the border
            return self._box(plane) / count

        mean_i = [mean(plane) for plane in g]
        mean_p = [mean(plane) for plane in p]
        sigma = {  # Σ_k + ε·U, symmetric: sigma[j, k] for j <= k
            (j, k): mean(g[j] * g[k]) - mean_i[j] * mean_i[k] + (self.eps if j == k else 0.0) for j, k in pairs
        }
        covariance = [  # (1/|ω|) Σ_{i∈ω_k} I_i·p_i − μ_k·p̄_k, the right-hand side of eq. 19 (5)
            [mean(g[j] * p[c]) - mean_i[j] * mean_p[c] for c in range(3)] for j in range(channels)
        ]
        inverse = _symmetric_inverse(sigma, channels)
        a = [[sum(inverse[j][k] * covariance[k][c] for k in range(channels)) for c in range(3)] for j in range(channels)]
        b = [mean_p[c] - sum(a[j][c] * mean_i[j] for j in range(channels)) for c in range(3)]  # eq. 20 (6)
        planes = [mean(a[j][c]) for j in range(channels) for c in range(3)] + [mean(plane) for plane in b]
        return np.stack(planes, axis=2).astype(np.float32)  # ā, b̄: eq. 21's window means

    def _guide(self, image: np.ndarray) -> np.ndarray:
        if self.guide == "gray":
            return rec601_luma(image)[..., None]
        return image

    def _box(self, image: np.ndarray) -> np.ndarray:
        """Window sums of a 2-D plane over (2r+1)² pixels, truncated at the border (zeros outside)."""
        size = 2 * self.radius + 1
        return cv2.boxFilter(image, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)



def _symmetric_inverse(sigma: dict[tuple[int, int], np.ndarray], channels: int) -> list[list[np.ndarray]]:
    """Per-pixel inverse of a symmetric 1x1 or 3x3 matrix given as planes sigma[j, k], j <= k.

    3x3 by the adjugate (cofactors / determinant): Σ + ε·U is positive definite, so det > 0.
    """
    if channels == 1:
        return [[1.0 / sigma[0, 0]]]
    s00, s01, s02, s11, s12, s22 = (sigma[k] for k in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    scale = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02)
    c00, c01, c02, c11, c12, c22 = (c * scale for c in (c00, c01, c02, c11, c12, c22))
    return [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]
