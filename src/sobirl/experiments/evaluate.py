"""Evaluating a deep RLHF run from the files it wrote, behind ``sobirl evaluate``.

Usage::

    sobirl evaluate RUN_DIR [--episodes N] [--video DIR] [--deterministic/--stochastic]

:func:`evaluate_run` reads the run directory's ``config.yaml``, its policy (:data:`~sobirl.rlhf.artifacts.POLICY_FILE`)
and, when there is one, its reward net (:data:`~sobirl.rlhf.artifacts.REWARD_NET_FILE`), and plays episodes of the
run's evaluation environment (:func:`sobirl.rlhf.environments.make_env` with ``evaluation=True``, the one the trainer's
``eval_return`` is measured on), on the CPU. It returns the true returns (:class:`EvaluationResult`), and writes

- with ``video_dir``: one mp4 per episode, ``eval-episode-<k>.mp4`` (gymnasium's ``RecordVideo``; needs the
  ``video`` extra, ``pip install "sobirl[video]"``; MuJoCo on a machine without a display needs ``MUJOCO_GL=egl``);
- with ``plot`` and a reward net: :data:`REWARD_PLOT`, the learned reward along the first episode next to the true
  reward (the learned reward clamped to ``clip`` as the follower saw it), into ``video_dir`` when given, else into
  the run directory.

Episode ``k`` starts from ``reset(seed=s_k)``, the ``s_k`` spawned from ``seed``; a stochastic policy samples from
torch's generator seeded with ``seed`` (forked: the caller's stream does not move), so an evaluation is repeatable.
Loading the policy reseeds Python's, numpy's and torch's global generators with the run's seed (Stable-Baselines3).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import RecordVideo
from stable_baselines3 import SAC

from sobirl.agents import DiscreteSAC, follower_class
from sobirl.envs import is_atari
from sobirl.experiments.figures import plot_reward_vs_true
from sobirl.rlhf.action_reward_net import ActionRewardNet
from sobirl.rlhf.artifacts import POLICY_FILE, REWARD_NET_FILE, load_reward_net
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.environments import make_env
from sobirl.rlhf.reward_net import RewardNet
from sobirl.rundir import CONFIG_FILE
from sobirl.validation import check_int

REWARD_PLOT = "reward_vs_true.png"
"""The learned and the true reward along the first evaluation episode."""
VIDEO_PREFIX = "eval"
"""Videos are ``<VIDEO_PREFIX>-episode-<k>.mp4``, ``k`` from 0."""
_REWARD_CHUNK = 1024
"""Steps per forward pass of the reward net (an Atari episode's frames as floats at once would take GBs)."""


@dataclass(frozen=True)
class EvaluationResult:
    """The outcome of :func:`evaluate_run`.

    Attributes:
        mean: the mean true return over the episodes.
        std: the standard deviation of the true returns (population, ``ddof=0``: 0 for one episode).
        returns: each episode's true return, in order.
        deterministic: whether the policy's actions were deterministic (else sampled).
        videos: the mp4 files written, one per episode (empty without ``video_dir``).
        plot: the :data:`REWARD_PLOT` written, or None.
    """

    mean: float
    std: float
    returns: tuple[float, ...]
    deterministic: bool
    videos: tuple[Path, ...] = ()
    plot: Path | None = None


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    episodes: int = 10,
    deterministic: bool = True,
    video_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    plot: bool = True,
) -> EvaluationResult:
    """Play ``episodes`` episodes of the run's policy on its evaluation environment (module docstring).

    Args:
        run_dir: a ``sobirl rlhf`` run directory with ``config.yaml`` and ``policy.zip``.
        episodes: number of episodes (``>= 1``).
        deterministic: the policy's deterministic actions (its mean, or argmax); False: sampled ones.
        video_dir: record every episode as an mp4 into this directory (created if missing); None: no video.
        seed: seeds the episodes' resets and the sampled actions (``>= 0``).
        plot: write :data:`REWARD_PLOT` when the run has a reward net.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.yaml``, or no ``policy.zip`` (the run has not finished a
            checkpoint yet).
        ImportError: ``video_dir`` given without the ``video`` extra, naming the command that installs it.
        ValueError: ``video_dir`` given for an Atari game, ``episodes < 1`` or ``seed < 0``.
        TypeError: ``episodes`` or ``seed`` not an integer.
    """
    check_int("episodes", episodes, low=1)
    check_int("seed", seed)
    run_dir = Path(run_dir)
    videos_at = None if video_dir is None else Path(video_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not an rlhf run directory (no {CONFIG_FILE})")
    policy_path = run_dir / POLICY_FILE
    if not policy_path.is_file():
        raise FileNotFoundError(
            f"{policy_path} does not exist: the run has not finished a checkpoint yet (the trainer writes "
            f"{POLICY_FILE} at every checkpoint and at the end)"
        )
    config = RLHFConfig.from_yaml(run_dir / CONFIG_FILE)
    if videos_at is not None:
        _check_video(config.env)
        config = config.replace(env_kwargs={**config.env_kwargs, "render_mode": "rgb_array"})
    env = make_env(config, evaluation=True)
    if videos_at is not None:
        env = RecordVideo(env, str(videos_at), episode_trigger=lambda _: True, name_prefix=VIDEO_PREFIX)
    net_path = run_dir / REWARD_NET_FILE
    try:
        model = follower_class(env.action_space).load(policy_path, device="cpu")
        net = load_reward_net(net_path) if plot and net_path.is_file() else None
        returns, first = _play(env, model, episodes, deterministic=deterministic, seed=seed, keep_first=net is not None)
    finally:
        env.close()  # RecordVideo writes the last episode's video here
    plot_path = None
    if net is not None and first is not None:  # first is kept exactly when there is a net
        observations, actions, rewards = first
        clamped = "" if config.clip is None else f" (clamped to +/-{config.clip:g})"
        plot_path = plot_reward_vs_true(
            rewards,
            _learned_rewards(net, model, observations, actions, config.clip),
            (videos_at or run_dir) / REWARD_PLOT,
            title=f"{run_dir.name}\nfirst evaluation episode",
            learned_label=f"learned reward{clamped}",
        )
    videos = () if videos_at is None else tuple(videos_at / f"{VIDEO_PREFIX}-episode-{k}.mp4" for k in range(episodes))
    return EvaluationResult(
        mean=float(np.mean(returns)),
        std=float(np.std(returns)),
        returns=tuple(returns),
        deterministic=deterministic,
        videos=videos,
        plot=plot_path,
    )


def format_result(result: EvaluationResult) -> str:
    """One line for the command line: ``true return MEAN +/- STD over N episodes (deterministic policy)``, then
    where the videos and the plot are, when written."""
    n = len(result.returns)
    policy = "deterministic" if result.deterministic else "stochastic"
    line = f"true return {result.mean:.2f} +/- {result.std:.2f} over {n} episode{'s' * (n > 1)} ({policy} policy)"
    if result.videos:
        line += f"; videos in {result.videos[0].parent}"
    if result.plot is not None:
        line += f"; learned vs true reward: {result.plot}"
    return line


def _check_video(env_id: str) -> None:
    """Raise unless episodes of ``env_id`` can be recorded here."""
    if is_atari(env_id):
        raise ValueError(
            f"videos of Atari games ({env_id}) are not supported: sobirl.envs.make_atari builds them without a "
            "render_mode; evaluate without a video directory"
        )
    if importlib.util.find_spec("moviepy") is None:
        raise ImportError('recording videos needs moviepy; install it with: pip install "sobirl[video]"')


def _play(
    env: gym.Env, model: SAC | DiscreteSAC, episodes: int, *, deterministic: bool, seed: int, keep_first: bool
) -> tuple[list[float], tuple[list[np.ndarray], list[np.ndarray], list[float]] | None]:
    """The episodes' true returns, and with ``keep_first`` the first episode's observations, actions and true rewards
    (else None)."""
    returns: list[float] = []
    first = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for k, child in enumerate(np.random.SeedSequence(seed).spawn(episodes)):
            keep = keep_first and k == 0
            observations, actions, rewards = [], [], []
            obs, _ = env.reset(seed=int(child.generate_state(1)[0]))
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=deterministic)
                if keep:
                    observations.append(obs)
                    actions.append(action)
                obs, reward, terminated, truncated, _ = env.step(action)
                rewards.append(float(reward))
                done = terminated or truncated
            returns.append(sum(rewards))
            if keep:
                first = (observations, actions, rewards)
    return returns, first


def _learned_rewards(
    net: RewardNet | ActionRewardNet,
    model: SAC | DiscreteSAC,
    observations: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    clip: float | None,
) -> np.ndarray:
    """The reward net's rewards of the steps, in the units it was trained in: Box actions scaled to ``[-1, 1]`` as the
    replay buffer stores them, Discrete actions as indices; clamped to ``clip`` as relabelled rewards are."""
    acts = np.asarray(actions)
    if isinstance(model.action_space, spaces.Box):
        acts = model.policy.scale_action(acts)
    obs = np.asarray(observations)
    dtype = next(net.parameters()).dtype
    chunks = []
    with torch.no_grad():
        for start in range(0, len(obs), _REWARD_CHUNK):
            rows = slice(start, start + _REWARD_CHUNK)
            chunks.append(net(torch.as_tensor(obs[rows], dtype=dtype), torch.as_tensor(acts[rows], dtype=dtype)))
    rewards = torch.cat(chunks)
    if clip is not None:
        rewards = rewards.clamp(-clip, clip)
    return rewards.numpy()
