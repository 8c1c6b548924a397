import math

import numpy as np
import pytest

from edgevqa.calib.stats import average_ranks, spearman_srcc


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:An input array is constant")
@pytest.mark.parametrize("n", [2, 3, 7, 31])
def test_srcc_matches_scipy_with_ties(n):
    stats = pytest.importorskip("scipy.stats", reason="scipy is the reference (extra 'test')")
    rng = np.random.default_rng()
    for _ in range(20):
        a = rng.integers(0, 5, n).astype(float)  # many ties
        b = a + rng.normal(0, 1.5, n)
        b[rng.integers(0, n)] = b[0]
        expected = stats.spearmanr(a, b).statistic
        got = spearman_srcc(a, b)
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-12)


def test_srcc_undefined_and_errors():
    assert math.isnan(spearman_srcc([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman_srcc([1.0], [2.0]))
    assert spearman_srcc([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        spearman_srcc([1, 2], [1, 2, 3])
