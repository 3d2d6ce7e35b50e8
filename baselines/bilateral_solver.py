"""Upsampling as bilateral-space optimisation: the Fast Bilateral Solver (Barron & Poole 2016, "The Fast
Bilateral Solver", ECCV; arXiv:1511.03296).

The operator runs at low resolution (longer side ``lowres_size``) like the bicubic baseline; its output,
upsampled bicubically, is the *target* t of an edge-aware least-squares problem whose affinities come
from the full-resolution input (the *reference*). The paper's problem (its pixel-space objective):

    minimise_x  λ/2 Σ_ij Ŵ_ij (x_i - x_j)^2  +  Σ_i c_i (x_i - t_i)^2

with Ŵ a bistochastised bilateral affinity and c a per-pixel confidence. It is solved in bilateral
space, as in the paper:

- Simplified bilateral grid: each pixel is hashed to ONE vertex by its rounded-down coordinates
  (x/σ_xy, y/σ_xy, l/σ_l, u/σ_uv, v/σ_uv) in YUV; S (vertices x pixels) is the 0/1 splat matrix,
  Sᵀ slices. The affinity is Ŵ ≈ Sᵀ B̄ S, with B̄ the sum over the 5 dimensions of a [1 2 1] blur between
  grid neighbours (paper: "B̄ = Σ_d B_d", the authors' code ``blur``: 2·dim·x + neighbours).
- Bistochastisation (Sinkhorn-like, paper §"bistochastization"): with m = S·1 (pixels per vertex) and
  n = 1, iterate n ← sqrt(n ∘ m / (B̄ n)); then m ← n ∘ (B̄ n) (so every row of Dm - Dn B̄ Dn sums to 0
  exactly). Ŵ = Sᵀ Dm⁻¹ Dn B̄ Dn Dm⁻¹ S is then (near) doubly stochastic.
- Bilateral-space problem: with x = Sᵀ y, minimise ½ yᵀ A y - bᵀ y, where
  A = λ (Dm - Dn B̄ Dn) + diag(S c) and b = S (c ∘ t); solution y = A⁻¹ b, output x̂ = Sᵀ y.
  A is symmetric positive (semi)definite and the loss quadratic, so we use preconditioned conjugate
  gradients with the paper's Jacobi preconditioner (diag(A), clamped below by ``a_diag_min`` as in the
  authors' code) and its initialisation y₀ = S(c ∘ t) / S(c) (paper §"preconditioning and
  initialization"). The three colour channels are solved together (one CG per channel, batched).

Upsampling choices (ours; the paper's upsampling experiment is depth super-resolution):
- Target: the low-res operator output upsampled bicubically, per RGB channel (``target: output``,
  the default). ``target: difference`` instead solves for the operator's *edit* op(low) - low and adds
  it to the full-resolution input (the solver then only has to upsample a smooth correction; an option,
  not the paper's setting).
- Confidence (``confidence: samples``, default): 1 at the full-resolution pixel nearest to each
  low-res sample centre, ``confidence_floor`` elsewhere. Only those pixels carry a measured value; the
  bicubic target in between is a guess, so it gets a small weight and the solver fills the gaps
  edge-awarely from the samples on the same side of an edge (the floor keeps vertices without a sample
  well-posed). ``confidence: uniform`` gives every pixel 1 (an edge-aware smoothing of the bicubic
  target).

Simplifications: hard (nearest-vertex) splatting and slicing, as in the paper's simplified grid, so
x̂ is constant on each vertex's pixels; no robust loss (the paper's §"robust optimization" is for
noisy targets). "YUV" is full-range JPEG YCbCr as in the authors' code (``rgb2yuv``), and the range
sigmas are in [0, 1] units (the authors' defaults σ_l = σ_uv = 4, σ_xy = 8, λ = 128 are in 0-255 units:
4/255 here).

Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((40, 60, 3), dtype=np.float32)
    >>> out = BilateralSolverUpsample("bilateral_solver", lowres_size=20).predict(image, lambda x: x)
    >>> out.shape, out.dtype
    ((40, 60, 3), dtype('float32'))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import sparse

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import INTERPOLATIONS, resize
from benchmark.data.photos import fit_max_side
from benchmark.models.interface import Approximator, Operator

GRID_DIMENSIONS = 5  # x, y, luma, u, v


class BilateralGrid:
    """The simplified bilateral grid of a reference image: splat, blur, slice (Barron & Poole 2016 §2)."""

    def __init__(self, reference: np.ndarray, sigma_xy: float, sigma_l: float, sigma_uv: float) -> None:
        height, width = reference.shape[:2]
        # The authors' rgb2yuv is JPEG YCbCr; OpenCV's YCrCb is the same up to the channel order.
        yuv = cv2.cvtColor(np.ascontiguousarray(reference, dtype=np.float32), cv2.COLOR_RGB2YCrCb)
        rows, cols = np.mgrid[:height, :width]
        coords = np.stack(
            [
                (cols / sigma_xy).astype(np.int64),
                (rows / sigma_xy).astype(np.int64),
                np.floor(yuv[..., 0] / sigma_l).astype(np.int64),
                np.floor(yuv[..., 1] / sigma_uv).astype(np.int64),
                np.floor(yuv[..., 2] / sigma_uv).astype(np.int64),
            ],
            axis=-1,
        ).reshape(-1, GRID_DIMENSIONS)
        coords -= coords.min(axis=0)
        extents = coords.max(axis=0) + 1
        # Exact mixed-radix key (no hash collisions): key = Σ_d coords_d · Π_{e>d} extents_e.
        strides = np.ones(GRID_DIMENSIONS, np.int64)
        for d in range(GRID_DIMENSIONS - 2, -1, -1):
            strides[d] = strides[d + 1] * extents[d + 1]
        keys = coords @ strides
        unique_keys, first, self.index = np.unique(keys, return_index=True, return_inverse=True)
        self.index = self.index.reshape(-1)
        self.n_pixels = keys.size
        self.n_vertices = unique_keys.size
        vertex_coords = coords[first]
        neighbour_rows, neighbour_cols = [], []
        for d in range(GRID_DIMENSIONS):
            for offset in (-1, 1):
                moved = vertex_coords[:, d] + offset
                inside = (moved >= 0) & (moved < extents[d])
                wanted = unique_keys + offset * strides[d]
                position = np.minimum(np.searchsorted(unique_keys, wanted), self.n_vertices - 1)
                found = inside & (unique_keys[position] == wanted)
                neighbour_rows.append(np.flatnonzero(found))
                neighbour_cols.append(position[found])
        rows_all, cols_all = np.concatenate(neighbour_rows), np.concatenate(neighbour_cols)
        neighbours = sparse.csr_matrix(
            (np.ones(rows_all.size), (rows_all, cols_all)), shape=(self.n_vertices, self.n_vertices)
        )
        # B̄ = Σ_d [1 2 1]_d: 2·dim on the diagonal plus one per grid neighbour (symmetric).
        self.blur_matrix = (neighbours + 2.0 * GRID_DIMENSIONS * sparse.identity(self.n_vertices, format="csr")).tocsr()

    def splat(self, values: np.ndarray) -> np.ndarray:
        """S · values: per-vertex sums of per-pixel values, (n_pixels[, C]) -> (n_vertices[, C])."""
        if values.ndim == 1:
            return np.bincount(self.index, weights=values, minlength=self.n_vertices)
        return np.stack([self.splat(values[:, c]) for c in range(values.shape[1])], axis=1)

    def blur(self, values: np.ndarray) -> np.ndarray:
        return self.blur_matrix @ values

    def slice(self, values: np.ndarray) -> np.ndarray:
        """Sᵀ · values: each pixel takes its vertex's value."""
        return values[self.index]


def bistochastize(grid: BilateralGrid, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's Sinkhorn-like normalisation: diagonals (n, m) of Dn and Dm."""
    pixels_per_vertex = grid.splat(np.ones(grid.n_pixels))
    n = np.ones(grid.n_vertices)
    for _ in range(iterations):
        n = np.sqrt(n * pixels_per_vertex / grid.blur(n))
    m = n * grid.blur(n)  # as the authors' code: exact zero row sums of Dm - Dn B̄ Dn at any iteration count
    return n, m


def normalized_affinity(grid: BilateralGrid, n: np.ndarray, m: np.ndarray) -> sparse.csr_matrix:
    """Ŵ = Sᵀ Dm⁻¹ Dn B̄ Dn Dm⁻¹ S, the (pixels x pixels) normalised affinity -- small images only (tests)."""
    splat = sparse.csr_matrix(
        (np.ones(grid.n_pixels), (grid.index, np.arange(grid.n_pixels))), shape=(grid.n_vertices, grid.n_pixels)
    )
    scale = sparse.diags(n / m)
    return (splat.T @ scale @ grid.blur_matrix @ scale @ splat).tocsr()


@dataclass
class SolveInfo:
    iterations: int
    relative_residual: np.ndarray  # per channel, ||b - A y|| / ||b|| at the end
    history: list[np.ndarray] = field(default_factory=list)  # the same after each iteration


def solve(
    grid: BilateralGrid,
    target: np.ndarray,
    confidence: np.ndarray,
    lam: float,
    max_iter: int = 25,
    tol: float = 1e-5,
    bistochastic_iters: int = 10,
    a_diag_min: float = 1e-5,
) -> tuple[np.ndarray, SolveInfo]:
    """The bilateral solver: (n_pixels, C) target and (n_pixels,) confidence -> (n_pixels, C) x̂ = Sᵀ y."""
    n, m = bistochastize(grid, bistochastic_iters)
    splat_confidence = grid.splat(confidence)
    smooth = sparse.diags(m) - sparse.diags(n) @ grid.blur_matrix @ sparse.diags(n)
    system = (lam * smooth + sparse.diags(splat_confidence)).tocsr()
    rhs = grid.splat(confidence[:, None] * target)
    inverse_diagonal = 1.0 / np.maximum(system.diagonal(), a_diag_min)
    with np.errstate(invalid="ignore", divide="ignore"):
        initial = np.where(splat_confidence[:, None] > 0, rhs / splat_confidence[:, None], 0.0)
    y, info = conjugate_gradient(system, rhs, initial, inverse_diagonal, max_iter, tol)
    return grid.slice(y), info


def conjugate_gradient(
    matrix: sparse.csr_matrix, rhs: np.ndarray, initial: np.ndarray, inverse_diagonal: np.ndarray,
    max_iter: int, tol: float,
) -> tuple[np.ndarray, SolveInfo]:
    """Jacobi-preconditioned CG on A Y = B for several right-hand sides (columns) at once.

    Stops when every column's relative residual ||b - A y|| / ||b|| is at most ``tol``, or after
    ``max_iter`` iterations.
    """
    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # column-wise; einsum: ~4x np.sum(a * b, 0)
        return np.einsum("ij,ij->j", a, b)

    y = initial.copy()
    residual = rhs - matrix @ y
    norm_b = np.sqrt(dot(rhs, rhs))
    norm_b[norm_b == 0] = 1.0
    z = inverse_diagonal[:, None] * residual
    direction = z.copy()
    rz = dot(residual, z)
    history = [np.sqrt(dot(residual, residual)) / norm_b]
    iterations = 0
    while iterations < max_iter and np.any(history[-1] > tol):
        product = matrix @ direction
        curvature = dot(direction, product)
        alpha = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
        y += alpha * direction
        residual -= alpha * product
        z = inverse_diagonal[:, None] * residual
        rz_next = dot(residual, z)
        beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
        direction = z + beta * direction
        rz = rz_next
        iterations += 1
        history.append(np.sqrt(dot(residual, residual)) / norm_b)
    return y, SolveInfo(iterations, history[-1], history)


def sample_confidence(shape: tuple[int, int], low_shape: tuple[int, int], floor: float) -> np.ndarray:
    """1 at the full-res pixels nearest to the low-res sample centres, ``floor`` elsewhere; (H, W)."""
    height, width = shape
    confidence = np.full((height, width), floor, np.float64)
    rows = np.clip(np.rint((np.arange(low_shape[0]) + 0.5) * height / low_shape[0] - 0.5), 0, height - 1).astype(int)
    cols = np.clip(np.rint((np.arange(low_shape[1]) + 0.5) * width / low_shape[1] - 0.5), 0, width - 1).astype(int)
    confidence[np.ix_(rows, cols)] = 1.0
    return confidence


class BilateralSolverUpsample(Approximator):
    """Operator at low resolution, then the bilateral solver guided by the full-res input; module doc."""

    needs_operator = True

    def __init__(
        self,
        name: str,
        lowres_size: int = 256,
        sigma_xy: float = 8.0,
        sigma_l: float = 0.0157,  # ≈ 4/255
        sigma_uv: float = 0.0157,  # ≈ 4/255
        lam: float = 128.0,
        confidence: str = "samples",
        confidence_floor: float = 0.01,
        target: str = "output",
        cg_max_iter: int = 25,
        cg_tol: float = 1e-5,
        bistochastic_iters: int = 10,
    ) -> None:
        self.lowres_size = settings.integer("model.lowres_size", lowres_size, 8)
        self.sigma_xy = settings.number("model.sigma_xy", sigma_xy, 0, above=True)
        self.sigma_l = settings.number("model.sigma_l", sigma_l, 0, above=True)
        self.sigma_uv = settings.number("model.sigma_uv", sigma_uv, 0, above=True)
        self.lam = settings.number("model.lam", lam, 0, above=True)
        self.confidence = settings.choice("model.confidence", confidence, ("samples", "uniform"))
        self.confidence_floor = settings.number("model.confidence_floor", confidence_floor, 0, above=True, maximum=1)
        self.target = settings.choice("model.target", target, ("output", "difference"))
        self.cg_max_iter = settings.integer("model.cg_max_iter", cg_max_iter, 0)
        self.cg_tol = settings.number("model.cg_tol", cg_tol, 0, above=True)
        self.bistochastic_iters = settings.integer("model.bistochastic_iters", bistochastic_iters, 0)
        self.name = name

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Downsample, operator at low res, bicubic target, bilateral solve guided by the input."""
        if operator is None:
            raise BenchmarkError(f"model {self.name} needs the task's reference operator")
        height, width = image.shape[:2]
        lowres = fit_max_side(image, self.lowres_size)
        low_out = np.asarray(operator(lowres), dtype=np.float32)
        if self.target == "output":
            target = resize(low_out, (height, width), "bicubic")
        else:
            target = cv2.resize(low_out - lowres, (width, height), interpolation=INTERPOLATIONS["bicubic"])
        if self.confidence == "samples":
            confidence = sample_confidence((height, width), lowres.shape[:2], self.confidence_floor)
        else:
            confidence = np.ones((height, width))
        grid = BilateralGrid(image, self.sigma_xy, self.sigma_l, self.sigma_uv)
        solution, _ = solve(
            grid, target.reshape(-1, 3).astype(np.float64), confidence.reshape(-1), self.lam,
            self.cg_max_iter, self.cg_tol, self.bistochastic_iters,
        )
        result = solution.reshape(height, width, 3).astype(np.float32)
        if self.target == "difference":
            result += image
        return np.clip(result, 0.0, 1.0)

