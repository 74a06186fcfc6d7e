"""The benchmarks' own statistics: the interval they print for a median ratio covers the median."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_collect = pytest.importorskip("bench_collect")


def test_median_interval_order_statistics():
    # 9 rounds: the 2nd and 8th smallest (P(Binomial(9, 1/2) <= 1) = 10/512 <= 2.5 %)
    assert bench_collect.median_interval(np.arange(9.0)[::-1]) == (1.0, 7.0)
    assert bench_collect.median_interval(np.arange(6.0)) == (0.0, 5.0)  # 6: the extremes, 96.9 %
    assert bench_collect.median_interval(np.arange(21.0)) == (5.0, 15.0)
    assert bench_collect.median_interval(np.arange(5.0)) is None  # 5 rounds cannot reach 95 %


@pytest.mark.parametrize("n", [6, 9, 21])
def test_median_interval_covers_at_nominal_rate(n):
    rng = np.random.default_rng(n)
    truth = np.exp(0.17)  # the median of a log-normal round-to-round ratio
    hits = 0
    trials = 3000
    for _ in range(trials):
        lo, hi = bench_collect.median_interval(rng.lognormal(0.17, 0.1, n))
        assert lo <= hi
        hits += lo <= truth <= hi
    assert hits / trials >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / trials)


def test_paired_ratio_interval_contains_the_ratio():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.9, 9)
    m = bench_collect.Medians([base, base * rng.lognormal(0.15, 0.05, 9)])
    lo, hi = m.ratio_interval(1)
    assert lo <= m.ratio(1) <= hi
