"""Upsampling baselines' common shape, and the naive one: operator at low resolution, bicubic up."""

from __future__ import annotations

import numpy as np

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import resize
from benchmark.data.photos import fit_max_side
from benchmark.models.interface import Approximator, Operator


class LowResUpsampler(Approximator):
    """Run the operator on an area-downsampled copy (longer side ``lowres_size``), then upsample its
    output guided by the full-resolution input. Subclasses say how, in ``upsample``."""

    needs_operator = True

    def __init__(self, name: str, lowres_size: int) -> None:
        self.name = name
        self.lowres_size = settings.integer("model.lowres_size", lowres_size, 8)

    def predict(self, image: np.ndarray, operator: Operator | None) -> np.ndarray:
        """Downsample, operator at low resolution, upsample; an input already that small is returned
        as the operator's output."""
        if operator is None:
            raise BenchmarkError(f"model {self.name} needs the task's reference operator")
        lowres = fit_max_side(image, self.lowres_size)
        output = np.asarray(operator(lowres), dtype=np.float32)
        if lowres.shape == image.shape:
            return np.clip(output, 0, 1)
        return self.upsample(output, lowres, image)

    def upsample(self, lowres_output: np.ndarray, lowres_guide: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """``lowres_output`` brought to the size of the full-resolution ``guide``, in [0, 1]."""
        raise NotImplementedError


class BicubicUpsample(LowResUpsampler):
    def upsample(self, lowres_output: np.ndarray, lowres_guide: np.ndarray, guide: np.ndarray) -> np.ndarray:
        return resize(lowres_output, guide.shape[:2], "bicubic")
