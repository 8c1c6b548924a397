"""Rank correlation for the INT8 accuracy gate, in NumPy (scipy is not a base dependency).

Spearman's rank correlation coefficient (SRCC) is Pearson's correlation of the two samples' ranks, tied
values sharing the mean of the ranks they span (the "average" method of ``scipy.stats.rankdata``), which is
what ``scipy.stats.spearmanr`` computes; VQA papers report it as SRCC/SROCC.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``values``; equal values get the mean of the ranks they occupy."""
    x = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    ordinal = np.empty(x.size, dtype=np.float64)
    ordinal[order] = np.arange(1, x.size + 1, dtype=np.float64)
    _, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(group.ravel(), weights=ordinal, minlength=counts.size)
    return (sums / counts)[group.ravel()]


def spearman_srcc(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long samples; NaN when it is undefined (fewer than two
    values, or a sample whose values are all equal)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"samples differ in length ({x.size} vs {y.size})")
    if x.size < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    rx = average_ranks(x) - (x.size + 1) / 2.0
    ry = average_ranks(y) - (y.size + 1) / 2.0
    denominator = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    if denominator == 0.0:
        return math.nan
    return float(np.clip(np.dot(rx, ry) / denominator, -1.0, 1.0))
