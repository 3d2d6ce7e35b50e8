"""HDRNet as a harness model: the network built from the ``model.grid`` config, and its stages."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.pairs import Operator
from benchmark.hdrnet.bilateral import apply_affine, bilateral_slice
from benchmark.hdrnet.fused import guided_slice_apply
from benchmark.hdrnet.model import HDRNet
from benchmark.hdrnet.warmup import ensure_kernel_cache
from benchmark.models.interface import NetworkApproximator


class HDRNetApproximator(NetworkApproximator):
    runtime_settings = ("checkpoint", "fullres")  # fused or grid_sample compute the same function
    # its 12-channel full-res tensor (576 MB at 12 MP) would leave the allocator cold for the others
    stages_timed_alone = ("fullres_grid_sample",)

    def __init__(
        self,
        name: str,
        grid: dict[str, int],
        lowres_size: int,
        guide: str,
        lowres_interpolation: str,
        checkpoint: str | None = None,
        fullres: str = "fused",
    ) -> None:
        ensure_kernel_cache()  # every run then loads the same compiled code (README, "Determinism")
        network = HDRNet(grid["spatial"], grid["luma_bins"], lowres_size, guide, lowres_interpolation, fullres)
        super().__init__(name, network, checkpoint)

    @torch.no_grad()
    def predict(self, image: np.ndarray, operator: Operator | None = None) -> np.ndarray:
        """Full-resolution input -> output (float32, or uint8 end to end); on CPU the fused guide +
        slice + apply kernel."""
        return self.network.enhance(image)

    def timing_stages(
        self, image: np.ndarray, operator: Operator | None, device: torch.device
    ) -> dict[str, Callable[[], object]]:
        """total, downsample, lowres_net, fullres (the fused kernel: numba on CPU, Triton on CUDA) and
        fullres_grid_sample on ``device`` (a CUDA device gets a copy of the network); on CPU also
        total_video (into a reused output buffer), total_uint8, total_uint8_via_float32 and fullres_uint8."""
        model = self.network.eval()
        if device.type != "cpu":
            model = copy.deepcopy(model).to(device)
        nchw = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)
        view = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).to(device)
        downsample = (lambda: model.photo_view(image)) if device.type == "cpu" else (lambda: model.lowres(view))
        lowres = downsample().to(device)
        grid = model.coefficients(lowres)
        stages: dict[str, Callable[[], object]] = {
            "total": lambda: model.enhance(image),
            "downsample": downsample,  # reads every pixel: grows with the photo (as enhance does it)
            "lowres_net": lambda: model.coefficients(lowres),  # a 256x256 input whatever the photo
        }
        hidden, out = model.guide.hidden, model.guide.out
        if device.type == "cpu":
            grid_np = grid.numpy()
            weights = (hidden.weight.numpy(), hidden.bias.numpy(), out.weight.numpy(), out.bias.numpy())
            eight_bit = np.rint(image * 255).astype(np.uint8)  # 8-bit in, 8-bit out, as cameras and files are
            frame, frame_eight_bit = np.empty_like(image), np.empty_like(eight_bit)
            # a video pipeline's frames: the output buffer allocated once (no page faults per frame)
            stages["total_video"] = lambda: model.enhance(image, out=frame)
            stages["total_uint8"] = lambda: model.enhance(eight_bit)
            # the same 8-bit photo through the float32 path, as a caller without the 8-bit path runs it:
            # a float copy in, a rounded copy out (the round trip the 8-bit path spares)
            stages["total_uint8_via_float32"] = lambda: np.rint(
                model.enhance(eight_bit.astype(np.float32) / 255) * 255).astype(np.uint8)
            # the kernel alone writes into a buffer allocated once, as the bound's copy does
            stages["fullres"] = lambda: guided_slice_apply(image, grid_np, *weights, out=frame)
            stages["fullres_uint8"] = lambda: guided_slice_apply(eight_bit, grid_np, *weights, out=frame_eight_bit)
        else:
            # Triton is imported only where a GPU runs it
            from benchmark.hdrnet import triton_kernels

            stages["fullres"] = lambda: triton_kernels.guided_slice_apply(
                nchw, grid, hidden.weight, hidden.bias, out.weight, out.bias)
        stages["fullres_grid_sample"] = lambda: apply_affine(bilateral_slice(grid, conv_guide(model, nchw)), nchw)
        return stages


def conv_guide(model: HDRNet, image: torch.Tensor) -> torch.Tensor:
    """The pointwise guide as NCHW 1x1 convolutions, as PyTorch ports of HDRNet write it."""
    hidden, out = model.guide.hidden, model.guide.out
    features = F.relu(F.conv2d(image, hidden.weight[:, :, None, None], hidden.bias))
    return torch.sigmoid(F.conv2d(features, out.weight[:, :, None, None], out.bias))[:, 0]
