"""`edgevqa.export.recipe.crosstalk.severity_correlations` against a plain reference on random data."""

from __future__ import annotations

import numpy as np
import pytest

scipy_stats = pytest.importorskip("scipy.stats")

from edgevqa.export.recipe.crosstalk import severity_correlations  # noqa: E402


def test_correlations_use_only_samples_where_the_dimension_is_alone():
    rng = np.random.default_rng(3)
    n = 401
    severity = np.zeros((n, 3))
    which = rng.integers(-1, 3, size=n)  # -1: pristine
    for i, d in enumerate(which):
        if d >= 0:
            severity[i, d] = rng.uniform(0.05, 1.0)
    both = rng.choice(n, 40, replace=False)  # two dimensions at once: left out of every column
    severity[both, 0], severity[both, 1] = 0.5, 0.5
    features = np.stack([severity[:, 0] + 0.05 * rng.standard_normal(n),  # follows dimension 0
                         -severity[:, 1] + 0.05 * rng.standard_normal(n),  # falls with dimension 1
                         np.full(n, 7.0),  # constant: no correlation to speak of
                         rng.standard_normal(n)], axis=1)
    features[both, 3] = 100.0  # would dominate if the mixed samples counted
    table = severity_correlations(features, severity)
    assert table.shape == (4, 3)
    for d in range(3):
        alone = np.all(np.delete(severity, d, axis=1) == 0, axis=1)
        assert not alone[both].any()
        for f in (0, 1, 3):
            want = scipy_stats.spearmanr(features[alone, f], severity[alone, d]).statistic
            assert table[f, d] == pytest.approx(want, abs=1e-12)
    assert table[0, 0] > 0.9 and table[1, 1] < -0.9
    assert np.isnan(table[2]).all()
