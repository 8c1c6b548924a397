"""Timing statistics as TensorRT's trtexec computes them (samples/common/sampleReporting.cpp, TensorRT 8.x-10.x).

- Each metric is sorted on its own before its statistics are taken.
- median: the middle value, or the mean of the two middle values for an even count.
- percentile p: ``sorted[max(n - 1 - int((1 - p / 100) * n), 0)]``, evaluated in float32 as trtexec does
  (it matters: for n = 10 and p = 90, float32 gives index 8 where float64 would give index 9).
- coefficient of variation: population standard deviation / mean, in percent.

Numbers print as C++'s default ``std::ostream`` does: six significant digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

# trtexec's thresholds for its "throughput may be bound by ..." and "unstable" warnings
# (sampleReporting.cpp: kENQUEUE_BOUND_REPORTING_THRESHOLD, kUNSTABLE_PERF_REPORTING_THRESHOLD).
ENQUEUE_BOUND_FRACTION = 0.8
UNSTABLE_COV_PERCENT = 1.0

DEFAULT_PERCENTILES = (90.0, 95.0, 99.0)


def percentile_index(p: float, n: int) -> int:
    """Index into an ascending sequence of ``n`` values that trtexec reports as the ``p``-th percentile."""
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    if n <= 0:
        raise ValueError("percentile of an empty sequence")
    f32 = np.float32
    exclude = int((f32(1.0) - f32(p) / f32(100.0)) * f32(n))
    return max(n - 1 - exclude, 0)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """trtexec's percentile of an ascending sequence (infinity when empty, as trtexec returns)."""
    if len(sorted_values) == 0:
        return math.inf
    return float(sorted_values[percentile_index(p, len(sorted_values))])


def median(sorted_values: Sequence[float]) -> float:
    """Middle value of an ascending sequence; the mean of the two middle values when the count is even."""
    n = len(sorted_values)
    if n == 0:
        return math.inf
    m = n // 2
    if n % 2:
        return float(sorted_values[m])
    return (float(sorted_values[m - 1]) + float(sorted_values[m])) / 2.0


def coefficient_of_variation(values: Sequence[float], mean: float) -> float:
    """Population standard deviation over the mean, in percent (0 for no values, infinity for a zero mean)."""
    if len(values) == 0:
        return 0.0
    if mean == 0.0:
        return math.inf
    arr = np.asarray(values, dtype=np.float64)
    variance = float(np.mean((arr - mean) ** 2))
    return math.sqrt(variance) / mean * 100.0


@dataclass(frozen=True)
class MetricSummary:
    """min / max / mean / median / percentiles / CoV of one metric, in the metric's unit (ms for timings)."""

    count: int
    min: float
    max: float
    mean: float
    median: float
    percentiles: dict[float, float] = field(default_factory=dict)
    cov_percent: float = 0.0

    def to_dict(self) -> dict:
        return {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean, "median": self.median,
                "percentiles": {f"{p:g}": v for p, v in self.percentiles.items()},
                "cov_percent": _finite_or_none(self.cov_percent)}

    def format(self, unit: str = "ms") -> str:
        """The text trtexec prints after a metric's name."""
        parts = [f"min = {fmt(self.min)} {unit}", f"max = {fmt(self.max)} {unit}", f"mean = {fmt(self.mean)} {unit}",
                 f"median = {fmt(self.median)} {unit}"]
        parts += [f"percentile({p:g}%) = {fmt(v)} {unit}" for p, v in self.percentiles.items()]
        return ", ".join(parts)


def summarize(values: Iterable[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> MetricSummary:
    """trtexec's statistics of one metric. ``values`` need not be sorted; at least one is required."""
    ordered = np.sort(np.asarray(list(values), dtype=np.float64))
    if ordered.size == 0:
        raise ValueError("no values to summarize")
    mean = float(ordered.mean())
    return MetricSummary(count=int(ordered.size), min=float(ordered[0]), max=float(ordered[-1]), mean=mean,
                         median=median(ordered), percentiles={float(p): percentile(ordered, p) for p in percentiles},
                         cov_percent=coefficient_of_variation(ordered, mean))


def parse_percentiles(text: str) -> tuple[float, ...]:
    """``"90,95,99"`` -> (90.0, 95.0, 99.0); raises ValueError naming the bad item."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--percentile: {item!r} is not a number") from None
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"--percentile: {item} is outside [0, 100]")
        out.append(value)
    if not out:
        raise ValueError("--percentile: give at least one value, e.g. 90,95,99")
    return tuple(out)


def fmt(value: float) -> str:
    """A number as C++'s default ostream prints a float: six significant digits, no trailing zeros."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.6g}"


def _finite_or_none(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
