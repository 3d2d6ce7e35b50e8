"""Checks of user settings: each failure is one ``BenchmarkError`` naming the setting and its value.

Hydra passes command-line values through as typed YAML (``train.steps=abc`` is the string 'abc',
``train.steps=1.5`` a float), so every number a run uses is checked for its type as well as its
range before any work starts.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from benchmark.core.errors import BenchmarkError


def integer(key: str, value: Any, minimum: int, optional: bool = False, maximum: int | None = None) -> int | None:
    """``value`` as an int >= ``minimum`` and <= ``maximum`` when given (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    valid = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not valid or value < minimum or (maximum is not None and value > maximum):
        allowed = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        allowed += " or null" if optional else ""
        raise BenchmarkError(f"{key}={value!r} must be {allowed}")
    return int(value)


def number(key: str, value: Any, minimum: float, above: bool = False, maximum: float | None = None,
           below: bool = False) -> float:
    """``value`` as a finite float >= ``minimum`` (> when ``above``) and, given a ``maximum``,
    <= it (< when ``below``)."""
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    too_low = valid and (value <= minimum if above else value < minimum)
    too_high = valid and maximum is not None and (value >= maximum if below else value > maximum)
    if not valid or too_low or too_high:
        bounds = f"{'>' if above else '>='} {minimum:g}"
        if maximum is not None:
            bounds += f" and {'<' if below else '<='} {maximum:g}"
        raise BenchmarkError(f"{key}={value!r} must be a finite number {bounds}")
    return float(value)


def choice(key: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise BenchmarkError(f"{key}={value!r} is not one of {', '.join(options)}")
    return value
