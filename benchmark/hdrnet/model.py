"""HDRNet's network (Gharbi et al. 2017, §3.1-3.4 and Fig. 2): low-res coefficients, guide, output.

Defaults give the paper's 16x16 spatial x 8 luma x 12 grid and about 482k parameters.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import from_tensor, to_tensor
from benchmark.hdrnet.bilateral import N_COEFFS, apply_affine, bilateral_slice
from benchmark.hdrnet.fused import (
    GUIDE_HIDDEN,
    check_output,
    fused_guided_slice_apply,
    fused_slice_apply,
    guided_slice_apply,
)
from benchmark.imaging.antialias import antialiased_resize

GUIDES = ("pointwise", "curves")
LOWRES_INTERPOLATIONS = ("nearest", "bilinear")
FULLRES = ("fused", "grid_sample")  # full-res stage on CPU: numba kernels, or PyTorch's grid_sample


def _conv(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=bias)


def _relu() -> nn.ReLU:
    """In place: a convolution's or linear layer's backward never reads the output the ReLU
    overwrites (same bits; the quick training step's network 7.93 -> 7.78 ms, DESIGN §10)."""
    return nn.ReLU(inplace=True)


class CoefficientNet(nn.Module):
    """Low-res path: splat, local and global features, fusion, grid of affine coefficients (§3.1)."""

    def __init__(self, spatial_bins: int = 16, luma_bins: int = 8, lowres_size: int = 256) -> None:
        super().__init__()
        n_splat = int(round(math.log2(lowres_size / spatial_bins)))
        if n_splat < 1 or spatial_bins * 2**n_splat != lowres_size:
            raise BenchmarkError(
                f"model.grid.spatial={spatial_bins} must be lowres_size={lowres_size} divided by a power of two"
            )
        self.luma_bins = luma_bins
        channels = [3] + [8 * 2**i for i in range(n_splat)]  # 8, 16, 32, 64 for n_S = 4 (§3.1.1)
        self.splat = nn.Sequential(
            *[layer for i in range(n_splat) for layer in (_conv(channels[i], channels[i + 1], 2), _relu())]
        )
        features = channels[-1]
        # Local path: two 3x3 convs, the last without bias or activation (§3.1.2).
        self.local = nn.Sequential(_conv(features, 64), _relu(), _conv(64, 64, bias=False))
        # Global path: two stride-2 convs then fully connected 256 -> 128 -> 64, last linear (§3.1.3).
        self.global_conv = nn.Sequential(_conv(features, 64, 2), _relu(), _conv(64, 64, 2), _relu())
        pooled = (spatial_bins // 4) ** 2 * 64
        self.global_fc = nn.Sequential(
            nn.Linear(pooled, 256), _relu(), nn.Linear(256, 128), _relu(), nn.Linear(128, 64)
        )
        self.output = nn.Conv2d(64, luma_bins * N_COEFFS, kernel_size=1)
        self._initialise()
        # the convolutions' weights channels-last too, as oneDNN reads them with channels-last
        # features: otherwise each is copied so at every forward and backward (same bits; the quick
        # step's network 11.73 -> 11.28 ms, DESIGN §10)
        self.to(memory_format=torch.channels_last)

    def _initialise(self) -> None:
        """He-initialised layers (google/hdrnet layers.py: variance scaling, zero biases) feeding an
        output that starts at the identity transform in every cell, so training begins at the input.

        PyTorch's default init leaves half the fusion ReLUs dead on photos (their inputs are
        non-negative and the default biases are uniform): DESIGN §11, "Seeds".
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(self.output.weight)
        identity = torch.eye(3, 4).flatten()  # coefficient c * 4 + j
        with torch.no_grad():
            self.output.bias.copy_(identity.repeat_interleave(self.luma_bins))

    def forward(self, lowres: torch.Tensor) -> torch.Tensor:
        """``lowres: (B, 3, h, w)`` -> grid ``(B, 12, D, h / 2^n_S, w / 2^n_S)``."""
        # channels-last throughout: oneDNN's NCHW kernels for few channels are slow, above all
        # backward (quick training step 23.9 -> 22.4 ms for the splat layers, 12.84 -> 12.49 ms for
        # the rest; inference 0.97 -> 0.92 ms: DESIGN §10)
        splat = self.splat(lowres.contiguous(memory_format=torch.channels_last))
        local = self.local(splat)
        global_features = self.global_fc(self.global_conv(splat).flatten(1))
        fused = F.relu(local + global_features[:, :, None, None])  # §3.1.4, eq. 2
        out = self.output(fused).contiguous()
        batch, _, height, width = out.shape
        return out.view(batch, N_COEFFS, self.luma_bins, height, width)


class PointwiseGuide(nn.Module):
    """Pointwise guide g = sigmoid(W2 relu(W1 p + b1) + b2), 3 -> 16 -> 1 (google/hdrnet)."""

    def __init__(self, hidden: int = GUIDE_HIDDEN) -> None:
        super().__init__()
        self.hidden = nn.Linear(3, hidden)
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():  # our choice: start as sigmoid(6 (luma - 0.5)), monotone in luminance
            self.hidden.weight[0] = torch.tensor([0.25, 0.5, 0.25])
            self.hidden.bias[0] = 0.0
            self.out.weight.mul_(0.01)
            self.out.weight[0, 0] = 6.0
            self.out.bias.fill_(-3.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image: (B, 3, H, W)`` -> guide ``(B, H, W)`` in [0, 1].

        The 1x1 convs run as matmuls on channels-last pixels: about 3x faster on CPU than NCHW convs.
        """
        pixels = image.permute(0, 2, 3, 1)
        return torch.sigmoid(self.out(F.relu(self.hidden(pixels)))).squeeze(-1)


class CurvesGuide(nn.Module):
    """The paper's guide (§3.4.1, eq. 6): colour matrix, per-channel piecewise-linear curves, mix."""

    def __init__(self, knots: int = 16) -> None:
        super().__init__()
        self.ccm = nn.Linear(3, 3)
        self.shifts = nn.Parameter(torch.linspace(0, 1, knots + 1)[:-1].repeat(3, 1))  # (3, knots)
        slopes = torch.zeros(3, knots)
        slopes[:, 0] = 1.0  # identity curve
        self.slopes = nn.Parameter(slopes)
        self.mix = nn.Linear(3, 1)
        with torch.no_grad():
            self.ccm.weight.copy_(torch.eye(3))
            self.ccm.bias.zero_()
            self.mix.weight.fill_(1 / 3)
            self.mix.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image: (B, 3, H, W)`` -> guide ``(B, H, W)`` clipped to [0, 1]."""
        pixels = self.ccm(image.permute(0, 2, 3, 1))  # (B, H, W, 3)
        curves = (self.slopes * F.relu(pixels.unsqueeze(-1) - self.shifts)).sum(-1)
        return self.mix(curves).squeeze(-1).clamp(0, 1)


class HDRNet(nn.Module):
    """Full-resolution image -> full-resolution output through a sliced bilateral grid of affines."""

    def __init__(
        self,
        spatial_bins: int = 16,
        luma_bins: int = 8,
        lowres_size: int = 256,
        guide: str = "pointwise",
        lowres_interpolation: str = "bilinear",
        fullres: str = "fused",
    ) -> None:
        super().__init__()
        settings.choice("model.fullres", fullres, FULLRES)
        settings.choice("model.guide", guide, GUIDES)
        settings.choice("model.lowres_interpolation", lowres_interpolation, LOWRES_INTERPOLATIONS)
        settings.integer("model.grid.luma_bins", luma_bins, 1)
        self.lowres_size = lowres_size
        self.lowres_interpolation = lowres_interpolation
        self.fullres = fullres
        self.coefficients = CoefficientNet(spatial_bins, luma_bins, lowres_size)
        self.guide = PointwiseGuide() if guide == "pointwise" else CurvesGuide()

    def lowres(self, image: torch.Tensor) -> torch.Tensor:
        """The network's view: the whole image squeezed to lowres_size x lowres_size (§3.1),
        channels-last in memory as the network reads it (a training batch of cached views is
        joined in that layout: no conversion at each step)."""
        size = (self.lowres_size, self.lowres_size)
        if self.lowres_interpolation == "nearest":  # the original code's choice
            view = F.interpolate(image, size=size, mode="nearest")
        else:
            view = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        return view.contiguous(memory_format=torch.channels_last)

    def forward(
        self, image: torch.Tensor, lowres: torch.Tensor | None = None, window: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``image: (B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` (not clipped, as trained with L2).

        With ``lowres`` (``(B, 3, s, s)``, ``self.lowres`` of the whole photos) and ``window``
        (``(B, 4)``, see ``bilateral_slice``), ``image`` is a crop of each photo: the grid comes from
        the whole photo, as at test time, and the crop is sliced at its place in it, so the output
        equals that crop of the whole photo's output.
        """
        grid = self.coefficients(self.lowres(image) if lowres is None else lowres)
        if self.fullres == "fused" and image.device.type == "cpu":
            if isinstance(self.guide, PointwiseGuide):  # guide computed inside the fused kernel
                return fused_guided_slice_apply(grid, image, self.guide.hidden, self.guide.out, window)
            return fused_slice_apply(grid, self.guide(image), image, window)
        if self.fullres == "fused" and image.device.type == "cuda" and isinstance(self.guide, PointwiseGuide):
            # Triton is imported only where a GPU runs it
            from benchmark.hdrnet import triton_kernels

            hidden, out = self.guide.hidden, self.guide.out
            return triton_kernels.guided_slice_apply(image, grid, hidden.weight, hidden.bias, out.weight, out.bias, window)
        return apply_affine(bilateral_slice(grid, self.guide(image), window), image)

    def photo_view(self, image: np.ndarray) -> torch.Tensor:
        """``self.lowres`` of an ``(H, W, 3)`` float32 or uint8 photo on the CPU, straight from its HWC
        pixels: ``(1, 3, s, s)`` float32, channels-last in memory as the network reads it. The bilinear
        view goes through the one-pass antialiased resize (equal to ``F.interpolate`` within 3e-7,
        2.5x faster: DESIGN §10), which reads 8-bit pixels as value / 255 without a float copy of
        the photo: an 8-bit photo's view is its float photo's view."""
        if self.lowres_interpolation == "bilinear":
            view = antialiased_resize(image, (self.lowres_size, self.lowres_size))  # HWC
            return torch.from_numpy(view).permute(2, 0, 1)[None]
        pixels = image if image.flags.writeable else image.copy()  # torch takes only writable memory (as to_tensor)
        view = self.lowres(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0))  # channels-last in memory
        return view.float() / 255 if image.dtype == np.uint8 else view

    @torch.no_grad()
    def enhance(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Inference on one ``(H, W, 3)`` photo -> output of the same size and type: float32 in
        [0, 1] (clipped), or uint8 in, uint8 out (rounded); written into ``out`` when given (a
        C-contiguous array of that shape and type: a video pipeline's frame buffer, which spares a
        fresh allocation per frame; at 3840x2160 float32 its page faults cost ~4 ms, DESIGN §10).
        Without ``out``, the fused path writes into an output an earlier call returned once its
        caller has dropped it (``benchmark.core.buffers``), else into a new array.

        On CPU with the pointwise guide, guide + slice + apply run as one fused kernel straight on
        the HWC pixels (no layout copies; for uint8 no float copy of the photo either: the 256x256
        view reads the 8-bit pixels as value / 255); otherwise the forward pass above.
        """
        device = next(self.parameters()).device
        eight_bit = image.dtype == np.uint8
        if self.fullres == "fused" and device.type == "cpu" and isinstance(self.guide, PointwiseGuide):
            image = np.ascontiguousarray(image, dtype=np.uint8 if eight_bit else np.float32)
            grid = self.coefficients(self.photo_view(image)).numpy()
            hidden, last = self.guide.hidden, self.guide.out
            return guided_slice_apply(
                image, grid, hidden.weight.numpy(), hidden.bias.numpy(), last.weight.numpy(), last.bias.numpy(), out=out,
            )
        output = from_tensor(self(to_tensor(image.astype(np.float32) / 255 if eight_bit else image, device)))
        result = np.rint(output * 255).astype(np.uint8) if eight_bit else output
        if out is None:
            return result
        check_output(out, result.shape, result.dtype)
        out[...] = result
        return out
