"""HDRNet's full-resolution stage as fused, multi-threaded CPU kernels (numba).

Guide, trilinear slice and 3x4 affine apply in one pass over each image row, never materialising
the ``(B, 12, H, W)`` coefficient tensor of ``bilateral_slice`` + ``apply_affine``. Same maths as
those reference ops (cell-centred sampling, coordinates clamped to the grid, i.e.
``grid_sample(align_corners=False, padding_mode="border")``, DESIGN §5); tests/test_fused.py checks
forward and gradients against them.

Loop layout, chosen so every inner loop runs along x with SIMD and no gathers:
- per row, the grid is interpolated along y once: ``rowgrid[x_cell, z, k]`` (the x-cell axis is
  padded by one copy of the last cell so "the cell to the right" always exists);
- columns between two x-cell centres share their x cells (a *segment*), so inside a segment the
  4 x-neighbour coefficients are scalars and only the per-pixel weights vary;
- the z (luma) interpolation is written as a sum over bins with tent weights max(1 - |gz - d|, 0)
  (two are non-zero), over the bins that some pixel of a block of 64 columns of the segment
  touches: 24 multiply-adds per pixel and bin, vectorised;
- or, in inference on x86 with AVX2 / AVX-512 and 2-8 luma bins, each pixel looks its two bins
  up in per-segment tables (``_lookup_tables``, interpolated along y as they are read), guide,
  slice and apply of a block of pixels in registers (``simd_lookup``): 1080p, one thread, 16.0 ->
  10.3 ms (DESIGN §10);
- training on those CPUs (float32, the pointwise guide) slices by the same lookups, on planar
  batches (``_lookup_slice_apply_nchw``), and its backward (no image gradient) adds each
  segment's sums up in ``simd_backward`` (fixed-width blocks, the 24 sums reduced together);
- a training crop's rows read only the cells under the crop (``_used_segments``).
Rows run in parallel (numba threads = torch's thread count). The backward pass walks the same way
and accumulates the grid gradient per block of rows in private buffers, summed at the end in a fixed
order, so results do not depend on the thread count or on which thread ran which block.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange

from benchmark.core.buffers import OutputPool
from benchmark.core.runtime import match_numba_threads
from benchmark.hdrnet.bilateral import N_COEFFS, checked_window
from benchmark.hdrnet.simd_backward import segment_bin_sums
from benchmark.hdrnet.simd_lookup import (
    GUIDE_ALIVE_AT,
    GUIDE_HIDDEN,
    GUIDE_TANH_AT,
    LANES,
    MAX_BINS,
    TABLE,
    VECTORS,
    guided_lookup_block,
    planar_lookup_block,
)
from benchmark.imaging.grid import cell_coordinate

# backward: rows are split in about this many blocks (the same number per batch item, each block
# inside one item), each with a private gradient buffer of its item's grid, summed in a fixed order:
# a fixed split (not one per thread) makes the gradients the same for any thread count
_BACKWARD_BLOCKS = 16
_ROW_CHUNKS = 64  # inference's parallel loop: runs of rows, each thread's share split evenly
_OUTPUTS = OutputPool()  # inference outputs, reused once their caller drops them (benchmark.core.buffers)
# forward: a segment is sliced in blocks of this many columns, each over the luma bins its own pixels
# touch (DESIGN §10: 1080p, 2 threads, 8.52 -> 8.27 ms; 4000x3000 42.9 -> 41.0; same bits)
_SLICE_BLOCK = 64
# tanh(x) = p(x) / q(x) on [-7.905, 7.905], |error| < 4e-7 in float32 (Eigen's fast float tanh):
# numba has no vectorised exp, so the guide's sigmoid(s) = (1 + tanh(s / 2)) / 2 uses this.
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03,
)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_TANH_CONSTANTS = np.array((_TANH_CLAMP, *_TANH_P, *_TANH_Q), np.float32)  # as _guide_constants lays them out


_cell_coordinate = numba.njit(cache=True, inline="always")(cell_coordinate)  # the grid geometry, compiled


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _x_segments(
    width: int, left: int, full_width: int, cells: int, dtype_like: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per column the x weight, and the first column of each x cell's segment (length cells + 1).

    gx = (left + x + 0.5) * Wg / W - 0.5 clamped to [0, Wg - 1] (cell centres, DESIGN §5), for a
    crop of ``width`` columns starting at column ``left`` of a photo ``full_width`` wide.
    """
    weight = np.empty(width, dtype_like.dtype)
    start = np.full(cells + 1, width, np.int64)
    for x in range(width - 1, -1, -1):
        gx = min(max(_cell_coordinate(x + left, full_width, cells), 0.0), cells - 1.0)
        low = min(int(gx), cells - 1)
        weight[x] = gx - low
        start[low] = x
    for s in range(cells - 1, -1, -1):  # cells without columns (grid finer than the image)
        start[s] = min(start[s], start[s + 1])
    return weight, start


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _windowed_x_segments(window: np.ndarray, width: int, cells: int, dtype_like: np.ndarray) -> tuple:
    """``_x_segments`` of each batch item's crop window ``(top, left, full_height, full_width)``."""
    weights = np.empty((window.shape[0], width), dtype_like.dtype)
    starts = np.empty((window.shape[0], cells + 1), np.int64)
    for b in range(window.shape[0]):
        weights[b], starts[b] = _x_segments(width, window[b, 1], window[b, 3], cells, dtype_like)
    return weights, starts


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _y_cell(y: int, height: int, cells: int) -> tuple[int, int, float]:
    gy = min(max(_cell_coordinate(y, height, cells), 0.0), cells - 1.0)
    low = min(int(gy), cells - 1)
    return low, min(low + 1, cells - 1), gy - low


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _row_grid(cells: np.ndarray, b: int, y: int, height: int, first: int, stop: int, rowgrid: np.ndarray) -> None:
    """``rowgrid[gx, z, k]``: grid ``b`` (cell-major, see ``_cell_major``) interpolated to row ``y``,
    for x cells ``first`` to ``stop - 1`` (the others are left as they are)."""
    y0, y1, wy = _y_cell(y, height, cells.shape[1])
    wy_t = rowgrid.dtype.type(wy)
    per_cell = rowgrid[0].size
    low, high = cells[b, y0].ravel()[first * per_cell:], cells[b, y1].ravel()[first * per_cell:]
    out = rowgrid.ravel()[first * per_cell:stop * per_cell]
    for i in range(out.shape[0]):
        out[i] = low[i] + wy_t * (high[i] - low[i])


@numba.njit(cache=True, error_model="numpy")
def _used_segments(start: np.ndarray) -> tuple[int, int]:
    """The first and the last segment holding a column of the row (``start``: ``_x_segments``'s). A
    crop's row needs these segments' cells only (a 256-px crop of a 768-px photo: 6 of 16)."""
    width, first = start[start.shape[0] - 1], 0
    while start[first + 1] <= 0:
        first += 1
    last = first
    while start[last + 1] < width:
        last += 1
    return first, last


def _cell_major(grid: np.ndarray) -> np.ndarray:
    """``(B, 12, D, Hg, Wg)`` -> ``(B, Hg, Wg + 1, D, 12)``: each row of cells contiguous, the x axis
    padded with a copy of the last cell so "the cell to the right" always exists."""
    cells = grid.transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(np.concatenate([cells, cells[:, :, -1:]], axis=2))


def _grid_major(cells: np.ndarray) -> np.ndarray:
    """The adjoint of ``_cell_major``: gradients of the padded cells folded back, ``(B, 12, D, Hg, Wg)``."""
    folded = cells[:, :, :-1].copy()
    folded[:, :, -1] += cells[:, :, -1]
    return np.ascontiguousarray(folded.transpose(0, 4, 3, 1, 2))


@numba.njit(cache=True, error_model="numpy")
def _cell_tables(grid: np.ndarray, b: int, y: int, first: int, stop: int, tables: np.ndarray) -> None:
    """``tables[b, y, x]`` of ``_lookup_tables`` for x cells ``first`` to ``stop - 1``."""
    depth, cells_x = grid.shape[2], grid.shape[4]
    for x in range(first, stop):
        right = min(x + 1, cells_x - 1)
        for k in range(N_COEFFS):
            left_cell, change = tables[b, y, x, k], tables[b, y, x, N_COEFFS + k]
            for d in range(depth):
                left_cell[d] = grid[b, k, d, y, x]
                change[d] = grid[b, k, d, y, right] - grid[b, k, d, y, x]
            for d in range(depth - 1):
                left_cell[MAX_BINS + d] = left_cell[d + 1] - left_cell[d]
                change[MAX_BINS + d] = change[d + 1] - change[d]


@numba.njit(cache=True, error_model="numpy")
def _y_changes(tables: np.ndarray, b: int, y: int, first: int, stop: int, changes: np.ndarray) -> None:
    """``changes[b, y, x] = tables[b, y + 1, x] - tables[b, y, x]`` (0 at the last row of cells) for x
    cells ``first`` to ``stop - 1``: a row's tables are ``tables[b, y0] + wy changes[b, y0]``, its y
    cells and weight by ``_y_cell``, as ``_row_grid`` interpolates the grid (the same bits)."""
    below = min(y + 1, tables.shape[1] - 1)
    for x in range(first, stop):  # loops, not an array expression: numba would allocate a temporary per cell
        upper, lower, change = tables[b, y, x], tables[b, below, x], changes[b, y, x]
        for row in range(upper.shape[0]):
            for column in range(upper.shape[1]):
                change[row, column] = lower[row, column] - upper[row, column]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _lookup_tables(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(B, 12, D, Hg, Wg)`` -> the tables ``simd_lookup`` reads per x cell and their change to the
    next row of cells (``_y_changes``), each ``(B, Hg, Wg, 24, 16)``: rows 0-11 the cell's
    coefficients, rows 12-23 their change to the next x cell (0 at the last cell); each row the
    values at bins 0..D-1, then from column 8 the change to the next bin. Linear in the grid, so a
    row's tables are these interpolated along y like the grid itself."""
    batch, _, _, cells_y, cells_x = grid.shape
    tables = np.zeros((batch, cells_y, cells_x, 2 * N_COEFFS, TABLE), grid.dtype)
    changes = np.empty_like(tables)
    for item in prange(batch * cells_y):
        _cell_tables(grid, item // cells_y, item % cells_y, 0, cells_x, tables)
    for item in prange(batch * cells_y):
        _y_changes(tables, item // cells_y, item % cells_y, 0, cells_x, changes)
    return tables, changes


# The one place a float becomes an index: compiled without fastmath's no-NaN/no-inf assumptions, so
# the comparisons below hold for NaN and infinity too and no guide value can index out of the grid.
_FINITE_SAFE_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True, fastmath=_FINITE_SAFE_MATH, error_model="numpy")
def _clamped_z(guide: np.ndarray, depth: int, gz: np.ndarray) -> None:
    """gz = guide * D - 0.5 clamped to [0, D - 1]; a NaN guide gives 0 (the gradient through it is 0)."""
    top = gz.dtype.type(depth - 1)
    scale, half, zero = gz.dtype.type(depth), gz.dtype.type(0.5), gz.dtype.type(0)
    for x in range(guide.shape[0]):
        z = guide[x] * scale - half
        if not z > zero:  # also NaN
            z = zero
        elif z > top:  # also +inf
            z = top
        gz[x] = z


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _bin_range(seg_gz: np.ndarray, depth: int) -> tuple[int, int]:
    """The luma bins within 1 of some pixel's gz, the only ones with weight in the segment (a plain
    loop: it vectorises; ``ndarray.min`` / ``max`` do not: a 1920-pixel row at 2 bins, 4.6 -> 3.7 us)."""
    low = high = seg_gz[0]
    for x in range(seg_gz.shape[0]):
        low = min(low, seg_gz[x])
        high = max(high, seg_gz[x])
    return int(low), min(int(high) + 1, depth - 1)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _slice_apply_row(
    rowgrid: np.ndarray, start: np.ndarray, wx: np.ndarray, gz: np.ndarray,
    r: np.ndarray, g: np.ndarray, b: np.ndarray, out_r: np.ndarray, out_g: np.ndarray, out_b: np.ndarray,
) -> None:
    """One row: O_c = sum_j A[c, j] I_j + A[c, 3] with A sliced at (x, y, gz) (eq. 5-6)."""
    one, zero = out_r.dtype.type(1), out_r.dtype.type(0)
    out_r[:] = zero
    out_g[:] = zero
    out_b[:] = zero
    depth = rowgrid.shape[1]
    for s in range(start.shape[0] - 1):
        for lo in range(start[s], start[s + 1], _SLICE_BLOCK):
            hi = min(lo + _SLICE_BLOCK, start[s + 1])
            # views: a loop from 0 has no negative-index checks, so it vectorises
            seg_gz, seg_wx, seg_r, seg_g, seg_b = gz[lo:hi], wx[lo:hi], r[lo:hi], g[lo:hi], b[lo:hi]
            seg_out_r, seg_out_g, seg_out_b = out_r[lo:hi], out_g[lo:hi], out_b[lo:hi]
            z_lo, z_hi = _bin_range(seg_gz, depth)
            for z in range(z_lo, z_hi + 1):
                # coefficients at the left cell (p) and their change towards the right one (q): A = p + t q
                left, right = rowgrid[s, z], rowgrid[s + 1, z]
                p0, p1, p2, p3, p4, p5 = left[0], left[1], left[2], left[3], left[4], left[5]
                p6, p7, p8, p9, p10, p11 = left[6], left[7], left[8], left[9], left[10], left[11]
                q0, q1, q2, q3 = right[0] - p0, right[1] - p1, right[2] - p2, right[3] - p3
                q4, q5, q6, q7 = right[4] - p4, right[5] - p5, right[6] - p6, right[7] - p7
                q8, q9, q10, q11 = right[8] - p8, right[9] - p9, right[10] - p10, right[11] - p11
                d = rowgrid.dtype.type(z)
                for x in range(hi - lo):
                    w = max(one - abs(seg_gz[x] - d), zero)
                    t = seg_wx[x]
                    vr, vg, vb = seg_r[x], seg_g[x], seg_b[x]
                    # (p + t q) . v = p . v + t (q . v): the apply before the x blend, 8 operations per channel
                    seg_out_r[x] += w * (p0 * vr + p1 * vg + p2 * vb + p3 + t * (q0 * vr + q1 * vg + q2 * vb + q3))
                    seg_out_g[x] += w * (p4 * vr + p5 * vg + p6 * vb + p7 + t * (q4 * vr + q5 * vg + q6 * vb + q7))
                    seg_out_b[x] += w * (p8 * vr + p9 * vg + p10 * vb + p11 + t * (q8 * vr + q9 * vg + q10 * vb + q11))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _pointwise_guide_row(
    r: np.ndarray, g: np.ndarray, b: np.ndarray, weights: tuple, tanh_p: np.ndarray, tanh_q: np.ndarray,
    guide: np.ndarray,
) -> None:
    """guide = sigmoid(w2 . relu(W1 p + b1) + b2), the 3-16-1 pointwise guide of google/hdrnet, one row."""
    w1, b1, w2, b2 = weights
    zero, half = guide.dtype.type(0), guide.dtype.type(0.5)
    clamp = guide.dtype.type(_TANH_CLAMP)
    for x in range(r.shape[0]):
        total = b2[0]
        for i in range(GUIDE_HIDDEN):  # a constant trip count: unrolled, and x vectorised
            total += w2[i] * max(w1[i, 0] * r[x] + w1[i, 1] * g[x] + w1[i, 2] * b[x] + b1[i], zero)
        guide[x] = total
    for x in range(r.shape[0]):
        s = min(max(guide[x] * half, -clamp), clamp)
        s2 = s * s  # Horner, written out: a loop here would stop x from vectorising
        num = (((((tanh_p[0] * s2 + tanh_p[1]) * s2 + tanh_p[2]) * s2 + tanh_p[3]) * s2 + tanh_p[4]) * s2
               + tanh_p[5]) * s2 + tanh_p[6]
        den = ((tanh_q[0] * s2 + tanh_q[1]) * s2 + tanh_q[2]) * s2 + tanh_q[3]
        guide[x] = half + half * (s * num / den)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _slice_apply_backward_row(
    rowgrid: np.ndarray, start: np.ndarray, wx: np.ndarray, gz: np.ndarray, r: np.ndarray, g: np.ndarray,
    b: np.ndarray, go_r: np.ndarray, go_g: np.ndarray, go_b: np.ndarray,
    grad_rowgrid: np.ndarray, grad_gz: np.ndarray, gi_r: np.ndarray | None, gi_g: np.ndarray | None,
    gi_b: np.ndarray | None,
) -> None:
    """Adds one row's gradients to the row grid, to gz and to the image (through the affine; ``gi_*``
    None: no image gradient, and numba compiles a version without it)."""
    one, zero = gz.dtype.type(1), gz.dtype.type(0)
    depth = rowgrid.shape[1]
    for s in range(start.shape[0] - 1):
        lo, hi = start[s], start[s + 1]
        if hi == lo:
            continue
        seg_gz, seg_wx, seg_r, seg_g, seg_b = gz[lo:hi], wx[lo:hi], r[lo:hi], g[lo:hi], b[lo:hi]
        z_lo, z_hi = _bin_range(seg_gz, depth)
        seg_go_r, seg_go_g, seg_go_b = go_r[lo:hi], go_g[lo:hi], go_b[lo:hi]
        seg_grad_gz = grad_gz[lo:hi]
        if gi_r is not None:  # decided at compile time (numba prunes the branch on the argument's type)
            seg_gi_r, seg_gi_g, seg_gi_b = gi_r[lo:hi], gi_g[lo:hi], gi_b[lo:hi]
        for z in range(z_lo, z_hi + 1):
            p0, p1, p2, p3, p4, p5 = rowgrid[s, z, 0], rowgrid[s, z, 1], rowgrid[s, z, 2], rowgrid[s, z, 3], rowgrid[s, z, 4], rowgrid[s, z, 5]
            p6, p7, p8, p9, p10, p11 = rowgrid[s, z, 6], rowgrid[s, z, 7], rowgrid[s, z, 8], rowgrid[s, z, 9], rowgrid[s, z, 10], rowgrid[s, z, 11]
            q0, q1, q2, q3, q4, q5 = rowgrid[s + 1, z, 0], rowgrid[s + 1, z, 1], rowgrid[s + 1, z, 2], rowgrid[s + 1, z, 3], rowgrid[s + 1, z, 4], rowgrid[s + 1, z, 5]
            q6, q7, q8, q9, q10, q11 = rowgrid[s + 1, z, 6], rowgrid[s + 1, z, 7], rowgrid[s + 1, z, 8], rowgrid[s + 1, z, 9], rowgrid[s + 1, z, 10], rowgrid[s + 1, z, 11]
            d = gz.dtype.type(z)
            # gradients of the 12 coefficients of the left (l) and right (m) cells: sums over the pixels
            l0 = l1 = l2 = l3 = l4 = l5 = l6 = l7 = l8 = l9 = l10 = l11 = zero
            m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = m8 = m9 = m10 = m11 = zero
            for x in range(hi - lo):
                dist = seg_gz[x] - d
                w = max(one - abs(dist), zero)
                dw = (-one if dist > zero else one) if w > zero else zero
                t = seg_wx[x]
                a = w * t
                w0 = w - a
                vr, vg, vb = seg_r[x], seg_g[x], seg_b[x]
                er, eg, eb = seg_go_r[x], seg_go_g[x], seg_go_b[x]
                c0, c1, c2, c3 = p0 + t * (q0 - p0), p1 + t * (q1 - p1), p2 + t * (q2 - p2), p3 + t * (q3 - p3)
                c4, c5, c6, c7 = p4 + t * (q4 - p4), p5 + t * (q5 - p5), p6 + t * (q6 - p6), p7 + t * (q7 - p7)
                c8, c9, c10, c11 = p8 + t * (q8 - p8), p9 + t * (q9 - p9), p10 + t * (q10 - p10), p11 + t * (q11 - p11)
                seg_grad_gz[x] += dw * (
                    er * (c0 * vr + c1 * vg + c2 * vb + c3) + eg * (c4 * vr + c5 * vg + c6 * vb + c7)
                    + eb * (c8 * vr + c9 * vg + c10 * vb + c11)
                )
                if gi_r is not None:
                    seg_gi_r[x] += w * (er * c0 + eg * c4 + eb * c8)
                    seg_gi_g[x] += w * (er * c1 + eg * c5 + eb * c9)
                    seg_gi_b[x] += w * (er * c2 + eg * c6 + eb * c10)
                lr, lg, lb = w0 * er, w0 * eg, w0 * eb  # coefficient 4c + j collects go_c * v_j
                mr, mg, mb = a * er, a * eg, a * eb
                l0 += lr * vr
                l1 += lr * vg
                l2 += lr * vb
                l3 += lr
                l4 += lg * vr
                l5 += lg * vg
                l6 += lg * vb
                l7 += lg
                l8 += lb * vr
                l9 += lb * vg
                l10 += lb * vb
                l11 += lb
                m0 += mr * vr
                m1 += mr * vg
                m2 += mr * vb
                m3 += mr
                m4 += mg * vr
                m5 += mg * vg
                m6 += mg * vb
                m7 += mg
                m8 += mb * vr
                m9 += mb * vg
                m10 += mb * vb
                m11 += mb
            left, right = grad_rowgrid[s, z], grad_rowgrid[s + 1, z]
            left[0] += l0
            left[1] += l1
            left[2] += l2
            left[3] += l3
            left[4] += l4
            left[5] += l5
            left[6] += l6
            left[7] += l7
            left[8] += l8
            left[9] += l9
            left[10] += l10
            left[11] += l11
            right[0] += m0
            right[1] += m1
            right[2] += m2
            right[3] += m3
            right[4] += m4
            right[5] += m5
            right[6] += m6
            right[7] += m7
            right[8] += m8
            right[9] += m9
            right[10] += m10
            right[11] += m11


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _simd_slice_backward_row(rowgrid: np.ndarray, start: np.ndarray, rows: np.ndarray, grad_rowgrid: np.ndarray) -> None:
    """``_slice_apply_backward_row`` without an image gradient, each segment and bin by
    ``simd_backward.segment_bin_sums`` on ``rows``, the padded row as that reads it; d loss / d gz
    lands in row 7."""
    depth = rowgrid.shape[1]
    for s in range(start.shape[0] - 1):
        lo, hi = start[s], start[s + 1]
        if hi == lo:
            continue
        z_lo, z_hi = _bin_range(rows[6, lo:hi], depth)
        for z in range(z_lo, z_hi + 1):
            segment_bin_sums(rowgrid, s, z, rows, lo, hi, grad_rowgrid)


@numba.njit(cache=True, fastmath=_FINITE_SAFE_MATH, error_model="numpy")
def _guide_gradient_row(guide: np.ndarray, grad_gz: np.ndarray, depth: int, grad_guide: np.ndarray) -> None:
    """d gz / d guide = D where guide * D - 0.5 is inside the grid, 0 where it was clamped."""
    zero, half, scale = guide.dtype.type(0), guide.dtype.type(0.5), guide.dtype.type(depth)
    for x in range(guide.shape[0]):
        raw = guide[x] * scale - half
        grad_guide[x] = grad_gz[x] * scale if (raw > zero and raw < scale - 1) else zero


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _pointwise_guide_backward_row(
    r: np.ndarray, g: np.ndarray, b: np.ndarray, weights: tuple, guide: np.ndarray, grad_guide: np.ndarray,
    grad_weights: np.ndarray, gi_r: np.ndarray | None, gi_g: np.ndarray | None, gi_b: np.ndarray | None,
) -> None:
    """Back through sigmoid(w2 . relu(W1 p + b1) + b2): adds to ``grad_weights`` = [W1 (row-major,
    48), b1 (16), w2 (16), b2] and to the image gradient (``gi_*`` None: none); ``grad_guide`` is
    overwritten."""
    w1, b1, w2, _ = weights
    zero, one = guide.dtype.type(0), guide.dtype.type(1)
    n = GUIDE_HIDDEN
    for x in range(guide.shape[0]):  # d loss / d (pre-sigmoid sum)
        grad_guide[x] *= guide[x] * (one - guide[x])
    grad_weights[5 * n] += grad_guide.sum()
    for i in range(n):
        a0, a1, a2, bias, out_w = w1[i, 0], w1[i, 1], w1[i, 2], b1[i], w2[i]
        dw0 = dw1 = dw2 = db = dout = zero
        for x in range(guide.shape[0]):
            pre = a0 * r[x] + a1 * g[x] + a2 * b[x] + bias
            ds = grad_guide[x]
            dout += ds * max(pre, zero)
            dh = ds * out_w if pre > zero else zero
            dw0 += dh * r[x]
            dw1 += dh * g[x]
            dw2 += dh * b[x]
            db += dh
            if gi_r is not None:
                gi_r[x] += dh * a0
                gi_g[x] += dh * a1
                gi_b[x] += dh * a2
        grad_weights[3 * i] += dw0
        grad_weights[3 * i + 1] += dw1
        grad_weights[3 * i + 2] += dw2
        grad_weights[3 * n + i] += db
        grad_weights[4 * n + i] += dout


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _guided_slice_apply_hwc(
    image: np.ndarray, cells: np.ndarray, weights: tuple, tanh_p: np.ndarray, tanh_q: np.ndarray, clip: bool,
    eight_bit: bool, out: np.ndarray,
) -> None:
    """``eight_bit``: ``image`` and ``out`` are uint8 (read as value / 255; written clamped to
    [0, 1], x 255, rounded); otherwise both have the grid's float type. ``cells``: ``_cell_major``."""
    height, width = image.shape[0], image.shape[1]
    cells_x = cells.shape[2] - 1
    wx, start = _x_segments(width, 0, width, cells_x, cells)
    zero, one = cells.dtype.type(0), cells.dtype.type(1)
    scale = cells.dtype.type(1 / 255) if eight_bit else one
    levels, half = cells.dtype.type(255), cells.dtype.type(0.5)
    for y in prange(height):
        rowgrid = np.empty(cells.shape[2:], cells.dtype)
        rows = np.empty((8, width), cells.dtype)  # r, g, b, guide, gz, out r, g, b
        _row_grid(cells, 0, y, height, 0, rowgrid.shape[0], rowgrid)
        # a row of interleaved pixels as one flat array: a stride-3 index vectorises (shuffles), an
        # [x, c] index does not (1080p, one thread: reading 2.8 -> 1.3 ms, writing 2.6 -> 1.6 ms)
        r, g, b, pixels = rows[0], rows[1], rows[2], image[y].reshape(-1)
        for x in range(width):
            r[x], g[x], b[x] = pixels[3 * x] * scale, pixels[3 * x + 1] * scale, pixels[3 * x + 2] * scale
        _pointwise_guide_row(rows[0], rows[1], rows[2], weights, tanh_p, tanh_q, rows[3])
        _clamped_z(rows[3], cells.shape[3], rows[4])
        _slice_apply_row(rowgrid, start, wx, rows[4], rows[0], rows[1], rows[2], rows[5], rows[6], rows[7])
        out_r, out_g, out_b, target = rows[5], rows[6], rows[7], out[y].reshape(-1)
        if eight_bit:  # NaN (from a NaN weight) compares false both ways: it becomes 0
            for x in range(width):
                target[3 * x] = np.uint8(min(max(out_r[x], zero), one) * levels + half)
                target[3 * x + 1] = np.uint8(min(max(out_g[x], zero), one) * levels + half)
                target[3 * x + 2] = np.uint8(min(max(out_b[x], zero), one) * levels + half)
        elif clip:
            for x in range(width):
                target[3 * x] = min(max(out_r[x], zero), one)
                target[3 * x + 1] = min(max(out_g[x], zero), one)
                target[3 * x + 2] = min(max(out_b[x], zero), one)
        else:
            for x in range(width):
                target[3 * x], target[3 * x + 1], target[3 * x + 2] = out_r[x], out_g[x], out_b[x]


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _lookup_guided_slice_apply_hwc(
    image: np.ndarray, tables: np.ndarray, y_changes: np.ndarray, guide: np.ndarray, depth: int, clip: bool,
    out: np.ndarray,
) -> None:
    """``_guided_slice_apply_hwc`` with every block of ``VECTORS`` x ``LANES`` pixels guided, sliced and
    applied in registers (``simd_lookup.guided_lookup_block``); ``tables``, ``y_changes``:
    ``_lookup_tables`` of a grid of ``depth`` luma bins, ``guide``: ``_guide_constants``."""
    height, width = image.shape[0], image.shape[1]
    block = VECTORS * LANES
    wx = np.zeros(width + block, tables.dtype)  # blocks read x weights past the row's end
    wx[:width], start = _x_segments(width, 0, width, tables.shape[2], tables)
    chunks = min(height, _ROW_CHUNKS)
    for chunk in prange(chunks):  # runs of rows, one tail buffer each (DESIGN §10)
        tail = np.zeros((2, 3 * block), image.dtype)  # a row's last, partial block: in, out
        for y in range(chunk * height // chunks, (chunk + 1) * height // chunks):
            y0, _, wy = _y_cell(y, height, tables.shape[1])
            row_tables, row_changes, row_wy = tables[0, y0], y_changes[0, y0], tables.dtype.type(wy)
            pixels, target = image[y].reshape(-1), out[y].reshape(-1)
            segment = 0
            for x in range(0, width, block):
                while start[segment + 1] <= x:  # the segment holding column x (empty ones skipped)
                    segment += 1
                if x + block <= width:
                    guided_lookup_block(row_tables, row_changes, row_wy, start, segment, wx, x, pixels, x, target, x,
                                        guide, depth - 2, clip)
                else:
                    count = 3 * (width - x)
                    tail[0, :count] = pixels[3 * x:]
                    guided_lookup_block(row_tables, row_changes, row_wy, start, segment, wx, x, tail[0], 0, tail[1], 0,
                                        guide, depth - 2, clip)
                    target[3 * x:] = tail[1, :count]


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _slice_apply_nchw(
    cells: np.ndarray, image: np.ndarray, guide: np.ndarray, pointwise: bool, weights: tuple,
    tanh_p: np.ndarray, tanh_q: np.ndarray, window: np.ndarray, out: np.ndarray,
) -> None:
    """Batched forward; the guide ``(B, H, W)`` is read, or computed into it (``pointwise``: kept
    for the backward pass, which then need not compute it again); item ``b`` is the crop
    ``window[b] = (top, left, full_height, full_width)`` of the photo its grid was made from."""
    batch, height, width = image.shape[0], image.shape[2], image.shape[3]
    cells_x, depth = cells.shape[2] - 1, cells.shape[3]
    wxs, starts = _windowed_x_segments(window, width, cells_x, image)
    for row in prange(batch * height):
        b, y = row // height, row % height
        rowgrid = np.empty((cells_x + 1, depth, N_COEFFS), image.dtype)
        gz = np.empty(width, image.dtype)
        r, g, bl = image[b, 0, y], image[b, 1, y], image[b, 2, y]
        if pointwise:
            _pointwise_guide_row(r, g, bl, weights, tanh_p, tanh_q, guide[b, y])
        first, last = _used_segments(starts[b])
        _row_grid(cells, b, window[b, 0] + y, window[b, 2], first, last + 2, rowgrid)  # segment s: cells s, s + 1
        _clamped_z(guide[b, y], depth, gz)
        _slice_apply_row(rowgrid, starts[b], wxs[b], gz, r, g, bl, out[b, 0, y], out[b, 1, y], out[b, 2, y])


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _lookup_slice_apply_nchw(
    grid: np.ndarray, image: np.ndarray, guide_constants: np.ndarray, window: np.ndarray, out: np.ndarray,
    guide: np.ndarray,
) -> None:
    """``_slice_apply_nchw`` with the pointwise guide in float32, each block of ``VECTORS`` x
    ``LANES`` pixels by ``simd_lookup.planar_lookup_block`` (``grid (B, 12, D, Hg, Wg)``;
    ``guide_constants``: ``_guide_constants``); each pixel's guide value is written to ``guide
    (B, H, W)``."""
    batch, height, width = image.shape[0], image.shape[2], image.shape[3]
    cells_y, cells_x, block = grid.shape[3], grid.shape[4], VECTORS * LANES
    wxs, starts = _windowed_x_segments(window, width, cells_x, image)
    padded = np.zeros((batch, width + block), image.dtype)  # blocks read x weights past the row's end
    padded[:, :width] = wxs
    # the tables of the cells each crop reads only (a 256-px crop of a 768 x 512 photo: about a
    # quarter); the others, and the bins past D, are never read
    tables = np.empty((batch, cells_y, cells_x, 2 * N_COEFFS, TABLE), image.dtype)
    y_changes = np.empty_like(tables)
    # per crop: its first and last segment, and the first and last upper row of cells of its rows
    used = np.empty((batch, 4), np.int64)
    for b in range(batch):
        used[b, 0], used[b, 1] = _used_segments(starts[b])
        top, full_height = window[b, 0], window[b, 2]
        used[b, 2], used[b, 3] = _y_cell(top, full_height, cells_y)[0], _y_cell(top + height - 1, full_height, cells_y)[0]
    for item in prange(batch * cells_y):
        b, y = item // cells_y, item % cells_y
        if used[b, 2] <= y <= min(used[b, 3] + 1, cells_y - 1):  # the rows' upper cells and the ones below
            _cell_tables(grid, b, y, used[b, 0], used[b, 1] + 1, tables)
    for item in prange(batch * cells_y):
        b, y = item // cells_y, item % cells_y
        if used[b, 2] <= y <= used[b, 3]:
            _y_changes(tables, b, y, used[b, 0], used[b, 1] + 1, y_changes)
    for row in prange(batch * height):
        b, y = row // height, row % height
        y0, _, wy = _y_cell(window[b, 0] + y, window[b, 2], cells_y)
        row_tables, row_changes, row_wy = tables[b, y0], y_changes[b, y0], tables.dtype.type(wy)
        start, wx = starts[b], padded[b]
        segment = used[b, 0]
        for x in range(0, width, block):
            while start[segment + 1] <= x:  # the segment holding column x (empty ones skipped)
                segment += 1
            if x + block <= width:
                planar_lookup_block(row_tables, row_changes, row_wy, start, segment, wx, x, image, b, y, x, out, guide,
                                    guide_constants, grid.shape[2] - 2)
            else:  # the row's last, partial block, through a padded copy
                count = width - x
                tail_in, tail_out = np.zeros((1, 3, 1, block), image.dtype), np.empty((1, 3, 1, block), image.dtype)
                tail_guide = np.empty((1, 1, block), image.dtype)
                tail_in[0, :, 0, :count] = image[b, :, y, x:]
                planar_lookup_block(row_tables, row_changes, row_wy, start, segment, wx, x, tail_in, 0, 0, 0, tail_out,
                                    tail_guide, guide_constants, grid.shape[2] - 2)
                out[b, :, y, x:] = tail_out[0, :, 0, :count]
                guide[b, y, x:] = tail_guide[0, 0, :count]


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _slice_apply_backward_nchw(
    cells: np.ndarray, image: np.ndarray, guide: np.ndarray, pointwise: bool, weights: tuple,
    window: np.ndarray, grad_out: np.ndarray, grad_cell_blocks: np.ndarray, grad_weight_blocks: np.ndarray,
    grad_guide: np.ndarray, grad_image: np.ndarray | None, simd: bool,
) -> None:
    """Gradients of ``_slice_apply_nchw`` (``guide`` as it left it; ``grad_image`` None: the image
    needs none, and numba compiles a version that computes none; ``simd``: the slice's gradients
    by ``simd_backward``, for float32 without an image gradient). Each item's rows are split in
    ``parts = grad_cell_blocks.shape[1]`` blocks, block ``(b, part)`` adding its (cell-major) grid
    gradient into ``grad_cell_blocks[b, part]`` and its guide-weight gradient into
    ``grad_weight_blocks[b * parts + part]`` (zeroed; the caller sums them), so no two threads write
    the same cell."""
    batch, height, width = image.shape[0], image.shape[2], image.shape[3]
    cells_y, cells_x, depth = cells.shape[1], cells.shape[2] - 1, cells.shape[3]
    parts = grad_cell_blocks.shape[1]
    wxs, starts = _windowed_x_segments(window, width, cells_x, image)
    for block in prange(batch * parts):
        b, part = block // parts, block % parts
        rowgrid = np.empty((cells_x + 1, depth, N_COEFFS), image.dtype)
        grad_rowgrid = np.empty((cells_x + 1, depth, N_COEFFS), image.dtype)
        gz = np.empty(width, image.dtype)
        # simd: the row padded (r, g, b, dL/dO r, g, b, gz, d loss / d gz, x weight; padding 0)
        rows = np.zeros((9, width + LANES), image.dtype) if simd else np.zeros((9, 1), image.dtype)
        if simd:
            rows[8, :width] = wxs[b]  # the block's rows are all of item b
        first, last = _used_segments(starts[b])
        stop, per_cell = last + 2, depth * N_COEFFS  # segment s: cells s, s + 1
        for y in range(part * height // parts, (part + 1) * height // parts):
            r, g, bl, guide_row = image[b, 0, y], image[b, 1, y], image[b, 2, y], guide[b, y]
            if grad_image is None:  # pruned at compile time: the argument's type decides
                gi_r = gi_g = gi_b = None
            else:
                gi_r, gi_g, gi_b = grad_image[b, 0, y], grad_image[b, 1, y], grad_image[b, 2, y]
                gi_r[:] = 0
                gi_g[:] = 0
                gi_b[:] = 0
            grad_guide_row = grad_guide[b, y]
            full_y, full_height = window[b, 0] + y, window[b, 2]
            _row_grid(cells, b, full_y, full_height, first, stop, rowgrid)
            _clamped_z(guide_row, depth, gz)
            grad_rowgrid[first:stop] = 0
            if simd:
                rows[0, :width], rows[1, :width], rows[2, :width] = r, g, bl
                rows[3, :width], rows[4, :width], rows[5, :width] = grad_out[b, 0, y], grad_out[b, 1, y], grad_out[b, 2, y]
                rows[6, :width], rows[7, :width] = gz, 0
                _simd_slice_backward_row(rowgrid, starts[b], rows, grad_rowgrid)
                grad_guide_row[:] = rows[7, :width]
            else:
                grad_guide_row[:] = 0
                _slice_apply_backward_row(
                    rowgrid, starts[b], wxs[b], gz, r, g, bl, grad_out[b, 0, y], grad_out[b, 1, y], grad_out[b, 2, y],
                    grad_rowgrid, grad_guide_row, gi_r, gi_g, gi_b,
                )
            _guide_gradient_row(guide_row, grad_guide_row, depth, grad_guide_row)
            if pointwise:
                _pointwise_guide_backward_row(
                    r, g, bl, weights, guide_row, grad_guide_row, grad_weight_blocks[block], gi_r, gi_g, gi_b
                )
            # rowgrid = cells[y0] + wy (cells[y1] - cells[y0]): spread its gradient back
            y0, y1, wy = _y_cell(full_y, full_height, cells_y)
            wy_t = image.dtype.type(wy)
            lo, hi = first * per_cell, stop * per_cell  # the used cells, flat
            low, high = grad_cell_blocks[b, part, y0].ravel()[lo:hi], grad_cell_blocks[b, part, y1].ravel()[lo:hi]
            flat = grad_rowgrid.ravel()[lo:hi]
            for i in range(flat.shape[0]):
                low[i] += flat[i] - wy_t * flat[i]
                high[i] += wy_t * flat[i]


def _tanh_coefficients(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    return np.array(_TANH_P, dtype), np.array(_TANH_Q, dtype)


@numba.njit(cache=True, error_model="numpy")
def _guide_constants(weights: tuple) -> np.ndarray:
    """What ``simd_lookup.guided_lookup_block`` reads: W1 (row-major), b1, w2, b2 of the 3-16-1
    guide, the rational tanh's clamp, numerator and denominator coefficients, then per hidden unit
    1 where its pre-activation can be positive for some pixel in [0, 1]^3, else 0 (109 float32).

    A unit with 0 is dead for such pixels (its ReLU gives exactly 0), so blocks whose pixels all
    lie in [0, 1] skip it: 5-6 of the 16 in each shipped checkpoint. Compiled: one call where
    numpy took six, each ~10x slower in a training step than in a loop (72 -> 23-31 us, DESIGN §10).
    """
    w1, b1, w2, b2 = weights
    hidden = GUIDE_HIDDEN
    constants = np.empty(GUIDE_ALIVE_AT + hidden, np.float32)
    for unit in range(hidden):
        positive = w1.dtype.type(0)
        for channel in range(3):
            constants[3 * unit + channel] = w1[unit, channel]
            positive += max(w1[unit, channel], 0)
        constants[3 * hidden + unit], constants[4 * hidden + unit] = b1[unit], w2[unit]
        constants[GUIDE_ALIVE_AT + unit] = b1[unit] + positive > 0  # W1 p + b1 is linear: its maximum on the cube is at a corner
    constants[5 * hidden] = b2[0]
    constants[GUIDE_TANH_AT:GUIDE_ALIVE_AT] = _TANH_CONSTANTS  # numba refuses a slice of another length
    return constants


def slices_by_lookup(depth: int) -> bool:
    """Whether a grid of ``depth`` luma bins is sliced by the SIMD block (inference:
    ``_lookup_guided_slice_apply_hwc``; training's float32 forward with the pointwise guide:
    ``_lookup_slice_apply_nchw``) rather than the portable sweep."""
    return LANES > 0 and 2 <= depth <= MAX_BINS


def check_output(out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """A caller's ``out`` must be a C-contiguous array of the output's shape and dtype."""
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}")


def guided_slice_apply(
    image: np.ndarray, grid: np.ndarray, hidden_weight: np.ndarray, hidden_bias: np.ndarray,
    out_weight: np.ndarray, out_bias: np.ndarray, clip: bool = True, out: np.ndarray | None = None,
) -> np.ndarray:
    """Inference, fully fused: ``image (H, W, 3)`` + one ``(1, 12, D, Hg, Wg)`` grid -> ``(H, W, 3)``.

    ``image`` is float32 in [0, 1], or uint8 (8-bit in, 8-bit out: read as value / 255, the output
    clamped, x 255 and rounded; no float copy of the photo is made). The guide is the pointwise
    3-16-1 network (weights ``(16, 3)``, ``(16,)``, ``(1, 16)``, ``(1,)``); ``clip`` clamps a float
    output to [0, 1] as the harness's predict does; ``out`` (same shape and dtype as ``image``) is
    written instead of a new array (a video pipeline reuses its buffers); without it, an output an
    earlier call returned and its caller has dropped may be written again (``OutputPool``).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.float32, np.uint8):
        raise ValueError(f"image must be float32 or uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if grid.ndim != 5 or grid.shape[:2] != (1, N_COEFFS):
        raise ValueError(f"grid must be (1, 12, D, Hg, Wg), got shape {grid.shape}")
    if hidden_weight.shape != (GUIDE_HIDDEN, 3):
        raise ValueError(f"the fused guide is 3-{GUIDE_HIDDEN}-1; hidden weights have shape {hidden_weight.shape}")
    image = np.ascontiguousarray(image)  # the kernel reads each row as one flat array
    match_numba_threads()
    w1, b1, w2, b2 = (np.ascontiguousarray(w, np.float32) for w in (hidden_weight, hidden_bias, out_weight, out_bias))
    if out is None:
        out = _OUTPUTS.empty(image.shape, image.dtype)
    else:
        check_output(out, image.shape, image.dtype)
    weights = (w1, b1.reshape(-1), w2.reshape(-1), b2.reshape(-1))
    grid = np.asarray(grid, np.float32)
    depth = grid.shape[2]
    if slices_by_lookup(depth):
        _lookup_guided_slice_apply_hwc(image, *_lookup_tables(grid), _guide_constants(weights), depth, clip, out)
    else:
        _guided_slice_apply_hwc(
            image, _cell_major(grid), weights, *_tanh_coefficients(np.float32), clip, image.dtype == np.uint8, out
        )
    return out


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().contiguous().numpy()


def _guide_weights(weights: tuple[torch.Tensor, ...] | None, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """The pointwise guide's weights as the kernels read them (W1, b1, w2, b2 flat); zeros when the
    guide is given instead (the kernels then never read them)."""
    if weights is None:
        unused = np.zeros(GUIDE_HIDDEN, dtype)
        return np.zeros((GUIDE_HIDDEN, 3), dtype), unused, unused, unused[:1]
    w1, b1, w2, b2 = (_array(w) for w in weights)
    return w1, b1, w2.reshape(-1), b2.reshape(-1)


class _FusedFullRes(torch.autograd.Function):
    """Full-res stage with a backward. The guide is given (``guide``), or it is the pointwise
    3-16-1 net computed inside the kernel from its weights (``guide`` None); either way the forward
    pass keeps the guide for the backward pass."""

    @staticmethod
    def forward(ctx, grid, image, guide, w1, b1, w2, b2, window):  # type: ignore[override]
        pointwise = guide is None
        image_array = _array(image)
        guide_array = np.empty((image.shape[0], *image.shape[2:]), image_array.dtype) if pointwise else _array(guide)
        weights = (w1, b1, w2, b2) if pointwise else None
        ctx.pointwise = pointwise
        ctx.window = window.numpy().astype(np.int64)
        out = torch.empty(image.shape, dtype=image.dtype)
        match_numba_threads()
        guide_weights = _guide_weights(weights, image_array.dtype)
        if pointwise and image_array.dtype == np.float32 and slices_by_lookup(grid.shape[2]):
            _lookup_slice_apply_nchw(_array(grid), image_array, _guide_constants(guide_weights), ctx.window,
                                     out.numpy(), guide_array)
        else:
            _slice_apply_nchw(_cell_major(_array(grid)), image_array, guide_array, pointwise, guide_weights,
                              *_tanh_coefficients(image_array.dtype), ctx.window, out.numpy())
        ctx.save_for_backward(grid, image, torch.from_numpy(guide_array) if pointwise else guide, *(weights or ()))
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        grid, image, guide, *weights = ctx.saved_tensors
        cells, image_array = _cell_major(_array(grid)), _array(image)
        batch, height, width = image.shape[0], image.shape[2], image.shape[3]
        parts = max(1, min(_BACKWARD_BLOCKS // batch, height))
        dtype = image_array.dtype
        grad_cells = np.zeros((batch, parts, *cells.shape[1:]), dtype)
        grad_weights = np.zeros((batch * parts, 5 * GUIDE_HIDDEN + 1), dtype)
        grad_guide = np.empty((batch, height, width), dtype)
        grad_image = np.empty(image.shape, dtype) if ctx.needs_input_grad[1] else None
        match_numba_threads()
        _slice_apply_backward_nchw(
            cells, image_array, _array(guide), ctx.pointwise, _guide_weights(tuple(weights) if ctx.pointwise else None, dtype), ctx.window,
            grad_out.contiguous().numpy(), grad_cells, grad_weights, grad_guide, grad_image,
            LANES > 0 and dtype == np.float32 and grad_image is None,
        )
        grad_grid = torch.from_numpy(_grid_major(grad_cells.sum(axis=1)))
        grad_image = None if grad_image is None else torch.from_numpy(grad_image)
        if not ctx.pointwise:
            return grad_grid, grad_image, torch.from_numpy(grad_guide), None, None, None, None, None
        n = GUIDE_HIDDEN
        summed = torch.from_numpy(grad_weights.sum(axis=0))
        return (grad_grid, grad_image, None, summed[: 3 * n].view(n, 3),
                summed[3 * n: 4 * n], summed[4 * n: 5 * n].view(1, n), summed[5 * n:], None)


def _check(grid: torch.Tensor, image: torch.Tensor) -> None:
    if grid.ndim != 5 or grid.shape[1] != N_COEFFS:
        raise ValueError(f"grid must be (B, 12, D, Hg, Wg), got shape {tuple(grid.shape)}")
    if image.ndim != 4 or image.shape[1] != 3 or grid.shape[0] != image.shape[0]:
        raise ValueError(f"image must be (B, 3, H, W) with the grid's batch size, got {tuple(image.shape)}")
    if grid.dtype != image.dtype or grid.device.type != "cpu" or image.device.type != "cpu":
        raise ValueError("the fused kernel takes CPU tensors of one float dtype")


def fused_slice_apply(
    grid: torch.Tensor, guide: torch.Tensor, image: torch.Tensor, window: torch.Tensor | None = None
) -> torch.Tensor:
    """Drop-in for ``apply_affine(bilateral_slice(grid, guide, window), image)`` on CPU tensors,
    differentiable.

    Args: grid ``(B, 12, D, Hg, Wg)``, guide ``(B, H, W)``, image ``(B, 3, H, W)``, one float dtype;
    window ``(B, 4)`` (see ``bilateral_slice``) or None for whole photos.
    """
    _check(grid, image)
    if guide.shape != (image.shape[0], *image.shape[2:]) or guide.dtype != image.dtype:
        raise ValueError(f"guide {tuple(guide.shape)} must be (B, H, W) of image {tuple(image.shape)}")
    window = checked_window(window, image.shape[0], *image.shape[2:])
    return _FusedFullRes.apply(grid, image, guide, None, None, None, None, window)


def fused_guided_slice_apply(
    grid: torch.Tensor, image: torch.Tensor, hidden: torch.nn.Linear, out: torch.nn.Linear,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pointwise guide ``sigmoid(out(relu(hidden(pixel))))`` + slice + apply in one kernel,
    differentiable in the grid, the image and the guide's weights; ``window`` as in
    ``fused_slice_apply``."""
    _check(grid, image)
    if hidden.weight.shape != (GUIDE_HIDDEN, 3):
        raise ValueError(f"the fused guide is 3-{GUIDE_HIDDEN}-1; hidden weights have shape {tuple(hidden.weight.shape)}")
    window = checked_window(window, image.shape[0], *image.shape[2:])
    return _FusedFullRes.apply(grid, image, None, hidden.weight, hidden.bias, out.weight, out.bias, window)
