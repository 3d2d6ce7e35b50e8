"""Bilateral Guided Upsampling (Chen, Adams, Wadhwa, Hasinoff 2016, ACM ToG 35(6), SIGGRAPH Asia).

Both models run the operator on a copy of the photo whose longer side is ``lowres_size``, fit an
*affine bilateral grid* γ (a 3x4 colour transform per grid vertex, indexed by x, y and luma) that
maps the low-res input to the low-res output, then slice γ at full resolution with the full-res
luma as guide and apply each pixel's 3x4 transform to the full-res input. Everything happens
inside ``predict``, so the harness times all of it (DESIGN.md §4).

Shared choices (both models):

- Luma guide 0.25 R + 0.5 G + 0.25 B (Halide apps/bgu ``gray_splat_loc``; the defaults of the
  ``color2luma`` inputs of google/bgu's Halide generator).
- Grid size ``round(h / cell_size) x round(w / cell_size) x luma_bins`` from the LOW-res input
  size h x w, cell_size 16 and 8 luma bins by default (google/bgu ``matlab/bguFit.m``, whose
  documented default is ``[round(input_height / 16), round(input_width / 16), 8, ...]``);
  rounding half away from zero like MATLAB's ``round``; at least 1 cell per side.
- Coordinates are CELL-CENTRED, the HDRNet convention of DESIGN.md §5 and
  ``benchmark.hdrnet.bilateral.bilateral_slice``: pixel (x, y) of a W x H image with luma l sits
  at gx = (x + 0.5)·gw/W − 0.5, gy = (y + 0.5)·gh/H − 0.5, gz = l·D − 0.5, clamped to the grid
  (edge replicate), tent weights. The fit (low-res pixels) and the slice (full-res pixels) use
  the same formula, so a grid fitted on the low-res pair is sampled at the same relative places
  at full resolution. google/bgu's MATLAB code is vertex-centred instead
  (gx = (x + 0.5)·(gw − 1)/W, gz = l·(D − 1)); with cell-centred coordinates the grid's cells
  tile the image exactly (16-px cells), and the slice agrees with ``bilateral_slice`` (tested).
- The slice is a row-batched 2-D ``grid_sample``: the grid is first interpolated along y for
  every output row (cheap: grid-sized), then each row's (x, luma) table is sampled bilinearly.
  Mathematically the trilinear slice of ``bilateral_slice`` (tested to 2e-5), but about 3x
  faster on a CPU (12 vs 39 ms for the sampler at 768x512, 1 thread): PyTorch's 2-D bilinear
  sampler is vectorised, its 3-D one is not.

``bgu`` (:class:`BilateralGuidedUpsample`) — the global least-squares fit (google/bgu
``matlab/bguFit.m``; paper: "we can either globally optimize this energy ..."). Unknowns: the 12
coefficients of every vertex. Energy, as built by bguFit.m (each term is a block of rows of a
sparse least-squares system whose rows are multiplied by the weights below, so the energy holds
their squares)::

    E(γ) = Σ_p Σ_c ( Σ_j slice(γ_cj; x_p, y_p, l_p) · Ĩ_pj − O_pc )²        data, Ĩ = [R, G, B, 1]
         + (λ_s · bx·bz/by)² ||∂y γ||² + (λ_s · by·bz/bx)² ||∂x γ||²           spatial smoothness
         + (λ_z · bx·by/bz²)² ||∂²z γ||²                                       intensity smoothness
         + (λ_id)² ||γ − γ_identity||²                                         optional, off by default

over all low-res pixels p; ∂x, ∂y are first differences between neighbouring vertices, ∂²z is
the second difference along luma with a first difference at each end (``buildSecondDerivZMatrix``),
all per coefficient. bx = w/gw, by = h/gh are the cell sizes in low-res pixels and bz = 1/D the
luma bin size; these factors are bguFit.m's (``A_deriv_y = (bin_size_x * bin_size_z /
bin_size_y) * lambda_spatial * ...``; the intensity block is scaled by the pixels per cell,
bx·by, over bz²), applied to the rows as there, so the energy holds their squares. Defaults are
bguFit.m's: λ_s = 1 (``DEFAULT_LAMBDA_SPATIAL``), λ_z = 4e-7
(``DEFAULT_SECOND_DERIVATIVE_LAMBDA_Z``, "about 0.01 for default bin sizes": 4e-7·16·16·64 ≈
0.0066). For a 256x171 low-res input (16x11x8 grid) the row weights are 0.129 (y), 0.121 (x)
and 0.0064 (luma), against 256 data rows per cell. With lambda_intensity > 0 the regulariser's
only null space is the constant grid, which the data term pins, so empty cells are defined
without a prior (filled in smoothly from their neighbours); ``lambda_identity`` (off by default,
as in bguFit.m) adds a pull towards the identity for ill-posed inputs.

The normal equations (JᵀJ + R) γ_c = Jᵀ O_c — one 4V x 4V system per output channel c, with the
same matrix for the three channels — are solved by conjugate gradients (``scipy.sparse.linalg.cg``)
with a block-Jacobi preconditioner (the inverse of each vertex's 4x4 diagonal block; "jacobi"
gives the plain diagonal), started from the identity grid. bguFit.m uses a direct solve
(``A \\ b``). After the solve, ``last_residual`` holds ||Mγ − b|| / ||b|| over the three
channels together (M = JᵀJ + R, b = JᵀO + prior) and ``last_iterations`` the CG iterations.

``bgu_fast`` (:class:`FastBilateralGuidedUpsample`) — the local fit (paper abstract: "or quickly
approximate a solution by locally fitting matrices and then enforcing smoothness by blurring in
grid space"; code: google/bgu ``src/halide`` and Halide ``apps/bgu/bgu_generator.cpp``): splat
the 4x4 Gram Σ ĨĨᵀ and the 4x3 Σ Ĩ Oᵀ of the low-res pixels into the grid, blur the grid with
the seven-tap 1/d³ kernel [1/64, 1/27, 1/8, 1, 1/8, 1/27, 1/64] of those implementations along
x, y and luma, add a ridge λ·I pulling each vertex towards the identity transform (Halide
apps/bgu: λ = 0.1, "1/10th of a sample"), solve one 4x4 system per vertex. Differences from
the Halide code: trilinear splatting on the cell-centred grid above (Halide: nearest cell in
x, y over a box of s_sigma² pixels, and luma rounded to the nearest of D + 1 levels) so that
both models share one grid and one slicer; the blur replicates edge cells in x and y (Halide:
the boundary-extended input is splatted into cells outside the image) and pads luma with zeros.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.ndimage import convolve1d
from scipy.sparse.linalg import cg

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.data.photos import fit_max_side
from benchmark.imaging.colour import bgu_luma
from benchmark.imaging.grid import cell_centres, splat_weights, tent
from benchmark.models.interface import Approximator, Operator

log = logging.getLogger(__name__)

# google/bgu src/halide and Halide apps/bgu: 1/d^3 taps, "an interpolating membrane" (Farbman).
BLUR_TAPS = (1.0, 1.0 / 8, 1.0 / 27, 1.0 / 64)
PRECONDITIONERS = ("block_jacobi", "jacobi")


# ---------------------------------------------------------------------------------------------
# Grid geometry, shared by the fit and the slice


def grid_shape(height: int, width: int, cell_size: int, luma_bins: int) -> tuple[int, int, int]:
    """(gh, gw, D) = (round(h / cell), round(w / cell), luma_bins), rounding half up, >= 1."""
    return (max(1, math.floor(height / cell_size + 0.5)), max(1, math.floor(width / cell_size + 0.5)), luma_bins)


def augmented(image: np.ndarray) -> np.ndarray:
    """(P, 4) float64 rows [R, G, B, 1] of an HxWx3 image, row-major pixel order."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    return np.concatenate([pixels, np.ones((pixels.shape[0], 1))], axis=1)


def data_matrix(image: np.ndarray, shape: tuple[int, int, int]) -> sp.csr_matrix:
    """J (P x 4V): row p slices the grid at pixel p and applies it, (J γ_c)_p = output channel c.

    Column 4·vertex + j holds coefficient j of the 3x4 transform's row c (γ_c: one column per
    output channel c, unknowns ordered (iy, ix, iz, j)); 32 entries per row: 8 vertices x 4.
    """
    vertices, weights = splat_weights(bgu_luma(image), shape)
    n_pixels = vertices.shape[0]
    columns = (4 * vertices[:, :, None] + np.arange(4)).reshape(-1)
    values = (weights[:, :, None] * augmented(image)[:, None, :]).reshape(-1)
    pointers = np.arange(0, 32 * n_pixels + 1, 32)
    return sp.csr_matrix((values, columns, pointers), shape=(n_pixels, 4 * shape[0] * shape[1] * shape[2]))


def identity_grid(shape: tuple[int, int, int]) -> np.ndarray:
    """(gh, gw, D, 3, 4) grid of identity transforms [I | 0]."""
    grid = np.zeros((*shape, 3, 4), np.float64)
    grid[..., [0, 1, 2], [0, 1, 2]] = 1.0
    return grid


def slice_and_apply(grid: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Slice a (gh, gw, D, 3, 4) affine grid at every pixel of ``image`` and apply it.

    Cell-centred trilinear sampling at (x, y, luma) with edge clamping — the same as
    ``bilateral_slice`` on the (1, 12, D, gh, gw) layout — done as a linear interpolation of
    the grid along y for every row (numpy), then one batched 2-D bilinear ``grid_sample`` over
    (x, luma) (torch); the 3x4 apply is a numpy einsum. Only the sampler runs in torch: on a
    busy 2-core machine torch's threaded elementwise ops were several times slower than numpy's.
    Returns float32 HxWx3 clipped to [0, 1].
    """
    gh, gw, depth = grid.shape[:3]
    height, width = image.shape[:2]
    pixels = np.ascontiguousarray(image, dtype=np.float32)
    guide = bgu_luma(pixels)
    y0, y1, fy = tent(cell_centres(height, gh), gh)
    table = grid.reshape(gh, gw, depth, 12).transpose(0, 3, 2, 1).astype(np.float32)  # gh, 12, D, gw
    upper = fy.astype(np.float32)[:, None, None, None]
    rows = table[y0] * (1 - upper) + table[y1] * upper  # H, 12, D, gw: the grid at each row's y
    xs = ((np.arange(width, dtype=np.float32) + 0.5) * (2.0 / width) - 1)[None, :]
    coords = np.stack(np.broadcast_arrays(xs, guide * 2 - 1), axis=-1)[:, None]  # H, 1, W, 2: gw, D
    sampled = F.grid_sample(
        torch.from_numpy(rows), torch.from_numpy(coords), mode="bilinear", padding_mode="border",
        align_corners=False,
    )  # H, 12, 1, W
    coeffs = sampled.numpy().reshape(height, 3, 4, width)  # H, c, j, W
    channels = np.ascontiguousarray(pixels.transpose(0, 2, 1))  # H, j, W
    out = np.einsum("hcjw,hjw->hcw", coeffs[:, :, :3], channels)
    out += coeffs[:, :, 3]
    return np.ascontiguousarray(np.clip(out, 0, 1, out=out).transpose(0, 2, 1))


# ---------------------------------------------------------------------------------------------
# Models


class _AffineGridUpsampler(Approximator):
    """Operator at low resolution → affine bilateral grid fit → full-resolution slice and apply."""

    needs_operator = True

    def __init__(self, name: str, lowres_size: int, cell_size: int, luma_bins: int) -> None:
        self.name = name
        self.lowres_size = settings.integer("model.lowres_size", lowres_size, 8)
        self.cell_size = settings.integer("model.cell_size", cell_size, 1)
        self.luma_bins = settings.integer("model.luma_bins", luma_bins, 2)
        self.last_timings: dict[str, float] = {}

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Area-downsample to ``lowres_size``, run the operator, fit the grid, slice at full res."""
        if operator is None:
            raise BenchmarkError(f"model {self.name} needs the task's reference operator")
        start = time.perf_counter()
        lowres = fit_max_side(image, self.lowres_size)
        target = np.asarray(operator(lowres))
        if target.shape != lowres.shape:
            raise BenchmarkError(f"model {self.name}: operator returned shape {target.shape} for input {lowres.shape}")
        operated = time.perf_counter()
        grid = self.fit_grid(lowres, target)
        fitted = time.perf_counter()
        out = slice_and_apply(grid, image)
        self.last_timings = {"operator_s": operated - start, "fit_s": fitted - operated,
                             "slice_s": time.perf_counter() - fitted}
        return out

    def fit_grid(self, lowres: np.ndarray, target: np.ndarray) -> np.ndarray:
        """(gh, gw, D, 3, 4) affine grid mapping ``lowres`` to ``target``."""
        raise NotImplementedError

    def grid_shape(self, lowres: np.ndarray) -> tuple[int, int, int]:
        return grid_shape(lowres.shape[0], lowres.shape[1], self.cell_size, self.luma_bins)


def _first_difference(n: int) -> sp.csr_matrix:
    """(n-1) x n: row i is x[i+1] - x[i]."""
    ones = np.ones(max(n - 1, 0))
    return sp.diags([-ones, ones], [0, 1], shape=(max(n - 1, 0), n), format="csr")


def _second_difference(n: int) -> sp.csr_matrix:
    """bguFit.m's luma term: x[1]-x[0]; x[i]-2x[i+1]+x[i+2] (n-2 rows); x[n-2]-x[n-1]."""
    if n < 2:
        return sp.csr_matrix((0, n))
    ones = np.ones(max(n - 2, 0))
    interior = sp.diags([ones, -2 * ones, ones], [0, 1, 2], shape=(n - 2, n))
    first = sp.csr_matrix(([-1.0, 1.0], ([0, 0], [0, 1])), shape=(1, n))
    last = sp.csr_matrix(([1.0, -1.0], ([0, 0], [n - 2, n - 1])), shape=(1, n))
    return sp.vstack([first, interior, last], format="csr")


class BilateralGuidedUpsample(_AffineGridUpsampler):
    """``bgu``: global sparse least-squares fit of the affine grid (Chen et al. 2016; bguFit.m)."""

    def __init__(
        self,
        name: str,
        lowres_size: int = 256,
        cell_size: int = 16,
        luma_bins: int = 8,
        lambda_spatial: float = 1.0,
        lambda_intensity: float = 4e-7,
        lambda_identity: float = 0.0,
        cg_tol: float = 1e-8,
        cg_max_iter: int = 2000,
        preconditioner: str = "block_jacobi",
    ) -> None:
        super().__init__(name, lowres_size, cell_size, luma_bins)
        self.lambda_spatial = settings.number("model.lambda_spatial", lambda_spatial, 0, above=True)
        self.lambda_intensity = settings.number("model.lambda_intensity", lambda_intensity, 0)
        self.lambda_identity = settings.number("model.lambda_identity", lambda_identity, 0)
        self.cg_tol = settings.number("model.cg_tol", cg_tol, 0, above=True, maximum=1.0, below=True)
        self.cg_max_iter = settings.integer("model.cg_max_iter", cg_max_iter, 1)
        settings.choice("model.preconditioner", preconditioner, PRECONDITIONERS)
        self.preconditioner = preconditioner
        self.last_residual: float | None = None
        self.last_iterations: tuple[int, ...] = ()
        self.last_converged: bool | None = None

    def regulariser(self, shape: tuple[int, int, int], height: int, width: int) -> sp.csr_matrix:
        """R = Σ (row weight)² DᵀD over the smoothness terms (and the identity prior), 4V x 4V."""
        gh, gw, depth = shape
        bin_x, bin_y, bin_z = width / gw, height / gh, 1.0 / depth
        eye = sp.identity
        d_y = sp.kron(_first_difference(gh), eye(gw * depth * 4), format="csr")
        d_x = sp.kron(eye(gh), sp.kron(_first_difference(gw), eye(depth * 4)), format="csr")
        d_zz = sp.kron(eye(gh * gw), sp.kron(_second_difference(depth), eye(4)), format="csr")
        w_y = self.lambda_spatial * bin_x * bin_z / bin_y
        w_x = self.lambda_spatial * bin_y * bin_z / bin_x
        w_z = self.lambda_intensity * bin_x * bin_y / bin_z**2
        regulariser = w_y**2 * (d_y.T @ d_y) + w_x**2 * (d_x.T @ d_x) + w_z**2 * (d_zz.T @ d_zz)
        if self.lambda_identity > 0:
            regulariser = regulariser + self.lambda_identity**2 * eye(gh * gw * depth * 4)
        return regulariser.tocsr()

    def normal_equations(self, lowres: np.ndarray, target: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """M = JᵀJ + R (4V x 4V) and the right-hand sides b = JᵀO (+ prior), 4V x 3."""
        shape = self.grid_shape(lowres)
        jacobian = data_matrix(lowres, shape)
        jacobian_t = jacobian.T.tocsr()
        matrix = (jacobian_t @ jacobian) + self.regulariser(shape, *lowres.shape[:2])
        rhs = jacobian_t @ target.reshape(-1, 3).astype(np.float64)
        if self.lambda_identity > 0:
            rhs += self.lambda_identity**2 * identity_grid(shape).transpose(0, 1, 2, 4, 3).reshape(-1, 3)
        return matrix.tocsr(), rhs

    def _preconditioner(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Inverse of M's diagonal (``jacobi``) or of its 4x4 per-vertex diagonal blocks, as a matrix.

        A jitter of 1e-12 x the mean diagonal keeps it defined for a vertex with neither data
        nor smoothness rows (only possible with lambda_intensity = 0 and a 1x1 spatial grid).
        """
        n = matrix.shape[0]
        diagonal = matrix.diagonal()
        jitter = 1e-12 * max(float(diagonal.mean()), 1e-300)
        if self.preconditioner == "jacobi":
            return sp.diags(1.0 / (diagonal + jitter), format="csr")
        blocks = matrix.tobsr(blocksize=(4, 4))
        block_rows = np.repeat(np.arange(n // 4), np.diff(blocks.indptr))
        on_diagonal = blocks.indices == block_rows
        diagonal_blocks = np.zeros((n // 4, 4, 4))
        diagonal_blocks[block_rows[on_diagonal]] = blocks.data[on_diagonal]
        inverse = np.linalg.inv(diagonal_blocks + jitter * np.eye(4))
        return sp.bsr_matrix((inverse, np.arange(n // 4), np.arange(n // 4 + 1)), shape=(n, n)).tocsr()

    def fit_grid(self, lowres: np.ndarray, target: np.ndarray) -> np.ndarray:
        shape = self.grid_shape(lowres)
        matrix, rhs = self.normal_equations(lowres, target)
        preconditioner = self._preconditioner(matrix)
        start = identity_grid(shape).transpose(0, 1, 2, 4, 3).reshape(-1, 3)  # (4V, c)
        solution = np.empty_like(rhs)
        iterations, converged = [], True
        for c in range(3):
            iterates: list[None] = []
            solution[:, c], info = cg(
                matrix, rhs[:, c], x0=start[:, c], rtol=self.cg_tol, atol=0.0, maxiter=self.cg_max_iter,
                M=preconditioner, callback=lambda _, seen=iterates: seen.append(None),
            )
            iterations.append(len(iterates))
            converged &= info == 0
        residual = float(np.linalg.norm(matrix @ solution - rhs))
        self.last_residual = residual / float(np.linalg.norm(rhs)) if residual > 0 else 0.0
        self.last_iterations = tuple(iterations)
        self.last_converged = bool(converged)
        if not converged:
            log.warning("%s: CG stopped after %d iterations at relative residual %.2e (cg_tol %.0e)",
                        self.name, max(iterations), self.last_residual, self.cg_tol)
        return solution.reshape(*shape, 4, 3).transpose(0, 1, 2, 4, 3)


class FastBilateralGuidedUpsample(_AffineGridUpsampler):
    """``bgu_fast``: local 4x4 fits per vertex on a blurred grid of moments (google/bgu Halide)."""

    def __init__(
        self,
        name: str,
        lowres_size: int = 256,
        cell_size: int = 16,
        luma_bins: int = 8,
        blur_radius: int = 3,
        lambda_ridge: float = 0.1,
    ) -> None:
        super().__init__(name, lowres_size, cell_size, luma_bins)
        self.blur_radius = settings.integer("model.blur_radius", blur_radius, 0, maximum=3)
        self.lambda_ridge = settings.number("model.lambda_ridge", lambda_ridge, 0, above=True)

    def fit_grid(self, lowres: np.ndarray, target: np.ndarray) -> np.ndarray:
        shape = self.grid_shape(lowres)
        n_vertices = shape[0] * shape[1] * shape[2]
        n_pixels = lowres.shape[0] * lowres.shape[1]
        vertices, weights = splat_weights(bgu_luma(lowres), shape)
        splat = sp.csr_matrix(
            (weights.ravel(), (vertices.ravel(), np.repeat(np.arange(n_pixels), 8))), shape=(n_vertices, n_pixels)
        )
        rows = augmented(lowres)
        upper = np.triu_indices(4)
        moments = np.concatenate(
            [
                rows[:, upper[0]] * rows[:, upper[1]],  # the 10 distinct entries of Ĩ Ĩᵀ
                (rows[:, :, None] * target.reshape(-1, 1, 3)).reshape(n_pixels, 12),  # Ĩ Oᵀ
            ],
            axis=1,
        )
        grid = (splat @ moments).reshape(*shape, 22)
        if self.blur_radius > 0:
            taps = np.asarray(BLUR_TAPS[: self.blur_radius + 1])
            kernel = np.concatenate([taps[:0:-1], taps])
            for axis, mode in ((0, "nearest"), (1, "nearest"), (2, "constant")):
                grid = convolve1d(grid, kernel, axis=axis, mode=mode, cval=0.0)
        gram = np.empty((n_vertices, 4, 4))
        flat = grid.reshape(n_vertices, 22)
        gram[:, upper[0], upper[1]] = flat[:, :10]
        gram[:, upper[1], upper[0]] = flat[:, :10]
        rhs = flat[:, 10:].reshape(n_vertices, 4, 3).copy()
        gram += self.lambda_ridge * np.eye(4)
        rhs[:, [0, 1, 2], [0, 1, 2]] += self.lambda_ridge  # ridge towards the identity [I | 0]
        solution = np.linalg.solve(gram, rhs)  # (V, 4, 3): A_vᵀ
        return solution.transpose(0, 2, 1).reshape(*shape, 3, 4)
