"""The statistics of several runs, in one place: the mean with its standard error, and rliable's aggregate scores with
their bootstrap confidence intervals.

- **Mean and standard error** (:func:`mean_and_se`): over ``n`` values, ``s.e. = std_{n-1} / sqrt(n)`` (the ``n - 1``
  denominator), 0 for a single value: every ``mean +/- s.e.`` of sobirl's tables and figures.

The aggregates follow Agarwal et al. 2021 ("Deep reinforcement learning at the edge of the statistical precipice"): the
interquartile mean, stratified bootstrap confidence intervals, performance profiles. Scores are a matrix
``(runs, tasks)``: ``scores[n, m]`` is run ``n``'s score on task ``m`` (here a task is an environment and a run a seed;
a 1-D array is one task). The functions follow rliable 1.2 (``rliable.metrics`` and ``rliable.library``), which is not
a dependency: it would bring arch, statsmodels, pandas, scipy and seaborn for the few lines below.

- **IQM** (:func:`iqm`): the 25% trimmed mean of all ``runs * tasks`` scores, as ``scipy.stats.trim_mean(scores,
  0.25, axis=None)``: sorted, ``floor(0.25 N)`` scores dropped at each end, the rest averaged (no trimming below 4
  scores, so 1 to 3 runs give their mean).
- **Stratified bootstrap** (:func:`stratified_bootstrap`): a replicate draws, for each task on its own, ``runs``
  scores of that task with replacement (rliable's ``StratifiedBootstrap`` without task bootstrap), and applies the
  statistic to the resampled matrix.
- **Percentile interval** (:func:`interval_estimate`): the point estimate is the statistic of the scores; the
  interval at ``confidence`` ``c`` the ``100 (1 - c) / 2`` and ``100 (1 + c) / 2`` percentiles (numpy's linear
  interpolation) of the replicates, as rliable's ``method='percentile'``. rliable's default number of replicates:
  :data:`INTERVAL_REPS` for intervals, :data:`PROFILE_REPS` for profiles.
- **Performance profile** (:func:`performance_profile`): rliable's run-score distribution, the fraction of all
  scores strictly above each threshold ``tau``, with its bootstrap band at every threshold.

Every bootstrap draws from ``numpy.random.default_rng(seed)``: the same scores, seed and settings give the same
numbers (reports are reproducible), and each call starts its own generator, so one group's interval does not depend
on which other groups were computed before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sobirl.validation import check_int, check_range

INTERVAL_REPS = 50_000
"""Bootstrap replicates of an interval estimate (rliable's ``get_interval_estimates`` default)."""
PROFILE_REPS = 2_000
"""Bootstrap replicates of a performance profile (rliable's ``create_performance_profile`` default)."""
CONFIDENCE = 0.95
"""Coverage of the intervals."""
_CHUNK = 1 << 16
"""Resampled scores per block of replicates (memory bound; the blocks depend on the shapes only, so on no machine
setting)."""

Statistic = Callable[[np.ndarray], np.ndarray]
"""A statistic of score matrices stacked on leading axes: ``(..., runs, tasks) -> (...)`` or ``(..., k)``."""


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap confidence interval (floats, or arrays of a profile's
    thresholds).

    Attributes:
        point: the statistic of the scores.
        low: the lower end, the ``100 (1 - confidence) / 2`` percentile of the replicates.
        high: the upper end, the ``100 (1 + confidence) / 2`` percentile.
    """

    point: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray


def mean_and_se(
    values: Sequence[float] | Sequence[Sequence[float]] | np.ndarray, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The mean of ``values`` over ``axis`` (e.g. one row per seed) and its standard error ``std_{n-1} / sqrt(n)``,
    ``n = values.shape[axis]`` (the ``n - 1`` denominator; zeros for ``n = 1``). NaN values propagate.

    Returns:
        ``(mean, se)``, each of the shape of ``values`` without ``axis`` (numpy scalars for 1-D ``values``).

    Raises:
        ValueError: ``values`` has no row along ``axis``.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n == 0:
        raise ValueError(f"mean_and_se needs at least one row of values along axis {axis}")
    mean = values.mean(axis=axis)
    se = values.std(axis=axis, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def as_scores(scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``scores`` as a float64 matrix ``(runs, tasks)``; a 1-D array is one task.

    Raises:
        ValueError: not 1-D or 2-D, no run or no task, or a score that is NaN or infinite.
    """
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"scores must be a (runs, tasks) matrix with at least one of each, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"scores must be finite; {int((~np.isfinite(array)).sum())} of {array.size} are NaN or inf")
    return array


def batched_iqm(scores: np.ndarray) -> np.ndarray:
    """The interquartile mean of each ``(runs, tasks)`` matrix on the last two axes of ``scores``: sorted,
    ``floor(N / 4)`` of the ``N = runs * tasks`` scores dropped at each end, the rest averaged."""
    flat = np.sort(scores.reshape(*scores.shape[:-2], -1), axis=-1)
    cut = flat.shape[-1] // 4
    return flat[..., cut : flat.shape[-1] - cut].mean(axis=-1)


def iqm(scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> float:
    """The interquartile mean of all runs and tasks (module docstring), e.g. ``iqm([1, 2, 3, 4]) == 2.5``.

    Raises:
        ValueError: see :func:`as_scores`.
    """
    return float(batched_iqm(as_scores(scores)))


def score_distribution(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The fraction of the scores of each ``(runs, tasks)`` matrix on the last two axes of ``scores`` that are
    strictly above each threshold: shape ``(..., len(thresholds))``."""
    above = scores[..., None] > thresholds
    return above.mean(axis=(-3, -2))


def stratified_bootstrap(scores: np.ndarray, statistic: Statistic, *, reps: int, seed: int) -> np.ndarray:
    """``reps`` stratified bootstrap replicates of ``statistic`` (module docstring), stacked on the first axis.

    Args:
        scores: the ``(runs, tasks)`` matrix (:func:`as_scores`).
        statistic: batched over leading axes (:data:`Statistic`).
        reps: replicates (``>= 1``).
        seed: seed of the resampling (``>= 0``).

    Raises:
        ValueError / TypeError: invalid ``scores``, ``reps`` or ``seed``, naming it.
    """
    scores = as_scores(scores)
    check_int("reps", reps, low=1)
    check_int("seed", seed)
    runs, tasks = scores.shape
    rng = np.random.default_rng(seed)
    block = max(1, _CHUNK // scores.size)
    columns = np.arange(tasks)
    results = []
    for start in range(0, reps, block):
        rows = rng.integers(0, runs, size=(min(block, reps - start), runs, tasks))  # per task: its own runs
        results.append(statistic(scores[rows, columns]))
    return np.concatenate(results, axis=0)


def interval_estimate(
    scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    statistic: Statistic = batched_iqm,
    *,
    reps: int = INTERVAL_REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The statistic of ``scores`` and its percentile stratified bootstrap interval (module docstring).

    Args:
        scores: ``(runs, tasks)``, or 1-D for one task.
        statistic: batched over leading axes; the interquartile mean by default.
        reps: bootstrap replicates (``>= 1``).
        confidence: the interval's coverage, in ``(0, 1)``.
        seed: seed of the resampling (``>= 0``).

    Returns:
        Floats for a scalar statistic, arrays for a vector one.

    Raises:
        ValueError / TypeError: an invalid argument, naming it.
    """
    scores = as_scores(scores)
    check_range("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    replicates = stratified_bootstrap(scores, statistic, reps=reps, seed=seed)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    point = statistic(scores)
    if np.ndim(point) == 0:
        return Interval(float(point), float(low), float(high))
    return Interval(np.asarray(point), low, high)


def performance_profile(
    scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    *,
    reps: int = PROFILE_REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The run-score distribution of ``scores`` (the fraction of runs, over all tasks, scoring strictly above each
    threshold) and its percentile stratified bootstrap band: arrays of ``len(thresholds)``.

    Raises:
        ValueError / TypeError: invalid scores or settings, or thresholds that are not a non-empty 1-D array of
            finite numbers.
    """
    taus = np.asarray(thresholds, dtype=np.float64)
    if taus.ndim != 1 or taus.size == 0 or not np.isfinite(taus).all():
        raise ValueError(f"thresholds must be a non-empty 1-D array of finite numbers, got shape {taus.shape}")
    return interval_estimate(scores, lambda x: score_distribution(x, taus), reps=reps, confidence=confidence, seed=seed)
