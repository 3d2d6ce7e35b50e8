"""Full-resolution evaluation of a fitted model on held-out pairs: quality and time per image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.images import write_image
from benchmark.core.timing import time_callable
from benchmark.data.pairs import PairSet
from benchmark.evaluation.metrics import Lpips, psnr, scorers
from benchmark.models.interface import Approximator, Operator

EXAMPLE_COUNT = 2  # test images whose outputs a run keeps for the report's visual comparison
Example = dict[str, np.ndarray]  # "input", "target", "output"


@dataclass(frozen=True)
class TimingConfig:
    warmup: int
    repeats: int


def evaluate(
    model: Approximator,
    pairs: PairSet,
    operator: Operator | None,
    timing: TimingConfig,
    device: str,
    lpips: Lpips | None,
) -> tuple[list[dict[str, Any]], dict[str, Example]]:
    """One row per test image: metrics of the model's output and of the untouched input, and the
    median time of the model's ``predict`` and of the reference operator (None for human-made
    pairs) at full resolution. Also the input, target and output of the first
    ``EXAMPLE_COUNT`` test images by name, keyed by name."""
    rows = []
    examples: dict[str, Example] = {}
    example_names = sorted(pair.name for pair in pairs)[:EXAMPLE_COUNT]
    model_operator = operator if model.needs_operator else None
    scores = scorers(lpips)
    for pair in pairs:
        output = model.predict(pair.input, model_operator)
        if pair.name in example_names:
            examples[pair.name] = {"input": pair.input, "target": pair.target, "output": output}
        height, width = pair.input.shape[:2]
        model_time = time_callable(
            lambda: model.predict(pair.input, model_operator),
            warmup=timing.warmup, repeats=timing.repeats, device=device,
        )
        reference_time = None if operator is None else time_callable(
            lambda: operator(pair.input), warmup=timing.warmup, repeats=timing.repeats, device="cpu"
        )
        rows.append(
            {
                "image": pair.name,
                "width": width,
                "height": height,
                **{key: None if score is None else score(output, pair.target) for key, score in scores.items()},
                "identity_psnr": psnr(pair.input, pair.target),  # the untouched input: the floor of every row
                "time_ms": model_time.median_ms,
                "time_ms_p10": model_time.p10_ms,
                "time_ms_p90": model_time.p90_ms,
                "time_ms_per_mp": model_time.ms_per_megapixel(width, height),
                "reference_time_ms": reference_time.median_ms if reference_time else None,
                "reference_time_ms_per_mp": reference_time.ms_per_megapixel(width, height) if reference_time else None,
            }
        )
    return rows, examples


def write_examples(examples: dict[str, Example], folder: Path) -> None:
    """``<folder>/<image>_{input,target,output}.png`` as 8-bit PNGs ("/" in nested names → "__")."""
    for name, images in examples.items():
        for role, image in images.items():
            write_image(folder / f"{name.replace('/', '__')}_{role}.png", image)
