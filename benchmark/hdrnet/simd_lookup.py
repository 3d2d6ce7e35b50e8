"""HDRNet's inference at full resolution, a block of pixels at a time in x86 SIMD registers (numba).

The fused kernel's portable slice (``fused._slice_apply_row``) sums over every luma bin some
pixel of a block touches (4-5 on a trained guide, 24 multiply-adds per pixel and bin), because
numba has no instruction that picks a different table entry per SIMD lane. x86 has one:
``vpermps`` looks a lane's index up in a 16-entry (AVX-512) or 8-entry (AVX2) register. Each of
the 12 coefficients of a segment (the columns between two x-cell centres, whose x cells are
fixed) is a table over the luma bins: its value at bin d and its change to bin d + 1, for the left
cell and for the change towards the right cell, so each pixel reads exactly its two bins: 4
lookups and 2 multiply-adds per coefficient, then the apply (DESIGN §10).

``guided_lookup_block`` does all of a block's work in registers: one load of the interleaved
pixels (float32 or 8-bit), split into r, g, b by shuffles, the pointwise guide, the lookups, the
apply, the clamp and one interleaved store, for ``VECTORS`` vectors at once (their dependency
chains interleaved). Per 1080p frame on one thread this is 11.7 -> 10.3 ms against the row
pipeline it replaced (planes of r, g, b, guide, gz and outputs in memory; DESIGN §10).

``LANES`` is 16 (AVX-512F), 8 (AVX2 + FMA) or 0 (anything else, or numba told to compile for a
CPU other than this one: ``NUMBA_CPU_NAME``); with 0 the fused kernel keeps its portable slice.
``BILATERAL_BENCH_SIMD_LANES=0|8|16`` asks for fewer (tests, comparisons); numba's cache keeps one
build per source, so set it with its own ``NUMBA_CACHE_DIR``. This code is inlined into
``fused``'s kernels, which numba's cache keys on ``fused.py`` alone: ``warmup.INLINED`` names this
file, so an edit here refills the cache.
"""

from __future__ import annotations

import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

from benchmark.core.errors import BenchmarkError
from benchmark.hdrnet.bilateral import N_COEFFS


def _host_lanes() -> int:
    if config.CPU_NAME is not None:  # compiling for another CPU (portable caches): no host-only code
        return 0
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 16
    if features.get("avx2") and features.get("fma"):
        return 8
    return 0


def _lanes() -> int:
    host, asked = _host_lanes(), os.environ.get(LANES_VARIABLE)
    if asked is None:
        return host
    if asked not in ("0", "8", "16") or int(asked) > host:
        raise BenchmarkError(f"{LANES_VARIABLE}={asked}: must be 0, 8 or 16 and at most this CPU's {host}")
    return int(asked)


LANES_VARIABLE = "BILATERAL_BENCH_SIMD_LANES"
LANES = _lanes()
MAX_BINS = 8  # the table holds 8 bins (AVX2: one register each for values and changes)
TABLE = 2 * MAX_BINS  # floats per coefficient table: [value at bins 0..7, change to the next bin at 0..7]


def splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """The scalar IR ``value`` in each of ``lanes`` lanes of a vector."""
    i32 = ir.IntType(32)
    vector = ir.VectorType(value.type, lanes)
    first = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(i32, 0))
    return builder.shuffle_vector(first, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, lanes), [ir.Constant(i32, 0)] * lanes))


def float_vector_function(module: ir.Module, name: str, lanes: int, arity: int) -> ir.Function:
    """LLVM's elementwise intrinsic ``name`` (``"llvm.fma"``, ``"llvm.fabs"``, ...) on vectors of
    ``lanes`` float32, declared in ``module``."""
    vector = ir.VectorType(ir.FloatType(), lanes)
    return cgutils.get_or_insert_function(module, ir.FunctionType(vector, [vector] * arity), f"{name}.v{lanes}f32")


VECTORS = 2  # guided_lookup_block handles VECTORS x LANES pixels per call, their dependency chains interleaved


@intrinsic
def guided_lookup_block(typingctx, tables, start, segment, wx, x, src, src_pixel, dst, dst_pixel, guide, top_bin, clip):
    """Guide, slice and apply ``BLOCK`` (= ``VECTORS`` x ``LANES``) interleaved RGB pixels from
    column ``x``, all in registers.

    ``src`` / ``dst``: flat rows of interleaved pixels, both float32 (values in [0, 1]) or both
    uint8 (read as value / 255, written clamped, x 255 and rounded), read and written from pixel
    ``src_pixel`` / ``dst_pixel`` (``BLOCK`` pixels, unmasked: the caller keeps them in the row).
    ``tables (Wg, 24, 16) float32``: the row's tables (``fused._lookup_tables`` interpolated along
    y): rows 0-11 a segment's left-cell coefficients (P), rows 12-23 their change towards the right
    cell (Q); each row the values at bins 0..7, then from column 8 the change to the next bin.
    ``start``: each segment's first column (``fused._x_segments``); ``segment`` the one holding
    column ``x``: a block that reaches into the next segments is sliced with each one's tables, each
    lane keeping its own segment's result. ``wx``: the x weight t per column (padded by ``BLOCK``).
    ``guide``: ``fused._guide_constants`` (W1 row-major, b1, w2, b2, the rational tanh's clamp, p, q,
    which hidden units can be positive on [0, 1]^3: the others are skipped for blocks inside it).
    ``top_bin``: the grid's luma bins - 2 (the last bin a pixel's lower one can be). ``clip``:
    clamp a float output to [0, 1]. NaN anywhere becomes luma coordinate 0 (never an index outside
    the tables) and, clamped, output 0.
    """
    row_f32 = types.Array(types.float32, 1, "C")

    def pixel_row(array):  # a read-only photo is fine (its row type says so)
        return isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C" and array.dtype == dst.dtype

    if tables != types.Array(types.float32, 3, "C") or start != types.Array(types.int64, 1, "C"):
        return None
    if wx != row_f32 or guide != row_f32 or dst.dtype not in (types.float32, types.uint8) or not dst.mutable:
        return None
    if not (pixel_row(src) and pixel_row(dst)):
        return None
    sig = types.void(tables, start, types.intp, wx, types.intp, src, types.intp, dst, types.intp, guide,
                     types.intp, types.boolean)

    def codegen(context, builder, signature, args):
        lanes = LANES
        if lanes == 0:  # the kernel checks LANES before calling: never reached, but still compiled
            return context.get_dummy_value()
        eight_bit = signature.args[7].dtype == types.uint8
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vf, vi = ir.VectorType(f32, lanes), ir.VectorType(i32, lanes)
        vectors = range(VECTORS)
        module = builder.module
        fma = float_vector_function(module, "llvm.fma", lanes, 3)
        if lanes == 16:  # vpermps zmm: table first, then indices
            permute = cgutils.get_or_insert_function(
                module, ir.FunctionType(vf, [vf, vi]), "llvm.x86.avx512.permvar.sf.512"
            )
        else:  # vpermps ymm: table first, then indices
            permute = cgutils.get_or_insert_function(module, ir.FunctionType(vf, [vf, vi]), "llvm.x86.avx2.permps")

        def data(index):
            return context.make_array(signature.args[index])(context, builder, args[index]).data

        def load(pointer, at):
            return builder.load(builder.bitcast(builder.gep(pointer, [at]), vf.as_pointer()), align=4)

        def offset(value, add):
            return builder.add(value, ir.Constant(i64, add))

        def scalar(pointer, index):
            return splat(builder, builder.load(builder.gep(pointer, [ir.Constant(i64, index)])), lanes)

        def constant(value):
            return ir.Constant(vf, [ir.Constant(f32, value)] * lanes)

        def call(function, *operands):
            return builder.call(function, list(operands))

        def clamped(value, low, high):  # ordered compares: NaN becomes low
            value = builder.select(builder.fcmp_ordered(">", value, low), value, low)
            return builder.select(builder.fcmp_ordered("<", value, high), value, high)

        def indices(values):
            return ir.Constant(ir.VectorType(i32, len(values)), [ir.Constant(i32, k) for k in values])

        tables_ptr, start_ptr, wx_ptr, guide_ptr = data(0), data(1), data(3), data(9)
        segment, x, top_bin, clip = args[2], args[4], args[10], args[11]
        element = ir.IntType(8) if eight_bit else f32
        interleaved = ir.VectorType(element, 3 * lanes)
        align = 1 if eight_bit else 4

        # the pixels: per vector one load of 3 x LANES values, split into r, g, b (shuffles)
        def interleaved_at(index, v):  # (not a GEP over vectors: LLVM pads a 3 x LANES vector's size to a power of 2)
            first_value = builder.mul(offset(args[index + 1], v * lanes), ir.Constant(i64, 3))
            return builder.bitcast(builder.gep(data(index), [first_value]), interleaved.as_pointer())

        rgb = []
        for v in vectors:
            pixels = builder.load(interleaved_at(5, v), align=align)
            if eight_bit:
                wide = ir.VectorType(f32, 3 * lanes)
                pixels = builder.fmul(builder.uitofp(pixels, wide), ir.Constant(wide, [ir.Constant(f32, 1 / 255)] * 3 * lanes))
            undefined = ir.Constant(pixels.type, ir.Undefined)
            rgb.append([builder.shuffle_vector(pixels, undefined, indices(range(c, 3 * lanes, 3))) for c in range(3)])

        # the guide, sigmoid(w2 . relu(W1 p + b1) + b2) (google/hdrnet's pointwise guide), the
        # sigmoid as (1 + tanh(s / 2)) / 2 with fused's rational tanh; sums in several chains and
        # Estrin's scheme for the polynomials: a block is otherwise one long chain of latencies
        zero, half = constant(0.0), constant(0.5)
        hidden, chains = 16, max(1, 4 // VECTORS)
        tanh_at = 5 * hidden + 1
        active_at = tanh_at + 12  # after the clamp, 7 p and 4 q
        # a unit dead on [0, 1]^3 adds exactly 0 there: skipped when every pixel of the block is in
        # [0, 1] (8-bit photos always; NaN fails the ordered compares: that block computes them all)
        if eight_bit:
            unit_cube = ir.Constant(ir.IntType(1), 1)
        else:
            unit_cube = None
            for v in vectors:
                for value in rgb[v]:
                    inside = builder.and_(builder.fcmp_ordered(">=", value, zero), builder.fcmp_ordered("<=", value, constant(1.0)))
                    unit_cube = inside if unit_cube is None else builder.and_(unit_cube, inside)
            every_lane = ir.Constant(ir.IntType(lanes), (1 << lanes) - 1)
            unit_cube = builder.icmp_unsigned("==", builder.bitcast(unit_cube, ir.IntType(lanes)), every_lane)
        totals = [[cgutils.alloca_once_value(builder, scalar(guide_ptr, 5 * hidden))]
                  + [cgutils.alloca_once_value(builder, zero) for _ in range(chains - 1)] for _ in vectors]
        for i in range(hidden):
            active = builder.fcmp_ordered("!=", builder.load(builder.gep(guide_ptr, [ir.Constant(i64, active_at + i)])),
                                          ir.Constant(f32, 0.0))
            with builder.if_then(builder.or_(active, builder.not_(unit_cube))):
                w = [scalar(guide_ptr, 3 * i + j) for j in range(3)]
                bias, out_w = scalar(guide_ptr, 3 * hidden + i), scalar(guide_ptr, 4 * hidden + i)
                for v in vectors:
                    pre = call(fma, w[2], rgb[v][2], call(fma, w[1], rgb[v][1], call(fma, w[0], rgb[v][0], bias)))
                    relu = builder.select(builder.fcmp_ordered(">", pre, zero), pre, zero)
                    total = totals[v][i % chains]
                    builder.store(call(fma, out_w, relu, builder.load(total)), total)
        totals = [[builder.load(total) for total in chain] for chain in totals]
        bound = scalar(guide_ptr, tanh_at)
        p = [scalar(guide_ptr, tanh_at + 1 + k) for k in range(7)]  # p0 s2^6 + ... + p6
        q = [scalar(guide_ptr, tanh_at + 8 + k) for k in range(4)]  # q0 s2^3 + ... + q3
        top_i = builder.trunc(top_bin, i32)
        top = builder.sitofp(builder.add(top_i, ir.Constant(i32, 1)), f32)
        depth, top_bins = splat(builder, builder.fadd(top, ir.Constant(f32, 1.0)), lanes), splat(builder, top_i, lanes)
        low, frac, change = [], [], []
        for v in vectors:
            total = totals[v][0]
            for other in totals[v][1:]:
                total = builder.fadd(total, other)
            s = builder.fmul(total, half)
            s = builder.select(builder.fcmp_ordered("<", s, bound), s, bound)
            s = builder.select(builder.fcmp_ordered(">", s, builder.fneg(bound)), s, builder.fneg(bound))
            s2 = builder.fmul(s, s)
            s4 = builder.fmul(s2, s2)
            pairs = [call(fma, p[k], s2, p[k + 1]) for k in (0, 2, 4)]
            numerator = call(fma, call(fma, call(fma, pairs[0], s4, pairs[1]), s4, pairs[2]), s2, p[6])
            denominator = call(fma, call(fma, q[0], s2, q[1]), s4, call(fma, q[2], s2, q[3]))
            guide_value = call(fma, half, builder.fdiv(builder.fmul(s, numerator), denominator), half)
            # luma coordinate gz = guide D - 0.5 in [0, D - 1]; bins low, low + 1 (eq. 5's tent weights)
            z = clamped(builder.fsub(builder.fmul(guide_value, depth), half), zero, splat(builder, top, lanes))
            bin_low = builder.fptosi(z, vi)  # z >= 0: truncation is floor
            bin_low = builder.select(builder.icmp_signed("<", bin_low, top_bins), bin_low, top_bins)
            low.append(bin_low)
            frac.append(builder.fsub(z, builder.sitofp(bin_low, vf)))
            change.append(builder.add(bin_low, ir.Constant(vi, [ir.Constant(i32, MAX_BINS)] * lanes)) if lanes == 16 else bin_low)
        t = [load(wx_ptr, offset(x, v * lanes)) for v in vectors]

        # per segment the block reaches: slice + apply with its tables, kept in its own lanes
        first = builder.trunc(x, i32)
        columns = [builder.add(splat(builder, first, lanes), indices(range(v * lanes, (v + 1) * lanes))) for v in vectors]
        block_end = offset(x, VECTORS * lanes)
        start_shape = context.make_array(signature.args[1])(context, builder, args[1]).shape
        segments = builder.sub(builder.extract_value(start_shape, 0), ir.Constant(i64, 1))
        results = [[cgutils.alloca_once_value(builder, zero) for _ in range(3)] for _ in vectors]
        current = cgutils.alloca_once_value(builder, segment)
        check = builder.append_basic_block("segment_check")
        body = builder.append_basic_block("segment_body")
        done = builder.append_basic_block("segments_done")
        builder.branch(check)
        builder.position_at_end(check)
        index = builder.load(current)
        first_column = builder.load(builder.gep(start_ptr, [index]))
        more = builder.and_(builder.icmp_signed("<", index, segments), builder.icmp_signed("<", first_column, block_end))
        builder.cbranch(more, body, done)
        builder.position_at_end(body)
        end_column = builder.load(builder.gep(start_ptr, [offset(index, 1)]))
        begin, end = (splat(builder, builder.trunc(c, i32), lanes) for c in (first_column, end_column))
        inside = [builder.and_(builder.icmp_signed(">=", c, begin), builder.icmp_signed("<", c, end)) for c in columns]
        table_ptr = builder.gep(tables_ptr, [builder.mul(index, ir.Constant(i64, 2 * N_COEFFS * TABLE))])

        def coefficient(k):
            """Coefficient table row k at each vector's lanes' gz: value(low) + frac * change(low)."""
            values = load(table_ptr, ir.Constant(i64, TABLE * k))
            changes = values if lanes == 16 else load(table_ptr, ir.Constant(i64, TABLE * k + MAX_BINS))
            return [call(fma, frac[v], call(permute, changes, change[v]), call(permute, values, low[v])) for v in vectors]

        for c in range(3):
            p_sum, q_sum = coefficient(4 * c + 3), coefficient(N_COEFFS + 4 * c + 3)
            for j in range(3):
                p_k, q_k = coefficient(4 * c + j), coefficient(N_COEFFS + 4 * c + j)
                p_sum = [call(fma, p_k[v], rgb[v][j], p_sum[v]) for v in vectors]
                q_sum = [call(fma, q_k[v], rgb[v][j], q_sum[v]) for v in vectors]
            for v in vectors:
                result = results[v][c]
                builder.store(builder.select(inside[v], call(fma, t[v], q_sum[v], p_sum[v]), builder.load(result)), result)
        builder.store(offset(index, 1), current)
        builder.branch(check)
        builder.position_at_end(done)

        # out: clamped (8-bit: and x 255 + 0.5, truncated), interleaved, one store per vector
        order = [k for i in range(lanes) for k in (i, lanes + i, 2 * lanes + i)]
        for v in vectors:
            out = [builder.load(result) for result in results[v]]
            if eight_bit:
                levels = constant(255.0)
                out = [builder.fptoui(call(fma, clamped(o, zero, constant(1.0)), levels, half), ir.VectorType(element, lanes))
                       for o in out]
            else:
                out = [builder.select(clip, clamped(o, zero, constant(1.0)), o) for o in out]
            red_green = builder.shuffle_vector(out[0], out[1], indices(range(2 * lanes)))
            blue = builder.shuffle_vector(out[2], ir.Constant(out[2].type, ir.Undefined), indices([*range(lanes), *range(lanes)]))
            builder.store(builder.shuffle_vector(red_green, blue, indices(order)), interleaved_at(7, v), align=align)
        return context.get_dummy_value()

    return sig, codegen
