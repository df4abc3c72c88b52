"""Atari games for deep RLHF: make_atari's frames, raw scores and episode ends, gymnasium's conventions (check_env, a
spec that rebuilds the same game), the frame-stack replay buffer on the real game, and the error without the atari
extra."""

from __future__ import annotations

import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from sobirl.agents import FrameStackReplayBuffer
from sobirl.envs import ATARI_ENV_ID, is_atari, make_atari
from test_frame_buffer import GROWN, assert_same_samples, transitions

BEAMRIDER = "ALE/BeamRider-v5"


def test_is_atari_by_id_and_entry_point():
    assert is_atari(BEAMRIDER) and is_atari("ALE/NotAGame-v5")  # by the prefix, installed or not
    assert is_atari("BeamRiderNoFrameskip-v4")  # registered by ale_py, its entry point
    assert not any(is_atari(env_id) for env_id in ("CartPole-v1", "HalfCheetah-v5", "NoSuchEnv-v0"))


@pytest.mark.parametrize("frame_stack", [4, 2])
def test_frames_are_zero_padded_uint8_stacks_shifted_by_one_per_step(frame_stack):
    env = make_atari(BEAMRIDER, frame_stack=frame_stack)
    assert env.observation_space == gym.spaces.Box(0, 255, (frame_stack, 84, 84), np.uint8)
    assert env.action_space == gym.spaces.Discrete(9)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (frame_stack, 84, 84) and obs.dtype == np.uint8
    assert not obs[:-1].any() and obs[-1].any()  # [0, ..., 0, o_0], as VecFrameStack pads
    for _ in range(3):
        new_obs, *_ = env.step(1)
        np.testing.assert_array_equal(new_obs[:-1], obs[1:])
        obs = new_obs
    env.close()


def test_rewards_are_the_raw_game_score():
    env = make_atari(BEAMRIDER)
    env.reset(seed=0)
    rewards = [env.step(1)[1] for _ in range(150)]  # always FIRE: the first enemy is hit at step 137
    assert set(rewards) == {0.0, 44.0}  # not clipped to 1: the labeller and the logged return need the score
    env.close()


def test_time_limit_counts_agent_steps_and_its_truncation_starts_a_new_game():
    env = make_atari(BEAMRIDER, max_episode_steps=20)
    assert env.spec.max_episode_steps == 20
    env.reset(seed=0)
    ends = []
    for t in range(1, 61):
        _, _, terminated, truncated, _ = env.step(1)
        if terminated or truncated:
            ends.append((t, terminated, truncated))
            env.reset()
            # a new game: at most 30 no-ops and FIRE, where the no-op step of a lost life would go on from frame ~110
            assert env.unwrapped.ale.getEpisodeFrameNumber() <= 30 + 4 * 2
    assert ends == [(20, False, True), (40, False, True), (60, False, True)]
    env.close()


def frames(env: gym.Env, seed: int, steps: int) -> list[tuple]:
    """Always FIRE for ``steps`` steps from ``reset(seed=seed)``, resetting at each episode end: a digest of each
    observation, the rewards and the flags."""
    obs, _ = env.reset(seed=seed)
    out: list[tuple] = [(int(obs.sum()),)]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(1)
        out.append((int(obs.sum()), float(reward), terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((int(obs.sum()),))
    return out


@pytest.mark.parametrize("max_episode_steps", [None, 12])
def test_check_env_passes_and_the_spec_rebuilds_the_same_game(max_episode_steps):
    env = make_atari(BEAMRIDER, max_episode_steps=max_episode_steps, frame_stack=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")  # gym.make's wrappers
        check_env(env, skip_render_check=True)  # human rendering would open a window
    spec = env.spec
    assert spec.id == ATARI_ENV_ID and spec.max_episode_steps == max_episode_steps
    assert spec.kwargs == {"game": BEAMRIDER, "frame_stack": 2, "terminal_on_life_loss": True, "noop_max": 30}
    rebuilt = spec.make()
    assert rebuilt.observation_space == env.observation_space and rebuilt.spec == spec
    assert frames(rebuilt, seed=5, steps=30) == frames(env, seed=5, steps=30)
    rendered = gym.make(ATARI_ENV_ID, game=BEAMRIDER, render_mode="rgb_array")
    rendered.reset(seed=0)
    assert rendered.render().shape == (210, 160, 3)
    for e in (env, rebuilt, rendered):
        e.close()


def test_reset_with_a_seed_or_mid_episode_starts_a_new_game():
    env = make_atari(BEAMRIDER)
    first, _ = env.reset(seed=3)
    for _ in range(5):
        env.step(1)
    again, _ = env.reset(seed=3)  # SB3's EpisodicLifeEnv alone would take a no-op step in the running game
    np.testing.assert_array_equal(again, first)
    assert env.unwrapped.ale.getEpisodeFrameNumber() <= 30 + 4 * 2
    env.step(1)
    env.reset()  # mid-episode, no seed: a new game as well
    assert env.unwrapped.ale.getEpisodeFrameNumber() <= 30 + 4 * 2
    env.close()


@pytest.mark.parametrize("terminal_on_life_loss", [True, False])
def test_a_lost_life_ends_a_training_episode_only(terminal_on_life_loss):
    env = make_atari(BEAMRIDER, terminal_on_life_loss=terminal_on_life_loss)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(700):  # the first life is lost at step 656
        _, _, terminated, truncated, info = env.step(int(rng.integers(0, 3)))
        if terminated or truncated:
            break
    assert (terminated, info["lives"]) == ((True, 2) if terminal_on_life_loss else (False, 2))
    env.close()


@pytest.mark.filterwarnings(GROWN)
def test_frame_stack_buffer_equals_sb3_replay_buffer_on_the_game():
    """The real game through SB3's DummyVecEnv into both buffers, as an off-policy algorithm stores it: env 0 is
    truncated every 40 steps, env 1 loses a life at step 725; the rows wrap around."""
    venv = DummyVecEnv([lambda: make_atari(BEAMRIDER, max_episode_steps=40), lambda: make_atari(BEAMRIDER)])
    venv.seed(0)
    args = (300, venv.observation_space, venv.action_space)
    naive = ReplayBuffer(*args, device="cpu", n_envs=2)
    ours = FrameStackReplayBuffer(*args, device="cpu", n_envs=2, n_stack=4)
    for t, transition in enumerate(transitions(venv, 760), start=1):
        naive.add(*transition)
        ours.add(*transition)
        if t in (1, 150, 151, 760):
            assert_same_samples(naive, ours)
    venv.close()
    truncations = naive.timeouts.sum()
    assert truncations == 4 and naive.dones.sum() - truncations == 1  # in the last 150 rows
    assert ours.nbytes < (naive.observations.nbytes + naive.next_observations.nbytes) / 6


def test_without_the_extra_make_atari_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # import ale_py fails, as where it is not installed
    with pytest.raises(gym.error.DependencyNotInstalled, match=r'pip install "sobirl\[atari\]"$'):
        make_atari(BEAMRIDER)
    assert is_atari(BEAMRIDER) and not is_atari("NoSuchEnv-v0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_stack": 0}, "frame_stack must be an integer >= 1, got 0"),
        ({"noop_max": -1}, "noop_max must be an integer >= 0, got -1"),
        ({"max_episode_steps": 0}, "max_episode_steps must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_atari(BEAMRIDER, **kwargs)
