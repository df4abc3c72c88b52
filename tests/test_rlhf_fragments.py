"""Fragment pairs: never across an episode boundary, short episodes skipped, trajectories chosen by length."""

from __future__ import annotations

import numpy as np
import pytest

from sobirl.rlhf import EpisodeRecorder, Trajectory, sample_fragment_pairs


def labelled_trajectory(j: int, length: int, *, discrete: bool = False) -> Trajectory:
    """A trajectory whose observations are (j, t), actions 100 j + t, rewards 1000 j + t."""
    t = np.arange(length)
    obs = np.stack([np.full(length, j), t], axis=1).astype(np.float32)
    act = 100 * j + t if discrete else np.stack([100.0 * j + t, -t], axis=1)
    return Trajectory(obs, act, 1000.0 * j + t, terminated=False, truncated=True)


def check_contiguous(pairs, lengths, L):
    """Every fragment is L consecutive steps of one trajectory, inside it; returns the (2N,) trajectory ids."""
    obs = pairs.observations.reshape(-1, L, 2)
    j, t = obs[..., 0].astype(int), obs[..., 1].astype(int)
    assert (j == j[:, :1]).all()  # one trajectory per fragment
    np.testing.assert_array_equal(t - t[:, :1], np.broadcast_to(np.arange(L), t.shape))  # consecutive steps
    assert (t[:, 0] >= 0).all() and (t[:, -1] < np.asarray(lengths)[j[:, 0]]).all()  # inside the episode
    np.testing.assert_array_equal(pairs.true_rewards.reshape(-1, L), 1000.0 * j + t)
    return j[:, 0], t[:, 0]


def test_fragments_stay_inside_episodes_and_skip_short_ones():
    lengths = [3, 25, 7, 40, 1, 10]  # L = 10: only trajectories 1, 3 and 5 (exactly L long) are long enough
    trajs = [labelled_trajectory(j, n) for j, n in enumerate(lengths)]
    pairs = sample_fragment_pairs(trajs, 500, 10, np.random.default_rng(0))
    assert pairs.observations.shape == (500, 2, 10, 2) and pairs.actions.shape == (500, 2, 10, 2)
    assert pairs.true_rewards.shape == (500, 2, 10) and len(pairs) == 500 and pairs.fragment_length == 10
    j, t0 = check_contiguous(pairs, lengths, 10)
    assert set(j) == {1, 3, 5}
    assert (t0[j == 5] == 0).all()  # a trajectory of exactly L steps has one fragment
    np.testing.assert_array_equal(
        pairs.actions[..., 0].reshape(-1, 10), 100.0 * j[:, None] + t0[:, None] + np.arange(10)
    )


def test_fragments_with_discrete_actions_and_recorded_truncated_episodes():
    """Episodes from the recorder (variable lengths, terminated and truncated) fragment without crashing."""
    rec = EpisodeRecorder(2)
    ends = {0: [4, 9, 30], 1: [2, 17]}  # steps at which each env's episode ends
    for step in range(31):
        rec.add(
            np.stack([[0, step], [1, step]]).astype(np.float32),
            np.array([step, -step]),
            [float(step), -float(step)],
            terminated=[step in ends[0], False],
            truncated=[False, step in ends[1]],
        )
    lengths = sorted(len(t) for t in rec.trajectories)
    assert lengths == [3, 5, 5, 15, 21]
    pairs = sample_fragment_pairs(rec.trajectories, 64, 5, np.random.default_rng(1))
    assert pairs.actions.shape == (64, 2, 5)
    steps = pairs.observations[..., 1]
    np.testing.assert_array_equal(np.diff(steps, axis=-1), 1.0)  # contiguous: never across an episode's end
    np.testing.assert_array_equal(np.abs(pairs.actions), steps)


def test_trajectory_choice_is_proportional_to_length():
    """Chi-square of the trajectory counts against T_j / sum T_k (3 dof), and of the start offsets (uniform)."""
    lengths = [12, 20, 35, 60, 5]
    L, N = 10, 10_000
    trajs = [labelled_trajectory(j, n) for j, n in enumerate(lengths)]
    pairs = sample_fragment_pairs(trajs, N, L, np.random.default_rng(2))
    j, t0 = check_contiguous(pairs, lengths, L)
    counts = np.bincount(j, minlength=5)
    assert counts[4] == 0
    p = np.array(lengths[:4]) / sum(lengths[:4])
    expected = 2 * N * p
    chi2 = ((counts[:4] - expected) ** 2 / expected).sum()
    assert chi2 < 16.27  # the 0.999 quantile of chi-square with 3 dof
    starts = np.bincount(t0[j == 3], minlength=60 - L + 1)  # 51 equally likely offsets in the longest trajectory
    e = starts.sum() / starts.size
    assert ((starts - e) ** 2 / e).sum() < 86.66  # the 0.999 quantile of chi-square with 50 dof


def test_fragments_are_reproducible_from_the_generator():
    trajs = [labelled_trajectory(j, n) for j, n in enumerate([30, 50, 11])]
    a = sample_fragment_pairs(trajs, 20, 8, np.random.default_rng(3))
    b = sample_fragment_pairs(trajs, 20, 8, np.random.default_rng(3))
    c = sample_fragment_pairs(trajs, 20, 8, np.random.default_rng(4))
    np.testing.assert_array_equal(a.observations, b.observations)
    assert not np.array_equal(a.observations, c.observations)


def test_no_trajectory_long_enough_is_a_clear_error():
    trajs = [labelled_trajectory(j, n) for j, n in enumerate([3, 7])]
    with pytest.raises(ValueError, match=r"fragment_length = 8 is longer than every trajectory .*longest 7 steps"):
        sample_fragment_pairs(trajs, 4, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="0 trajectories, longest 0 steps"):
        sample_fragment_pairs([], 4, 8, np.random.default_rng(0))
