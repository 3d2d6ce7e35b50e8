"""Deep guided filter: Wu, Zheng, Zhang, Huang 2018, "Fast End-to-End Trainable Guided Filter" (CVPR).

A learned peer of HDRNet (DESIGN.md §6). The model with a learned guidance map (``DGF`` with the
guidance map of the paper; ``DeepGuidedFilterAdvanced`` in the authors' code,
wuhuikai/DeepGuidedFilter, ImageProcessing/DeepGuidedFilteringNetwork/module.py). Section
references name the paper's parts; their numbers are from memory, check them against the PDF.

1. ``I_l``: the full-resolution input ``I_h`` downsampled so that its *shorter* side is
   ``lowres_size`` = 64 (aspect kept; images already that small are used as they are). This is the
   authors' setting (their dataset.py: ``transforms.resize(img, low_size=64)``, which sets the
   shorter side; nearest-neighbour there, antialiased bilinear here, like HDRNet's low-res
   input). Keeping the aspect ratio keeps the square box windows square in the image (a fixed
   256x256 squeeze would stretch them), and 64 px keeps the CAN cheap: at 256 px (1:1 with the
   harness's 256 crops) a CPU training step was ~10x slower.
2. ``O_l = f_L(I_l)``: the low-res network, the context aggregation network (CAN) of Chen, Xu,
   Koltun 2017 that the paper uses for image processing: 3x3 convs with dilations
   1, 2, 4, ..., 2^(depth-1), one more 3x3 conv with dilation 1, each followed by adaptive
   normalisation ``AN(x) = w0 x + w1 BN(x)`` and LeakyReLU(0.2), then a 1x1 conv to 3 channels.
   ``width`` = 24 and ``depth`` = 5 (dilations 1..16), as the authors' ``build_lr_net``.
3. Guidance maps ``G_l = F(I_l)``, ``G_h = F(I_h)`` (the paper's learnable guidance map, §3):
   one shared pointwise net 3 -> 15 (1x1 conv, AN, LeakyReLU) -> 3 (1x1 conv), as the code.
4. Guided filtering layer (§3, Algorithm 1): channel by channel, in every (2r+1)^2 box window
   w_k of the low-res maps, the linear model ``O_l,i = a_k G_l,i + b_k`` (i in w_k) is fitted in
   closed form ``a_k = cov_k(G_l, O_l) / (var_k(G_l) + eps)``, ``b_k = mean_k(O_l) - a_k mean_k(G_l)``
   (He et al.'s guided filter; Algorithm 1 lines 1-2, with box means ``f_mean``). ``A_l``, ``b_l``
   are upsampled bilinearly (``f_up``) to ``A_h``, ``b_h`` and the output is
   ``O_h = A_h * G_h + b_h`` (Algorithm 1, last lines). As in Algorithm 1 and the authors'
   ``FastGuidedFilter``, A_l and b_l are upsampled directly (no second box mean as in He's fast
   guided filter). Everything is differentiable, so the pipeline trains end to end with the L2
   loss at full resolution.

Defaults: r = 1, eps = 1e-4 (the authors' ``DeepGuidedFilterAdvanced``). 27,068 parameters
(CAN 26,943, guidance net 125; counted in tests/test_learned_peers.py).

Start near the identity (our choice; training then begins at the input image, like HDRNet): the
CAN's channels 0-2 carry the input through (Chen et al. initialise the CAN to the identity; the
authors' ``weights_init_identity`` does so for the hidden layers), its 1x1 output layer is the
identity on those channels and zero elsewhere, and the guidance net likewise. Hidden channels
3.. start random, so gradients reach them from the first step. Then ``G = I`` and ``O_l = I_l``,
so ``A = var / (var + eps)``: the output equals the input where the low-res local variance is
well above eps and is pulled towards the local mean in flat windows and where fine texture
vanished in the downsampling (>= 35 dB from the input on photos; see the tests).

Deviations: upsampling uses ``align_corners=False`` (pixel centres, the harness's convention;
the authors' code uses True); BatchNorm momentum is PyTorch's 0.1 (the code's 0.999 is a TF-style
value that in PyTorch keeps only the last batch); and batch statistics are used, and running
statistics updated, only when gradients are being computed (training steps): the harness's
monitoring passes run under ``no_grad`` without ``eval()`` and must not change the model (see
``AdaptiveNorm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core import settings
from benchmark.models.interface import NetworkApproximator

LEAKY_SLOPE = 0.2


class AdaptiveNorm(nn.Module):
    """Adaptive normalisation ``w0 x + w1 BN(x)`` (Chen, Xu, Koltun 2017, §3), starting at ``x``.

    Works on any layout: ``channel_dim`` names the channel axis (1 for NCHW, -1 for channels-last
    pixels). BN and the mix are folded into one per-channel scale and shift, so a full-resolution
    input costs one multiply-add.

    Batch statistics are used (and the running ones updated) only in training mode *with*
    gradients enabled; under ``torch.no_grad()`` the running statistics are used. The harness's
    training loop evaluates held-out images under ``no_grad`` without calling ``eval()``; a plain
    BatchNorm would then normalise by, and fold into its running averages, held-out statistics.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-3) -> None:
        super().__init__()
        self.w0 = nn.Parameter(torch.ones(1))
        self.w1 = nn.Parameter(torch.zeros(1))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def batch_statistics_used(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def scale_shift(
        self, stats: tuple[torch.Tensor, torch.Tensor] | None, count: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(scale, shift)`` with ``AN(x) = scale * x + shift``.

        ``stats``: the batch's per-channel (mean, biased variance) over ``count`` values per
        channel; needed (and the running statistics updated) when ``batch_statistics_used()``.
        """
        if self.batch_statistics_used():
            if stats is None:
                raise ValueError("batch statistics are needed in training mode")
            mean, var = stats
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * count / max(count - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        bn_scale = self.weight * torch.rsqrt(var + self.eps)
        return self.w0 + self.w1 * bn_scale, self.w1 * (self.bias - bn_scale * mean)

    def forward(self, x: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        channel_dim %= x.ndim
        stats = None
        if self.batch_statistics_used():
            var, mean = torch.var_mean(x, dim=[d for d in range(x.ndim) if d != channel_dim], unbiased=False)
            stats = (mean, var)
        scale, shift = self.scale_shift(stats, x.numel() // x.shape[channel_dim])
        shape = [1] * x.ndim
        shape[channel_dim] = -1
        return torch.addcmul(shift.view(shape), x, scale.view(shape))


class ContextAggregationNet(nn.Module):
    """The low-res network f_L: a CAN (Chen et al. 2017) of dilated 3x3 convs, identity at start."""

    def __init__(self, width: int = 24, depth: int = 5) -> None:
        super().__init__()
        settings.integer("model.width", width, 3)
        settings.integer("model.depth", depth, 1)
        dilations = [2**i for i in range(depth)] + [1]  # 1, 2, 4, ..., 2^(depth-1), then 1
        self.dilations = dilations
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, d in enumerate(dilations):
            self.convs.append(nn.Conv2d(3 if i == 0 else width, width, 3, padding=d, dilation=d, bias=False))
            self.norms.append(AdaptiveNorm(width))
        self.output = nn.Conv2d(width, 3, 1)
        self._init_identity()

    @torch.no_grad()
    def _init_identity(self) -> None:
        """Dirac init of the hidden convs (as the authors' ``weights_init_identity``); channels 0-2
        carry the input; the first conv's other channels stay random; the output picks 0-2."""
        first = self.convs[0].weight  # (width, 3, 3, 3), default random init
        first[:3].zero_()
        for c in range(3):
            first[c, c, 1, 1] = 1.0
        for conv in self.convs[1:]:
            nn.init.dirac_(conv.weight)
        self.output.weight.zero_()
        self.output.bias.zero_()
        for c in range(3):
            self.output.weight[c, c] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN convs: 1.3-1.8x faster on CPU here
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), LEAKY_SLOPE)
        return self.output(x)


class GuidanceNet(nn.Module):
    """The learnable guidance map F (§3.2): pointwise 3 -> hidden (AN, LeakyReLU) -> 3, identity at start.

    The 1x1 convs run as batched matmuls ``W @ X`` on the ``(B, 3, H*W)`` view of the NCHW image
    (about 2x faster on CPU than ``nn.Linear`` on the channels-last view at 1920x1080).
    """

    def __init__(self, hidden: int = 15) -> None:
        super().__init__()
        settings.integer("model.guide_hidden", hidden, 3)
        self.hidden = nn.Linear(3, hidden, bias=False)
        self.norm = AdaptiveNorm(hidden)
        self.out = nn.Linear(hidden, 3)
        with torch.no_grad():
            self.hidden.weight[:3] = torch.eye(3)  # rows 3.. keep their random init
            self.out.weight.zero_()
            self.out.weight[:, :3] = torch.eye(3)
            self.out.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, 3, H, W)`` guidance.

        The hidden layer is linear and bias-free, ``h = W p``, so its batch mean and variance are
        ``W mean(p)`` and ``diag(W cov(p) W^T)``: exact, from the 3x3 pixel covariance, with no
        pass over the 15-channel full-resolution tensor; AN's per-channel affine then folds into
        ``W``.
        """
        batch, _, height, width = image.shape
        pixels = image.reshape(batch, 3, height * width)
        weight = self.hidden.weight
        stats = None
        if self.norm.batch_statistics_used():
            count = batch * height * width
            mean = pixels.mean(dim=(0, 2))
            cov = torch.einsum("bcn,bdn->cd", pixels, pixels) / count - torch.outer(mean, mean)
            stats = (weight @ mean, ((weight @ cov) * weight).sum(1).clamp_min(0))
        scale, shift = self.norm.scale_shift(stats, batch * height * width)
        hidden = torch.baddbmm(shift[None, :, None], (weight * scale[:, None]).expand(batch, -1, -1), pixels)
        hidden = F.leaky_relu(hidden, LEAKY_SLOPE, inplace=True)
        out = torch.baddbmm(self.out.bias[None, :, None], self.out.weight.expand(batch, -1, -1), hidden)
        return out.view(batch, 3, height, width)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel, windows clipped at the border (the N
    normalisation of He et al. / the authors' BoxFilter): ``avg_pool2d`` with
    ``count_include_pad=False``."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_filter_coefficients(
    guide_lr: torch.Tensor, target_lr: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window linear model ``target ≈ A guide + b`` at low resolution (§3.1, Algorithm 1 l.1-2).

    ``guide_lr``, ``target_lr``: ``(B, C, h, w)`` (C = 3, channel by channel). Returns ``A, b``.
    """
    if guide_lr.shape != target_lr.shape:
        raise ValueError(f"guide {tuple(guide_lr.shape)} and target {tuple(target_lr.shape)} differ in shape")
    if radius < 0:
        raise ValueError(f"radius={radius} must be >= 0")
    # The four box means in one call: [I, O, I*O, I*I] stacked on the channel axis.
    channels = guide_lr.shape[1]
    means = box_mean(torch.cat([guide_lr, target_lr, guide_lr * target_lr, guide_lr * guide_lr], 1), radius)
    mean_i, mean_o, mean_io, mean_ii = means.split(channels, dim=1)
    cov_io = mean_io - mean_i * mean_o
    var_i = mean_ii - mean_i * mean_i
    a = cov_io / (var_i + eps)
    b = mean_o - a * mean_i
    return a, b


def guided_filter_layer(
    guide_lr: torch.Tensor, target_lr: torch.Tensor, guide_hr: torch.Tensor, radius: int, eps: float
) -> torch.Tensor:
    """The trainable guided filtering layer (§3.1, Algorithm 1): fit ``A_l, b_l`` at low resolution,
    upsample them bilinearly (pixel centres, ``align_corners=False``) and return ``A_h * G_h + b_h``.

    ``guide_lr``, ``target_lr``: ``(B, C, h, w)``; ``guide_hr``: ``(B, C, H, W)`` -> ``(B, C, H, W)``.
    """
    a, b = guided_filter_coefficients(guide_lr, target_lr, radius, eps)
    size = guide_hr.shape[-2:]
    coeffs = torch.cat([a, b], 1)
    if coeffs.shape[-2:] != size:
        coeffs = F.interpolate(coeffs, size=size, mode="bilinear", align_corners=False)
    a_h, b_h = coeffs.split(a.shape[1], dim=1)
    return torch.addcmul(b_h, a_h, guide_hr)


def upsample_window(low: torch.Tensor, window: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """The ``size`` crop at ``window = (top, left, height, width)`` of ``low`` ``(B, C, h, w)`` upsampled
    bilinearly to ``(height, width)``: ``(B, C, *size)``, equal (up to rounding) to
    ``F.interpolate(low, (height, width), mode="bilinear")[..., top:top + size[0], left:left + size[1]]``.

    Pixel centres (align_corners=False): full-resolution pixel x sits at (x + 0.5) w / width - 0.5,
    clamped to the border, in both.
    """
    top, left, height, width = window
    ys = (2 * torch.arange(top, top + size[0], device=low.device, dtype=low.dtype) + 1) / height - 1
    xs = (2 * torch.arange(left, left + size[1], device=low.device, dtype=low.dtype) + 1) / width - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (size_y, size_x, (x, y))
    return F.grid_sample(low, grid.expand(low.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border",
                         align_corners=False)


class DeepGuidedFilter(nn.Module):
    """Full-resolution ``(B, 3, H, W)`` -> ``(B, 3, H, W)``: CAN at low res + trainable guided filter."""

    def __init__(
        self, lowres_size: int = 64, radius: int = 1, eps: float = 1e-4, width: int = 24, depth: int = 5,
        guide_hidden: int = 15,
    ) -> None:
        super().__init__()
        settings.integer("model.lowres_size", lowres_size, 8)
        settings.integer("model.radius", radius, 1)
        settings.number("model.eps", eps, 0, above=True)
        self.lowres_size, self.radius, self.eps = lowres_size, radius, eps
        self.lowres_net = ContextAggregationNet(width, depth)
        self.guide = GuidanceNet(guide_hidden)

    def lowres(self, image: torch.Tensor) -> torch.Tensor:
        """Shorter side ``lowres_size``, aspect kept, antialiased bilinear; smaller images unchanged."""
        height, width = image.shape[-2:]
        scale = self.lowres_size / min(height, width)
        if scale >= 1:
            return image
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)

    def forward(
        self, image: torch.Tensor, lowres: Sequence[torch.Tensor] | None = None, window: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``image: (B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` (not clipped, as trained with L2).

        train.context=photo: ``lowres`` holds ``self.lowres`` of each crop's whole photo (``(3, h, w)``
        each; their shapes may differ) and ``window`` ``(B, 4)`` each crop's (top, left, height, width)
        in it. Each crop is then filtered as that window of the whole photo's output. Photo by photo,
        so the CAN's batch statistics are each photo's own.
        """
        if lowres is None:
            lowres_image = self.lowres(image)
            target_lr = self.lowres_net(lowres_image)
            return guided_filter_layer(self.guide(lowres_image), target_lr, self.guide(image), self.radius, self.eps)
        if window is None:
            raise ValueError("a whole-photo low-res view needs the crop windows")
        crops = []
        for crop, photo_lr, crop_window in zip(image, lowres, window.tolist()):
            a, b = guided_filter_coefficients(self.guide(photo_lr[None]), self.lowres_net(photo_lr[None]),
                                              self.radius, self.eps)
            a_h, b_h = upsample_window(torch.cat([a, b], 1), crop_window, crop.shape[-2:]).split(a.shape[1], dim=1)
            crops.append(torch.addcmul(b_h, a_h, self.guide(crop[None]))[0])
        return torch.stack(crops)


class DeepGuidedFilterApproximator(NetworkApproximator):
    def __init__(
        self, name: str, lowres_size: int, radius: int, eps: float, width: int, depth: int, guide_hidden: int,
        checkpoint: str | None = None,
    ) -> None:
        super().__init__(name, DeepGuidedFilter(lowres_size, radius, eps, width, depth, guide_hidden), checkpoint)
