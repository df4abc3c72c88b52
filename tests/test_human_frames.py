"""Rendered frames of the training episodes: RenderFrames puts the image of each step's state into its info, the
recorder keeps them for its newest steps, and fragments cut from them carry them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sobirl.rlhf import EpisodeRecorder
from sobirl.rlhf.fragments import sample_fragment_pairs
from sobirl.rlhf.human import RenderFrames


def cartpole(max_width: int = 60) -> gym.Env:
    return RenderFrames(gym.make("CartPole-v1", render_mode="rgb_array"), max_width=max_width)


def record(recorder: EpisodeRecorder, steps: int, seed: int = 0) -> None:
    """``steps`` random steps of a CartPole VecEnv, fed to ``recorder`` as SB3's callback does."""
    venv = DummyVecEnv([cartpole])
    venv.seed(seed)
    obs = venv.reset()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(0, 2, size=1)
        new_obs, rewards, dones, infos = venv.step(actions)
        recorder.add(obs, actions, rewards, dones=dones, infos=infos)
        obs = new_obs


def test_each_step_carries_the_image_of_the_state_its_action_was_taken_in():
    env, twin = cartpole(), gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=3)
    twin.reset(seed=3)
    for action in (0, 1, 1):
        before = twin.render()
        *_, info = env.step(action)
        twin.step(action)
        assert info["frame"].shape == (40, 60, 3) and info["frame"].dtype == np.uint8  # 600x400 downscaled to 60
        assert np.abs(info["frame"].astype(int) - np.asarray(_small(before), dtype=int)).max() == 0
    check_env(cartpole(), skip_render_check=True)
    with pytest.raises(ValueError, match="render_mode='rgb_array', got None"):
        RenderFrames(gym.make("CartPole-v1"))


def _small(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((60, 40), Image.Resampling.BILINEAR))


def test_the_recorder_keeps_frames_for_its_newest_steps_and_fragments_carry_them():
    recorder = EpisodeRecorder(1, frame_steps=60)
    record(recorder, 300)
    trajectories = recorder.trajectories
    framed = [t for t in trajectories if t.frames is not None]
    assert framed and framed == trajectories[len(trajectories) - len(framed) :]  # the newest
    assert sum(len(t) for t in framed) <= 60 and all(t.frames.shape == (len(t), 40, 60, 3) for t in framed)
    pairs = sample_fragment_pairs(trajectories, 4, 5, np.random.default_rng(0), frames=True)
    assert pairs.frames.shape == (4, 2, 5, 40, 60, 3)
    for pair in range(4):  # each fragment's frames are those of its observations' steps
        for side in range(2):
            obs = pairs.observations[pair, side]
            (traj,) = [t for t in framed if any(np.array_equal(obs, t.observations[i : i + 5]) for i in range(len(t)))]
            start = next(i for i in range(len(traj)) if np.array_equal(obs, traj.observations[i : i + 5]))
            np.testing.assert_array_equal(pairs.frames[pair, side], traj.frames[start : start + 5])
    assert sample_fragment_pairs(trajectories, 2, 5, np.random.default_rng(0)).frames is None


def test_no_frames_are_kept_without_frame_steps():
    recorder = EpisodeRecorder(1)
    record(recorder, 100)
    assert all(t.frames is None for t in recorder.trajectories)
