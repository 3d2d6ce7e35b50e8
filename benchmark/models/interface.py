"""What every model of the harness is (DESIGN §4) and what it is given to fit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.core.images import from_tensor, to_tensor
from benchmark.data.pairs import Operator, PairSet
from benchmark.training.checkpoints import read_model
from benchmark.training.checkpoints import resolve as resolve_checkpoint
from benchmark.training.train import TrainConfig, train_network


@dataclass(frozen=True)
class FitContext:
    """Everything a model may need to fit besides the training pairs."""

    train: TrainConfig
    monitor_pairs: PairSet  # held-out pairs, for learning curves only
    checkpoint_path: Path
    device: torch.device
    seed: int


class Approximator:
    """What every model is (DESIGN §4): ``fit`` then ``predict``, and optional hooks with defaults.

    Subclasses set ``name`` and implement ``predict``; the hooks below are read by the harness
    directly, so no caller tests for attributes or model names.
    """

    name: str
    needs_operator: bool = False  # runs the task's operator at low resolution (upsampling baselines)
    lowres_size: int | None = None  # such a model's longer side (px) of the copy the operator runs on
    upper_bound: bool = False  # fits on the full-resolution output: an accuracy ceiling, not a speed-up
    # model.* settings that say how to run the model, not what it learns: a checkpoint may differ in them
    runtime_settings: tuple[str, ...] = ("checkpoint",)
    # timing_stages that benchmark.speed times on their own, after the others' interleaved rounds
    stages_timed_alone: tuple[str, ...] = ()

    def fit(self, train: PairSet, context: FitContext) -> dict[str, Any]:
        """Train (or do nothing); returns a summary for results.json (empty when nothing to say)."""
        return {}

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Full-resolution HxWx3 float32 in [0, 1] -> same size output in [0, 1]."""
        raise NotImplementedError

    def parameter_count(self) -> int:
        """Learned parameters (0 for classic methods)."""
        return 0

    def timing_stages(
        self, image: np.ndarray, operator: Operator | None, device: torch.device
    ) -> dict[str, Callable[[], object]]:
        """What ``benchmark.speed`` times on ``image``: named no-argument calls, "total" = ``predict``."""
        return {"total": lambda: self.predict(image, operator)}


class NetworkApproximator(Approximator):
    """A torch network trained in this harness on the task's pairs (HDRNet and the learned peers)."""

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
        """Weights from a model file (``benchmark.training.checkpoints``), bit-exact; ``fit`` then trains nothing."""
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
            context.device, context.seed, self.regularization,
        )

    def regularization(self) -> torch.Tensor | float:
        """A prior added to the training loss at every step (e.g. the 3D LUTs' smoothness); none by default."""
        return 0.0

    @torch.no_grad()
    def predict(self, image: np.ndarray, operator: Operator | None = None) -> np.ndarray:
        """The whole run-time cost: everything from the full-resolution input to the output.
        uint8 in, uint8 out (rounded) as well: the network itself runs on floats here."""
        if image.dtype == np.uint8:
            output = from_tensor(self.network(to_tensor(image.astype(np.float32) / 255, self.device)))
            return np.rint(np.clip(output, 0, 1) * 255).astype(np.uint8)
        return from_tensor(self.network(to_tensor(image, self.device)))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.network.parameters())
