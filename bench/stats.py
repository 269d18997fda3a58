"""Small statistics: percentiles, medians and CDF points (no numpy needed)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

#: Quantiles kept for latency CDF plots: dense in the tail, where the differences are.
CDF_QUANTILES = [i / 100 for i in range(0, 90, 5)] + [0.9 + i / 100 for i in range(10)] + [0.995, 0.999, 1.0]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_summary(latencies_ns: list[int]) -> dict[str, Any]:
    """p50/p90/p99 in milliseconds and a compact CDF ([quantile, ms] pairs) of latencies in ns."""
    ordered = sorted(latencies_ns)
    ms = [value / 1e6 for value in ordered]
    return {
        "p50_ms": percentile(ms, 0.50),
        "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99),
        "cdf_ms": [[q, percentile(ms, q)] for q in CDF_QUANTILES] if ms else [],
    }


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not ``None``, or ``None`` when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
