"""HDRNet as a harness model: the network built from the ``model.grid`` config."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.approximator import NetworkApproximator
from benchmark.hdrnet.model import HDRNet
from benchmark.pairs import Operator


class HDRNetApproximator(NetworkApproximator):
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
        network = HDRNet(grid["spatial"], grid["luma_bins"], lowres_size, guide, lowres_interpolation, fullres)
        super().__init__(name, network, checkpoint)

    @torch.no_grad()
    def predict(self, image: np.ndarray, operator: Operator | None = None) -> np.ndarray:
        """Full-resolution input -> output; on CPU the fused guide + slice + apply kernel."""
        return self.network.enhance(image)
