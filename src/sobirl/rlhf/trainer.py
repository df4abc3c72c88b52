"""Deep RLHF: soft actor-critic, episode recording, fragment queries, synthetic labels and reward updates joined in
one loop, into a run directory that can be resumed after a kill.

The follower is SB3's SAC with a :class:`RewardNet` on ``(s, a)`` for Box actions, or
:class:`~sobirl.agents.DiscreteSAC` with a per-action :class:`~sobirl.rlhf.ActionRewardNet` for Discrete actions (the
exploration term's baseline is then exact, :mod:`sobirl.rlhf.sensitivities`); "SAC" below means either. Atari games
(:func:`sobirl.envs.make_atari`) give uint8 stacks of frames: DiscreteSAC's ``CnnPolicy``, the Nature CNN reward net
and a replay buffer storing each frame once (:class:`~sobirl.agents.FrameStackReplayBuffer`); the episode recorder, the
fragments and the preference dataset keep the frames as uint8 (the recorder and the dataset each frame of an episode
or fragment once), and the reward net sees float copies of one mini-batch at a time. The loop
(:class:`RLHFTrainer`) runs SAC in chunks of agent steps, each chunk ending at the next event:

- a reward update every ``reward_update_interval`` steps before the last (not for ``sac-true-reward``; at the last
  step no policy would learn from it, and the schedule spends its ``total_pairs`` by the last update): query the
  :class:`QuerySchedule`'s new pairs from the recorded episodes, label them with the labeller (the
  :class:`SyntheticLabeller` by default),
  push them to the :class:`PreferenceDataset`, then train the :class:`RewardNet` with the algorithm's rule for
  ``reward_epochs`` passes over the dataset (``initial_reward_epochs`` at the first update);
- an evaluation every ``eval_interval`` steps and at the end: the policy's true return on a separate environment
  (the deterministic policy's unless ``eval_deterministic`` is false), the preference accuracy of the reward net on
  fresh held-out pairs from the latest training episodes, and one metrics row (:data:`METRIC_COLUMNS`);
- a checkpoint every ``checkpoint_interval`` steps and at the end.

Randomness: SAC seeds Python's, numpy's and torch's global generators with ``seed``; the fragment sampler, the
labeller and the reward mini-batches draw from their own numpy generators spawned from ``seed``, and each
evaluation from generators seeded by ``(seed, evaluation number)``, so the preference pipeline is reproducible
given the seed and evaluations never move the training streams.

Run directory (:data:`CHECKPOINT_DIR`, the files of :mod:`sobirl.rundir` and the artifacts of
:mod:`sobirl.rlhf.artifacts`, rewritten at every checkpoint: the policy and the learned reward)::

    config.yaml  metrics.csv  tensorboard/  return.png  policy.zip  reward_net.pt
    checkpoints/step-<N>/  sac.zip  replay_buffer.pkl  dataset.npz  state.pt  env.pkl  manifest.json

A checkpoint is written under a temporary name, flushed to disk and renamed when complete, so a kill never leaves a
partial one; ``manifest.json`` holds its files' sizes and SHA-256, so that a damaged one is recognised and
:meth:`RLHFTrainer.resume` falls back to an older one; the newest ``keep_checkpoints`` are kept. A failed write
stops the run (:class:`CheckpointWriteError`), and so does a non-finite reward output, preference loss, exploration
term or SAC loss (:class:`NonFiniteError`), before any later checkpoint (docs/reliability.md);
``state.pt`` holds the reward net, its optimiser, the update rule (with its state: STORM's recursion) and the
successor-feature critic, the episode recorder, the generators (global and
own), the counters and the number of metrics rows logged. :meth:`RLHFTrainer.resume` loads the latest checkpoint,
truncates ``metrics.csv`` to those rows (and TensorBoard to the same points) and continues. ``env.pkl`` holds the
training environment itself, its episode running (and SAC's last observation with it), and ``state.pt`` the action
space's generator (SAC's warm-up actions): on CPU a resumed run reproduces the uninterrupted run's metrics exactly.
An environment whose state does not pickle (MuJoCo's, Atari's) has no ``env.pkl``: the resumed run starts a new episode
from a seed of ``seed`` and the step, and the recorder drops the unfinished one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import logging
import math
import numbers
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium import spaces
from gymnasium.utils import EzPickle
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import VecEnv
from torch.utils.tensorboard import SummaryWriter

from sobirl.agents import (
    FrameStackReplayBuffer,
    actor_probabilities,
    actor_sampler,
    follower_class,
    make_sac,
    sac_temperature,
)
from sobirl.envs.absorbing import absorbing_env
from sobirl.envs.atari import is_atari, make_atari
from sobirl.rlhf.action_reward_net import ActionRewardNet, action_reward_net
from sobirl.rlhf.artifacts import POLICY_FILE, REWARD_NET_FILE, save_policy, save_reward_net
from sobirl.rlhf.fragments import FragmentPairs, sample_fragment_pairs
from sobirl.rlhf.preference_model import preference_accuracy, preference_logits
from sobirl.rlhf.preferences import PreferenceDataset, PreferenceGatherer, SyntheticLabeller
from sobirl.rlhf.recording import RecordingCallback
from sobirl.rlhf.reward_net import RewardNet
from sobirl.rlhf.rules import RULES, UpdateRule, rule_keys
from sobirl.rlhf.schedule import SCHEDULES, QuerySchedule
from sobirl.rlhf.successor import CriticConfig, SuccessorFeatures
from sobirl.rlhf.trajectories import EpisodeRecorder
from sobirl.rlhf.visits import Follower, PairBatch, Visits
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, TENSORBOARD_DIR, MetricsLogger, read_metrics
from sobirl.validation import check_choice, check_int, check_range

ALGOS = (*RULES, "sac-true-reward")
"""The update rules of :data:`sobirl.rlhf.rules.RULES`, and ``sac-true-reward``: SAC on the environment's reward (no
reward net, no preferences), the reference."""

DEVICES = ("auto", "cpu", "cuda")
"""Devices of SAC and the reward net."""

METRIC_COLUMNS = (
    "iteration",
    "agent_steps",
    "train_return",
    "eval_return",
    "preference_accuracy",
    "accuracy_pairs",
    "reward_loss",
    "exploration_norm",
    "alpha",
    "pairs",
    "steps_per_s",
    "wall_time",
)
"""Columns of ``metrics.csv``: the evaluation number, agent steps, the mean true return of the last
``return_window`` training episodes, the policy's mean true return on the evaluation environment (argmax or sampled
actions: ``eval_deterministic``), the reward net's accuracy on held-out pairs and how many pairs it was computed over
(those the labeller does not tie: an accuracy over few pairs is noise), the mean preference cross-entropy and
``|exploration term|`` over the last reward update's batches, SAC's temperature, the pairs queried so far, agent
steps per second since the previous row, and seconds since the run started (over resumes). Undefined values (no
episode yet, ``sac-true-reward``) are NaN."""

CHECKPOINT_DIR = "checkpoints"
RETURN_PLOT = "return.png"
_STATE = "state.pt"
_SAC = "sac.zip"
_REPLAY = "replay_buffer.pkl"
_DATASET = "dataset.npz"
_MANIFEST = "manifest.json"
"""A checkpoint's last file: each other file's size and SHA-256, so that a damaged checkpoint is recognised."""
_ENV = "env.pkl"
"""The training env with its running episode, where the env pickles."""
_CONFIG_EXTRAS = ("experiment", "versions", "command_line")
"""Keys of a run's ``config.yaml`` that are not :class:`RLHFConfig` fields, so that file works as ``--config``."""
_LOG = logging.getLogger(__name__)
_EVAL_STREAM, _HELD_OUT_STREAM = 1, 2  # second entropy word of the per-evaluation generators
_SECTIONS = {"rule": rule_keys(), "critic": CriticConfig.setting_names()}
"""Settings that live in a component's own config (the rule's, the critic's), given flat in YAML and ``--set``."""
_SAC_OWNED = {
    "policy": "the observations (MlpPolicy or CnnPolicy)",
    "env": "env",
    "seed": "seed",
    "device": "device",
    "learning_starts": "sac_learning_starts",
    "buffer_size": "sac_buffer_size",
    "batch_size": "sac_batch_size",
    "learning_rate": "sac_learning_rate",
    "gamma": "sac_gamma",
    "train_freq": "sac_train_freq",
    "tau": "sac_tau",
    "target_update_interval": "sac_target_update_interval",
    "ent_coef": "sac_ent_coef",
    "target_entropy_scale": "sac_target_entropy_scale",
    "policy_kwargs": "sac_net_arch and sac_share_features_extractor",
    "replay_buffer_class": "the trainer (a relabelling replay buffer)",
    "replay_buffer_kwargs": "the trainer (a relabelling replay buffer)",
    "tensorboard_log": "the trainer (the run's tensorboard/)",
}
"""SAC's constructor arguments the config or the trainer already sets (``sac_kwargs`` may not), and what sets each."""
_ENV_OWNED = {"max_episode_steps": "max_episode_steps"}
"""``gymnasium.make`` arguments the config already sets (``env_kwargs`` may not), and the field that sets each."""


@dataclass(frozen=True)
class RLHFConfig:
    """Everything a deep RLHF run depends on; validated at construction, round-trips through YAML.

    Attributes:
        env: gymnasium environment id with a 1-D Box observation space and a 1-D Box (e.g. Pendulum-v1,
            HalfCheetah-v5) or Discrete (e.g. CartPole-v1) action space, or an Atari game (e.g. ALE/BeamRider-v5,
            the atari extra; :func:`sobirl.envs.make_atari`'s frames and Discrete actions).
        algo: one of ALGOS: drlhf, sobirl, stoc-sobirl (sobirl through STORM's recursion), hpgd, pbrl, sac-true-reward.
        total_steps: agent (environment) steps of the run.
        seed: seed of SAC, the environments, the reward net and the preference pipeline.
        device: device of SAC and the reward net: auto, cpu or cuda.
        threads: torch's CPU threads; None keeps torch's default (small networks run fastest on 1).
        max_episode_steps: time limit of the environments in agent steps (Atari: per life while
            terminal_on_life_loss); None keeps the environment's own.
        absorbing_termination: the training episodes run to the time limit, termination becoming one absorbing
            state (reward 0; observations gain an absorbing indicator, :mod:`sobirl.envs.absorbing`): needed where
            the reward is constant per step (CartPole-v1), or every pair of equal-length fragments ties. The
            evaluation episodes end at termination, with the same true return. Not for Atari games.
        absorbing_steps: with absorbing_termination, a training episode is truncated (the learner bootstraps) after
            this many steps in the absorbing state, so that a policy failing early does not fill the replay buffer
            with absorbing transitions; at least fragment_length keeps every failure inside some fragment. None: the
            absorbing state lasts until the time limit.
        frame_stack: Atari: frames per observation (>= 1).
        terminal_on_life_loss: Atari: a lost life ends a training episode (the usual preprocessing); the evaluation
            episodes are whole games either way, so eval_return is the game score.
        env_kwargs: keyword arguments of ``gymnasium.make(env, ...)`` (e.g. ``{g: 9.81}`` for Pendulum-v1), for the
            training and the evaluation environments; not max_episode_steps (its own field), not for Atari games.
        wrappers: gymnasium wrappers applied in order to the training and evaluation environments, each an import
            path ``"module:Class"`` (called with the environment) or ``{"module:Class": {keyword: value}}``, e.g.
            ``gymnasium.wrappers:ClipAction``; after the time limit, absorbing state or Atari preprocessing.
        fragment_length: steps per fragment of a preference pair.
        total_pairs: preference pairs queried over the run.
        initial_pairs: pairs queried at the first reward update.
        schedule: query schedule, constant or hyperbolic.
        hyperbolic_rate: k of the hyperbolic schedule (rate 1 / (1 + k x) at the fraction x of the run).
        reward_update_interval: agent steps between reward updates (none at ``total_steps``).
        reward_epochs: passes over the preference dataset per reward update.
        initial_reward_epochs: passes at the first reward update (the seed authors train long on the first pairs).
        reward_batch_size: preference pairs per reward mini-batch.
        reward_lr: AdamW learning rate of the reward net.
        reward_weight_decay: AdamW weight decay of the reward net.
        reward_hidden: hidden widths of the reward net (an MLP; Atari frames get the Nature CNN, which has none).
        reward_normalize: normalise the reward net's output by its running statistics.
        reward_state_only: Discrete actions: one reward output shared by every action, r(s, a) = r(s)
            (:mod:`sobirl.rlhf.action_reward_net`); the one-step exploration term is then zero.
        dataset_capacity: preference pairs kept (FIFO).
        label_temperature: Bradley-Terry temperature of the synthetic labeller.
        label_noise: probability that a synthetic label is replaced by a random one.
        exploration_pairs: the second term (exploration or penalty) is estimated on a mini-batch of the newest this
            many pairs (recent fragments, close to the current follower: the formula's expectation is over the
            current follower's fragments), the cross-entropy on the whole dataset; None: both on the same batch from
            the whole dataset.
        rule: the update rule's own settings (:data:`sobirl.rlhf.rules.RULES`, each rule's ``Config``: e.g.
            ``estimator``, ``exploration_warmup``, ``grad_clip``, ``storm_lr``, ``penalty``), given flat in YAML and
            ``--set``; settings of other rules are kept and unused; unset ones take the rule's defaults.
        critic: the successor-feature critic's settings (:class:`sobirl.rlhf.successor.CriticConfig`: ``critic_*``),
            given flat; used where the rule's estimator is ``successor-features``.
        clip: clamp of the relabelled rewards SAC learns from; None: no clamp. The second terms differentiate the
            clamped reward (zero Jacobian where it binds).
        recorder_steps: steps of recent training episodes kept to cut fragments from.
        sac_learning_starts: agent steps of random actions before SAC trains.
        sac_buffer_size: SAC's replay buffer size.
        sac_batch_size: SAC's mini-batch size.
        sac_learning_rate: SAC's learning rate.
        sac_gamma: SAC's discount (also the monte-carlo estimator's and the critic's).
        sac_ent_coef: SAC's fixed entropy temperature alpha > 0 (the follower is then soft-optimal for one tau, the
            exploration term's weight 1/alpha); None: autotuned (SB3's "auto"; DiscreteSAC's target entropy).
        sac_net_arch: hidden widths of SAC's actor and critics (Atari: after the Nature CNN's 512 features; empty:
            linear heads, the DQN-style network).
        sac_train_freq: agent steps between SAC's gradient steps (one each; 4 in DQN-style Atari training).
        sac_tau: SAC's Polyak coefficient of the target critics, in (0, 1]; 1: an exact copy.
        sac_target_update_interval: SAC's gradient steps between target-critic updates (with sac_tau 1 and
            sac_train_freq 4, 2000 is a hard copy every 8000 agent steps).
        sac_share_features_extractor: one features extractor for SAC's actor and critics. DiscreteSAC: the critic
            loss trains it and the target copy's policy bootstraps, so an update costs what a DQN update does on the
            Nature CNN (:mod:`sobirl.agents.discrete_sac`); SAC: SB3's option (the actor loss trains it).
        sac_target_entropy_scale: DiscreteSAC's entropy target as a fraction of ``log|A|``, in (0, 1]; None: its
            default 0.89. Discrete actions only.
        sac_kwargs: further keyword arguments of SAC's (DiscreteSAC's) constructor, merged after the config's own
            (e.g. ``{gradient_steps: 2, verbose: 0}``); a key the config already sets (learning_rate: sac_learning_rate,
            ...) is an error naming its field.
        eval_interval: agent steps between evaluations (one metrics row each).
        eval_episodes: episodes of the policy per evaluation.
        eval_deterministic: evaluate the deterministic policy (argmax or mean action); false: actions sampled from
            the policy, with a generator seeded per evaluation (training's random stream untouched). Atari configs
            set false: a deterministic policy that never presses FIRE after a lost life stalls the game until the
            emulator's cap of 108,000 frames (27,000 agent steps), as SB3's RL Zoo also evaluates Atari stochastically.
        held_out_pairs: fresh pairs per evaluation of the preference accuracy.
        held_out_episodes: latest training episodes the held-out pairs are cut from.
        return_window: latest training episodes averaged into train_return.
        checkpoint_interval: agent steps between checkpoints.
        keep_checkpoints: the newest complete checkpoints kept in ``checkpoints/``; with 2 or more a damaged newest
            one leaves an older one to resume from.
    """

    env: str = "Pendulum-v1"
    algo: str = "sobirl"
    total_steps: int = 30_000
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    max_episode_steps: int | None = None
    absorbing_termination: bool = False
    absorbing_steps: int | None = None
    frame_stack: int = 4
    terminal_on_life_loss: bool = True
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    wrappers: tuple[str | Mapping[str, Mapping[str, Any]], ...] = ()
    fragment_length: int = 25
    total_pairs: int = 1000
    initial_pairs: int = 200
    schedule: str = "hyperbolic"
    hyperbolic_rate: float = 1.0
    reward_update_interval: int = 1000
    reward_epochs: int = 1
    initial_reward_epochs: int = 20
    reward_batch_size: int = 64
    reward_lr: float = 3e-4
    reward_weight_decay: float = 0.01
    reward_hidden: tuple[int, ...] = (256, 256)
    reward_normalize: bool = True
    reward_state_only: bool = False
    dataset_capacity: int = 3000
    label_temperature: float = 1.0
    label_noise: float = 0.0
    exploration_pairs: int | None = 64
    rule: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    critic: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    clip: float | None = 1.0
    recorder_steps: int = 20_000
    sac_learning_starts: int = 1000
    sac_buffer_size: int = 100_000
    sac_batch_size: int = 256
    sac_learning_rate: float = 3e-4
    sac_gamma: float = 0.99
    sac_ent_coef: float | None = None
    sac_net_arch: tuple[int, ...] = (256, 256)
    sac_train_freq: int = 1
    sac_tau: float = 0.005
    sac_target_update_interval: int = 1
    sac_share_features_extractor: bool = False
    sac_target_entropy_scale: float | None = None
    sac_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_interval: int = 1000
    eval_episodes: int = 3
    eval_deterministic: bool = True
    held_out_pairs: int = 200
    held_out_episodes: int = 5
    return_window: int = 10
    checkpoint_interval: int = 5000
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        for name in ("reward_hidden", "sac_net_arch"):  # YAML gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.env, str) or not self.env:
            raise ValueError(f"env must be a gymnasium environment id, got {self.env!r}")
        check_choice("algo", self.algo, ALGOS)
        check_choice("device", self.device, DEVICES)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("seed", self.seed)
        for name in (
            "total_steps",
            "frame_stack",
            "fragment_length",
            "total_pairs",
            "reward_update_interval",
            "reward_epochs",
            "initial_reward_epochs",
            "reward_batch_size",
            "dataset_capacity",
            "recorder_steps",
            "sac_buffer_size",
            "sac_batch_size",
            "sac_train_freq",
            "sac_target_update_interval",
            "eval_interval",
            "eval_episodes",
            "held_out_pairs",
            "held_out_episodes",
            "return_window",
            "checkpoint_interval",
            "keep_checkpoints",
        ):
            check_int(name, getattr(self, name), low=1)
        for name in ("initial_pairs", "sac_learning_starts"):
            check_int(name, getattr(self, name))
        for name in ("total_steps", "reward_update_interval", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) % self.sac_train_freq:  # the loop's chunks would overshoot its events
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must be a multiple of sac_train_freq ({self.sac_train_freq}): SAC "
                    "collects that many agent steps at a time"
                )
        for name in ("threads", "max_episode_steps", "exploration_pairs", "absorbing_steps"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        for i, width in enumerate((*self.reward_hidden, *self.sac_net_arch)):
            check_int(f"hidden width {i}", width, low=1)
        check_range("hyperbolic_rate", self.hyperbolic_rate, low=0.0, low_open=True)
        check_range("reward_lr", self.reward_lr, low=0.0, low_open=True)
        check_range("reward_weight_decay", self.reward_weight_decay, low=0.0)
        check_range("label_temperature", self.label_temperature, low=0.0, low_open=True)
        check_range("label_noise", self.label_noise, low=0.0, high=1.0)
        check_range("sac_learning_rate", self.sac_learning_rate, low=0.0, low_open=True)
        check_range("sac_gamma", self.sac_gamma, low=0.0, high=1.0)
        check_range("sac_tau", self.sac_tau, low=0.0, high=1.0, low_open=True)
        if self.sac_target_entropy_scale is not None:
            check_range("sac_target_entropy_scale", self.sac_target_entropy_scale, low=0.0, high=1.0, low_open=True)
        for name in ("clip", "sac_ent_coef"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), low=0.0, low_open=True)
        for section, keys in _SECTIONS.items():
            values = dict(getattr(self, section))
            unknown = [k for k in values if k not in keys]
            if unknown:
                raise ValueError(f"unknown {section} settings {', '.join(map(str, unknown))}; valid: {', '.join(keys)}")
            object.__setattr__(self, section, values)
        self.update_rule()  # the chosen rule checks its settings (another rule's are checked when it is chosen)
        self.critic_config()
        for name in (
            "reward_normalize",
            "reward_state_only",
            "absorbing_termination",
            "terminal_on_life_loss",
            "sac_share_features_extractor",
            "eval_deterministic",
        ):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.absorbing_steps is not None and not self.absorbing_termination:
            raise ValueError(
                f"absorbing_steps={self.absorbing_steps} needs absorbing_termination: true (it truncates the absorbing "
                "state); set absorbing_termination: true or absorbing_steps: null"
            )
        self.schedule_for()  # initial_pairs <= total_pairs
        self._check_pass_through()

    def _check_pass_through(self) -> None:
        """Validate (and normalise to plain dicts and a tuple) env_kwargs, wrappers and sac_kwargs."""
        env_kwargs = _string_keyed("env_kwargs", self.env_kwargs)
        owned = [f"{k} (set {_ENV_OWNED[k]} instead)" for k in env_kwargs if k in _ENV_OWNED]
        if owned:
            raise ValueError(f"env_kwargs may not set {', '.join(owned)}")
        if env_kwargs and is_atari(self.env):
            raise ValueError(
                f"env_kwargs are passed to gymnasium.make, and the Atari game {self.env!r} is built by "
                "sobirl.envs.make_atari (frame_stack, terminal_on_life_loss, max_episode_steps); set env_kwargs: {}"
            )
        object.__setattr__(self, "env_kwargs", env_kwargs)
        if isinstance(self.wrappers, (str, Mapping)) or not isinstance(self.wrappers, (list, tuple)):
            raise TypeError(f"wrappers must be a list of import paths 'module:Class', got {self.wrappers!r}")
        wrappers = tuple(dict(w) if isinstance(w, Mapping) else w for w in self.wrappers)
        for i, entry in enumerate(wrappers):
            resolve_wrapper(entry, f"wrappers[{i}]")
        object.__setattr__(self, "wrappers", wrappers)
        sac_kwargs = _string_keyed("sac_kwargs", self.sac_kwargs)
        owned = [f"{k} (set by {_SAC_OWNED[k]})" for k in sac_kwargs if k in _SAC_OWNED]
        if owned:
            raise ValueError(f"sac_kwargs may not set what the config already sets: {', '.join(owned)}")
        valid = _sac_parameters()
        unknown = [k for k in sac_kwargs if k not in valid]
        if unknown:
            raise ValueError(
                f"sac_kwargs has unknown SAC arguments {', '.join(unknown)}; valid: "
                f"{', '.join(k for k in valid if k not in _SAC_OWNED)}"
            )
        object.__setattr__(self, "sac_kwargs", sac_kwargs)

    def update_rule(self) -> UpdateRule:
        """A fresh instance of the algorithm's update rule with its settings (``drlhf`` for ``sac-true-reward``, which
        has no reward net)."""
        return RULES.get(self.algo, RULES["drlhf"]).from_settings(self.rule)

    def critic_config(self) -> CriticConfig:
        """The successor-feature critic's settings."""
        return CriticConfig(**self.critic)

    @property
    def last_reward_update(self) -> int:
        """The agent step of the run's last reward update: the last multiple of ``reward_update_interval`` before
        ``total_steps`` (0: the run has none)."""
        return (self.total_steps - 1) // self.reward_update_interval * self.reward_update_interval

    def schedule_for(self) -> QuerySchedule:
        """The query schedule of the run, its ``total_pairs`` queried by the last reward update."""
        return QuerySchedule(
            total_pairs=self.total_pairs,
            total_steps=max(self.last_reward_update, 1),
            initial_pairs=self.initial_pairs,
            kind=self.schedule,
            hyperbolic_rate=self.hyperbolic_rate,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain YAML values (tuples as lists), the sections' given settings flat among them."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _SECTIONS}
        for section in _SECTIONS:
            values.update(getattr(self, section))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def resolved(self) -> dict[str, Any]:
        """:meth:`to_dict` with every setting of the chosen rule and of the critic, defaults included (a run's
        ``config.yaml``)."""
        values = self.to_dict()
        values.update(dataclasses.asdict(self.update_rule().config))
        values.update(dataclasses.asdict(self.critic_config()))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RLHFConfig:
        """A config from field values (missing ones take their defaults); a run's ``config.yaml`` extras are
        ignored. Raises ``ValueError`` naming unknown keys and listing the valid ones."""
        names = [f.name for f in dataclasses.fields(cls) if f.name not in _SECTIONS]
        sections: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
        fields, unknown = {}, []
        for k, v in values.items():
            section = next((name for name, keys in _SECTIONS.items() if k in keys), None)
            if section is not None:
                sections[section][k] = v
            elif k in names:
                fields[k] = v
            elif k not in _CONFIG_EXTRAS:
                unknown.append(k)
        if unknown:
            valid = [*names, *(k for keys in _SECTIONS.values() for k in keys)]
            raise ValueError(f"unknown config keys {', '.join(map(str, unknown))}; valid: {', '.join(valid)}")
        return cls(**fields, **sections)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> RLHFConfig:
        """The config in a YAML mapping file (:meth:`from_dict`)."""
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"{path} must hold a YAML mapping of config fields, got {type(values).__name__}")
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> RLHFConfig:
        """A validated copy with ``changes`` applied (unknown keys rejected as in :meth:`from_dict`)."""
        return self.from_dict({**self.to_dict(), **changes})


def _string_keyed(name: str, values: Any) -> dict[str, Any]:
    """``values`` as a dict with string keys; ``TypeError`` naming the field ``name`` otherwise."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a mapping of keyword arguments, got {values!r}")
    bad = [k for k in values if not isinstance(k, str) or not k.isidentifier()]
    if bad:
        raise TypeError(f"{name} keys must be keyword argument names, got {', '.join(map(repr, bad))}")
    return dict(values)


def resolve_wrapper(entry: str | Mapping[str, Mapping[str, Any]], name: str = "wrapper") -> Callable[[gym.Env], Any]:
    """The wrapper an entry of :attr:`RLHFConfig.wrappers` names: ``env -> Class(env, **kwargs)``.

    Args:
        entry: ``"module:Class"`` or ``{"module:Class": {keyword: value}}``.
        name: how errors name the entry (``wrappers[i]``).

    Raises:
        ValueError: not of that form, a module that does not import (its error), or no such attribute in it.
        TypeError: the attribute is not callable, or the keyword arguments are not a mapping.
    """
    kwargs: Mapping[str, Any] = {}
    if isinstance(entry, Mapping):
        if len(entry) != 1:
            raise ValueError(
                f"{name} must be 'module:Class' or a one-key mapping {{'module:Class': {{...}}}}, got {entry!r}"
            )
        ((path, kwargs),) = entry.items()
        kwargs = _string_keyed(f"{name} keyword arguments", {} if kwargs is None else kwargs)
    else:
        path = entry
    module_name, sep, attribute = path.partition(":") if isinstance(path, str) else ("", "", "")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"{name} must be an import path 'module:Class' (e.g. gymnasium.wrappers:ClipAction), got {path!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or whatever the module raises when imported
        raise ValueError(f"{name} {path!r}: cannot import module {module_name!r}: {err}") from err
    wrapper = module
    for part in attribute.split("."):
        if not hasattr(wrapper, part):
            raise ValueError(f"{name} {path!r}: module {module_name!r} has no attribute {attribute!r}")
        wrapper = getattr(wrapper, part)
    if not callable(wrapper):
        raise TypeError(f"{name} {path!r} is not callable (a gymnasium.Wrapper class or a function of the env)")
    return functools.partial(wrapper, **kwargs)


def _sac_parameters() -> tuple[str, ...]:
    """The keyword arguments of SAC's and DiscreteSAC's constructors."""
    from stable_baselines3 import SAC

    from sobirl.agents import DiscreteSAC

    names = [*inspect.signature(SAC.__init__).parameters, *inspect.signature(DiscreteSAC.__init__).parameters]
    return tuple(k for k in dict.fromkeys(names) if k != "self" and not k.startswith("_"))


def make_env(config: RLHFConfig, *, evaluation: bool = False) -> gym.Env:
    """The environment of ``config``, with its time limit override (and, for training, its absorbing termination, or
    an Atari game's end at a lost life); checks the spaces SAC and the reward net need. ``evaluation``: the
    environment the policy is evaluated on, whose episodes end at termination (Atari: at game over).

    Raises:
        gymnasium.error.DependencyNotInstalled: the environment needs an uninstalled extra, its message naming the
            command that installs it (``sobirl[mujoco]``, ``sobirl[atari]``).
        ValueError: unknown environment id (gymnasium's message, with its suggestion), an observation space that is
            neither a 1-D Box nor an Atari game's frames, an action space neither a 1-D Box nor Discrete, a
            fragment_length beyond the environment's time limit, absorbing termination without a time limit or on an
            Atari game, sac_target_entropy_scale with Box actions, naming the fix; env_kwargs the environment
            rejects, or a wrapper that fails on it (naming ``wrappers[i]``).
        TypeError: a wrapper that returns no ``gymnasium.Env``.

    ``config.env_kwargs`` go to ``gymnasium.make``; ``config.wrappers`` are applied in order to the environment built,
    before its spaces are checked (so e.g. ``gymnasium.wrappers:FlattenObservation`` can make them fit).
    """
    atari = is_atari(config.env)
    if atari and config.absorbing_termination:
        raise ValueError(
            f"absorbing_termination needs 1-D Box observations (e.g. CartPole-v1), and the Atari game {config.env!r} "
            "gives frames; set absorbing_termination: false"
        )
    mujoco = False
    try:
        if atari:
            env = make_atari(
                config.env,
                max_episode_steps=config.max_episode_steps,
                frame_stack=config.frame_stack,
                terminal_on_life_loss=config.terminal_on_life_loss and not evaluation,
            )
        else:
            mujoco = "mujoco" in str(gym.spec(config.env).entry_point)
            if mujoco:
                _route_mujoco_warnings()
            if config.absorbing_termination:  # the evaluation env has the indicator too, and ends at termination
                env = absorbing_env(
                    config.env,
                    max_episode_steps=config.max_episode_steps,
                    absorb=not evaluation,
                    absorbing_steps=None if evaluation else config.absorbing_steps,
                    **config.env_kwargs,
                )
            else:
                env = gym.make(config.env, max_episode_steps=config.max_episode_steps, **config.env_kwargs)
    except gym.error.DependencyNotInstalled as err:  # a subclass of gym.error.Error
        if mujoco:  # gymnasium's message names gymnasium's extra, not ours
            raise gym.error.DependencyNotInstalled(
                f'{config.env} needs MuJoCo, which is not installed; install it with: pip install "sobirl[mujoco]"'
            ) from err
        raise
    except TypeError as err:  # an environment constructor's unexpected keyword
        if not config.env_kwargs:
            raise
        raise ValueError(f"env_kwargs {config.env_kwargs} were rejected by {config.env}: {err}") from err
    except gym.error.Error as err:
        raise ValueError(
            f"unknown env {config.env!r}: {err} (registered ids: gymnasium.pprint_registry(); e.g. Pendulum-v1, "
            "HalfCheetah-v5)"
        ) from err
    for i, entry in enumerate(config.wrappers):
        wrap = resolve_wrapper(entry, f"wrappers[{i}]")
        try:
            wrapped = wrap(env)
        except Exception as err:
            env.close()
            raise ValueError(f"wrappers[{i}] {entry!r} failed on {config.env}: {type(err).__name__}: {err}") from err
        if not isinstance(wrapped, gym.Env):
            env.close()
            raise TypeError(f"wrappers[{i}] {entry!r} returned {type(wrapped).__name__}, not a gymnasium.Env")
        env = wrapped
    limit = env.spec.max_episode_steps if env.spec is not None else None
    if limit is not None and config.fragment_length > limit:
        env.close()
        raise ValueError(
            f"fragment_length ({config.fragment_length}) is longer than the episodes of {config.env} allow (time "
            f"limit {limit} steps); use a fragment_length <= {limit} or a larger max_episode_steps"
        )
    obs_space, act_space = env.observation_space, env.action_space
    # an Atari game's observations are make_atari's uint8 (frame_stack, 84, 84) stacks
    if not atari and (not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1):
        env.close()
        raise ValueError(
            f"env {config.env!r} has observation_space {obs_space}; deep RLHF needs 1-D Box observations (e.g. "
            "Pendulum-v1, HalfCheetah-v5, CartPole-v1) or an Atari game (e.g. ALE/BeamRider-v5); wrap others in "
            "gymnasium.wrappers.FlattenObservation"
        )
    if not (
        isinstance(act_space, spaces.Discrete) or (isinstance(act_space, spaces.Box) and len(act_space.shape) == 1)
    ):
        env.close()
        raise ValueError(
            f"env {config.env!r} has action_space {act_space}; deep RLHF needs 1-D Box actions (SAC, e.g. "
            "Pendulum-v1) or Discrete actions (DiscreteSAC, e.g. CartPole-v1)"
        )
    if config.sac_target_entropy_scale is not None and not isinstance(act_space, spaces.Discrete):
        env.close()
        raise ValueError(
            f"sac_target_entropy_scale is DiscreteSAC's (Discrete actions), and {config.env!r} has action_space "
            f"{act_space}; leave it unset (SAC's target entropy is -dim(A))"
        )
    if config.reward_state_only and not isinstance(act_space, spaces.Discrete):
        env.close()
        raise ValueError(
            f"reward_state_only is for the per-action reward net (Discrete actions), and {config.env!r} has "
            f"action_space {act_space}; leave it false"
        )
    return env


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings (e.g. deprecated attributes in gymnasium's model files) to this module's logger:
    without a handler MuJoCo appends them to ``MUJOCO_LOG.TXT`` in the working directory. Logging never raises
    (an exception inside MuJoCo's C callback would abort the process). A handler the user set is kept; without
    MuJoCo, ``gym.make`` raises the missing-dependency error."""
    try:
        import mujoco
    except ImportError:
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(lambda message: _LOG.warning("MuJoCo: %s", message.strip()))


def check_device(device: str) -> None:
    """Raise ``ValueError`` with the fix when ``device`` is ``cuda`` and torch sees no CUDA device."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' requested but torch sees no CUDA device; set device to auto or cpu "
            "(--device, or --set device=... in a sweep)"
        )


class NonFiniteError(RuntimeError):
    """A quantity of the run became NaN or infinite; the run stopped before its next checkpoint, so the last one
    written holds the last good state.

    Attributes:
        quantity: what became non-finite: ``reward output`` (the reward net's fragment returns), ``preference loss``
            (the cross-entropy), ``exploration term`` (the rule's second term), each checked at every reward
            mini-batch, or ``SAC <loss>`` (``actor_loss``, ``critic_loss``, ``ent_coef_loss``: every loss SAC
            records, checked at every gradient step).
        value: the offending value.
        agent_steps: the agent step it was met at.
        checkpoint: the last good checkpoint (None when the run had written none).
    """

    def __init__(self, quantity: str, value: float, agent_steps: int, checkpoint: Path | None) -> None:
        self.quantity, self.value, self.agent_steps, self.checkpoint = quantity, value, agent_steps, checkpoint
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint is not None else "no checkpoint was written"
        super().__init__(
            f"non-finite {quantity} ({value}) at agent step {agent_steps}; the run stopped and {kept} (lower the "
            "learning rates or set grad_clip, then start again or resume from it)"
        )


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (no space, no permission, an I/O error): the run stopped, and the previous
    checkpoint is untouched. ``errno`` is the underlying error's."""


class DamagedCheckpointError(ValueError):
    """Every checkpoint of a run directory is damaged: nothing to resume from."""


class _TensorBoard(KVWriter):
    """The numbers SB3's logger dumps, as TensorBoard scalars tagged with their keys.

    Args:
        folder: the event files' folder.
        purge_step: where a resumed run continues: TensorBoard drops the points of this step and after that are
            already in ``folder`` (a killed run's, written after its checkpoint); None: a new run.
    """

    def __init__(self, folder: Path, purge_step: int | None) -> None:
        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "tensorboard" not in excluded and isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _RunLogger(Logger):
    """SB3's logger of a run: TensorBoard scalars in ``folder`` against agent steps (what SAC records: its losses,
    entropy coefficient and episode returns, and the run's metrics rows, :meth:`RLHFTrainer.run`); it raises
    :class:`NonFiniteError` when SAC records a non-finite loss (SAC and DiscreteSAC record their losses' means after
    each ``train`` call). ``purge_step``: as :class:`_TensorBoard`'s."""

    def __init__(self, trainer: RLHFTrainer, folder: Path, purge_step: int | None) -> None:
        super().__init__(folder=str(folder), output_formats=[_TensorBoard(folder, purge_step)])
        self._trainer = trainer

    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        if key.startswith("train/") and key.endswith("loss") and not math.isfinite(float(value)):
            self._trainer._non_finite(f"SAC {key.removeprefix('train/')}", float(value))
        super().record(key, value, exclude)

    def log_row(self, row: Mapping[str, float], agent_steps: int) -> None:
        """Write a metrics row (but ``iteration``) and what SAC recorded since the last write, at ``agent_steps``."""
        for key, value in row.items():
            if key != "iteration":
                self.record(key, value)
        self.dump(step=agent_steps)


def check_writable(run_dir: str | os.PathLike[str]) -> None:
    """Check that checkpoints can be written in ``run_dir`` (creating ``checkpoints/`` and a probe file in it).

    Raises:
        CheckpointWriteError: naming the directory and the reason (e.g. permission denied, read-only file system).
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    probe = root / f".probe-{os.getpid()}"
    try:
        root.mkdir(exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise _write_error(f"run directory {run_dir} is not writable ({err.strerror or err})", err) from err


def _write_error(message: str, err: OSError) -> CheckpointWriteError:
    """A :class:`CheckpointWriteError` with ``message`` and ``err``'s errno."""
    error = CheckpointWriteError(message)
    error.errno = getattr(err, "errno", None)
    return error


@dataclass
class _Progress:
    """The counters a checkpoint carries besides the objects."""

    queried: int = 0
    reward_updates: int = 0
    rows: int = 0
    reward_loss: float = math.nan
    exploration_norm: float = math.nan
    wall_time: float = 0.0
    row_steps: int = 0
    row_wall_time: float = 0.0


class RLHFTrainer:
    """A deep RLHF run in ``run_dir`` (module docstring): build with a config, or :meth:`resume` a killed run.

    The components default to those the config describes; pass others in to replace them.

    Args:
        config: the run's config.
        run_dir: an existing directory; ``metrics.csv`` must not exist in it yet (write ``config.yaml`` first, e.g.
            with :func:`sobirl.experiments.write_config`).
        rule: the reward net's update rule; None: ``config.update_rule()``.
        labeller: labels the queried pairs; None: the synthetic Bradley-Terry labeller of ``label_temperature``
            and ``label_noise``. The held-out accuracy is always judged by the true returns.
        env_factory: ``env_factory(config, evaluation=...)`` builds the training and evaluation environments;
            :func:`make_env` by default.
    """

    def __init__(
        self,
        config: RLHFConfig,
        run_dir: str | os.PathLike[str],
        *,
        rule: UpdateRule | None = None,
        labeller: PreferenceGatherer | None = None,
        env_factory: Callable[..., gym.Env] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        check_device(config.device)
        env_factory = make_env if env_factory is None else env_factory
        self.env = env_factory(config)
        self.eval_env = env_factory(config, evaluation=True)
        self.schedule = config.schedule_for()
        self.rule = config.update_rule() if rule is None else rule
        if self.rule.needs_critic and config.algo != "sac-true-reward" and self.frame_stack is not None:
            raise ValueError(
                f"the successor-features estimator needs 1-D observations, and {config.env!r} gives frames; set "
                "estimator: one-step (or monte-carlo) for Atari games"
            )
        fragments, labels, batches = np.random.SeedSequence(config.seed).spawn(3)
        self.fragment_rng = np.random.default_rng(fragments)
        self.batch_rng = np.random.default_rng(batches)
        self.truth = SyntheticLabeller(temperature=config.label_temperature, noise=config.label_noise)
        """The held-out accuracy's judge: the true returns' label probabilities (no draws)."""
        self.labeller = (
            SyntheticLabeller(
                temperature=config.label_temperature, noise=config.label_noise, generator=np.random.default_rng(labels)
            )
            if labeller is None
            else labeller
        )
        self.dataset = PreferenceDataset(config.dataset_capacity, frame_stack=self.frame_stack)
        self.recorder = EpisodeRecorder(1, max_steps=config.recorder_steps, frame_stack=self.frame_stack)
        self.state = _Progress()
        self.reward_net: RewardNet | ActionRewardNet | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.critic: SuccessorFeatures | None = None
        sac_kwargs = self._sac_kwargs()
        policy = "CnnPolicy" if self.frame_stack is not None else "MlpPolicy"
        algorithm = follower_class(self.env.action_space)  # SAC or DiscreteSAC
        if config.algo == "sac-true-reward":
            if self.frame_stack is not None:
                sac_kwargs.update(
                    replay_buffer_class=FrameStackReplayBuffer, replay_buffer_kwargs={"n_stack": self.frame_stack}
                )
            self.model = algorithm(policy, self.env, seed=config.seed, device=config.device, **sac_kwargs)
        else:
            build = action_reward_net if self.discrete else RewardNet.from_spaces
            # the Nature CNN has no hidden widths to set
            net_kwargs: dict[str, Any] = {} if self.frame_stack is not None else {"hidden": config.reward_hidden}
            if self.discrete:
                net_kwargs["state_only"] = config.reward_state_only
            self.reward_net = build(
                self.env.observation_space,
                self.env.action_space,
                normalize_output=config.reward_normalize,
                seed=config.seed,
                **net_kwargs,
            )
            self.model = make_sac(
                self.env,
                self.reward_net,
                seed=config.seed,
                device=config.device,
                clip=config.clip,
                policy=policy,
                frame_stack=self.frame_stack,
                **sac_kwargs,
            )
            self.reward_net.to(self.model.device)
            self.optimizer = torch.optim.AdamW(
                self.reward_net.parameters(), lr=config.reward_lr, weight_decay=config.reward_weight_decay
            )
            if self.rule.needs_critic:
                self.critic = SuccessorFeatures(
                    self.reward_net, gamma=config.sac_gamma, config=config.critic_config(), seed=config.seed
                ).to(self.model.device)
        self._fresh = True  # the first learn() call resets the environment

    def _sac_kwargs(self) -> dict[str, Any]:
        c = self.config
        extra = {} if c.sac_target_entropy_scale is None else {"target_entropy_scale": c.sac_target_entropy_scale}
        if c.sac_ent_coef is not None:
            extra["ent_coef"] = c.sac_ent_coef
        return dict(
            **extra,
            learning_starts=c.sac_learning_starts,
            buffer_size=c.sac_buffer_size,
            batch_size=c.sac_batch_size,
            learning_rate=c.sac_learning_rate,
            gamma=c.sac_gamma,
            train_freq=c.sac_train_freq,
            tau=c.sac_tau,
            target_update_interval=c.sac_target_update_interval,
            policy_kwargs=dict(net_arch=list(c.sac_net_arch), share_features_extractor=c.sac_share_features_extractor),
            **c.sac_kwargs,  # validated: none of the keys above
        )

    @property
    def discrete(self) -> bool:
        """Whether the actions are Discrete (DiscreteSAC, a per-action reward net, the exact baseline)."""
        return isinstance(self.env.action_space, spaces.Discrete)

    @property
    def frame_stack(self) -> int | None:
        """Frames per observation of an Atari game (``CnnPolicy``, the CNN reward net, the frame-stack replay
        buffer, preference dataset and episode recorder); None for 1-D observations."""
        return self.config.frame_stack if len(self.env.observation_space.shape) == 3 else None

    @property
    def steps(self) -> int:
        """Agent steps so far."""
        return int(self.model.num_timesteps)

    # ---- the loop -------------------------------------------------------------------------------------------

    def run(self, on_steps: Callable[[int], None] | None = None) -> list[dict[str, float]]:
        """Train to ``total_steps``; return the metrics rows logged by this call.

        Args:
            on_steps: called with the agent steps of every finished chunk (e.g. a progress bar's ``update``).

        Raises:
            CheckpointWriteError: the run directory is not writable (checked before any step), or a checkpoint could
                not be written; the previous checkpoint is kept intact.
            NonFiniteError: a reward output, the preference loss, the exploration term or a SAC loss became NaN or
                infinite; no checkpoint is written after it.
        """
        c = self.config
        check_writable(self.run_dir)
        logged: list[dict[str, float]] = []
        callback = RecordingCallback(self.recorder)
        start = time.perf_counter() - self.state.wall_time
        purge = self.steps + 1 if self.steps else None  # resumed: TensorBoard drops the killed run's later points
        tensorboard = _RunLogger(self, self.run_dir / TENSORBOARD_DIR, purge_step=purge)
        self.model.set_logger(tensorboard)
        with self._open_metrics() as logger, contextlib.closing(tensorboard):
            while self.steps < c.total_steps:
                target = min(self._next(c.reward_update_interval), self._next(c.eval_interval), c.total_steps)
                target = min(target, self._next(c.checkpoint_interval))
                before = self.steps
                self.model.learn(target - before, callback=callback, reset_num_timesteps=self._fresh)
                self._fresh = False
                if on_steps is not None:
                    on_steps(self.steps - before)
                updates = self.reward_net is not None and self.steps < c.total_steps  # not at the end: no policy learns
                if updates and self.steps % c.reward_update_interval == 0:  # from the labels of an update there
                    self._reward_update()
                self.state.wall_time = time.perf_counter() - start
                if self.steps % c.eval_interval == 0 or self.steps == c.total_steps:
                    row = self._evaluate()
                    logger.log(row)
                    tensorboard.log_row(row, self.steps)
                    logged.append(row)
                    self.state.rows += 1
                if self.steps % c.checkpoint_interval == 0 or self.steps == c.total_steps:
                    self.save_checkpoint()
        return logged

    def _next(self, interval: int) -> int:
        """The first multiple of ``interval`` after the current step."""
        return (self.steps // interval + 1) * interval

    def _reward_update(self) -> None:
        """Query the schedule's new pairs, then train the reward net over the dataset (module docstring)."""
        assert self.reward_net is not None and self.optimizer is not None
        c, steps = self.config, self.steps
        new = self.schedule.pairs_to_query(steps, self.state.queried)
        eligible = any(len(t) >= c.fragment_length for t in self.recorder.trajectories)
        if new and eligible:
            pairs = sample_fragment_pairs(self.recorder.trajectories, new, c.fragment_length, self.fragment_rng)
            self.dataset.push(*self.labeller.gather(pairs))  # the pairs labelled now (a person may answer later)
            self.state.queried += new
        if not len(self.dataset):
            return  # no finished episode long enough yet
        epochs = c.initial_reward_epochs if self.state.reward_updates == 0 else c.reward_epochs
        batch = min(c.reward_batch_size, len(self.dataset))
        param = next(self.reward_net.parameters())
        explores = self.rule.explores(steps)
        follower = self._follower() if explores else None
        self.rule.begin_update()
        losses, second_terms = [], []
        self.reward_net.train()
        for _ in range(epochs * math.ceil(len(self.dataset) / batch)):
            pairs = self._batch(self.dataset.sample(batch, self.batch_rng), param)
            visits = None
            if explores:
                on_policy = pairs
                if c.exploration_pairs is not None:
                    newest = min(c.exploration_pairs, len(self.dataset))
                    on_policy = self._batch(
                        self.dataset.sample(min(batch, newest), self.batch_rng, newest=newest), param
                    )
                visits = Visits.draw(on_policy, follower, self.rule.action_samples)

            def surrogate(pairs=pairs, visits=visits):  # this batch
                return self.rule.surrogate(
                    self.reward_net,
                    pairs,
                    agent_steps=steps,
                    follower=follower,
                    visits=visits,
                    update=self.state.reward_updates,
                )

            out = self.rule.step(self.reward_net, self.optimizer, surrogate)
            if not math.isfinite(out.cross_entropy):  # the returns first: a NaN return makes a NaN loss
                returns_finite = bool(torch.isfinite(out.logits).all())
                self._non_finite("preference loss" if returns_finite else "reward output", out.cross_entropy)
            if not math.isfinite(out.second_term):
                self._non_finite("exploration term", out.second_term)
            losses.append(out.cross_entropy)
            second_terms.append(abs(out.second_term))
        self.state.reward_updates += 1
        self.state.reward_loss = float(np.mean(losses))
        self.state.exploration_norm = float(np.mean(second_terms))

    def _non_finite(self, quantity: str, value: float) -> None:
        """Stop the run: raise :class:`NonFiniteError` naming ``quantity`` and the current agent step."""
        raise NonFiniteError(quantity, value, self.steps, latest_checkpoint(self.run_dir))

    def _follower(self) -> Follower:
        """What the rule knows of SAC now, the successor-feature critic trained first where the rule needs it."""
        c = self.config
        sampler = None if self.discrete else actor_sampler(self.model)
        probabilities = actor_probabilities(self.model) if self.discrete else None
        if self.critic is not None:
            self._train_critic(sampler, probabilities)
        return Follower(
            tau=sac_temperature(self.model),
            gamma=c.sac_gamma,
            sample_actions=sampler,
            probabilities=probabilities,
            critic=self.critic,
            reward_clip=c.clip,
        )

    def _train_critic(self, sampler: Callable | None, probabilities: Callable | None) -> None:
        """``critic_steps`` TD steps on SAC's replay buffer with SAC's current next actions."""
        assert self.critic is not None and self.reward_net is not None
        cfg = self.critic.config
        buffer = self.model.replay_buffer
        self.reward_net.eval()  # the features use the statistics the follower's rewards use, and do not move them
        for _ in range(cfg.critic_steps):
            batch = buffer.sample(cfg.critic_batch_size, env=self.model.get_vec_normalize_env())
            with torch.no_grad():
                nxt = probabilities(batch.next_observations) if sampler is None else sampler(batch.next_observations)
            self.critic.td_step(
                self.reward_net,
                batch.observations,
                batch.actions,
                batch.next_observations,
                batch.dones,
                nxt,
                clip=self.config.clip,
            )
        self.reward_net.train()

    @staticmethod
    def _batch(sample: tuple[FragmentPairs, np.ndarray], like: torch.Tensor) -> PairBatch:
        """A dataset sample as tensors of ``like``'s dtype and device: observations, actions, labels."""
        pairs, labels = sample
        obs, act, y = (_like(a, like) for a in (pairs.observations, pairs.actions, labels))
        return obs, act, y

    def _evaluate(self) -> dict[str, float]:
        """One metrics row (:data:`METRIC_COLUMNS`) at the current step."""
        c, s = self.config, self.state
        k = s.rows + 1
        episodes = self.recorder.trajectories
        recent = episodes[-c.return_window :]
        train_return = float(np.mean([t.true_return() for t in recent])) if recent else math.nan
        steps_per_s = (self.steps - s.row_steps) / max(s.wall_time - s.row_wall_time, 1e-9)
        s.row_steps, s.row_wall_time = self.steps, s.wall_time
        accuracy, accuracy_pairs = self._held_out_accuracy(np.random.default_rng([c.seed, _HELD_OUT_STREAM, k]))
        return {
            "iteration": k,
            "agent_steps": self.steps,
            "train_return": train_return,
            "eval_return": self._eval_return(np.random.SeedSequence([c.seed, _EVAL_STREAM, k])),
            "preference_accuracy": accuracy,
            "accuracy_pairs": accuracy_pairs,
            "reward_loss": s.reward_loss,
            "exploration_norm": s.exploration_norm,
            "alpha": sac_temperature(self.model),
            "pairs": s.queried,
            "steps_per_s": steps_per_s,
            "wall_time": s.wall_time,
        }

    def _eval_return(self, seeds: np.random.SeedSequence) -> float:
        """The policy's mean true return over ``eval_episodes`` episodes of the evaluation env (deterministic, or
        sampled under torch's generators forked and seeded from ``seeds``)."""
        c = self.config
        returns = []
        children = seeds.spawn(c.eval_episodes)
        cuda = [torch.cuda.current_device()] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda, enabled=not c.eval_deterministic):
            if not c.eval_deterministic:
                torch.manual_seed(int(seeds.generate_state(1)[0]))
            for child in children:
                obs, _ = self.eval_env.reset(seed=int(child.generate_state(1)[0]))
                total, done = 0.0, False
                while not done:
                    action, _ = self.model.predict(obs, deterministic=c.eval_deterministic)
                    obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
        return float(np.mean(returns))

    def _held_out_accuracy(self, rng: np.random.Generator) -> tuple[float, float]:
        """The reward net's agreement with the labeller's preferred fragment on fresh pairs cut from the latest
        ``held_out_episodes`` training episodes, and the number of those pairs the labeller does not tie, which the
        accuracy is taken over (both NaN without a reward net or a long enough episode; NaN and 0 when every pair
        ties)."""
        c = self.config
        recent = [t for t in self.recorder.trajectories[-c.held_out_episodes :] if len(t) >= c.fragment_length]
        if self.reward_net is None or not recent:
            return math.nan, math.nan
        pairs = sample_fragment_pairs(recent, c.held_out_pairs, c.fragment_length, rng)
        param = next(self.reward_net.parameters())
        self.reward_net.eval()  # frozen output statistics, so the chunks see the same net
        chunks = []
        with torch.no_grad():  # reward_batch_size pairs at a time: a float copy of every held-out frame is GBs
            for start in range(0, len(pairs), c.reward_batch_size):
                rows = slice(start, start + c.reward_batch_size)
                obs, act = _like(pairs.observations[rows], param), _like(pairs.actions[rows], param)
                chunks.append(preference_logits(self.reward_net, obs, act))
        logits = torch.cat(chunks)
        probabilities = torch.as_tensor(self.truth.probabilities(pairs), device=logits.device)
        return preference_accuracy(logits, probabilities), int((probabilities != 0.5).sum())

    # ---- run directory, checkpoints, resume -----------------------------------------------------------------

    def _open_metrics(self) -> MetricsLogger:
        """A logger appending to ``metrics.csv`` after the ``state.rows`` rows of the last checkpoint (TensorBoard: the
        run's :class:`_RunLogger`)."""
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return MetricsLogger(self.run_dir, METRIC_COLUMNS, tensorboard=False)
        kept = read_metrics(self.run_dir)[: self.state.rows]
        path.unlink()
        # rows of an older version lack its newer columns
        logger = MetricsLogger(self.run_dir, METRIC_COLUMNS, tensorboard=False)
        for row in kept:
            logger.log(row)
        return logger

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-<N>`` atomically and keep the newest ``keep_checkpoints`` checkpoints.

        The files are written under ``.tmp-step-<N>``, flushed to disk, listed with their sizes and SHA-256 in
        ``manifest.json``, then the directory is renamed: a kill or a power cut leaves either no ``step-<N>`` or a
        complete one, and :meth:`resume` recognises one damaged later (a file changed or cut short).

        Raises:
            CheckpointWriteError: a write failed (no space, no permission, an I/O error); the partial files are
                removed and the previous checkpoints are untouched.
        """
        root = self.run_dir / CHECKPOINT_DIR
        final = root / f"step-{self.steps}"
        tmp = root / f".tmp-step-{self.steps}"
        try:
            root.mkdir(exist_ok=True)
            for stale in root.glob(".tmp-step-*"):  # a killed run's partial checkpoint
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
            self._write_checkpoint_files(tmp)
            manifest = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
            (tmp / _MANIFEST).write_text(json.dumps({"files": manifest}, indent=1))
            for path in tmp.iterdir():
                _fsync(path)
            _fsync(tmp)
            if final.exists():  # a damaged checkpoint a resume fell back from: this one replaces it
                old = root / f".tmp-old-step-{self.steps}"
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)  # atomic: a checkpoint directory exists only once complete
            _fsync(root)
            save_policy(self.model, self.run_dir / POLICY_FILE)  # the artifacts users load, each replaced atomically
            if self.reward_net is not None:
                save_reward_net(self.reward_net, self.run_dir / REWARD_NET_FILE)
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as a RuntimeError
            shutil.rmtree(tmp, ignore_errors=True)
            previous = latest_checkpoint(self.run_dir)
            kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
            reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
            raise _write_error(
                f"could not write checkpoint {final} ({reason}); the run stopped at agent step {self.steps} and "
                f"{kept}; free space or fix permissions, then continue with: sobirl rlhf --resume {self.run_dir}",
                err if isinstance(err, OSError) else OSError(),
            ) from err
        for old in checkpoints(self.run_dir)[self.config.keep_checkpoints :]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _write_checkpoint_files(self, directory: Path) -> None:
        """The checkpoint's files (module docstring) in ``directory``."""
        # the reward net pickles inside the replay buffer kwargs; it is saved (once) in state.pt instead
        self.model.save(directory / _SAC, exclude=["replay_buffer_kwargs"])
        self.model.save_replay_buffer(directory / _REPLAY)
        env = _pickled_env(self.model.get_env())
        if env is not None:
            (directory / _ENV).write_bytes(env)
        self.dataset.save(directory / _DATASET)
        state = {
            # one pickle keeps each optimiser's references to its parameters (the reward net's, the critic's)
            "reward_net": self.reward_net,
            "optimizer": self.optimizer,
            "rule": self.rule,
            "critic": self.critic,
            "recorder": self.recorder,
            "progress": dataclasses.asdict(self.state),
            "labeller": self.labeller.state_dict(),
            "generators": {
                "fragments": self.fragment_rng.bit_generator.state,
                "batches": self.batch_rng.bit_generator.state,
                "action_space": self.model.action_space.np_random.bit_generator.state,  # SAC's warm-up actions
            },
            "global_rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),  # noqa: NPY002  (SB3's buffer sampling)
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }
        torch.save(state, directory / _STATE)

    @classmethod
    def resume(cls, run_dir: str | os.PathLike[str], *, labeller: PreferenceGatherer | None = None) -> RLHFTrainer:
        """The run in ``run_dir`` at its newest intact checkpoint, ready to :meth:`run` on; ``labeller`` as the
        constructor's (the run's own kind: its checkpointed state is loaded into it).

        A checkpoint is damaged when a file of its ``manifest.json`` is missing or differs from its recorded size or
        SHA-256, or when loading it fails; each damaged one is skipped with a one-line warning naming it (logger
        ``sobirl.rlhf.trainer``), and the next older one is tried. The run's next checkpoint at that step replaces
        the damaged one.

        Raises:
            FileNotFoundError: ``run_dir`` has no ``config.yaml`` or no complete checkpoint.
            DamagedCheckpointError: every checkpoint is damaged (each named with its problem).
        """
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} is not an rlhf run directory (no {CONFIG_FILE})")
        found = checkpoints(run_dir)
        if not found:
            raise FileNotFoundError(f"{run_dir} has no complete checkpoint in {CHECKPOINT_DIR}/ to resume from")
        trainer = cls(RLHFConfig.from_yaml(run_dir / CONFIG_FILE), run_dir, labeller=labeller)
        problems = []
        for checkpoint in found:
            problem = checkpoint_problem(checkpoint)
            if problem is None:
                try:
                    trainer._load(checkpoint)
                    return trainer
                except Exception as err:  # any failure to load means the files are not what save_checkpoint wrote
                    problem = " ".join(f"{type(err).__name__}: {err}".split())
            problems.append(f"{checkpoint.name} ({problem})")
            _LOG.warning("checkpoint %s is damaged (%s); trying an older one", checkpoint, problem)
        raise DamagedCheckpointError(
            f"{run_dir} has no intact checkpoint to resume from: {'; '.join(problems)}; move {CHECKPOINT_DIR}/ away "
            "to start the run afresh"
        )

    def _load(self, checkpoint: Path) -> None:
        """Load ``checkpoint`` into this freshly built trainer; every file is read before anything is replaced, so a
        failure leaves the trainer as it was."""
        state = torch.load(checkpoint / _STATE, map_location=self.model.device, weights_only=False)
        net = state["reward_net"]
        # what the model was saved without (save_checkpoint), for the buffer that load builds before it is replaced
        buffer_kwargs: dict[str, Any] = {} if net is None else {"reward_fn": net, "clip": self.config.clip}
        if self.frame_stack is not None:
            buffer_kwargs["n_stack"] = self.frame_stack
        algorithm = follower_class(self.env.action_space)
        env_file = checkpoint / _ENV
        # the training env as it was, its episode running (absent where the env cannot be pickled: a new episode)
        running = cloudpickle.loads(env_file.read_bytes()) if env_file.exists() else None
        model = algorithm.load(
            checkpoint / _SAC,
            env=self.env if running is None else running,
            device=self.config.device,
            force_reset=running is None,
            replay_buffer_kwargs=buffer_kwargs,
        )
        model.load_replay_buffer(checkpoint / _REPLAY)
        dataset = PreferenceDataset.load(checkpoint / _DATASET)
        progress = _Progress(**state["progress"])
        if net is not None:
            model.replay_buffer.reward_fn = net  # the pickled buffer carries a copy
        self.model = model
        self.reward_net, self.optimizer = net, state["optimizer"]
        self.rule, self.critic = state["rule"], state["critic"]
        self.recorder = state["recorder"]
        if running is None:
            self.recorder.drop_running()  # the unfinished episode cannot continue (module docstring)
        else:
            self.env.close()
            self.env = running.envs[0]
        self.dataset = dataset
        self.state = progress
        self.labeller.load_state_dict(state["labeller"])
        for rng, key in (
            (self.fragment_rng, "fragments"),
            (self.batch_rng, "batches"),
            (self.model.action_space.np_random, "action_space"),  # reseeded by SAC.load
        ):
            rng.bit_generator.state = state["generators"][key]
        # restored after SAC.load, which reseeds the global generators
        rngs = state["global_rng"]
        random.setstate(rngs["python"])
        np.random.set_state(rngs["numpy"])  # noqa: NPY002
        # the generator states are CPU byte tensors, whatever device torch.load mapped the checkpoint to
        torch.set_rng_state(rngs["torch"].cpu())
        if rngs["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rngs["cuda"]])
        if running is None:
            self.model.get_env().seed(self.config.seed + self.steps)  # the new episode's start, reproducibly
        self._fresh = False


def _pickled_env(env: VecEnv) -> bytes | None:
    """The training env with its running episode, pickled; None where its state does not pickle: a resumed run then
    starts a new episode. gymnasium's ``EzPickle`` environments (MuJoCo's, Atari's) pickle their constructor's
    arguments only, and would come back as new environments behind wrappers that believe the episode goes on."""
    envs = getattr(env.unwrapped, "envs", None)  # a DummyVecEnv's; others run their envs elsewhere
    if envs is None or any(isinstance(e.unwrapped, EzPickle) for e in envs):
        return None
    try:
        return cloudpickle.dumps(env)
    except Exception:  # each environment fails in its own way (TypeError, PicklingError, RuntimeError)
        return None


def _like(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``array`` as a tensor of ``like``'s dtype and device, converted on the device (uint8 frames travel at a quarter
    of their float size)."""
    return torch.as_tensor(array, device=like.device).to(like.dtype)


def checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoints of ``run_dir`` (``checkpoints/step-<N>`` directories holding ``state.pt``), newest
    (most agent steps) first; complete does not mean intact (:func:`checkpoint_problem`)."""
    found = [
        p
        for p in (Path(run_dir) / CHECKPOINT_DIR).glob("step-*")
        if p.is_dir() and p.name.removeprefix("step-").isdigit() and (p / _STATE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step-")), reverse=True)


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint of ``run_dir`` with the most agent steps, or None."""
    found = checkpoints(run_dir)
    return found[0] if found else None


def checkpoint_problem(checkpoint: str | os.PathLike[str]) -> str | None:
    """What is wrong with a checkpoint's files by its ``manifest.json`` (a file missing, of another size or
    SHA-256; the manifest unreadable), on one line; None when they match. A checkpoint written before manifests
    existed has none and passes (loading it is the only check)."""
    checkpoint = Path(checkpoint)
    path = checkpoint / _MANIFEST
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        for name, expected in files.items():
            file = checkpoint / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != expected["size"]:
                return f"{name} has {file.stat().st_size} bytes, {expected['size']} written"
            if _sha256(file) != expected["sha256"]:
                return f"{name} differs from the file written (SHA-256)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{_MANIFEST} is unreadable ({type(err).__name__}: {err})"
    return None


def _sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or a directory (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
