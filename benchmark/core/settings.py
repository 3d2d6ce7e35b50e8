"""Checks of user settings: each failure is one ``BenchmarkError`` naming the setting and its value.

Hydra passes command-line values through as typed YAML (``train.steps=abc`` is the string 'abc',
``train.steps=1.5`` a float), so every number a run uses is checked for its type as well as its
range before any work starts.
"""

from __future__ import annotations

import math
from typing import Any

from benchmark.core.errors import BenchmarkError


def integer(key: str, value: Any, minimum: int, optional: bool = False) -> int | None:
    """``value`` as an int >= ``minimum`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null" if optional else "")
        raise BenchmarkError(f"{key}={value!r} must be {allowed}")
    return value


def number(key: str, value: Any, minimum: float, above: bool = False) -> float:
    """``value`` as a finite float >= ``minimum`` (> when ``above``)."""
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not valid or (value <= minimum if above else value < minimum):
        raise BenchmarkError(f"{key}={value!r} must be a finite number {'>' if above else '>='} {minimum}")
    return float(value)


def choice(key: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise BenchmarkError(f"{key}={value!r} is not one of {', '.join(options)}")
    return value
