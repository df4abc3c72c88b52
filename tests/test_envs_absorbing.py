"""Absorbing termination: fixed-horizon episodes whose steps after termination return the terminal observation and
reward 0, what it changes for synthetic preferences on CartPole, and gymnasium's conventions (check_env, a spec that
rebuilds the same environment)."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from smoke import SMOKE
from sobirl.envs import AbsorbingTermination, absorbing_env
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.environments import make_env
from sobirl.rlhf.trainer import RLHFTrainer


def test_termination_becomes_an_absorbing_state_until_the_time_limit():
    plain, env = gym.make("CartPole-v1", max_episode_steps=40), absorbing_env("CartPole-v1", max_episode_steps=40)
    assert isinstance(env.unwrapped, type(plain.unwrapped)) and isinstance(env, AbsorbingTermination)
    assert isinstance(env.env, gym.wrappers.TimeLimit) and env.horizon == 40 and env.spec.max_episode_steps == 40
    assert env.observation_space.shape == (5,) and env.observation_space.high[-1] == 1
    absorbing_state = np.array([0, 0, 0, 0, 1], dtype=np.float32)
    for seed in (0, 1):
        expected, _ = plain.reset(seed=seed)
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs, np.append(expected, 0))
        steps, total, terminal_at = 0, 0.0, None
        while True:
            obs, reward, terminated, truncated, info = env.step(0)  # always push left: the pole falls within 40
            steps, total = steps + 1, total + reward
            if terminal_at is None:
                expected, plain_reward, plain_terminated, _, _ = plain.step(0)
                np.testing.assert_array_equal(obs, np.append(expected, 0))  # the same dynamics up to termination
                assert reward == plain_reward and not info.get("absorbing", False)
                if plain_terminated:
                    terminal_at = steps
            else:  # one absorbing state, whatever the terminal observation was
                assert reward == 0.0 and info["absorbing"]
                np.testing.assert_array_equal(obs, absorbing_state)
            assert not terminated
            if truncated:
                break
        assert terminal_at is not None and terminal_at < 40
        assert steps == 40 and total == terminal_at  # CartPole pays +1 per step up to and including the failing one


@pytest.mark.parametrize("k", [1, 7])
def test_absorbing_steps_truncate_the_episode_in_the_absorbing_state(k):
    config = RLHFConfig(env="CartPole-v1", absorbing_termination=True, absorbing_steps=k)
    vec = DummyVecEnv([lambda: make_env(config)])
    vec.seed(0)
    vec.reset()
    steps, absorbed = 0, 0
    while True:
        _, reward, done, info = vec.step(np.zeros(1, dtype=np.int64))  # always push left: falls within ~10 steps
        steps += 1
        absorbed += bool(info[0].get("absorbing", False))
        if done[0]:
            break
    assert absorbed == k and 8 < steps - k < 40
    # a truncation, not a termination: SB3's replay buffer bootstraps from the absorbing state's value
    assert info[0]["TimeLimit.truncated"] and reward[0] == 0.0
    np.testing.assert_array_equal(info[0]["terminal_observation"], [0, 0, 0, 0, 1])
    evaluation = make_env(config, evaluation=True)  # ends at termination, as before
    evaluation.reset(seed=0)
    assert not evaluation.absorb and evaluation.absorbing_steps is None and evaluation.horizon is None
    with pytest.raises(ValueError, match="absorbing_steps must be an integer >= 1, got 0"):
        AbsorbingTermination(gym.make("CartPole-v1"), absorbing_steps=0)
    with pytest.raises(ValueError, match="absorbing_steps=25 needs absorbing_termination: true"):
        RLHFConfig(env="CartPole-v1", absorbing_steps=25)


def test_evaluation_wrapper_appends_the_indicator_and_ends_at_termination():
    env = absorbing_env("CartPole-v1", absorb=False)
    obs, _ = env.reset(seed=0)
    steps, terminated = 0, False
    while not terminated:
        obs, _, terminated, truncated, _ = env.step(0)
        steps += 1
        assert obs[-1] == 0 and not truncated
    assert steps < 40
    with pytest.raises(ValueError, match="observation_space must be a 1-D Box for absorbing termination, got Discrete"):
        AbsorbingTermination(gym.make("FrozenLake-v1"))


def test_an_environment_without_time_limit_is_refused():
    gym.register("sobirl-test/NoLimitCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv")
    with pytest.raises(ValueError, match="has no time limit; absorbing termination needs one: set max_episode_steps"):
        absorbing_env("sobirl-test/NoLimitCartPole-v0")
    assert absorbing_env("sobirl-test/NoLimitCartPole-v0", max_episode_steps=5).spec.max_episode_steps == 5


def test_cartpole_preferences_are_informative_with_absorbing_termination(tmp_path):
    changes = dict(env="CartPole-v1", algo="sobirl", total_steps=200, fragment_length=25, absorbing_termination=True)
    config = RLHFConfig.from_dict({**SMOKE, **changes})
    train, evaluation = make_env(config), make_env(config, evaluation=True)
    assert train.spec.max_episode_steps == 50 and train.observation_space == evaluation.observation_space
    trainer = RLHFTrainer(config, tmp_path)
    rows = trainer.run()
    assert all(len(t) == 50 for t in trainer.recorder.trajectories)  # fixed horizon
    pairs = trainer.dataset.contents()[0]
    probabilities = trainer.labeller.probabilities(pairs)
    assert np.any(probabilities != 0.5)  # fragments that cover a failure return less
    assert all(0 <= r["preference_accuracy"] <= 1 for r in rows) and all(1 <= r["eval_return"] <= 50 for r in rows)
    assert math.isfinite(rows[-1]["exploration_norm"])
    with pytest.raises(TypeError, match="absorbing_termination must be true or false, got 'yes'"):
        RLHFConfig(absorbing_termination="yes")


def rollout(env: gym.Env, seed: int, steps: int) -> list[tuple]:
    """``steps`` steps of always pushing left (action 0) from ``reset(seed=seed)``, resetting at each episode end:
    the observations, rewards, flags and absorbing markers."""
    obs, _ = env.reset(seed=seed)
    out: list[tuple] = [(obs.tolist(),)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(0)
        out.append((obs.tolist(), float(reward), terminated, truncated, info.get("absorbing", False)))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs.tolist(),))
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_episode_steps": 40},  # training: absorbing until the time limit
        {"max_episode_steps": 40, "absorbing_steps": 7},  # training: truncated in the absorbing state
        {"absorb": False},  # evaluation: the indicator only, termination passed on
    ],
)
def test_check_env_passes_and_the_spec_rebuilds_the_same_environment(kwargs):
    env = absorbing_env("CartPole-v1", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the checker's notes on the wrapped environment and on CartPole's unbounded Box are not failures
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(env, skip_render_check=True)  # CartPole's render modes need pygame, not installed
    spec = env.spec
    limit = kwargs.get("max_episode_steps", 500)
    assert spec.max_episode_steps == limit
    assert [w.name for w in spec.additional_wrappers] == ["AbsorbingTermination"]
    assert spec.additional_wrappers[0].kwargs == {
        "absorb": kwargs.get("absorb", True),
        "absorbing_steps": kwargs.get("absorbing_steps"),
    }
    rebuilt = spec.make()
    assert isinstance(rebuilt, AbsorbingTermination) and isinstance(rebuilt.env, gym.wrappers.TimeLimit)
    assert rebuilt.observation_space == env.observation_space and rebuilt.horizon == env.horizon
    expected = rollout(env, seed=3, steps=120)
    assert rollout(rebuilt, seed=3, steps=120) == expected
    ends = [(k, step[2], step[3]) for k, step in enumerate(expected) if len(step) > 1 and (step[2] or step[3])]
    if kwargs.get("absorb", True):  # fixed horizons: 40 steps, or fail + 7 absorbing steps; never a termination
        assert ends and not any(terminated for _, terminated, _ in ends)
    else:
        assert ends and all(terminated for _, terminated, _ in ends)


def test_a_wrapped_environment_without_time_limit_is_refused_unless_for_evaluation():
    gym.register("sobirl-test/NoLimitPendulum-v0", entry_point="gymnasium.envs.classic_control:PendulumEnv")
    with pytest.raises(ValueError, match="env 'sobirl-test/NoLimitPendulum-v0' has no time limit; absorbing"):
        AbsorbingTermination(gym.make("sobirl-test/NoLimitPendulum-v0"))
    evaluation = AbsorbingTermination(gym.make("sobirl-test/NoLimitPendulum-v0"), absorb=False)
    assert evaluation.horizon is None and evaluation.observation_space.shape == (4,)
    with pytest.raises(TypeError, match="absorb must be true or false, got 'no'"):
        AbsorbingTermination(gym.make("CartPole-v1"), absorb="no")
