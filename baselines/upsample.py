"""The naive baseline: run the operator at low resolution, then upsample its output bicubically."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.approximator import FitContext, Operator
from benchmark.data import fit_max_side
from benchmark.errors import BenchmarkError
from benchmark.images import resize
from benchmark.pairs import PairSet


class BicubicUpsample:
    needs_operator = True

    def __init__(self, name: str, lowres_size: int) -> None:
        if lowres_size < 8:
            raise BenchmarkError(f"model.lowres_size={lowres_size} must be at least 8 px")
        self.name = name
        self.lowres_size = lowres_size

    def fit(self, train: PairSet, context: FitContext) -> dict[str, Any]:
        return {}

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Area-downsample so the longer side is lowres_size, apply the operator, bicubic back up."""
        if operator is None:
            raise BenchmarkError(f"model {self.name} needs the task's reference operator")
        lowres = fit_max_side(image, self.lowres_size)
        return resize(operator(lowres), image.shape[:2], "bicubic")

    def parameter_count(self) -> int:
        return 0
