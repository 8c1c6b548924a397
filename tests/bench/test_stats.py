"""trtexec's statistics against hand-computed values (sampleReporting.cpp's rules, restated in bench.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgevqa.bench.stats import (coefficient_of_variation, fmt, median, parse_percentiles, percentile,
                                 percentile_index, summarize)


@pytest.mark.parametrize("p, n, index", [
    (90, 10, 8),     # float32: (1 - 0.9f) * 10 = 1.0000002 -> exclude 1 (float64 would give exclude 0, index 9)
    (99, 100, 99),   # float32: (1 - 0.99f) * 100 = 0.9999990 -> exclude 0 (float64 would give index 98)
    (90, 100, 89),   # float32 exclude 10
    (95, 100, 94),
    (50, 10, 4),     # exclude 5
    (50, 11, 5),     # exclude int(5.5) = 5
    (0, 7, 0),       # exclude 7 -> max(-1, 0)
    (100, 7, 6),     # exclude 0 -> the maximum
    (99, 1, 0),
    (90, 3, 2),      # exclude int(0.3) = 0
    (60, 3, 1),      # exclude int(1.2) = 1
])
def test_percentile_index_follows_trtexec_float32_rule(p, n, index):
    assert percentile_index(p, n) == index


def test_percentile_picks_from_sorted_values():
    values = np.arange(1.0, 11.0)
    assert percentile(values, 90) == 9.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 0) == 1.0
    assert percentile([], 90) == math.inf
    with pytest.raises(ValueError):
        percentile_index(101, 5)


def test_median_odd_and_even():
    assert median([1.0, 2.0, 7.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert median([5.0]) == 5.0
    assert median([]) == math.inf


def test_coefficient_of_variation_uses_population_variance():
    values = [1.0, 2.0, 3.0, 4.0]
    # population variance = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25; the sample variance would be 5/3
    assert coefficient_of_variation(values, 2.5) == pytest.approx(math.sqrt(1.25) / 2.5 * 100)
    assert coefficient_of_variation([], 0.0) == 0.0
    assert coefficient_of_variation([0.0, 0.0], 0.0) == math.inf


def test_summarize_hand_computed():
    s = summarize([4.0, 1.0, 3.0, 2.0, 10.0], percentiles=(50, 90, 99))
    assert (s.count, s.min, s.max, s.mean, s.median) == (5, 1.0, 10.0, 4.0, 3.0)
    # n = 5: p50 exclude int(2.5) = 2 -> index 2; p90 exclude int(0.5) = 0 -> index 4; p99 -> index 4
    assert s.percentiles == {50.0: 3.0, 90.0: 10.0, 99.0: 10.0}
    var = np.mean((np.array([4, 1, 3, 2, 10.0]) - 4.0) ** 2)
    assert s.cov_percent == pytest.approx(math.sqrt(var) / 4.0 * 100)
    assert s.format() == ("min = 1 ms, max = 10 ms, mean = 4 ms, median = 3 ms, percentile(50%) = 3 ms, "
                          "percentile(90%) = 10 ms, percentile(99%) = 10 ms")


def test_summarize_against_numpy_on_random_values():
    rng = np.random.default_rng()
    values = rng.gamma(2.0, 3.0, size=int(rng.integers(11, 301)))
    s = summarize(values, percentiles=(90, 95, 99))
    ordered = np.sort(values)
    n = ordered.size
    assert s.median == pytest.approx(np.median(values))
    assert s.mean == pytest.approx(values.mean())
    assert s.cov_percent == pytest.approx(values.std(ddof=0) / values.mean() * 100)
    for p in (90, 95, 99):
        exclude = int((np.float32(1) - np.float32(p) / np.float32(100)) * np.float32(n))
        assert s.percentiles[float(p)] == ordered[max(n - 1 - exclude, 0)]


def test_parse_percentiles_and_fmt():
    assert parse_percentiles("90, 95,99.9") == (90.0, 95.0, 99.9)
    for bad in ("", "x", "101", "90,-1"):
        with pytest.raises(ValueError):
            parse_percentiles(bad)
    assert fmt(32.72614) == "32.7261"
    assert fmt(3.0) == "3"
    assert fmt(0.000123456789) == "0.000123457"
    assert fmt(math.inf) == "inf"
