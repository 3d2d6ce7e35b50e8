"""Image-adaptive 3D LUTs: Zeng, Cai, Li, Cao, Zhang 2020, "Learning Image-adaptive 3D Lookup Tables
for High Performance Photo Enhancement in Real-time" (TPAMI).

A learned peer of HDRNet (DESIGN.md §6). The paper's model (§3 and its framework figure), as in
the authors' code (HuiZeng/Image-Adaptive-3DLUT, ``models.py``, ``image_adaptive_lut_train_paired.py``).
Section numbers below are from memory; the terms are named so they can be checked in the PDF.

- N = 3 basis 3D LUTs ``phi_n`` of M^3 = 33^3 RGB output entries each (§3.1, 3D LUT). The first
  starts as the identity LUT, the others as zeros (the code's ``Generator3DLUT_identity`` and
  ``Generator3DLUT_zero``).
- A small CNN ``f`` sees the image resized to 256x256 and predicts N weights (§3.2): a 3x3 conv
  3 -> 16 with stride 2, LeakyReLU(0.2), InstanceNorm, then stride-2 blocks 16 -> 32 -> 64 -> 128
  (each LeakyReLU + InstanceNorm) and 128 -> 128 (LeakyReLU), dropout 0.5, and an 8x8 conv
  128 -> N on the remaining 8x8 map, i.e. a fully connected layer (the code's ``Classifier``).
- The image-adaptive LUT is the weighted sum ``phi = sum_n w_n phi_n`` (the fusion equation,
  §3.2), applied to every full-resolution pixel by trilinear interpolation of its RGB value in
  the M^3 lattice (§3.1, the trilinear-interpolation equations).
- Loss: MSE + lambda_s R_s + lambda_m R_m (§3.3, regularisation), with
  R_s = sum_n sum_c sum_{i,j,k} (|c_{i+1,j,k} - c_{i,j,k}|^2 + |c_{i,j+1,k} - c_{i,j,k}|^2
        + |c_{i,j,k+1} - c_{i,j,k}|^2) + sum_n |w_n|^2       (smoothness + weight norm)
  R_m = sum_n sum_c sum_{i,j,k} (g(c_{i,j,k} - c_{i+1,j,k}) + g(c_{i,j,k} - c_{i,j+1,k})
        + g(c_{i,j,k} - c_{i,j,k+1})), g = ReLU                (monotonicity)
  lambda_s = 1e-4, lambda_m = 10. The sums are means over their terms, as in the authors'
  ``TV_3D`` and ``weights_norm = mean(pred^2)``, which is the normalisation those lambdas were
  tuned for (the code's extra factor 2 on the first and last differences is left out).
  R_s is not 0 for the identity LUT: one output channel steps by 1/32 along each axis, so the
  LUT part is (1/32)^2 (its gradient vanishes inside the lattice, not on its faces).
  ``regularization()`` returns lambda_s R_s + lambda_m R_m, the weight norm taken from the last
  training forward pass; ``benchmark.training.train.train_network`` adds it to the loss.

LUT layout and the coordinate-order pitfall: a LUT is ``(3, M, M, M)`` indexed
``[out_channel, b, g, r]`` (red fastest, as in the .cube convention and the authors'
IdentityLUT33.txt). ``grid_sample`` on a 5-D input ``(N, C, D, H, W)`` reads the *first* grid
coordinate as W and the last as D, so the grid is ``(r, g, b)``: the pixel's RGB in [0, 1],
mapped to [-1, 1] with ``align_corners=True`` (entry i sits at value i / (M - 1), vertices at
0 and 1 exactly), ``padding_mode="border"``. Trilinear interpolation reproduces any LUT that is
multilinear in RGB exactly, the identity included (tests/test_learned_peers.py).

Initialisation (our choices within the paper's): phi_0 = identity, phi_1 = phi_2 = 0; the CNN's
output layer has bias 1 for every weight (as the code's ``constant_(classifier.model[16].bias, 1.0)``)
and zero weights for w_0, so w_0 = 1 for every image and the fused LUT is exactly the identity,
while w_1, w_2 already differ between images (so the zero bases do not all receive the same
gradient). The output layer uses an equalised learning rate (Karras et al. 2018, §4.1): weights
N(0, 1), scaled at run time by sqrt(2 / fan_in). Its fan-in is 8 * 8 * 128 = 8192, and with
Adam every weight moves by about lr per step, so with plain weights the predicted w_n jumped by
several units per step at the harness's lr 1e-3 (the paper trains at 1e-4) and training diverged.
593,516 parameters (3 x 3 x 33^3 = 323,433 of them in the LUTs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core import settings
from benchmark.models.interface import NetworkApproximator

LEAKY_SLOPE = 0.2
CNN_INPUT_SIZE = 256  # the CNN's input is the image resized to 256x256 (§3.2; antialiased bilinear here)


def identity_lut(size: int = 33) -> torch.Tensor:
    """The identity LUT ``(3, M, M, M)`` indexed ``[out_channel, b, g, r]``: entry (b, g, r) holds
    ``(r, g, b) / (M - 1)``."""
    settings.integer("model.lut_size", size, 2)
    ramp = torch.linspace(0, 1, size)
    b, g, r = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
    return torch.stack([r, g, b])


def apply_lut(lut: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of every pixel of ``image`` ``(B, 3, H, W)`` (RGB in [0, 1]; outside
    values are clamped to the lattice) in ``lut`` ``(B, 3, M, M, M)`` (or ``(3, M, M, M)``,
    shared), indexed ``[out_channel, b, g, r]``. Returns ``(B, 3, H, W)``.

    The grid's last axis is ``(r, g, b)`` = (W, H, D) of the LUT volume: grid_sample's order.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
    if lut.ndim == 4:
        lut = lut.unsqueeze(0).expand(image.shape[0], -1, -1, -1, -1)
    if lut.ndim != 5 or lut.shape[1] != 3 or not lut.shape[2] == lut.shape[3] == lut.shape[4]:
        raise ValueError(f"lut must be (B, 3, M, M, M), got shape {tuple(lut.shape)}")
    if lut.shape[0] != image.shape[0]:
        raise ValueError(f"batch sizes differ: lut {lut.shape[0]}, image {image.shape[0]}")
    grid = (image.permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1)  # (B, 1, H, W, 3), last axis (r, g, b)
    out = F.grid_sample(lut, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.squeeze(2)  # (B, 3, 1, H, W) -> (B, 3, H, W)


def lut_smoothness(luts: torch.Tensor) -> torch.Tensor:
    """The LUT part of R_s (§3.3): squared differences of neighbouring entries along r, g and b,
    averaged per axis and summed over axes and LUTs. ``luts``: ``(..., 3, M, M, M)``."""
    luts = luts.reshape(-1, *luts.shape[-4:])
    total = luts.new_zeros(())
    for dim in (-1, -2, -3):
        total = total + luts.diff(dim=dim).pow(2).mean(dim=(-4, -3, -2, -1)).sum()
    return total


def lut_monotonicity(luts: torch.Tensor) -> torch.Tensor:
    """R_m (§3.3): ReLU of every decrease of an output channel along r, g or b (each output must
    not fall when any input channel rises), averaged per axis, summed over axes and LUTs."""
    luts = luts.reshape(-1, *luts.shape[-4:])
    total = luts.new_zeros(())
    for dim in (-1, -2, -3):
        total = total + F.relu(-luts.diff(dim=dim)).mean(dim=(-4, -3, -2, -1)).sum()
    return total


def _block(c_in: int, c_out: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
    if norm:
        layers.append(nn.InstanceNorm2d(c_out, affine=True))
    return layers


class _Dropout(nn.Dropout):
    """Dropout only in training steps that compute gradients: the harness's monitoring passes run
    under ``no_grad`` in training mode and should see the deterministic model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training and torch.is_grad_enabled())


class WeightPredictor(nn.Module):
    """The CNN of §3.2 (the code's ``Classifier``): 256x256 image -> N LUT weights."""

    def __init__(self, n_luts: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(3, 16, True), *_block(16, 32, True), *_block(32, 64, True), *_block(64, 128, True),
            *_block(128, 128, False),
        )  # 256 -> 128 -> 64 -> 32 -> 16 -> 8
        self.dropout = _Dropout(dropout)
        self.output = nn.Conv2d(128, n_luts, CNN_INPUT_SIZE // 32)  # 8x8 -> 1x1: an FC layer on 8x8x128
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.xavier_normal_(module.weight)  # the code's weights_init_normal_classifier
                elif isinstance(module, nn.InstanceNorm2d):
                    nn.init.normal_(module.weight, 1.0, 0.02)
                    nn.init.zeros_(module.bias)
            # Equalised learning rate for the output layer (our choice; Karras et al. 2018, §4.1):
            # weights N(0, 1) scaled at run time by He's constant sqrt(2 / fan_in). With fan-in
            # 8 * 8 * 128 = 8192, Adam's ~lr step on every weight otherwise moves the predicted
            # weights by several units per step at the harness's lr 1e-3 (the paper trains at 1e-4).
            nn.init.normal_(self.output.weight)
            self.output_gain = (2 / self.output.weight[0].numel()) ** 0.5
            self.output.bias.fill_(1.0)  # as the code
            self.output.weight[0].zero_()  # our choice: w_0 = 1 for every image -> identity at start

    def forward(self, small: torch.Tensor) -> torch.Tensor:
        """The image resized to the CNN's input, ``(B, 3, 256, 256)`` -> ``(B, N)``."""
        small = small.contiguous(memory_format=torch.channels_last)  # oneDNN convs: a little faster on CPU
        features = self.dropout(self.features(small))
        weights = F.conv2d(features, self.output.weight * self.output_gain, self.output.bias)
        return weights.flatten(1)


class ImageAdaptiveLUT(nn.Module):
    """Full-resolution ``(B, 3, H, W)`` -> ``(B, 3, H, W)`` through a per-image fused 3D LUT."""

    def __init__(
        self, n_luts: int = 3, lut_size: int = 33, lambda_smooth: float = 1e-4, lambda_monotone: float = 10.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        settings.integer("model.n_luts", n_luts, 1)
        settings.number("model.lambda_smooth", lambda_smooth, 0)
        settings.number("model.lambda_monotone", lambda_monotone, 0)
        settings.number("model.dropout", dropout, 0, maximum=1, below=True)
        luts = torch.zeros(n_luts, 3, lut_size, lut_size, lut_size)
        luts[0] = identity_lut(lut_size)
        self.luts = nn.Parameter(luts)  # (N, 3, M, M, M), [n, out_channel, b, g, r]
        self.weights = WeightPredictor(n_luts, dropout)
        self.lambda_smooth, self.lambda_monotone = lambda_smooth, lambda_monotone
        self._last_weights: torch.Tensor | None = None

    def lowres(self, image: torch.Tensor) -> torch.Tensor:
        """What the CNN sees: ``(B, 3, H, W)`` -> ``(B, 3, 256, 256)`` (antialiased bilinear, §3.2)."""
        size = (CNN_INPUT_SIZE, CNN_INPUT_SIZE)
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)

    def fused_luts(self, lowres: torch.Tensor) -> torch.Tensor:
        """``phi = sum_n w_n(image) phi_n`` for each image, from ``lowres(image)``: ``(B, 3, M, M, M)``."""
        weights = self.weights(lowres)
        if self.training and torch.is_grad_enabled():
            self._last_weights = weights  # for the weight-norm term of regularization()
        return torch.einsum("bn,ncdhw->bcdhw", weights, self.luts)

    def forward(
        self, image: torch.Tensor, lowres: torch.Tensor | None = None, window: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``image: (B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` (not clipped, as trained with L2).

        With ``lowres`` (``self.lowres`` of the whole photos, train.context=photo) the LUT weights come
        from the whole photo; the LUT is applied pixel by pixel, so a crop's ``window`` changes nothing.
        """
        return apply_lut(self.fused_luts(self.lowres(image) if lowres is None else lowres), image)

    def regularization(self) -> torch.Tensor:
        """lambda_s (R_s on the basis LUTs + mean w^2 of the last training batch) + lambda_m R_m (§3.3)."""
        smooth = lut_smoothness(self.luts)
        if self._last_weights is not None:
            smooth = smooth + self._last_weights.pow(2).mean()
            self._last_weights = None  # each batch's weights count once
        return self.lambda_smooth * smooth + self.lambda_monotone * lut_monotonicity(self.luts)


class LUT3DApproximator(NetworkApproximator):
    def __init__(
        self, name: str, n_luts: int, lut_size: int, lambda_smooth: float, lambda_monotone: float, dropout: float,
        checkpoint: str | None = None,
    ) -> None:
        super().__init__(name, ImageAdaptiveLUT(n_luts, lut_size, lambda_smooth, lambda_monotone, dropout), checkpoint)

    def regularization(self) -> torch.Tensor:
        return self.network.regularization()
