"""Argument checks shared by the demo generators: clear messages naming the generator and argument."""

from __future__ import annotations

import math
import numbers


def check_int(who: str, name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{who}: {name} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng_txt = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{who}: {name} must be {rng_txt}, got {v}")
    return int(v)


def check_unit(who: str, name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueError(f"{who}: {name} must be a finite number in [0, 1], got {v!r}")
    if not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"{who}: {name} must be in [0, 1], got {v}")
    return float(v)
