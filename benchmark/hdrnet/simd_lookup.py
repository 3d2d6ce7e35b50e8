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
Each block also prefetches the pixels ``PREFETCH_PIXELS`` ahead, so that float32's memory traffic
overlaps the arithmetic (1080p, two threads: 2.85-3.44 -> 2.24-2.70 ms; 8-bit unchanged).

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


# each block asks for the pixels this far ahead of it (every cache line of a block's worth): the
# hardware's prefetch alone left the float32 kernel waiting on memory (DESIGN §10)
PREFETCH_PIXELS = 640
VECTORS = 2  # a block is VECTORS x LANES pixels, their dependency chains interleaved
# the guide's constants as fused._guide_constants lays them out: W1 row-major (3 per hidden unit),
# b1, w2, b2, then the rational tanh's clamp, 7 p and 4 q, then per unit whether it can fire on [0, 1]^3
GUIDE_HIDDEN = 16  # the pointwise guide: 3-16-1 (benchmark.hdrnet.model.PointwiseGuide)
GUIDE_TANH_AT = 5 * GUIDE_HIDDEN + 1
GUIDE_ALIVE_AT = GUIDE_TANH_AT + 12


class _BlockCode:
    """LLVM IR shared by the blocks: vectors of ``LANES`` float32 and the operations on them."""

    def __init__(self, context, builder: ir.IRBuilder) -> None:
        self.context, self.builder, self.lanes = context, builder, LANES
        self.f32, self.i32, self.i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        self.vf, self.vi = ir.VectorType(self.f32, LANES), ir.VectorType(self.i32, LANES)
        module = builder.module
        self.fma = float_vector_function(module, "llvm.fma", LANES, 3)
        self.i8 = ir.IntType(8)
        self.prefetch = cgutils.get_or_insert_function(  # address, write?, locality 0-3, data (1) or code
            module, ir.FunctionType(ir.VoidType(), [self.i8.as_pointer()] + [self.i32] * 3), "llvm.prefetch.p0i8"
        )
        self.read_to_l1 = [ir.Constant(self.i32, k) for k in (0, 3, 1)]
        if LANES == 16:  # vpermps zmm: table first, then indices
            self.permute = cgutils.get_or_insert_function(
                module, ir.FunctionType(self.vf, [self.vf, self.vi]), "llvm.x86.avx512.permvar.sf.512"
            )
        else:  # vpermps ymm: table first, then indices
            self.permute = cgutils.get_or_insert_function(
                module, ir.FunctionType(self.vf, [self.vf, self.vi]), "llvm.x86.avx2.permps"
            )

    def array(self, signature, args, index):
        return self.context.make_array(signature.args[index])(self.context, self.builder, args[index])

    def table_arguments(self, signature, args) -> tuple:
        """``slice_apply``'s first arguments from a block's first six (tables, y_changes, wy, start,
        segment, wx) and its seventh (x), as both blocks take them."""
        return (self.array(signature, args, 0).data, self.array(signature, args, 1).data, args[2],
                self.array(signature, args, 3), args[4], self.array(signature, args, 5).data, args[6])

    def load(self, pointer: ir.Value, at: ir.Value) -> ir.Value:
        """``LANES`` float32 from ``pointer[at]`` on."""
        return self.builder.load(self.builder.bitcast(self.builder.gep(pointer, [at]), self.vf.as_pointer()), align=4)

    def store(self, value: ir.Value, pointer: ir.Value, at: ir.Value) -> None:
        self.builder.store(value, self.builder.bitcast(self.builder.gep(pointer, [at]), self.vf.as_pointer()), align=4)

    def offset(self, value: ir.Value, add: int) -> ir.Value:
        return self.builder.add(value, ir.Constant(self.i64, add))

    def scalar(self, pointer: ir.Value, index: int) -> ir.Value:
        return splat(self.builder, self.builder.load(self.builder.gep(pointer, [ir.Constant(self.i64, index)])), self.lanes)

    def constant(self, value: float) -> ir.Value:
        return ir.Constant(self.vf, [ir.Constant(self.f32, value)] * self.lanes)

    def call(self, function: ir.Function, *operands: ir.Value) -> ir.Value:
        return self.builder.call(function, list(operands))

    def clamped(self, value: ir.Value, low: ir.Value, high: ir.Value) -> ir.Value:  # ordered compares: NaN becomes low
        builder = self.builder
        value = builder.select(builder.fcmp_ordered(">", value, low), value, low)
        return builder.select(builder.fcmp_ordered("<", value, high), value, high)

    def indices(self, values) -> ir.Constant:
        return ir.Constant(ir.VectorType(self.i32, len(values)), [ir.Constant(self.i32, k) for k in values])

    def in_unit_cube(self, rgb: list[list[ir.Value]]) -> ir.Value:
        """Whether every lane of every vector of ``rgb`` lies in [0, 1]^3 (NaN fails the ordered compares)."""
        builder, zero, one, every = self.builder, self.constant(0.0), self.constant(1.0), None
        for pixels in rgb:
            for value in pixels:
                inside = builder.and_(builder.fcmp_ordered(">=", value, zero), builder.fcmp_ordered("<=", value, one))
                every = inside if every is None else builder.and_(every, inside)
        every_lane = ir.Constant(ir.IntType(self.lanes), (1 << self.lanes) - 1)
        return builder.icmp_unsigned("==", builder.bitcast(every, ir.IntType(self.lanes)), every_lane)

    def guide(self, guide_ptr: ir.Value, rgb: list[list[ir.Value]], unit_cube: ir.Value) -> list[ir.Value]:
        """Each vector's pointwise guide, sigmoid(w2 . relu(W1 p + b1) + b2) (google/hdrnet), the
        sigmoid as (1 + tanh(s / 2)) / 2 with fused's rational tanh; sums in several chains and
        Estrin's scheme for the polynomials: a block is otherwise one long chain of latencies.
        ``guide_ptr``: ``fused._guide_constants``; a unit dead on [0, 1]^3 adds exactly 0 there: it
        is skipped when ``unit_cube`` (every pixel of the block in [0, 1])."""
        builder, call, fma, scalar = self.builder, self.call, self.fma, self.scalar
        zero, half = self.constant(0.0), self.constant(0.5)
        vectors = range(len(rgb))
        hidden, chains = GUIDE_HIDDEN, max(1, 4 // len(rgb))
        tanh_at, active_at = GUIDE_TANH_AT, GUIDE_ALIVE_AT
        totals = [[cgutils.alloca_once_value(builder, scalar(guide_ptr, 5 * hidden))]
                  + [cgutils.alloca_once_value(builder, zero) for _ in range(chains - 1)] for _ in vectors]
        for i in range(hidden):
            flag = builder.load(builder.gep(guide_ptr, [ir.Constant(self.i64, active_at + i)]))
            active = builder.fcmp_ordered("!=", flag, ir.Constant(self.f32, 0.0))
            with builder.if_then(builder.or_(active, builder.not_(unit_cube))):
                w = [scalar(guide_ptr, 3 * i + j) for j in range(3)]
                bias, out_w = scalar(guide_ptr, 3 * hidden + i), scalar(guide_ptr, 4 * hidden + i)
                for v in vectors:
                    pre = call(fma, w[2], rgb[v][2], call(fma, w[1], rgb[v][1], call(fma, w[0], rgb[v][0], bias)))
                    relu = builder.select(builder.fcmp_ordered(">", pre, zero), pre, zero)
                    total = totals[v][i % chains]
                    builder.store(call(fma, out_w, relu, builder.load(total)), total)
        bound = scalar(guide_ptr, tanh_at)
        p = [scalar(guide_ptr, tanh_at + 1 + k) for k in range(7)]  # p0 s2^6 + ... + p6
        q = [scalar(guide_ptr, tanh_at + 8 + k) for k in range(4)]  # q0 s2^3 + ... + q3
        guides = []
        for v in vectors:
            total = builder.load(totals[v][0])
            for other in totals[v][1:]:
                total = builder.fadd(total, builder.load(other))
            s = builder.fmul(total, half)
            s = builder.select(builder.fcmp_ordered("<", s, bound), s, bound)
            s = builder.select(builder.fcmp_ordered(">", s, builder.fneg(bound)), s, builder.fneg(bound))
            s2 = builder.fmul(s, s)
            s4 = builder.fmul(s2, s2)
            pairs = [call(fma, p[k], s2, p[k + 1]) for k in (0, 2, 4)]
            numerator = call(fma, call(fma, call(fma, pairs[0], s4, pairs[1]), s4, pairs[2]), s2, p[6])
            denominator = call(fma, call(fma, q[0], s2, q[1]), s4, call(fma, q[2], s2, q[3]))
            guides.append(call(fma, half, builder.fdiv(builder.fmul(s, numerator), denominator), half))
        return guides

    def slice_apply(
        self, tables: ir.Value, y_changes: ir.Value, wy: ir.Value, start, segment: ir.Value, wx_ptr: ir.Value,
        x: ir.Value, rgb: list[list[ir.Value]], guides: list[ir.Value], top_bin: ir.Value,
    ) -> list[list[ir.Value]]:
        """Each vector's r, g, b out: per pixel its two luma bins at its guide value looked up in the
        tables of the segments the block reaches (from ``segment``), sliced and applied, each lane
        keeping its own segment's result. ``tables`` / ``y_changes``: pointers to the tables of the
        row's upper y cells and their change to the lower ones, each table row read as ``tables +
        wy y_changes`` (the grid interpolated to the row along y); ``start``: the segments' first
        columns (a numba array); ``wx_ptr``: the x weights; ``x``: the block's first column."""
        builder, call, fma, lanes = self.builder, self.call, self.fma, self.lanes
        vf, vi, i32, i64 = self.vf, self.vi, self.i32, self.i64
        vectors = range(len(rgb))
        zero, half = self.constant(0.0), self.constant(0.5)
        top_i = builder.trunc(top_bin, i32)
        top = builder.sitofp(builder.add(top_i, ir.Constant(i32, 1)), self.f32)
        depth, top_bins = splat(builder, builder.fadd(top, ir.Constant(self.f32, 1.0)), lanes), splat(builder, top_i, lanes)
        low, frac, change = [], [], []
        for guide_value in guides:
            # luma coordinate gz = guide D - 0.5 in [0, D - 1]; bins low, low + 1 (eq. 5's tent weights)
            z = self.clamped(builder.fsub(builder.fmul(guide_value, depth), half), zero, splat(builder, top, lanes))
            bin_low = builder.fptosi(z, vi)  # z >= 0: truncation is floor
            bin_low = builder.select(builder.icmp_signed("<", bin_low, top_bins), bin_low, top_bins)
            low.append(bin_low)
            frac.append(builder.fsub(z, builder.sitofp(bin_low, vf)))
            change.append(builder.add(bin_low, ir.Constant(vi, [ir.Constant(i32, MAX_BINS)] * lanes)) if lanes == 16 else bin_low)
        t = [self.load(wx_ptr, self.offset(x, v * lanes)) for v in vectors]

        first = builder.trunc(x, i32)
        columns = [builder.add(splat(builder, first, lanes), self.indices(range(v * lanes, (v + 1) * lanes))) for v in vectors]
        block_end = self.offset(x, len(rgb) * lanes)
        segments = builder.sub(builder.extract_value(start.shape, 0), ir.Constant(i64, 1))
        results = [[cgutils.alloca_once_value(builder, zero) for _ in range(3)] for _ in vectors]
        current = cgutils.alloca_once_value(builder, segment)
        check = builder.append_basic_block("segment_check")
        body = builder.append_basic_block("segment_body")
        done = builder.append_basic_block("segments_done")
        builder.branch(check)
        builder.position_at_end(check)
        index = builder.load(current)
        first_column = builder.load(builder.gep(start.data, [index]))
        more = builder.and_(builder.icmp_signed("<", index, segments), builder.icmp_signed("<", first_column, block_end))
        builder.cbranch(more, body, done)
        builder.position_at_end(body)
        end_column = builder.load(builder.gep(start.data, [self.offset(index, 1)]))
        begin, end = (splat(builder, builder.trunc(c, i32), lanes) for c in (first_column, end_column))
        inside = [builder.and_(builder.icmp_signed(">=", c, begin), builder.icmp_signed("<", c, end)) for c in columns]
        segment_at = builder.mul(index, ir.Constant(i64, 2 * N_COEFFS * TABLE))
        table_ptr, change_ptr = builder.gep(tables, [segment_at]), builder.gep(y_changes, [segment_at])
        wy_lanes = splat(builder, wy, lanes)

        def table_row(at: int) -> ir.Value:
            """The segment's table row from float ``at``, interpolated to the row (as ``fused._row_grid``)."""
            offset = ir.Constant(i64, at)
            return call(fma, wy_lanes, self.load(change_ptr, offset), self.load(table_ptr, offset))

        def coefficient(k):
            """Coefficient table row k at each vector's lanes' gz: value(low) + frac * change(low)."""
            values = table_row(TABLE * k)
            changes = values if lanes == 16 else table_row(TABLE * k + MAX_BINS)
            return [call(fma, frac[v], call(self.permute, changes, change[v]), call(self.permute, values, low[v]))
                    for v in vectors]

        for c in range(3):
            p_sum, q_sum = coefficient(4 * c + 3), coefficient(N_COEFFS + 4 * c + 3)
            for j in range(3):
                p_k, q_k = coefficient(4 * c + j), coefficient(N_COEFFS + 4 * c + j)
                p_sum = [call(fma, p_k[v], rgb[v][j], p_sum[v]) for v in vectors]
                q_sum = [call(fma, q_k[v], rgb[v][j], q_sum[v]) for v in vectors]
            for v in vectors:
                result = results[v][c]
                builder.store(builder.select(inside[v], call(fma, t[v], q_sum[v], p_sum[v]), builder.load(result)), result)
        builder.store(self.offset(index, 1), current)
        builder.branch(check)
        builder.position_at_end(done)
        return [[builder.load(result) for result in channels] for channels in results]


def _block_arguments_fit(tables, y_changes, wy, start, wx, guide) -> bool:
    row_f32 = types.Array(types.float32, 1, "C")
    return (tables == types.Array(types.float32, 3, "C") and y_changes == tables and wy == types.float32
            and start == types.Array(types.int64, 1, "C") and wx == row_f32 and guide == row_f32)


@intrinsic
def guided_lookup_block(
    typingctx, tables, y_changes, wy, start, segment, wx, x, src, src_pixel, dst, dst_pixel, guide, top_bin, clip
):
    """Guide, slice and apply ``BLOCK`` (= ``VECTORS`` x ``LANES``) interleaved RGB pixels from
    column ``x``, all in registers.

    ``src`` / ``dst``: flat rows of interleaved pixels, both float32 (values in [0, 1]) or both
    uint8 (read as value / 255, written clamped, x 255 and rounded), read and written from pixel
    ``src_pixel`` / ``dst_pixel`` (``BLOCK`` pixels, unmasked: the caller keeps them in the row).
    ``tables (Wg, 24, 16) float32``: the tables of the row's upper y cells (``fused._lookup_tables``):
    rows 0-11 a segment's left-cell coefficients (P), rows 12-23 their change towards the right
    cell (Q); each row the values at bins 0..7, then from column 8 the change to the next bin.
    ``y_changes`` (same shape): their change to the lower y cells; ``wy``: the row's y weight. Each
    table row is interpolated to the row as it is read (no per-row copy of the tables, DESIGN §10).
    ``start``: each segment's first column (``fused._x_segments``); ``segment`` the one holding
    column ``x``: a block that reaches into the next segments is sliced with each one's tables, each
    lane keeping its own segment's result. ``wx``: the x weight t per column (padded by ``BLOCK``).
    ``guide``: ``fused._guide_constants`` (W1 row-major, b1, w2, b2, the rational tanh's clamp, p, q,
    which hidden units can be positive on [0, 1]^3: the others are skipped for blocks inside it).
    ``top_bin``: the grid's luma bins - 2 (the last bin a pixel's lower one can be). ``clip``:
    clamp a float output to [0, 1]. NaN anywhere becomes luma coordinate 0 (never an index outside
    the tables) and, clamped, output 0.
    """

    def pixel_row(array):  # a read-only photo is fine (its row type says so)
        return isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C" and array.dtype == dst.dtype

    if not _block_arguments_fit(tables, y_changes, wy, start, wx, guide):
        return None
    if dst.dtype not in (types.float32, types.uint8) or not dst.mutable or not (pixel_row(src) and pixel_row(dst)):
        return None
    sig = types.void(tables, y_changes, wy, start, types.intp, wx, types.intp, src, types.intp, dst, types.intp,
                     guide, types.intp, types.boolean)

    def codegen(context, builder, signature, args):
        if LANES == 0:  # the kernel checks LANES before calling: never reached, but still compiled
            return context.get_dummy_value()
        code = _BlockCode(context, builder)
        lanes, vectors = LANES, range(VECTORS)
        eight_bit = signature.args[9].dtype == types.uint8
        element = ir.IntType(8) if eight_bit else code.f32
        interleaved = ir.VectorType(element, 3 * lanes)
        align = 1 if eight_bit else 4

        # the pixels: per vector one load of 3 x LANES values, split into r, g, b (shuffles)
        def interleaved_at(index, v):  # (not a GEP over vectors: LLVM pads a 3 x LANES vector's size to a power of 2)
            first_value = builder.mul(code.offset(args[index + 1], v * lanes), ir.Constant(code.i64, 3))
            return builder.bitcast(builder.gep(code.array(signature, args, index).data, [first_value]), interleaved.as_pointer())

        # ask for the pixels PREFETCH_PIXELS ahead, every cache line of a block's worth (a hint, never
        # a fault: past the row, the photo or a tail buffer it is harmless)
        ahead = builder.bitcast(interleaved_at(7, PREFETCH_PIXELS // lanes), code.i8.as_pointer())
        for line in range(0, VECTORS * 3 * lanes * (1 if eight_bit else 4), 64):
            code.call(code.prefetch, builder.gep(ahead, [ir.Constant(code.i64, line)]), *code.read_to_l1)
        rgb = []
        for v in vectors:
            pixels = builder.load(interleaved_at(7, v), align=align)
            if eight_bit:
                wide = ir.VectorType(code.f32, 3 * lanes)
                pixels = builder.fmul(builder.uitofp(pixels, wide), ir.Constant(wide, [ir.Constant(code.f32, 1 / 255)] * 3 * lanes))
            undefined = ir.Constant(pixels.type, ir.Undefined)
            rgb.append([builder.shuffle_vector(pixels, undefined, code.indices(range(c, 3 * lanes, 3))) for c in range(3)])
        # 8-bit photos lie in [0, 1]^3 always
        unit_cube = ir.Constant(ir.IntType(1), 1) if eight_bit else code.in_unit_cube(rgb)
        guides = code.guide(code.array(signature, args, 11).data, rgb, unit_cube)
        results = code.slice_apply(*code.table_arguments(signature, args), rgb, guides, args[12])

        # out: clamped (8-bit: and x 255 + 0.5, truncated), interleaved, one store per vector
        zero, one, half, clip = code.constant(0.0), code.constant(1.0), code.constant(0.5), args[13]
        order = [k for i in range(lanes) for k in (i, lanes + i, 2 * lanes + i)]
        for v in vectors:
            out = results[v]
            if eight_bit:
                out = [builder.fptoui(code.call(code.fma, code.clamped(o, zero, one), code.constant(255.0), half),
                                      ir.VectorType(element, lanes)) for o in out]
            else:
                out = [builder.select(clip, code.clamped(o, zero, one), o) for o in out]
            red_green = builder.shuffle_vector(out[0], out[1], code.indices(range(2 * lanes)))
            blue = builder.shuffle_vector(out[2], ir.Constant(out[2].type, ir.Undefined), code.indices([*range(lanes), *range(lanes)]))
            builder.store(builder.shuffle_vector(red_green, blue, code.indices(order)), interleaved_at(9, v), align=align)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def planar_lookup_block(
    typingctx, tables, y_changes, wy, start, segment, wx, x, image, item, row, pixel, out, guide_out, guide, top_bin
):
    """``guided_lookup_block`` for training's float32 batches: ``BLOCK`` pixels of planar
    ``image (B, 3, H, W)`` from ``[item, :, row, pixel]`` guided, sliced and applied into ``out``
    (same shape, not clamped), each pixel's guide value written to ``guide_out (B, H, W)`` (the
    backward pass reads it). The other arguments as there; ``x`` is the block's column in the
    slicing (``pixel`` may differ: a padded copy of the row's last, partial block)."""
    batch_f32 = types.Array(types.float32, 4, "C")
    if not _block_arguments_fit(tables, y_changes, wy, start, wx, guide) or image != batch_f32 or out != batch_f32:
        return None
    if guide_out != types.Array(types.float32, 3, "C"):
        return None
    sig = types.void(tables, y_changes, wy, start, types.intp, wx, types.intp, image, types.intp, types.intp,
                     types.intp, out, guide_out, guide, types.intp)

    def codegen(context, builder, signature, args):
        if LANES == 0:  # the kernel checks LANES before calling: never reached, but still compiled
            return context.get_dummy_value()
        code = _BlockCode(context, builder)
        lanes, vectors = LANES, range(VECTORS)
        images = code.array(signature, args, 7)
        height, width = cgutils.unpack_tuple(builder, images.shape, 4)[2:]
        item, row, pixel = args[8], args[9], args[10]

        def at(channel, v):  # flat index of [item, channel, row, pixel + v * LANES]; channel None: the guide's
            planes = item if channel is None else builder.add(builder.mul(item, ir.Constant(code.i64, 3)),
                                                                 ir.Constant(code.i64, channel))
            return builder.add(builder.mul(builder.add(builder.mul(planes, height), row), width), code.offset(pixel, v * lanes))

        rgb = [[code.load(images.data, at(c, v)) for c in range(3)] for v in vectors]
        guides = code.guide(code.array(signature, args, 13).data, rgb, code.in_unit_cube(rgb))
        results = code.slice_apply(*code.table_arguments(signature, args), rgb, guides, args[14])
        outputs, guide_values = code.array(signature, args, 11).data, code.array(signature, args, 12).data
        for v in vectors:
            code.store(guides[v], guide_values, at(None, v))
            for c in range(3):
                code.store(results[v][c], outputs, at(c, v))
        return context.get_dummy_value()

    return sig, codegen
