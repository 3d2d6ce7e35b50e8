"""The training backward's per-segment sums in explicit x86 SIMD (numba ``@intrinsic``, LLVM IR).

For one segment (the columns between two x-cell centres) and one luma bin, the fused backward adds
up over the segment's pixels the gradients of the two x cells' 12 coefficients, and adds each
pixel's share to d loss / d gz (``fused._slice_apply_backward_row`` is the portable loop). Written
as numba code, that loop keeps 24 sums and 24 coefficients live, more than the 32 vector
registers (LLVM spilled: ~90 instructions per 16 pixels for 24 multiply-adds), runs a scalar
remainder on segments whose width is no multiple of the vector width, and ends every segment and
bin in 24 separate horizontal sums. Here the pixels go in ``LANES``-wide blocks, the last one
masked (the caller pads its rows by ``LANES``), in three passes that each fit the registers (d loss
/ d gz, the left cell's 12 sums, the right cell's), and the 24 sums are reduced together, pairwise
across registers (23 shuffle pairs for 16 lanes): per 256-px training row 3.4 -> 1.8 us (DESIGN
§10). Used where ``simd_lookup.LANES`` > 0, for float32.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from benchmark.hdrnet.bilateral import N_COEFFS
from benchmark.hdrnet.simd_lookup import LANES, float_vector_function, splat

_I32 = ir.IntType(32)


def _lane_sums(builder: ir.IRBuilder, vectors: list[ir.Value], lanes: int) -> list[tuple[ir.Value, list[int | None]]]:
    """The sum of each vector's lanes, for all vectors together: at each step two vectors whose lanes
    hold groups of G partial sums become one with groups of G / 2 (each group folded in half, the
    two vectors' groups interleaved), until a group is one lane. Returns the final vectors, each
    with the input index whose sum each lane holds (None: padding)."""
    zero = ir.Constant(vectors[0].type, [ir.Constant(ir.FloatType(), 0.0)] * lanes)
    level = [(vector, [index]) for index, vector in enumerate(vectors)]  # (vector, label of each group)
    group = lanes
    while group > 1:
        half, paired = group // 2, []
        for i in range(0, len(level), 2):
            x, x_labels = level[i]
            y, y_labels = level[i + 1] if i + 1 < len(level) else (zero, [None] * len(x_labels))
            low, high, labels = [], [], []
            for g, start in enumerate(range(0, lanes, group)):
                low += [*range(start, start + half), *range(lanes + start, lanes + start + half)]
                high += [*range(start + half, start + group), *range(lanes + start + half, lanes + start + group)]
                labels += [x_labels[g], y_labels[g]]
            picks = [ir.Constant(ir.VectorType(_I32, lanes), [ir.Constant(_I32, i) for i in half_lanes])
                     for half_lanes in (low, high)]
            paired.append((builder.fadd(*(builder.shuffle_vector(x, y, pick) for pick in picks)), labels))
        level, group = paired, half
    return level


@intrinsic
def segment_bin_sums(typingctx, rowgrid, segment, bin_index, rows, lo, hi, grad_rowgrid):
    """Pixels ``lo:hi`` of segment ``segment`` at luma bin ``bin_index``, as the portable loop: the
    gradients of the left and right cells' 12 coefficients added to ``grad_rowgrid[segment, bin]``
    and ``[segment + 1, bin]``, and tent slope x dL/dO . (A v) to each pixel's d loss / d gz.

    ``rowgrid`` and ``grad_rowgrid`` ``(Wg + 1, D, 12)``: the grid interpolated to the row and its
    gradient; ``rows (9, W + LANES)``, the row padded: r, g, b, dL/dO r, g, b, gz (clamped), d loss
    / d gz (added to), x weight t. Blocks read ``LANES`` columns from ``lo``; lanes at or past
    ``hi`` weigh 0 (their d loss / d gz gets 0 added).
    """
    dtype = getattr(rowgrid, "dtype", None)
    if dtype not in (types.float32, types.float64) or rowgrid != types.Array(dtype, 3, "C"):
        return None
    if rows != types.Array(dtype, 2, "C") or grad_rowgrid != rowgrid:
        return None
    sig = types.void(rowgrid, types.intp, types.intp, rows, types.intp, types.intp, grad_rowgrid)

    def codegen(context, builder, signature, args):
        lanes = LANES
        if lanes == 0 or dtype != types.float32:
            # the kernel calls this only with LANES > 0 and float32; its other builds still compile
            # the call: never reached
            return context.get_dummy_value()
        f32 = ir.FloatType()
        vf, vi, i64 = ir.VectorType(f32, lanes), ir.VectorType(_I32, lanes), ir.IntType(64)
        module = builder.module
        fma = float_vector_function(module, "llvm.fma", lanes, 3)
        fabs = float_vector_function(module, "llvm.fabs", lanes, 1)
        maxnum = float_vector_function(module, "llvm.maxnum", lanes, 2)

        def spread(value):
            return splat(builder, value, lanes)

        grid = context.make_array(signature.args[0])(context, builder, args[0])
        depth = cgutils.unpack_tuple(builder, grid.shape, 3)[1]
        segment, bin_index, lo, hi = args[1], args[2], args[4], args[5]
        row_array = context.make_array(signature.args[3])(context, builder, args[3])
        row_length = cgutils.unpack_tuple(builder, row_array.shape, 2)[1]
        gradient = context.make_array(signature.args[6])(context, builder, args[6]).data

        def address(data, cell, k):
            cell_bin = builder.add(builder.mul(cell, depth), bin_index)
            index = builder.add(builder.mul(cell_bin, ir.Constant(i64, N_COEFFS)), ir.Constant(i64, k))
            return builder.gep(data, [index])

        def scalar(cell, k):
            return builder.load(address(grid.data, cell, k))

        right_cell = builder.add(segment, ir.Constant(i64, 1))
        one, zero = spread(ir.Constant(f32, 1.0)), spread(ir.Constant(f32, 0.0))
        d = spread(builder.sitofp(bin_index, f32))
        iota = ir.Constant(vi, [ir.Constant(_I32, i) for i in range(lanes)])
        hi_lanes = spread(builder.trunc(hi, _I32))

        def pointer(row, x):
            offset = builder.add(builder.mul(ir.Constant(i64, row), row_length), x)
            return builder.bitcast(builder.gep(row_array.data, [offset]), vf.as_pointer())

        def block(x):
            """A block's pixels and weights: (r, g, b), (dL/dO r, g, b), t, tent weight, gz - d."""
            inside = builder.icmp_signed("<", builder.add(iota, spread(builder.trunc(x, _I32))), hi_lanes)
            values = [builder.load(pointer(row, x), align=4) for row in (0, 1, 2, 3, 4, 5, 6, 8)]
            dist = builder.fsub(values[6], d)
            tent = builder.call(maxnum, [builder.fsub(one, builder.call(fabs, [dist])), zero])
            return values[0:3], values[3:6], values[7], builder.select(inside, tent, zero), dist

        step = ir.Constant(i64, lanes)
        # three passes over the segment, each with few enough live values for the 32 vector registers
        # (one pass: 24 sums + 24 coefficients, spilled); the block's pixels come from L1 each time
        with cgutils.for_range_slice(builder, lo, hi, step) as (x, _):  # d loss / d gz += slope e . (A v)
            pixel, errors, t, w, dist = block(x)
            # the tent's slope: -1 above the bin, +1 below or at it, 0 outside
            sign = builder.select(builder.fcmp_ordered(">", dist, zero), builder.fsub(zero, one), one)
            slope = builder.select(builder.fcmp_ordered(">", w, zero), sign, zero)
            total = zero
            for c in range(3):  # e_c (L_c . v + t (R_c . v - L_c . v)), L / R the left / right cell
                sides = []
                for cell in (segment, right_cell):
                    value = spread(scalar(cell, 4 * c + 3))
                    for j in range(3):
                        value = builder.call(fma, [spread(scalar(cell, 4 * c + j)), pixel[j], value])
                    sides.append(value)
                sliced = builder.call(fma, [t, builder.fsub(sides[1], sides[0]), sides[0]])
                total = builder.call(fma, [errors[c], sliced, total])
            grad_gz = pointer(7, x)
            builder.store(builder.call(fma, [slope, total, builder.load(grad_gz, align=4)]), grad_gz, align=4)
        sums = []
        for side in range(2):  # each cell's 12 sums: coefficient 4c + j collects weight dL/dO_c v_j
            accumulators = [cgutils.alloca_once_value(builder, zero) for _ in range(N_COEFFS)]
            with cgutils.for_range_slice(builder, lo, hi, step) as (x, _):
                pixel, errors, t, w, _dist = block(x)
                weight = builder.fmul(w, t) if side else builder.fsub(w, builder.fmul(w, t))
                for c in range(3):
                    share = builder.fmul(weight, errors[c])
                    for j in range(4):
                        slot = accumulators[4 * c + j]
                        summed = builder.fadd(builder.load(slot), share) if j == 3 else \
                            builder.call(fma, [share, pixel[j], builder.load(slot)])
                        builder.store(summed, slot)
            sums += [builder.load(slot) for slot in accumulators]
        for vector, labels in _lane_sums(builder, sums, lanes):
            for lane, label in enumerate(labels):
                if label is not None:
                    target = address(gradient, right_cell if label >= N_COEFFS else segment, label % N_COEFFS)
                    value = builder.extract_element(vector, ir.Constant(_I32, lane))
                    builder.store(builder.fadd(builder.load(target), value), target)
        return context.get_dummy_value()

    return sig, codegen
