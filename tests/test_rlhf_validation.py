"""Bad input to the RLHF pipeline fails early, naming the field and the allowed values."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from sobirl.rlhf import (
    EpisodeRecorder,
    PreferenceDataset,
    QuerySchedule,
    RewardNet,
    SyntheticLabeller,
    Trajectory,
    sample_fragment_pairs,
)

BOX = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
TRAJ = Trajectory(np.zeros((10, 3)), np.zeros((10, 1)), np.zeros(10), terminated=True, truncated=False)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: sample_fragment_pairs([TRAJ], 4, 0, np.random.default_rng(0)), ValueError,
         r"fragment_length must be an integer >= 1, got 0"),
        (lambda: sample_fragment_pairs([TRAJ], 0, 5, np.random.default_rng(0)), ValueError,
         r"n_pairs must be an integer >= 1, got 0"),
        (lambda: SyntheticLabeller(temperature=0.0), ValueError, r"temperature must be in \(0, inf\), got 0"),
        (lambda: SyntheticLabeller(temperature=-1.0), ValueError, r"temperature must be in \(0, inf\), got -1"),
        (lambda: SyntheticLabeller(noise=1.5), ValueError, r"noise must be in \[0, 1\], got 1.5"),
        (lambda: SyntheticLabeller(noise=-0.1), ValueError, r"noise must be in \[0, 1\], got -0.1"),
        (lambda: SyntheticLabeller(discount=1.1), ValueError, r"discount must be in \[0, 1\], got 1.1"),
        (lambda: SyntheticLabeller(labels="soft"), ValueError, r"unknown labels 'soft'; valid: sampled, probability"),
        (lambda: PreferenceDataset(0), ValueError, r"capacity must be an integer >= 1, got 0"),
        (lambda: QuerySchedule(3000, 4_300_000, kind="linear"), ValueError,
         r"unknown kind 'linear'; valid: constant, hyperbolic"),
        (lambda: QuerySchedule(100, 1000, initial_pairs=200), ValueError,
         r"initial_pairs must be at most total_pairs = 100, got 200"),
        (lambda: QuerySchedule(100, 0), ValueError, r"total_steps must be an integer >= 1, got 0"),
        (lambda: QuerySchedule(100, 10, hyperbolic_rate=0.0), ValueError, r"hyperbolic_rate must be in \(0, inf\)"),
        (lambda: QuerySchedule(100, 10).cumulative(-1), ValueError, r"step must be an integer >= 0, got -1"),
        (lambda: RewardNet.from_spaces(spaces.Discrete(4), BOX), TypeError,
         r"observation_space must be a gymnasium.spaces.Box with a 1-D shape, got Discrete\(4\); .*FlattenObservation"),
        (lambda: RewardNet.from_spaces(BOX, spaces.Discrete(4)), TypeError,
         r"action_space must be a gymnasium.spaces.Box .*Discrete\(4\); Discrete actions come with the discrete SAC"),
        (lambda: RewardNet.from_spaces(spaces.Box(0, 1, shape=(4, 4)), BOX), ValueError,
         r"observation_space must be a Box with a 1-D shape, got shape \(4, 4\); wrap .*FlattenObservation"),
        (lambda: RewardNet(3, 1, activation="swish"), ValueError,
         r"unknown activation 'swish'; valid: relu, tanh, leaky_relu, elu, silu"),
        (lambda: RewardNet(3, 1, hidden=(8, 0)), ValueError, r"hidden\[1\] must be an integer >= 1, got 0"),
        (lambda: RewardNet(0, 1), ValueError, r"obs_dim must be an integer >= 1, got 0"),
        (lambda: EpisodeRecorder(0), ValueError, r"n_envs must be an integer >= 1, got 0"),
        (lambda: EpisodeRecorder(1, max_steps=0), ValueError, r"max_steps must be an integer >= 1, got 0"),
        (lambda: EpisodeRecorder(1, autoreset="never"), ValueError,
         r"unknown autoreset 'never'; valid: same-step, next-step"),
        (lambda: Trajectory(np.zeros((3, 2)), np.zeros((2, 1)), np.zeros(3), terminated=True, truncated=False),
         ValueError, r"actions must have T = 3 rows"),
        (lambda: Trajectory(np.zeros((0, 2)), np.zeros((0, 1)), np.zeros(0), terminated=True, truncated=False),
         ValueError, r"true_rewards must have shape \(T,\) with T >= 1"),
    ],
)  # fmt: skip
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_recorder_steps():
    rec = EpisodeRecorder(2)
    obs, act, rew = np.zeros((2, 3)), np.zeros((2, 1)), np.zeros(2)
    with pytest.raises(ValueError, match=r"give either dones .* or both terminated and truncated"):
        rec.add(obs, act, rew)
    with pytest.raises(ValueError, match="give either dones"):
        rec.add(obs, act, rew, dones=[False, False], terminated=[False, False], truncated=[False, False])
    with pytest.raises(ValueError, match="give either dones"):
        rec.add(obs, act, rew, terminated=[False, False])
    with pytest.raises(ValueError, match=r"observations must have n_envs = 2 rows, got shape \(3, 3\)"):
        rec.add(np.zeros((3, 3)), act, rew, dones=[False, False])
    with pytest.raises(ValueError, match=r"truncated must have shape \(n_envs,\) = \(2,\)"):
        rec.add(obs, act, rew, terminated=[False, False], truncated=[False])
    with pytest.raises(ValueError, match=r"dones must have shape \(n_envs,\) = \(2,\), got \(1,\)"):
        rec.add(obs, act, rew, dones=[False])
    with pytest.raises(ValueError, match="infos must be SB3's list of n_envs = 2 dicts"):
        rec.add(obs, act, rew, dones=[False, False], infos=[{}])
    rec.add(obs, act, rew, dones=[False, False])
    with pytest.raises(ValueError, match=r"observations must keep the per-env shape \(3,\), got \(4,\)"):
        rec.add(np.zeros((2, 4)), act, rew, dones=[False, False])
