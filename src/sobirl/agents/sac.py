"""The follower: soft actor-critic learning from the reward network through relabelling.

:func:`make_sac` builds an SB3 ``SAC`` (Box actions) or a :class:`~sobirl.agents.DiscreteSAC` (Discrete actions,
:func:`follower_class`) whose replay buffer is a :class:`~sobirl.agents.RelabelingReplayBuffer` (for stacked Atari
frames a :class:`~sobirl.agents.RelabelingFrameStackReplayBuffer`, each frame stored once): every batch SAC trains on
carries the current ``r_x(s, a)``, never the environment's reward. Its logger writes to a given directory (CSV and
TensorBoard) or nowhere: left alone, SB3 creates a dated folder under the system's temporary directory at every
``learn`` even when it writes nothing there.

For the upper level (:mod:`sobirl.rlhf.rules`): :func:`sac_temperature` is SAC's current entropy temperature
``alpha`` (the ``tau`` of the design math, section 5) and :func:`actor_sampler` draws actions from SAC's actor in the
replay buffer's units (scaled to ``[-1, 1]``), the units of the recorded fragments; with Discrete actions,
:func:`actor_probabilities` gives the actor's ``pi(.|s)`` instead (the exact baseline of the exploration term).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from gymnasium import Env, spaces
from stable_baselines3 import SAC
from stable_baselines3.common.logger import HumanOutputFormat, Logger, configure
from stable_baselines3.common.vec_env import VecEnv

from sobirl.agents.discrete_sac import DiscreteSAC
from sobirl.agents.frame_buffer import RelabelingFrameStackReplayBuffer
from sobirl.agents.relabel import RelabelingReplayBuffer
from sobirl.agents.types import ActionProbabilities, ActionSampler, StepRewardFn

LOG_FORMATS = ("csv", "tensorboard")
"""What SB3's logger writes into ``log_dir`` (``progress.csv`` and TensorBoard events); ``stdout`` too if verbose."""


def follower_class(action_space: spaces.Space) -> type[SAC] | type[DiscreteSAC]:
    """The soft actor-critic for ``action_space``: SB3's ``SAC`` for a ``Box``, :class:`DiscreteSAC` for a
    ``Discrete``; a ``TypeError`` naming both otherwise."""
    if isinstance(action_space, spaces.Box):
        return SAC
    if isinstance(action_space, spaces.Discrete):
        return DiscreteSAC
    raise TypeError(
        f"action_space must be a gymnasium.spaces.Box (SAC) or Discrete (DiscreteSAC), got {action_space}; "
        "flatten or discretise the actions with a gymnasium.ActionWrapper"
    )


def make_sac(
    env: Env | VecEnv,
    reward_fn: StepRewardFn,
    *,
    seed: int = 0,
    device: torch.device | str = "auto",
    log_dir: str | os.PathLike[str] | None = None,
    clip: float | None = None,
    policy: str = "MlpPolicy",
    frame_stack: int | None = None,
    **sac_kwargs: Any,
) -> SAC | DiscreteSAC:
    """An SB3 ``SAC`` (Box actions) or :class:`DiscreteSAC` (Discrete actions) on ``env`` that learns from
    ``reward_fn`` through a :class:`RelabelingReplayBuffer` (or :class:`RelabelingFrameStackReplayBuffer`).

    Args:
        env: a gymnasium environment or an SB3 ``VecEnv`` with a ``Box`` or ``Discrete`` action space (SB3 wraps a
            plain environment in ``Monitor`` and ``DummyVecEnv``).
        reward_fn: the learned reward, e.g. a :class:`~sobirl.rlhf.RewardNet`, or a per-action
            :class:`~sobirl.rlhf.ActionRewardNet` for Discrete actions (see :class:`RelabelingReplayBuffer`).
        seed: SAC's seed. SB3 seeds Python's, numpy's and torch's GLOBAL generators with it, the action space and
            the environment's next reset.
        device: SAC's device (``"cpu"``, ``"cuda"``, ``"auto"``); the reward net stays where it is.
        log_dir: where SB3's logger writes (:data:`LOG_FORMATS`); None: it writes nothing (stdout only if
            ``verbose >= 1``).
        clip: clamp relabelled rewards to ``[-clip, clip]`` (the seed authors: 1.0); None: no clamp.
        policy: SB3's policy name (``"CnnPolicy"`` for images).
        frame_stack: the observations are stacks of this many frames (:func:`sobirl.envs.make_atari`): the buffer is
            a :class:`RelabelingFrameStackReplayBuffer` with ``n_stack=frame_stack``, each frame stored once; None: a
            :class:`RelabelingReplayBuffer`.
        sac_kwargs: any other argument of the algorithm (``buffer_size``, ``learning_starts``, ``policy_kwargs``,
            ``replay_buffer_kwargs``, ``verbose``, ...), except ``replay_buffer_class`` and ``tensorboard_log``.

    Raises:
        TypeError: the action space is neither a ``Box`` nor ``Discrete``, or the observation space is a ``Dict``.
        ValueError: ``replay_buffer_class`` or ``tensorboard_log`` given, an invalid ``clip``, or a ``frame_stack``
            that is not the observations' number of frames.
    """
    algorithm = follower_class(env.action_space)
    if isinstance(env.observation_space, spaces.Dict):
        raise TypeError(
            f"observation_space must not be a Dict for the relabelling buffer, got {env.observation_space}; "
            "wrap the environment in gymnasium.wrappers.FlattenObservation"
        )
    for name, instead in (
        ("replay_buffer_class", "it is RelabelingReplayBuffer (RelabelingFrameStackReplayBuffer with frame_stack)"),
        ("tensorboard_log", "log_dir"),
    ):
        if name in sac_kwargs:
            raise ValueError(f"{name} cannot be given to make_sac; {instead}")
    buffer_kwargs = {**(sac_kwargs.pop("replay_buffer_kwargs", None) or {}), "reward_fn": reward_fn, "clip": clip}
    if frame_stack is not None:
        buffer_kwargs["n_stack"] = frame_stack
    model = algorithm(
        policy,
        env,
        seed=seed,
        device=device,
        replay_buffer_class=RelabelingReplayBuffer if frame_stack is None else RelabelingFrameStackReplayBuffer,
        replay_buffer_kwargs=buffer_kwargs,
        **sac_kwargs,
    )
    stdout = model.verbose >= 1
    if log_dir is None:
        model.set_logger(Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)] if stdout else []))
    else:
        model.set_logger(configure(os.fspath(log_dir), (["stdout"] if stdout else []) + list(LOG_FORMATS)))
    return model


def sac_temperature(model: SAC | DiscreteSAC) -> float:
    """SAC's current entropy temperature ``alpha``: ``exp(log_ent_coef)`` when auto-tuned, else the fixed one."""
    if model.log_ent_coef is not None:
        return float(torch.exp(model.log_ent_coef.detach()).item())
    return float(model.ent_coef_tensor.item())


def actor_sampler(model: SAC) -> ActionSampler:
    """A sampler of SAC's stochastic actor: ``(M, *obs_shape)`` observations to ``(M, action_dim)`` actions, one
    draw per row from torch's global generator, squashed to ``[-1, 1]`` (the replay buffer's and the recorded
    fragments' units), float32 on SAC's device, without a graph."""

    def sample(observations: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.actor(observations.to(device=model.device, dtype=torch.float32), deterministic=False)

    return sample


def actor_probabilities(model: DiscreteSAC) -> ActionProbabilities:
    """The probabilities ``pi(.|s)`` of a :class:`DiscreteSAC`'s actor: ``(M, *obs_shape)`` observations (raw, as
    recorded; images in ``[0, 255]``) to ``(M, |A|)``, float32 on the algorithm's device, without a graph."""

    def probabilities(observations: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = model.actor(observations.to(device=model.device, dtype=torch.float32))
        return torch.softmax(logits, dim=-1)

    return probabilities
