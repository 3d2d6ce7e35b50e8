"""What every model of the harness is (DESIGN §4) and what it is given to fit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from benchmark.checkpoints import read_model
from benchmark.checkpoints import resolve as resolve_checkpoint
from benchmark.errors import BenchmarkError
from benchmark.images import from_tensor, to_tensor
from benchmark.pairs import Operator, PairSet
from benchmark.train import TrainConfig, train_network


@dataclass(frozen=True)
class FitContext:
    """Everything a model may need to fit besides the training pairs."""

    train: TrainConfig
    monitor_pairs: PairSet  # held-out pairs, for learning curves only
    checkpoint_path: Path
    device: torch.device
    seed: int


class Approximator(Protocol):
    name: str
    needs_operator: bool  # True for upsampling baselines: they run the operator at low resolution

    def fit(self, train: PairSet, context: FitContext) -> dict[str, Any]:
        """Train (or do nothing); returns a summary for results.json (empty when nothing to say)."""

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Full-resolution HxWx3 float32 in [0, 1] -> same size output in [0, 1]."""

    def parameter_count(self) -> int:
        """Learned parameters (0 for classic methods)."""


class NetworkApproximator:
    """A torch network trained in this harness on the task's pairs (HDRNet and the learned peers)."""

    needs_operator = False

    def __init__(self, name: str, network: torch.nn.Module, checkpoint: str | None = None) -> None:
        # Tiny weights and gradients go denormal on CPU and make steps ~100x slower: flush them.
        torch.set_flush_denormal(True)
        self.name = name
        self.network = network
        self.device = torch.device("cpu")
        self.loaded: dict[str, Any] | None = None  # fit's summary when weights were loaded, not trained
        if checkpoint is not None:
            self.load(resolve_checkpoint(checkpoint, name))

    def load(self, path: Path) -> None:
        """Weights from a model file (``benchmark.checkpoints``), bit-exact; ``fit`` then trains nothing."""
        saved = read_model(path)
        broken = [name for name, tensor in saved["state_dict"].items()
                  if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if broken:
            raise BenchmarkError(f"{path}: weights hold NaN or infinite values ({', '.join(broken[:3])}); "
                                 "a diverged training? retrain it")
        try:
            self.network.load_state_dict(saved["state_dict"])
        except RuntimeError as error:  # missing, unexpected or differently shaped tensors
            reason = str(error).splitlines()[0]
            raise BenchmarkError(f"{path}: weights do not fit model={self.name}: {reason}") from None
        self.network.eval()
        self.loaded = {"loaded_from": str(path), "trained": saved["training"]}

    def to(self, device: torch.device) -> None:
        """Run ``predict`` on ``device`` from now on."""
        self.network.to(device)
        self.device = device

    def fit(self, train: PairSet, context: FitContext) -> dict[str, Any]:
        if self.loaded is not None:
            self.to(context.device)
            return self.loaded
        self.device = context.device
        return train_network(
            self.network, train, context.monitor_pairs, context.train, context.checkpoint_path,
            context.device, context.seed,
        )

    @torch.no_grad()
    def predict(self, image: np.ndarray, operator: Operator | None = None) -> np.ndarray:
        """The whole run-time cost: everything from the full-resolution input to the output."""
        return from_tensor(self.network(to_tensor(image, self.device)))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.network.parameters())
