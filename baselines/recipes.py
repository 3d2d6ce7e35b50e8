"""Transform Recipes (Gharbi, Shih, Chaurasia, Ragan-Kelley, Paris, Durand 2015, "Transform Recipes
for Efficient Cloud Photo Enhancement", ACM ToG 34(6):228) -- an UPPER BOUND, not a speed-up.

In the paper a phone uploads its photo, a server runs the slow enhancement and, instead of the output
image, sends back a compact *recipe*: per-block coefficients of a simple model that turns the input into
the output. The phone rebuilds the output from its own full-resolution input and the recipe. Here the
server side needs the operator's FULL-RESOLUTION output, so ``predict`` runs the operator at full
resolution and its time is more than the reference's: the model is labelled ``upper_bound = True``. What
it measures is how well a per-block recipe of this size can describe the operator (the accuracy ceiling
of "fit a local model on the true pair"), not a way of making the operator fast.

The recipe model (paper §3, "transform recipes"; details follow the authors' reference implementation,
github.com/mgharbi/xform_recipes, ``xform_python/processor/transform_model.py``, params in
``models.py``). All in YCbCr (``cv2`` full-range BT.601, channel 0 is luma Y):

1. Lowpass residual: the output at 1/w resolution (w = ``block_size`` = 64), stored as the ratio
   ``(lowpass(O) + 1) / (lowpass(I) + 1)`` and rebuilt as ``ratio * (lowpass(I) + 1) - 1``, upsampled
   bicubically (the reference code's ``get_lowpass_recipe`` / ``reconstruct_lowpass_residual``).
2. Highpass, per block of w x w px, blocks overlapping by half (step w/2): with hp(X) = X - up(lowpass(X)),
   - chroma (Cb, Cr): hp(O_c) ≈ Σ_k a_ck · hp(I_k) + b_c  -- affine in the input's three channels;
   - luma: hp(O_Y) ≈ Σ_k a_k · hp(I_k) + Σ_j t_j · max(I_Y - β_j, 0) + Σ_l m_l · L_l[I_Y] + b, i.e. the
     affine term, a piecewise-linear tone curve of the input luma (``luma_bands`` segments, knots β_j
     evenly spaced between the block's min and max luma; no curve where that spacing is below 5/255,
     as in the reference code) and the multi-scale term: the bands L_l of a full-resolution Laplacian
     *stack* of the input luma (``multiscale_levels``, default log2(w) - 1 = 5 bands).
   Coefficients per block and channel by least squares (the paper's regression; see simplifications).
3. Reconstruction: each block's model is evaluated on its pixels and the overlapping blocks are blended
   with a separable triangular (bilinear) window of width w peaking at the block centre, which sums to
   one over half-overlapping blocks (the reference code's ``linear_interpolate``), plus the lowpass.
4. Optional compression (``quantize_bits``): the paper's recipe is quantised for transmission; the
   reference ``UniformEncoder`` maps every coefficient channel uniformly between its min and max over
   the image to 8 bits, and the lowpass ratio is kept as float16. ``null`` keeps the exact float recipe.

Simplifications, stated:
- Least squares with a small ridge term ``epsilon`` (per pixel, in [0, 1] signal units; the intercept is
  not penalised) instead of the reference code's Lasso (sklearn, α = 1e-3): the paper's model, a closed
  form per block, and a regulariser for flat blocks where the features are collinear.
- The lowpass is an area (box) downsample to round(H/w) x round(W/w) and a bicubic upsample (OpenCV),
  not MATLAB ``imresize``; the Laplacian stack uses OpenCV's 5-tap ``pyrDown``/``pyrUp`` (as the
  reference code and ``operators.local_laplacian``).
- No input degradation: the paper's client uploads a downsampled JPEG of its input and the server fits
  on that; here the recipe is fitted on the full-resolution input itself (the brief's upper bound).
- Border blocks are the blocks of the padded grid (ceil(H/(w/2)) x ceil(W/(w/2)) blocks), fitted on
  their pixels inside the image only; the blending weights are renormalised at the borders.

Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((70, 90, 3), dtype=np.float32)
    >>> model = TransformRecipes("recipes")
    >>> out = model.predict(image, lambda x: np.clip(0.8 * x + 0.1, 0, 1))
    >>> out.shape, out.dtype, bool(np.abs(out - (0.8 * image + 0.1)).max() < 1e-3)
    ((70, 90, 3), dtype('float32'), True)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from benchmark.core.errors import BenchmarkError
from benchmark.core.images import INTERPOLATIONS, resize
from benchmark.imaging.pyramids import gaussian_pyramid
from benchmark.models.interface import Approximator, Operator

# Reference code (transform_model.py extend_features): no tone curve in a block whose luma knots are
# closer than 5 (of 255) -- its curve would only fit noise.
MIN_KNOT_SPACING = 5.0 / 255.0


@dataclass
class Recipe:
    """What the server sends: the lowpass ratio image and per-block highpass coefficients."""

    lowpass_ratio: np.ndarray  # (h, w, 3) float32: (lowpass(O) + 1) / (lowpass(I) + 1), YCbCr
    luma: np.ndarray  # (blocks_y, blocks_x, n_luma_features) float64
    chroma: np.ndarray  # (blocks_y, blocks_x, 2, 4) float64: 3 channel gains + offset for Cr, Cb


def _check_int(key: str, value: object, low: int, expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise BenchmarkError(f"model.{key}={value!r} must be {expected}")


class TransformRecipes(Approximator):
    """Per-block YCbCr recipe fitted on the full-resolution (input, output) pair; see the module doc."""

    needs_operator = True
    upper_bound = True  # runs the operator at FULL resolution: an accuracy ceiling, slower than the reference

    def __init__(
        self,
        name: str,
        block_size: int = 64,
        luma_bands: int = 6,
        multiscale_levels: int | None = None,
        epsilon: float = 1e-6,
        quantize_bits: int | None = None,
    ) -> None:
        block_rule = "an even integer >= 4 (pixels; blocks overlap by half)"
        _check_int("block_size", block_size, 4, block_rule)
        if block_size % 2:
            raise BenchmarkError(f"model.block_size={block_size!r} must be {block_rule}")
        _check_int("luma_bands", luma_bands, 1, "an integer >= 1 (segments of the luma curve; 1 = no curve)")
        if multiscale_levels is not None:
            _check_int("multiscale_levels", multiscale_levels, 0, "null or an integer >= 0 (Laplacian bands)")
        finite = isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool) and math.isfinite(epsilon)
        if not (finite and epsilon > 0):
            raise BenchmarkError(f"model.epsilon={epsilon!r} must be a finite number > 0 (ridge weight)")
        if quantize_bits is not None:
            _check_int("quantize_bits", quantize_bits, 2, "null or an integer in [2, 16]")
            if quantize_bits > 16:
                raise BenchmarkError(f"model.quantize_bits={quantize_bits!r} must be null or an integer in [2, 16]")
        self.name = name
        self.block_size = int(block_size)
        self.step = self.block_size // 2
        self.luma_bands = int(luma_bands)
        self.multiscale_levels = (
            max(0, int(math.log2(self.block_size)) - 1) if multiscale_levels is None else int(multiscale_levels)
        )
        self.epsilon = float(epsilon)
        self.quantize_bits = quantize_bits

    # -----------------------------------------------------------------------------------------
    # Harness interface

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Run the operator at full resolution (server), fit the recipe, rebuild from the input (client)."""
        if operator is None:
            raise BenchmarkError(f"model {self.name} needs the task's reference operator")
        output = np.asarray(operator(image), dtype=np.float32)
        if output.shape != image.shape:
            raise BenchmarkError(f"model {self.name}: operator returned shape {output.shape} for input {image.shape}")
        recipe = self.fit_recipe(image, output)
        if self.quantize_bits is not None:
            recipe = quantize(recipe, self.quantize_bits)
        return self.reconstruct(image, recipe)


    # -----------------------------------------------------------------------------------------
    # Server: fit

    def fit_recipe(self, image: np.ndarray, output: np.ndarray) -> Recipe:
        """The recipe of the pair (image, output), both HxWx3 RGB float32 in [0, 1]."""
        inp, out = to_ycc(image), to_ycc(output)
        low_size = self._lowpass_size(inp.shape[:2])
        low_in, low_out = resize(inp, low_size, "area"), resize(out, low_size, "area")
        ratio = ((low_out + 1) / (low_in + 1)).astype(np.float32)
        features = self._features(inp, low_in)
        target = _channels_first(out - _upsample(low_out, inp.shape[:2]), features.padded_shape)
        n_luma = features.luma_size
        blocks_y, blocks_x = features.blocks
        luma = np.empty((blocks_y, blocks_x, n_luma))
        chroma = np.empty((blocks_y, blocks_x, 2, 4))
        penalty = np.ones(n_luma)
        penalty[-1] = 0.0  # the intercept is not shrunk
        chroma_index = features.chroma_index
        for row in range(blocks_y):
            x = features.block_row(row)  # (bx, D, P); the last feature (constant) is 1 on image pixels
            y = _block_row(target, row, self.step)  # (bx, 3, P)
            gram = np.matmul(x, x.transpose(0, 2, 1)).astype(np.float64)  # (bx, D, D)
            rhs = np.matmul(x, y.transpose(0, 2, 1)).astype(np.float64)  # (bx, D, 3)
            ridge = self.epsilon * gram[:, -1, -1]  # ε · (pixels of the block inside the image)
            system = gram + ridge[:, None, None] * np.diag(penalty)[None]
            luma[row] = np.linalg.solve(system, rhs[:, :, :1])[..., 0]
            sub = system[:, chroma_index][:, :, chroma_index]
            chroma[row] = np.linalg.solve(sub, rhs[:, chroma_index, 1:]).transpose(0, 2, 1)
        return Recipe(ratio, luma, chroma)

    # -----------------------------------------------------------------------------------------
    # Client: reconstruct

    def reconstruct(self, image: np.ndarray, recipe: Recipe) -> np.ndarray:
        """Rebuild the output from the full-resolution input and the recipe; RGB float32 in [0, 1]."""
        inp = to_ycc(image)
        height, width = inp.shape[:2]
        low_size = self._lowpass_size((height, width))
        if recipe.lowpass_ratio.shape[:2] != low_size:
            raise ValueError(f"recipe lowpass {recipe.lowpass_ratio.shape[:2]} does not match image {image.shape[:2]}")
        low_in = resize(inp, low_size, "area")
        low_out = recipe.lowpass_ratio.astype(np.float32) * (low_in + 1) - 1
        features = self._features(inp, low_in)
        if recipe.luma.shape[:2] != features.blocks:
            raise ValueError(f"recipe has {recipe.luma.shape[:2]} blocks, image needs {features.blocks}")
        s = self.step
        tent = _hat(s)
        window = (tent[:, None] * tent[None, :]).reshape(-1)  # (P,)
        # One (3 x D) matrix per block: the luma row, and the chroma rows spread to the luma feature order.
        blocks_y, blocks_x = features.blocks
        coefficients = np.zeros((blocks_y, blocks_x, 3, features.luma_size), np.float32)
        coefficients[:, :, 0] = recipe.luma
        coefficients[:, :, 1:, features.chroma_index] = recipe.chroma
        highpass = np.zeros((3, *features.padded_shape), np.float32)
        for row in range(blocks_y):
            x = features.block_row(row)  # (bx, D, P)
            pred = np.matmul(coefficients[row], x)  # (bx, 3, P)
            pred *= window
            _overlap_add_row(highpass, pred, row, s)
        # Separable window over a full grid of blocks: the weight sum is an outer product.
        weight = _window_sum(height, blocks_y, s)[:, None] * _window_sum(width, blocks_x, s)[None, :]
        result = _upsample(low_out, (height, width))
        result += np.moveaxis(highpass[:, :height, :width] / weight, 0, -1)
        return np.clip(from_ycc(result), 0.0, 1.0)

    # -----------------------------------------------------------------------------------------

    def _lowpass_size(self, shape: tuple[int, int]) -> tuple[int, int]:
        return max(1, round(shape[0] / self.block_size)), max(1, round(shape[1] / self.block_size))

    def _features(self, inp: np.ndarray, low_in: np.ndarray) -> _Features:
        highpass = inp - _upsample(low_in, inp.shape[:2])
        bands = laplacian_stack(inp[..., 0], self.multiscale_levels)
        return _Features(inp[..., 0], highpass, bands, self.luma_bands, self.step)


class _Features:
    """Per-pixel regression features on the padded block grid, served one row of blocks at a time.

    Luma feature order: hp(Y, Cr, Cb), tone-curve hinges (luma_bands - 1), Laplacian bands, 1.
    Chroma features: hp(Y, Cr, Cb), 1 (``chroma_index`` into the luma order). Outside the image every
    feature is 0, so padded pixels have no weight in the fit.
    """

    def __init__(self, luma: np.ndarray, highpass: np.ndarray, bands: list[np.ndarray], luma_bands: int, step: int):
        height, width = luma.shape
        self.step = step
        self.blocks = (math.ceil(height / step), math.ceil(width / step))
        self.padded_shape = ((self.blocks[0] + 1) * step, (self.blocks[1] + 1) * step)
        self.luma_bands = luma_bands
        self.n_hinges = luma_bands - 1
        self.n_bands = len(bands)
        self.luma_size = 3 + self.n_hinges + self.n_bands + 1
        self.chroma_index = np.array([0, 1, 2, self.luma_size - 1])
        # Channels (first axis): hp(3), Laplacian bands, constant, luma.
        self.pixel = np.zeros((3 + self.n_bands + 2, *self.padded_shape), np.float32)
        self.pixel[:3, :height, :width] = np.moveaxis(highpass, -1, 0)
        for index, band in enumerate(bands):
            self.pixel[3 + index, :height, :width] = band
        self.pixel[-2, :height, :width] = 1.0
        self.pixel[-1, :height, :width] = luma
        # Each block's luma range from the min/max of its four (step x step) cells, edge-replicated
        # beyond the image (a border block still contains the last row/column it replicates).
        cells = np.pad(luma, ((0, self.padded_shape[0] - height), (0, self.padded_shape[1] - width)), mode="edge")
        cells = cells.reshape(self.blocks[0] + 1, step, self.blocks[1] + 1, step)
        low, high = cells.min(axis=(1, 3)), cells.max(axis=(1, 3))
        self.low = np.minimum.reduce([low[:-1, :-1], low[1:, :-1], low[:-1, 1:], low[1:, 1:]])
        self.high = np.maximum.reduce([high[:-1, :-1], high[1:, :-1], high[:-1, 1:], high[1:, 1:]])

    def block_row(self, row: int) -> np.ndarray:
        """Features (bx, D, P) of the blocks of one block row, P = (2 step)^2 pixels each."""
        pixel = _block_row(self.pixel, row, self.step)  # (bx, C, P)
        if self.n_hinges == 0:
            return pixel[:, :-1]
        blocks_x, _, count = pixel.shape
        features = np.empty((blocks_x, self.luma_size, count), np.float32)
        features[:, :3] = pixel[:, :3]
        features[:, 3 + self.n_hinges :] = pixel[:, 3:-1]
        spacing = (self.high[row] - self.low[row]) / self.luma_bands  # (bx,)
        knots = self.low[row][:, None] + spacing[:, None] * np.arange(1, self.luma_bands, dtype=np.float32)
        hinges = features[:, 3 : 3 + self.n_hinges]
        np.subtract(pixel[:, -1:], knots[:, :, None], out=hinges)
        np.maximum(hinges, 0.0, out=hinges)
        hinges *= pixel[:, -2:-1]  # zero outside the image
        hinges[spacing < MIN_KNOT_SPACING] = 0.0
        return features


def _channels_first(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, C) -> zero-padded (C, H', W') float32."""
    padded = np.zeros((image.shape[2], *shape), np.float32)
    padded[:, : image.shape[0], : image.shape[1]] = np.moveaxis(image, -1, 0)
    return padded


def _block_row(padded: np.ndarray, row: int, step: int) -> np.ndarray:
    """(bx, C, (2 step)^2) copy of the blocks (row, 0..bx-1) of a padded (C, H', W') array."""
    channels, _, padded_w = padded.shape
    strip = padded[:, row * step : (row + 2) * step]  # (C, 2s, W')
    blocks_x = padded_w // step - 1
    windows = np.lib.stride_tricks.sliding_window_view(strip, 2 * step, axis=2)[:, :, ::step][:, :, :blocks_x]
    # windows: (C, 2s rows, bx, 2s cols) -> (bx, C, rows, cols)
    return np.ascontiguousarray(windows.transpose(2, 0, 1, 3)).reshape(blocks_x, channels, 4 * step * step)


def _overlap_add_row(target: np.ndarray, pred: np.ndarray, row: int, step: int) -> None:
    """Add (bx, C, (2s)^2) block values into rows row*s:(row+2)*s of the padded (C, H', W') target."""
    blocks_x, channels, _ = pred.shape
    blocks = pred.reshape(blocks_x, channels, 2 * step, 2 * step)
    strip = target[:, row * step : (row + 2) * step].reshape(channels, 2 * step, blocks_x + 1, step)
    strip[:, :, :blocks_x] += blocks[..., :step].transpose(1, 2, 0, 3)
    strip[:, :, 1:] += blocks[..., step:].transpose(1, 2, 0, 3)


def _hat(step: int) -> np.ndarray:
    """Triangular window over 2 step pixels peaking at the centre; half-shifted copies sum to 1."""
    centres = np.arange(2 * step, dtype=np.float32) + 0.5
    return 1.0 - np.abs(centres - step) / step


def _window_sum(length: int, blocks: int, step: int) -> np.ndarray:
    """Σ over blocks of the 1-D window at each of the first ``length`` pixels (1 inside, < 1 at borders)."""
    total = np.zeros((blocks + 1) * step, np.float32)
    tent = _hat(step)
    for index in range(blocks):
        total[index * step : index * step + 2 * step] += tent
    return total[:length]


def _upsample(low: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic upsample without clipping (a lowpass of YCbCr, or a ratio-rebuilt one)."""
    if low.shape[:2] == tuple(size):
        return low.astype(np.float32, copy=True)
    return cv2.resize(low, (size[1], size[0]), interpolation=INTERPOLATIONS["bicubic"])


def laplacian_stack(luma: np.ndarray, levels: int) -> list[np.ndarray]:
    """The first ``levels`` bands of a Laplacian *stack* (every band at full resolution).

    Band l = Up^l(G_l) - Up^(l+1)(G_(l+1)) = Up^l(L_l), the pyramid band l upsampled back to full
    size, with G the ``pyrDown`` Gaussian pyramid and Up repeated ``pyrUp`` (reference code:
    mghimproc/pyramid.py ``buildLaplacianPyramid(useStack=True)``).
    """
    if levels == 0:
        return []
    gauss = gaussian_pyramid(luma.astype(np.float32), levels + 1)
    stack = []
    for level, image in enumerate(gauss):
        for finer in reversed(gauss[:level]):
            image = cv2.pyrUp(image, dstsize=(finer.shape[1], finer.shape[0]))
        stack.append(image)
    return [fine - coarse for fine, coarse in itertools.pairwise(stack)]


def to_ycc(image: np.ndarray) -> np.ndarray:
    """RGB [0, 1] -> YCrCb (full-range BT.601, chroma centred on 0.5), float32; channel 0 is luma."""
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2YCrCb)


def from_ycc(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_YCrCb2RGB)


def quantize(recipe: Recipe, bits: int) -> Recipe:
    """The paper's transmission step: coefficients uniformly to ``bits`` per channel, lowpass as float16."""
    levels = 2**bits - 1

    def uniform(values: np.ndarray) -> np.ndarray:
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        low, high = flat.min(axis=0), flat.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        codes = np.floor((flat - low) / span * levels + 0.5)
        return (codes / levels * span + low).reshape(values.shape)

    ratio = recipe.lowpass_ratio.astype(np.float16).astype(np.float32)
    return Recipe(ratio, uniform(recipe.luma), uniform(recipe.chroma))
