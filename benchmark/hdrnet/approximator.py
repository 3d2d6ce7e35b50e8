"""HDRNet as a harness model: builds the network from the config, trains it, predicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark.approximator import FitContext, Operator
from benchmark.hdrnet.model import HDRNet
from benchmark.images import from_tensor, to_tensor
from benchmark.pairs import PairSet
from benchmark.train import train_hdrnet


class HDRNetApproximator:
    needs_operator = False

    def __init__(
        self,
        name: str,
        grid: dict[str, int],
        lowres_size: int,
        guide: str,
        lowres_interpolation: str,
    ) -> None:
        # Tiny weights and gradients go denormal on CPU and make steps ~100x slower: flush them.
        torch.set_flush_denormal(True)
        self.name = name
        self.network = HDRNet(grid["spatial"], grid["luma_bins"], lowres_size, guide, lowres_interpolation)
        self.device = torch.device("cpu")

    def fit(self, train: PairSet, context: FitContext) -> dict[str, Any]:
        self.device = context.device
        return train_hdrnet(
            self.network, train, context.monitor_pairs, context.train, context.checkpoint_path,
            context.device, context.seed,
        )

    @torch.no_grad()
    def predict(self, image: np.ndarray, operator: Operator | None = None) -> np.ndarray:
        """The whole run-time cost: low-res resize, network, guide, slice and apply."""
        return from_tensor(self.network(to_tensor(image, self.device)))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.network.parameters())
