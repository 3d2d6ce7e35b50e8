"""HDRNet's full-resolution stage for CUDA as Triton kernels: guide + slice + apply, forward and backward.

One program handles ``BLOCK`` pixels of one photo: the pointwise 3-16-1 guide, the cell-centred
trilinear slice of the ``(B, 12, D, Hg, Wg)`` grid at (x, y, guide) (the same geometry as
``benchmark.hdrnet.bilateral.bilateral_slice``, DESIGN §5) and the 3x4 affine apply, so no
12-channel full-resolution coefficient tensor is ever written: the grid_sample path reads and
writes 4 + 12 + 12 + 3 floats per pixel, this kernel 3 + 3.

Triton's interpreter (``TRITON_INTERPRET=1``, set before this module is imported) runs it on CPU
tensors: tests/test_triton.py checks it against ``apply_affine(bilateral_slice(...))`` there.
The backward kernel recomputes the forward per pixel and adds the grid's and the guide weights'
gradients atomically (each program first sums its pixels' share of the 81 guide weights).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from benchmark.hdrnet.bilateral import N_COEFFS, checked_window

BLOCK = 256  # pixels per program


@triton.jit
def _pixels(image_ptr, batch, height, width, BLOCK_SIZE: tl.constexpr):
    """This program's pixels of photo ``batch``: index, mask, row, column and their RGB."""
    pixel = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = pixel < height * width
    plane = height * width
    image = image_ptr + batch * 3 * plane + pixel
    red = tl.load(image, mask=inside, other=0.0)
    green = tl.load(image + plane, mask=inside, other=0.0)
    blue = tl.load(image + 2 * plane, mask=inside, other=0.0)
    return pixel, inside, pixel // width, pixel % width, red, green, blue


@triton.jit
def _guide(red, green, blue, w1_ptr, b1_ptr, w2_ptr, b2_ptr, HIDDEN: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    """guide = sigmoid(w2 . relu(W1 p + b1) + b2), the pointwise 3-16-1 network."""
    logit = tl.zeros([BLOCK_SIZE], dtype=tl.float32) + tl.load(b2_ptr)
    for k in tl.static_range(HIDDEN):
        hidden = red * tl.load(w1_ptr + 3 * k) + green * tl.load(w1_ptr + 3 * k + 1) \
            + blue * tl.load(w1_ptr + 3 * k + 2) + tl.load(b1_ptr + k)
        logit += tl.load(w2_ptr + k) * tl.maximum(hidden, 0.0)
    return 1.0 / (1.0 + tl.exp(-logit))


@triton.jit
def _cells(window_ptr, batch, row, column, guide, depth, grid_height, grid_width):
    """Cell-centred grid position at the pixel's place in its photo (window: top, left, H, W):
    lower and upper indices and upper weights along x, y, z, and d gz / d guide (D inside the grid,
    0 where clamped, as grid_sample's border padding). A NaN guide samples bin 0, never outside."""
    top = tl.load(window_ptr + 4 * batch).to(tl.float32)
    left = tl.load(window_ptr + 4 * batch + 1).to(tl.float32)
    full_height = tl.load(window_ptr + 4 * batch + 2).to(tl.float32)
    full_width = tl.load(window_ptr + 4 * batch + 3).to(tl.float32)
    gx = (left + column.to(tl.float32) + 0.5) * grid_width / full_width - 0.5
    gy = (top + row.to(tl.float32) + 0.5) * grid_height / full_height - 0.5
    gz = guide * depth - 0.5
    finite = gz == gz
    gz = tl.where(finite, gz, 0.0)
    gz_slope = tl.where(finite & (gz > 0.0) & (gz < depth - 1.0), depth * 1.0, 0.0)
    gx = tl.minimum(tl.maximum(gx, 0.0), grid_width - 1.0)
    gy = tl.minimum(tl.maximum(gy, 0.0), grid_height - 1.0)
    gz = tl.minimum(tl.maximum(gz, 0.0), depth - 1.0)
    x0 = tl.minimum(gx.to(tl.int32), grid_width - 1)
    y0 = tl.minimum(gy.to(tl.int32), grid_height - 1)
    z0 = tl.minimum(gz.to(tl.int32), depth - 1)
    x1 = tl.minimum(x0 + 1, grid_width - 1)
    y1 = tl.minimum(y0 + 1, grid_height - 1)
    z1 = tl.minimum(z0 + 1, depth - 1)
    return x0, x1, gx - x0, y0, y1, gy - y0, z0, z1, gz - z0, gz_slope


@triton.jit
def _guided_slice_apply(
    image_ptr, grid_ptr, window_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr,
    height, width, depth, grid_height, grid_width,
    HIDDEN: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
    batch = tl.program_id(1)
    pixel, inside, row, column, red, green, blue = _pixels(image_ptr, batch, height, width, BLOCK_SIZE)
    guide = _guide(red, green, blue, w1_ptr, b1_ptr, w2_ptr, b2_ptr, HIDDEN, BLOCK_SIZE)
    x0, x1, fx, y0, y1, fy, z0, z1, fz, _ = _cells(window_ptr, batch, row, column, guide, depth, grid_height, grid_width)
    plane = height * width

    cells = grid_height * grid_width
    coefficient_stride = depth * cells
    grid = grid_ptr + batch * 12 * coefficient_stride
    out = out_ptr + batch * 3 * plane + pixel
    for c in tl.static_range(3):
        value = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
        for j in tl.static_range(4):
            coefficient = grid + (4 * c + j) * coefficient_stride
            sampled = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
            for corner in tl.static_range(8):
                zi = z1 if corner & 4 else z0
                yi = y1 if corner & 2 else y0
                xi = x1 if corner & 1 else x0
                weight = (fz if corner & 4 else 1.0 - fz) * (fy if corner & 2 else 1.0 - fy) \
                    * (fx if corner & 1 else 1.0 - fx)
                sampled += weight * tl.load(coefficient + zi * cells + yi * grid_width + xi, mask=inside, other=0.0)
            channel = red if j == 0 else green if j == 1 else blue if j == 2 else 1.0
            value += sampled * channel
        tl.store(out + c * plane, value, mask=inside)


@triton.jit
def _guided_slice_apply_backward(
    image_ptr, grid_ptr, window_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, dout_ptr,
    dimage_ptr, dgrid_ptr, dw1_ptr, db1_ptr, dw2_ptr, db2_ptr,
    height, width, depth, grid_height, grid_width,
    HIDDEN: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
    """Gradients of the forward above: d image (written), d grid and d guide weights (atomic adds)."""
    batch = tl.program_id(1)
    pixel, inside, row, column, red, green, blue = _pixels(image_ptr, batch, height, width, BLOCK_SIZE)
    guide = _guide(red, green, blue, w1_ptr, b1_ptr, w2_ptr, b2_ptr, HIDDEN, BLOCK_SIZE)
    x0, x1, fx, y0, y1, fy, z0, z1, fz, gz_slope = _cells(
        window_ptr, batch, row, column, guide, depth, grid_height, grid_width)
    plane = height * width
    dout = dout_ptr + batch * 3 * plane + pixel
    d0 = tl.load(dout, mask=inside, other=0.0)
    d1 = tl.load(dout + plane, mask=inside, other=0.0)
    d2 = tl.load(dout + 2 * plane, mask=inside, other=0.0)

    cells = grid_height * grid_width
    coefficient_stride = depth * cells
    grid = grid_ptr + batch * 12 * coefficient_stride
    dgrid = dgrid_ptr + batch * 12 * coefficient_stride
    dred = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    dgreen = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    dblue = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    dgz = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    for c in tl.static_range(3):
        dchannel = d0 if c == 0 else d1 if c == 1 else d2
        for j in tl.static_range(4):
            channel = red if j == 0 else green if j == 1 else blue if j == 2 else 1.0
            coefficient = grid + (4 * c + j) * coefficient_stride
            dcoefficient = dgrid + (4 * c + j) * coefficient_stride
            sampled = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
            slope = tl.zeros([BLOCK_SIZE], dtype=tl.float32)  # d sampled / d gz
            for corner in tl.static_range(8):
                zi = z1 if corner & 4 else z0
                yi = y1 if corner & 2 else y0
                xi = x1 if corner & 1 else x0
                planar = (fy if corner & 2 else 1.0 - fy) * (fx if corner & 1 else 1.0 - fx)
                weight = (fz if corner & 4 else 1.0 - fz) * planar
                offset = zi * cells + yi * grid_width + xi
                value = tl.load(coefficient + offset, mask=inside, other=0.0)
                sampled += weight * value
                slope += (planar if corner & 4 else -planar) * value
                tl.atomic_add(dcoefficient + offset, weight * dchannel * channel, mask=inside)
            if j == 0:
                dred += dchannel * sampled
            elif j == 1:
                dgreen += dchannel * sampled
            elif j == 2:
                dblue += dchannel * sampled
            dgz += dchannel * channel * slope

    dlogit = dgz * gz_slope * guide * (1.0 - guide)
    dlogit = tl.where(inside, dlogit, 0.0)
    tl.atomic_add(db2_ptr, tl.sum(dlogit, axis=0))
    for k in tl.static_range(HIDDEN):
        wr = tl.load(w1_ptr + 3 * k)
        wg = tl.load(w1_ptr + 3 * k + 1)
        wb = tl.load(w1_ptr + 3 * k + 2)
        hidden = red * wr + green * wg + blue * wb + tl.load(b1_ptr + k)
        active = hidden > 0.0
        tl.atomic_add(dw2_ptr + k, tl.sum(dlogit * tl.maximum(hidden, 0.0), axis=0))
        dhidden = tl.where(active, dlogit * tl.load(w2_ptr + k), 0.0)
        tl.atomic_add(db1_ptr + k, tl.sum(dhidden, axis=0))
        tl.atomic_add(dw1_ptr + 3 * k, tl.sum(dhidden * red, axis=0))
        tl.atomic_add(dw1_ptr + 3 * k + 1, tl.sum(dhidden * green, axis=0))
        tl.atomic_add(dw1_ptr + 3 * k + 2, tl.sum(dhidden * blue, axis=0))
        dred += dhidden * wr
        dgreen += dhidden * wg
        dblue += dhidden * wb
    dimage = dimage_ptr + batch * 3 * plane + pixel
    tl.store(dimage, dred, mask=inside)
    tl.store(dimage + plane, dgreen, mask=inside)
    tl.store(dimage + 2 * plane, dblue, mask=inside)


def _prepared(image: torch.Tensor, grid: torch.Tensor, window: torch.Tensor | None) -> tuple:
    if image.ndim != 4 or image.shape[1] != 3 or image.dtype != torch.float32:
        raise ValueError(f"image must be float32 (B, 3, H, W), got {image.dtype} {tuple(image.shape)}")
    if grid.ndim != 5 or grid.shape[1] != N_COEFFS or grid.shape[0] != image.shape[0]:
        raise ValueError(f"grid must be (B, 12, D, Hg, Wg) with B = {image.shape[0]}, got {tuple(grid.shape)}")
    batch, _, height, width = image.shape
    window = checked_window(window, batch, height, width).to(image.device)
    sizes = (height, width, *grid.shape[2:])
    return image.contiguous(), grid.contiguous().float(), window, sizes, (triton.cdiv(height * width, BLOCK), batch)


class _GuidedSliceApply(torch.autograd.Function):
    """Guide + slice + apply with its gradients, for training on CUDA."""

    @staticmethod
    def forward(ctx, image, grid, hidden_weight, hidden_bias, out_weight, out_bias, window):  # noqa: ANN001, ANN205
        image, grid, window, sizes, launch = _prepared(image, grid, window)
        weights = [w.detach().contiguous().float().reshape(-1) for w in (hidden_weight, hidden_bias, out_weight, out_bias)]
        out = torch.empty_like(image)
        _guided_slice_apply[launch](image, grid, window, *weights, out, *sizes,
                                    HIDDEN=hidden_weight.shape[0], BLOCK_SIZE=BLOCK)
        ctx.save_for_backward(image, grid, window, *weights)
        ctx.shapes = (hidden_weight.shape, hidden_bias.shape, out_weight.shape, out_bias.shape)
        ctx.sizes, ctx.launch = sizes, launch
        return out

    @staticmethod
    def backward(ctx, dout):  # noqa: ANN001, ANN205
        image, grid, window, *weights = ctx.saved_tensors
        dimage = torch.empty_like(image)
        dgrid = torch.zeros_like(grid)
        dweights = [torch.zeros_like(w) for w in weights]
        _guided_slice_apply_backward[ctx.launch](
            image, grid, window, *weights, dout.contiguous().float(), dimage, dgrid, *dweights, *ctx.sizes,
            HIDDEN=ctx.shapes[0][0], BLOCK_SIZE=BLOCK,
        )
        return (dimage, dgrid, *(d.view(shape) for d, shape in zip(dweights, ctx.shapes)), None)


def guided_slice_apply(
    image: torch.Tensor, grid: torch.Tensor, hidden_weight: torch.Tensor, hidden_bias: torch.Tensor,
    out_weight: torch.Tensor, out_bias: torch.Tensor, window: torch.Tensor | None = None,
) -> torch.Tensor:
    """``image (B, 3, H, W)`` float32 + grid ``(B, 12, D, Hg, Wg)`` + the pointwise guide's weights
    (``(16, 3)``, ``(16,)``, ``(1, 16)``, ``(1,)``) -> ``(B, 3, H, W)``, not clipped, as
    ``apply_affine(bilateral_slice(grid, guide(image), window), image)``; differentiable in the
    image, the grid and the guide's weights."""
    return _GuidedSliceApply.apply(image, grid, hidden_weight, hidden_bias, out_weight, out_bias, window)
