"""Rank statistics of radio_nas.validate against scipy.stats, hand-computed cases and the bootstrap."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats as st

from radio_nas.validate.ranking import adjacent_gaps, bootstrap_ci, gap_share, kendall_tau_b, seed_std, spearman_rho


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-12


def test_against_scipy_with_and_without_ties() -> None:
    rng = np.random.default_rng(7)
    tied = 0
    for _ in range(300):
        n = int(rng.integers(2, 15))
        levels = int(rng.integers(2, 6))
        x = rng.integers(0, levels, n).astype(float)  # few levels: many ties
        y = x * rng.choice([-1.0, 1.0]) + rng.integers(0, levels, n)
        tied += len(set(x)) < n
        with warnings.catch_warnings():  # scipy warns on the undefined (constant) cases
            warnings.simplefilter("ignore")
            tau_ref, rho_ref = st.kendalltau(x, y).statistic, st.spearmanr(x, y).statistic
        assert _same(kendall_tau_b(x, y), float(tau_ref)), (x, y)
        assert _same(spearman_rho(x, y), float(rho_ref)), (x, y)
    assert tied > 100  # the ties path was exercised
    for _ in range(50):  # continuous values: no ties
        x, y = rng.normal(size=9), rng.normal(size=9)
        assert abs(kendall_tau_b(x, y) - st.kendalltau(x, y).statistic) < 1e-12
        assert abs(spearman_rho(x, y) - st.spearmanr(x, y).statistic) < 1e-12


def test_hand_computed() -> None:
    assert kendall_tau_b([1, 2, 3], [1, 2, 3]) == 1.0
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    # one swap among 4: 5 concordant, 1 discordant of 6 pairs
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: x=(1,1,2), y=(1,2,3): S = 2, n0 - n1 = 2, n0 - n2 = 3 -> 2 / sqrt(6)
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # Spearman with a tie: ranks (1.5, 1.5, 3) vs (1, 2, 3)
    assert spearman_rho([5, 5, 9], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))  # undefined, not 0
    assert math.isnan(spearman_rho([2, 2], [1, 2]))
    with pytest.raises(ValueError):
        kendall_tau_b([1, 2], [1, 2, 3])


def test_bootstrap_ci_deterministic_and_sensible() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = x + 0.5 * rng.normal(size=12)
    a = bootstrap_ci(kendall_tau_b, x, y, n_boot=500, seed=3)
    b = bootstrap_ci(kendall_tau_b, x, y, n_boot=500, seed=3)
    c = bootstrap_ci(kendall_tau_b, x, y, n_boot=500, seed=4)
    assert a == b and a != c
    tau = kendall_tau_b(x, y)
    assert a[0] <= tau <= a[1] and -1 <= a[0] < a[1] <= 1
    # the vectorised path equals the generic loop over the same resamples
    generic = bootstrap_ci(lambda p, q: kendall_tau_b(p, q), x, y, n_boot=500, seed=3)
    assert generic == pytest.approx(a)
    rho = bootstrap_ci(spearman_rho, x, y, n_boot=500, seed=3)
    assert rho == pytest.approx(bootstrap_ci(lambda p, q: spearman_rho(p, q), x, y, n_boot=500, seed=3))
    # a wider confidence gives a wider interval
    wide = bootstrap_ci(kendall_tau_b, x, y, n_boot=500, seed=3, confidence=0.99)
    assert wide[0] <= a[0] and wide[1] >= a[1]
    assert all(math.isnan(v) for v in bootstrap_ci(kendall_tau_b, [1.0], [2.0]))


def test_noise_and_gaps() -> None:
    assert seed_std([0.5, 0.7]) == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert math.isnan(seed_std([0.5]))
    assert adjacent_gaps([0.3, 0.1, 0.6]) == pytest.approx([0.2, 0.3])
    # gaps 0.2 and 0.3 against 2 x 0.12 = 0.24: one of two exceeds it
    assert gap_share([0.3, 0.1, 0.6], noise=0.12) == 0.5
    assert gap_share([0.3, 0.1, 0.6], noise=0.01) == 1.0
    assert math.isnan(gap_share([0.3], noise=0.01)) and math.isnan(gap_share([0.1, 0.2], noise=float("nan")))
