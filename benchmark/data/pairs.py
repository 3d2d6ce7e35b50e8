"""(input, target) pairs made by a task's reference operator, cached on disk by content hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.files import write_atomic
from benchmark.data.photos import Photo

Operator = Callable[[np.ndarray], np.ndarray]
_UINT16_MAX = 65535


@dataclass(frozen=True)
class Pair:
    name: str
    input: np.ndarray
    target: np.ndarray


PairSet = list[Pair]


def pair_key(task_name: str, operator_params: Mapping[str, Any], photo: Photo) -> str:
    """Hash of (task, operator parameters, source content, resolution): DESIGN §2."""
    payload = {
        "task": task_name,
        "operator": dict(operator_params),
        "source": photo.content_hash,
        "size": list(photo.image.shape[:2]),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _to_uint16(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * _UINT16_MAX).astype(np.uint16)


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / _UINT16_MAX


def _read(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A cached pair, or None when absent or unreadable (then it is made again, with a warning)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as entry:
            return _to_float(entry["input"]), _to_float(entry["target"])
    except Exception as error:  # empty (EOFError), cut short (BadZipFile), garbage (ValueError), ...
        print(f"warning: {path}: unreadable cache entry ({type(error).__name__}); making it again", flush=True)
        return None


def make_pairs(
    photos: list[Photo],
    task_name: str,
    operator: Operator,
    operator_params: Mapping[str, Any],
    cache_dir: Path,
) -> tuple[PairSet, int]:
    """Pairs for ``photos``; returns them and how many came from the cache.

    Inputs are stored beside targets at 16 bit, so a cached pair is exactly what training sees.
    """
    pairs, reused = [], 0
    for photo in photos:
        path = cache_dir / task_name / f"{pair_key(task_name, operator_params, photo)}.npz"
        cached = _read(path)
        if cached is None:
            input_image, target = _to_uint16(photo.image), _to_uint16(operator(photo.image))
            write_atomic(path, lambda handle: np.savez(handle, input=input_image, target=target))
            cached = _to_float(input_image), _to_float(target)
        else:
            reused += 1
        pairs.append(Pair(photo.name, *cached))
    return pairs, reused
