"""The configuration of a deep RLHF run: :class:`RLHFConfig`, every setting a run depends on, validated at
construction (each error names the field and the fix) and round-tripping through flat YAML, where the update rule's
and the successor-feature critic's settings sit beside the fields and are routed to their own configs
(:meth:`RLHFConfig.update_rule`, :meth:`RLHFConfig.critic_config`).

The pass-through settings are checked here too, so a bad one fails before a run directory exists: ``env_kwargs``
(``gymnasium.make``'s), ``wrappers`` (import paths, :func:`resolve_wrapper`) and ``sac_kwargs`` (SAC's
constructor's), none of them setting what a field already sets (:meth:`RLHFConfig.sac_arguments`: SAC's arguments
from the config). :func:`check_device` checks the device against the machine, which the config alone cannot.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
import yaml

from sobirl.envs.atari import is_atari
from sobirl.rlhf.rules import RULES, UpdateRule, rule_keys
from sobirl.rlhf.schedule import SCHEDULES, QuerySchedule
from sobirl.rlhf.successor import CriticConfig
from sobirl.validation import check_choice, check_int, check_range

ALGOS = (*RULES, "sac-true-reward")
"""The update rules of :data:`sobirl.rlhf.rules.RULES`, and ``sac-true-reward``: SAC on the environment's reward (no
reward net, no preferences), the reference."""

LABELLERS = ("synthetic", "web")
"""Who labels the queried pairs (:attr:`RLHFConfig.labeller`)."""
DEVICES = ("auto", "cpu", "cuda")
"""Devices of SAC and the reward net."""

_CONFIG_EXTRAS = ("experiment", "versions", "command_line")
"""Keys of a run's ``config.yaml`` that are not :class:`RLHFConfig` fields, so that file works as ``--config``."""
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
        labeller: who labels the queried pairs, one of :data:`LABELLERS`: ``synthetic`` (Bradley-Terry from the true
            returns) or ``web`` (people on the labelling page the run serves, :mod:`sobirl.rlhf.human`; 1-D
            observations, rendered as ``rgb_array``).
        labeller_async: ``web``: training goes on at a reward update with the labels answered so far; false: it
            waits for the update's pairs to be answered.
        label_host: where ``web`` serves the page (127.0.0.1: this machine only; another interface needs
            ``label_token``, generated and printed when not given).
        label_port: the page's port; 0: any free port.
        label_token: the access token of the page; None: none on 127.0.0.1, a generated one elsewhere.
        frame_steps: ``web``: rendered steps of the newest training episodes kept to cut clips from.
        frame_width: ``web``: rendered images are downscaled to this many pixels wide when taken.
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
    labeller: str = "synthetic"
    labeller_async: bool = False
    label_host: str = "127.0.0.1"
    label_port: int = 8000
    label_token: str | None = None
    frame_steps: int = 2000
    frame_width: int = 320
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
        check_choice("labeller", self.labeller, LABELLERS)
        if check_int("label_port", self.label_port) > 65535:
            raise ValueError(f"label_port must be an integer in [0, 65535], got {self.label_port}")
        check_int("frame_steps", self.frame_steps, low=1)
        check_int("frame_width", self.frame_width, low=8)
        for name in ("label_host", *(("label_token",) if self.label_token is not None else ())):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.labeller == "web" and (is_atari(self.env) or self.algo == "sac-true-reward"):
            raise ValueError(
                f"labeller web needs a reward net and an environment that renders rgb_array images; {self.env} with "
                f"{self.algo} has {'no reward net' if self.algo == 'sac-true-reward' else 'Atari frames'}: use "
                "labeller: synthetic"
            )
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
            "labeller_async",
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

    def sac_arguments(self) -> dict[str, Any]:
        """SAC's (DiscreteSAC's) constructor arguments the config sets: the ``sac_*`` fields, then ``sac_kwargs``
        (the policy, env, seed, device and replay buffer are the trainer's)."""
        extra = {} if self.sac_target_entropy_scale is None else {"target_entropy_scale": self.sac_target_entropy_scale}
        if self.sac_ent_coef is not None:
            extra["ent_coef"] = self.sac_ent_coef
        return dict(
            **extra,
            learning_starts=self.sac_learning_starts,
            buffer_size=self.sac_buffer_size,
            batch_size=self.sac_batch_size,
            learning_rate=self.sac_learning_rate,
            gamma=self.sac_gamma,
            train_freq=self.sac_train_freq,
            tau=self.sac_tau,
            target_update_interval=self.sac_target_update_interval,
            policy_kwargs=dict(
                net_arch=list(self.sac_net_arch), share_features_extractor=self.sac_share_features_extractor
            ),
            **self.sac_kwargs,  # validated: none of the keys above
        )

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


def check_device(device: str) -> None:
    """Raise ``ValueError`` with the fix when ``device`` is ``cuda`` and torch sees no CUDA device."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' requested but torch sees no CUDA device; set device to auto or cpu "
            "(--device, or --set device=... in a sweep)"
        )
