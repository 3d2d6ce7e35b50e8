"""Trilinear slice + affine apply of a block of pixels by per-pixel table lookups (x86 SIMD, numba).

The fused kernel's portable slice (``fused._slice_apply_row``) sums over every luma bin some
pixel of a block touches (4-5 on a trained guide, 24 multiply-adds per pixel and bin), because
numba has no instruction that picks a different table entry per SIMD lane. x86 has one:
``vpermps`` looks a lane's index up in a 16-entry (AVX-512) or 8-entry (AVX2) register. Each of
the 12 coefficients of a segment (the columns between two x-cell centres, whose x cells are
fixed) is a table over the luma bins: its value at bin d and its change to bin d + 1, for the left
cell and for the change towards the right cell, so each pixel reads exactly its two bins: 4
lookups and 2 multiply-adds per coefficient, then the apply (DESIGN §10).

``LANES`` is 16 (AVX-512F), 8 (AVX2 + FMA) or 0 (anything else, or numba told to compile for a
CPU other than this one: ``NUMBA_CPU_NAME``); with 0 the fused kernel keeps its portable slice.
``BILATERAL_BENCH_SIMD_LANES=0|8|16`` asks for fewer (tests, comparisons); numba's cache keeps one
build per source, so set it with its own ``NUMBA_CACHE_DIR``. This code is inlined into
``fused``'s kernels, which numba's cache keys on ``fused.py`` alone: after editing this file,
touch that one (``benchmark.hdrnet.warmup`` then refills the cache).
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


@intrinsic
def lookup_slice_block(typingctx, tables, segment, gz, wx, r, g, b, out_r, out_g, out_b, x, top_bin):
    """Slice and apply ``LANES`` pixels from column ``x``: out_c = (P_c + t Q_c) . (r, g, b, 1).

    ``tables[segment] (24, 16) float32`` (``tables`` is ``(Wg, 24, 16)``, indexed here so that no
    array view is made per block): rows 0-11 the left cell's coefficients (P), rows 12-23 the
    change towards the right cell (Q); each row holds the values at bins 0..7, then from column 8
    the change to the next bin. ``gz`` is the clamped luma coordinate in [0, top_bin + 1], ``wx``
    the x weight t. Reads and writes ``LANES`` floats from ``x`` with no mask: the caller pads its
    rows and walks segments left to right, so lanes past a segment are overwritten by the next one.
    """
    row = types.Array(types.float32, 1, "C")
    if tables != types.Array(types.float32, 3, "C") or any(a != row for a in (gz, wx, r, g, b, out_r, out_g, out_b)):
        return None
    sig = types.void(tables, types.intp, gz, wx, r, g, b, out_r, out_g, out_b, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        lanes = LANES
        if lanes == 0:  # the kernel checks LANES before calling: never reached, but still compiled
            return context.get_dummy_value()
        f32, i32 = ir.FloatType(), ir.IntType(32)
        vf, vi = ir.VectorType(f32, lanes), ir.VectorType(i32, lanes)
        module = builder.module
        fma = float_vector_function(module, "llvm.fma", lanes, 3)
        if lanes == 16:  # vpermps zmm: table first, then indices
            permute = cgutils.get_or_insert_function(
                module, ir.FunctionType(vf, [vf, vi]), "llvm.x86.avx512.permvar.sf.512"
            )
        else:  # vpermps ymm: table first, then indices
            permute = cgutils.get_or_insert_function(module, ir.FunctionType(vf, [vf, vi]), "llvm.x86.avx2.permps")

        def data(array_type, value):
            return context.make_array(array_type)(context, builder, value).data

        def load(pointer, offset):
            address = builder.gep(pointer, [offset])
            return builder.load(builder.bitcast(address, vf.as_pointer()), align=4)

        segment_offset = builder.mul(args[1], ir.Constant(args[1].type, 2 * N_COEFFS * TABLE))
        table_ptr = builder.gep(data(signature.args[0], args[0]), [segment_offset])
        gz_ptr, wx_ptr, r_ptr, g_ptr, b_ptr, or_ptr, og_ptr, ob_ptr = (
            data(row, value) for value in args[2:10]
        )
        x, top_bin = args[10], args[11]

        z = load(gz_ptr, x)
        top_vec = splat(builder, builder.trunc(top_bin, i32), lanes)
        low = builder.fptosi(z, vi)  # z >= 0: truncation is floor
        low = builder.select(builder.icmp_signed("<", low, top_vec), low, top_vec)  # bins low, low + 1
        frac = builder.fsub(z, builder.sitofp(low, vf))
        change = builder.add(low, ir.Constant(vi, [ir.Constant(i32, MAX_BINS)] * lanes)) if lanes == 16 else low
        t = load(wx_ptr, x)
        pixel = (load(r_ptr, x), load(g_ptr, x), load(b_ptr, x))

        def coefficient(k):
            """Coefficient table row k at each lane's gz: value(low) + frac * change(low)."""
            base = ir.Constant(ir.IntType(64), TABLE * k)
            values = load(table_ptr, base)
            changes = values if lanes == 16 else load(table_ptr, builder.add(base, ir.Constant(ir.IntType(64), MAX_BINS)))
            return builder.call(fma, [frac, builder.call(permute, [changes, change]), builder.call(permute, [values, low])])

        for c, out_ptr in enumerate((or_ptr, og_ptr, ob_ptr)):
            p, q = coefficient(4 * c + 3), coefficient(N_COEFFS + 4 * c + 3)
            for j in range(3):
                p = builder.call(fma, [coefficient(4 * c + j), pixel[j], p])
                q = builder.call(fma, [coefficient(N_COEFFS + 4 * c + j), pixel[j], q])
            out = builder.call(fma, [t, q, p])
            builder.store(out, builder.bitcast(builder.gep(out_ptr, [x]), vf.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen
