"""rliable's aggregates (sobirl.experiments.aggregate): the interquartile mean, stratified bootstrap percentile
intervals and performance profiles, against numbers computed by hand, seeded, with one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from sobirl.experiments.aggregate import (
    as_scores,
    batched_iqm,
    interval_estimate,
    iqm,
    performance_profile,
    score_distribution,
    stratified_bootstrap,
)

HALF = [0.0] * 5 + [1.0] * 5
"""Ten runs, half scoring 0 and half 1: a replicate holds k ~ Binomial(10, 1/2) ones, P(k <= 1) = 11/1024 = 0.011,
P(k <= 2) = 56/1024 = 0.055, so the 2.5% percentile of any statistic increasing in k is its value at k = 2 (and the
97.5% one at k = 8) with overwhelming probability at 50,000 replicates."""


def mean_statistic(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=(-2, -1))


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([1, 2, 3, 4], 2.5),  # floor(4/4) = 1 dropped at each end: (2 + 3) / 2
        ([8, 1, 7, 2, 6, 3, 5, 4], 4.5),  # 2 dropped at each end: (3 + 4 + 5 + 6) / 4
        ([5, 1, 3], 3.0),  # fewer than 4 scores: nothing dropped, the mean
        (list(range(9)), 4.0),  # floor(9/4) = 2 dropped: (2 + ... + 6) / 5
        (list(range(20)), 9.5),  # scipy.stats.trim_mean(range(20), 0.25) == 9.5
        ([[1, 10], [2, 20], [3, 30], [4, 40]], 9.25),  # all 8 runs x tasks: (3 + 4 + 10 + 20) / 4
        ([[7.0]], 7.0),
    ],
)
def test_iqm_is_the_25_percent_trimmed_mean_over_runs_and_tasks(scores, expected):
    assert iqm(scores) == pytest.approx(expected, abs=1e-12)


def test_batched_iqm_treats_each_leading_index_alone():
    stacked = np.stack([as_scores([1, 2, 3, 4]), as_scores([4, 4, 0, 100])])
    np.testing.assert_allclose(batched_iqm(stacked), [2.5, 4.0])


def test_interval_of_the_mean_and_of_the_iqm_by_hand():
    mean = interval_estimate(HALF, mean_statistic, seed=0)
    assert (mean.point, mean.low, mean.high) == pytest.approx((0.5, 0.2, 0.8))  # k = 2 and k = 8 of 10
    # the IQM keeps sorted positions 2..7: min(6, max(0, k - 2)) ones of 6, so 0 for k <= 2 and 1 for k >= 8
    iq = interval_estimate(HALF, seed=0)
    assert (iq.point, iq.low, iq.high) == pytest.approx((0.5, 0.0, 1.0))
    one = interval_estimate([-120.0], seed=0)  # one run: every replicate is that run
    assert (one.point, one.low, one.high) == (-120.0, -120.0, -120.0)
    narrow = interval_estimate(HALF, mean_statistic, confidence=0.5, seed=0)
    assert narrow.low >= 0.4 and narrow.high <= 0.6  # the middle half of Binomial(10, 1/2) / 10: 0.4 .. 0.6


def test_the_bootstrap_resamples_runs_within_each_task():
    scores = np.array([[0.0, 100.0], [1.0, 101.0]])  # 2 runs of 2 tasks
    replicates = stratified_bootstrap(scores, mean_statistic, reps=4000, seed=1)
    # each task keeps 2 of its own runs: 50 + (ones among 4 fair draws) / 4, never two runs of one task only
    assert replicates.shape == (4000,) and set(np.round(replicates, 6)) == {50.0, 50.25, 50.5, 50.75, 51.0}
    assert np.mean(replicates == 50.0) == pytest.approx(1 / 16, abs=0.015)
    interval = interval_estimate(scores, mean_statistic, seed=1)
    assert (interval.point, interval.low, interval.high) == pytest.approx((50.5, 50.0, 51.0))


def test_the_same_seed_gives_the_same_numbers():
    scores = np.random.default_rng(5).normal(size=(7, 3))
    a = stratified_bootstrap(scores, batched_iqm, reps=3000, seed=11)
    np.testing.assert_array_equal(a, stratified_bootstrap(scores, batched_iqm, reps=3000, seed=11))
    assert not np.array_equal(a, stratified_bootstrap(scores, batched_iqm, reps=3000, seed=12))
    assert interval_estimate(scores, seed=3, reps=500) == interval_estimate(scores, seed=3, reps=500)


def test_performance_profile_counts_runs_strictly_above_each_threshold():
    np.testing.assert_allclose(score_distribution(as_scores([1, 2, 3, 4]), np.array([0, 1, 2.5, 4])), [1, 0.75, 0.5, 0])
    profile = performance_profile(HALF, [-1.0, 0.0, 0.5, 1.0], seed=0)
    np.testing.assert_allclose(profile.point, [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(profile.low, [1.0, 0.2, 0.2, 0.0])  # the fraction above is k / 10
    np.testing.assert_allclose(profile.high, [1.0, 0.8, 0.8, 0.0])
    two_tasks = performance_profile([[1.0, 10.0], [2.0, 20.0]], [1.5, 15.0], reps=200, seed=0)
    np.testing.assert_allclose(two_tasks.point, [0.75, 0.25])  # over all 4 runs x tasks


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: iqm([1.0, float("nan"), 2.0]), ValueError, "scores must be finite; 1 of 3 are NaN or inf"),
        (lambda: iqm([]), ValueError, "scores must be a (runs, tasks) matrix with at least one of each, got shape"),
        (lambda: iqm(np.zeros((2, 2, 2))), ValueError, "got shape (2, 2, 2)"),
        (lambda: interval_estimate([1.0, 2.0], reps=0), ValueError, "reps must be an integer >= 1, got 0"),
        (lambda: interval_estimate([1.0, 2.0], seed=-1), ValueError, "seed must be an integer >= 0, got -1"),
        (lambda: interval_estimate([1.0], confidence=1.0), ValueError, "confidence must be in (0, 1), got 1"),
        (lambda: performance_profile([1.0], []), ValueError, "thresholds must be a non-empty 1-D array"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error) as exc:
        call()
    assert message in str(exc.value)
