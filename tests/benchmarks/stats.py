"""Pure statistics for the benchmarks: percentiles, summaries, ratios.

Contract: no I/O, no clocks, no randomness; every function takes plain
numbers and returns plain numbers, dicts of them, or their text for a table.
Percentiles use the nearest-rank method on the sorted values (p95 of 5 runs
is the largest run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile, `q` in [0, 1]; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Iterable[float]) -> dict:
    """n, p50, p95, p99, min, max and mean of `values` (None fields when empty)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "min": None, "max": None, "mean": None}
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.50),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "min": ordered[0],
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure for the report's tables: "-" when not measured."""
    return "-" if value is None else f"{value:.{digits}f}"
