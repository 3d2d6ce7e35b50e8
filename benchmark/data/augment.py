"""Operator-made training data (issue 12): variations of the *training* photos, run through the task's
reference operator like the photos themselves, so a learned model sees more than 18 scenes' worth of
the operator's behaviour. The test photos are never touched.

Each variant draws its settings from one seeded generator (``seed``, the photo's index and the
variant's index), so the same config makes the same variants, and its cache key is the source
photo's hash plus those settings. Photometric kinds act in linear light (sRGB decoded, changed,
encoded again, clipped to [0, 1]); geometric kinds (flips, 90-degree turns, rescaling) keep the
pixels. Human-made pairs take the geometric kinds only, applied to input and target alike: a
photometric change of the input would no longer match what the retoucher made of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import resize
from benchmark.data.pairs import Pair
from benchmark.data.photos import Photo
from benchmark.imaging.colour import rec709_luminance
from operators.tone_mapping import linear_to_srgb, srgb_to_linear

PHOTOMETRIC = ("exposure", "white_balance", "gamma", "saturation")
GEOMETRIC = ("flip", "rotate", "rescale")
KINDS = PHOTOMETRIC + GEOMETRIC


@dataclass(frozen=True)
class AugmentConfig:
    """``data.augment``: how many variants per training photo, which kinds, and their ranges."""

    variants: int = 6  # conf/config.yaml holds the defaults users see; these mirror them
    kinds: tuple[str, ...] = KINDS
    exposure_stops: float = 1.0  # exposure x 2^u, u uniform in [-stops, +stops]
    white_balance: float = 0.2  # red and blue gains x 2^u, u uniform in [-wb, +wb]
    gamma: tuple[float, float] = (0.75, 1.33)  # linear values ^ g, g log-uniform in the range
    saturation: tuple[float, float] = (0.6, 1.4)  # chroma around the luminance x s
    scale: tuple[float, float] = (0.6, 1.0)  # each side x s (area filter), never below the crop

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> AugmentConfig:
        config = cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dict(node or {}).items()})
        config.validate()
        return config

    def validate(self) -> None:
        settings.integer("data.augment.variants", self.variants, 0)
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise BenchmarkError(f"data.augment.kinds={list(self.kinds)} must be a non-empty list of {', '.join(KINDS)}")
        settings.number("data.augment.exposure_stops", self.exposure_stops, 0)
        settings.number("data.augment.white_balance", self.white_balance, 0)
        for key, low_limit in (("gamma", 0.0), ("saturation", 0.0), ("scale", 0.0)):
            low, high = getattr(self, key)
            if not 0 < low <= high or low <= low_limit or (key == "scale" and high > 1):
                raise BenchmarkError(f"data.augment.{key}={[low, high]} must be [low, high] with 0 < low <= high"
                                     + (" <= 1" if key == "scale" else ""))

    def kinds_for(self, human_made: bool) -> tuple[str, ...]:
        return tuple(kind for kind in self.kinds if not human_made or kind in GEOMETRIC)


def draw_settings(kinds: tuple[str, ...], config: AugmentConfig, rng: np.random.Generator) -> dict[str, Any]:
    """One variant's settings: every kind in ``kinds`` drawn (a flip or turn may come out as none)."""
    drawn: dict[str, Any] = {}
    if "exposure" in kinds:
        drawn["exposure"] = float(rng.uniform(-config.exposure_stops, config.exposure_stops))
    if "white_balance" in kinds:
        drawn["white_balance"] = [float(rng.uniform(-config.white_balance, config.white_balance)) for _ in range(2)]
    if "gamma" in kinds:
        drawn["gamma"] = float(np.exp(rng.uniform(*np.log(config.gamma))))
    if "saturation" in kinds:
        drawn["saturation"] = float(rng.uniform(*config.saturation))
    if "flip" in kinds:
        drawn["flip"] = bool(rng.integers(2))
    if "rotate" in kinds:
        drawn["rotate"] = int(rng.integers(4))  # quarter turns, counter-clockwise
    if "rescale" in kinds:
        drawn["rescale"] = float(rng.uniform(*config.scale))
    return drawn


def photometric(image: np.ndarray, drawn: Mapping[str, Any]) -> np.ndarray:
    """Exposure, white balance, gamma and saturation in linear light; HxWx3 float32 in [0, 1]."""
    if not any(kind in drawn for kind in PHOTOMETRIC):
        return image
    linear = srgb_to_linear(image)
    if "exposure" in drawn:
        linear = linear * np.float32(2 ** drawn["exposure"])
    if "white_balance" in drawn:
        red, blue = drawn["white_balance"]
        linear = linear * np.array([2**red, 1, 2**blue], np.float32)
    linear = np.clip(linear, 0, 1)
    if "gamma" in drawn:
        linear = linear ** np.float32(drawn["gamma"])
    if "saturation" in drawn:
        grey = rec709_luminance(linear)[..., None]
        linear = np.clip(grey + np.float32(drawn["saturation"]) * (linear - grey), 0, 1)
    return np.ascontiguousarray(linear_to_srgb(linear), dtype=np.float32)


def geometric(image: np.ndarray, drawn: Mapping[str, Any], min_side: int) -> np.ndarray:
    """Rescale (area filter, never below ``min_side``), flip and quarter-turn an HxWx3 image."""
    if "rescale" in drawn:
        height, width = image.shape[:2]
        scale = max(drawn["rescale"], min_side / min(height, width))
        if scale < 1:
            image = resize(image, (max(min_side, round(height * scale)), max(min_side, round(width * scale))), "area")
    if drawn.get("flip"):
        image = image[:, ::-1]
    if drawn.get("rotate"):
        image = np.rot90(image, drawn["rotate"])
    return np.ascontiguousarray(image, dtype=np.float32)


def _variant_rng(seed: int, index: int, variant: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, variant])


def _variant_hash(source_hash: str, drawn: Mapping[str, Any]) -> str:
    return hashlib.sha256((source_hash + json.dumps(drawn, sort_keys=True)).encode()).hexdigest()


VARIANT_MARK = "~aug"  # a variant's name: <source name>~aug<k>


def is_variant(name: str) -> bool:
    """Whether a training pair is an augmented variant (not one of the photos themselves)."""
    return VARIANT_MARK in name


def photo_variants(photos: list[Photo], config: AugmentConfig, seed: int, min_side: int) -> list[Photo]:
    """``config.variants`` new photos per training photo, named ``<name>~aug<k>``."""
    variants = []
    kinds = config.kinds_for(human_made=False)
    for index, photo in enumerate(photos):
        for variant in range(config.variants):
            drawn = draw_settings(kinds, config, _variant_rng(seed, index, variant))
            image = geometric(photometric(photo.image, drawn), drawn, min_side)
            variants.append(Photo(f"{photo.name}{VARIANT_MARK}{variant}", image, _variant_hash(photo.content_hash, drawn)))
    return variants


def pair_variants(pairs: list[Pair], config: AugmentConfig, seed: int, min_side: int) -> list[Pair]:
    """Geometric variants of human-made pairs, input and target transformed alike."""
    kinds = config.kinds_for(human_made=True)
    if not kinds:
        return []
    variants = []
    for index, pair in enumerate(pairs):
        for variant in range(config.variants):
            drawn = draw_settings(kinds, config, _variant_rng(seed, index, variant))
            variants.append(Pair(f"{pair.name}{VARIANT_MARK}{variant}", geometric(pair.input, drawn, min_side),
                                 geometric(pair.target, drawn, min_side)))
    return variants
