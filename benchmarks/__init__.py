"""perpsim's benchmarks: run them all with ``perpsim bench`` (perpsim/bench.py)."""

from __future__ import annotations

import math


def sig(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (small timings never round to 0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
