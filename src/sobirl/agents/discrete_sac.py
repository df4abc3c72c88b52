r"""Soft actor-critic for ``Discrete`` action spaces (SAC-Discrete) as a Stable-Baselines3 off-policy algorithm.

With a finite action set the expectations over actions that continuous SAC estimates with one reparameterised
sample are exact sums over the ``|A|`` actions (Christodoulou, 2019, https://arxiv.org/abs/1910.07207). The actor
outputs ``|A|`` logits, ``pi = softmax(logits)`` and ``log pi = log_softmax(logits)``; each of the twin critics
outputs ``Q(s, .)`` for every action in one forward pass; ``alpha`` is the entropy temperature (``ent_coef``).

- critic target (target critics, no gradient):
  ``y = r + gamma (1 - done) sum_a pi(a|s') [min(Q1_targ(s', a), Q2_targ(s', a)) - alpha log pi(a|s')]``;
- critic loss, ``a`` the action in the batch: ``0.5 [MSE(Q1(s, a), y) + MSE(Q2(s, a), y)]``;
- actor loss, ``Q`` detached: ``mean_s sum_a pi(a|s) [alpha log pi(a|s) - min(Q1(s, a), Q2(s, a))]``;
- temperature loss (only when ``ent_coef`` is autotuned), ``H`` the exact entropy of ``pi(.|s)``, detached:
  ``mean_s [-log(alpha) (target_entropy - H(s))]``, so that ``alpha`` rises while the entropy is below its target.
  ``target_entropy="auto"`` is ``target_entropy_scale * log|A|`` (scale 0.89 by default: ``log|A|`` is the entropy
  of the uniform policy, the largest possible, which a target must stay below).

The three losses come from one forward pass of each network on the batch (a simultaneous update, as in Algorithm 1
of Haarnoja et al., 2018) and :func:`discrete_sac_losses` computes them from the networks' outputs, so they can be
checked on hand-built numbers. Target critics follow the critics by Polyak averaging with ``tau`` every
``target_update_interval`` gradient steps, or by an exact copy when ``tau == 1`` (``tau=1.0,
target_update_interval=8000`` is the periodic hard copy of a DQN-style Atari configuration).

With ``policy_kwargs=dict(share_features_extractor=True)`` the actor and the critics read one features extractor,
trained by the critic loss alone: the actor's head sees the features detached, as the encoders of SAC-AE and DrQ
(Yarats et al., 2019, 2021). The target copy then holds the extractor, the Q-heads and the actor's head, and the
critic target's next-state policy is that copy's, ``pi_targ(.|s') = softmax(actor_head_targ(features_targ(s')))``: a
gradient step runs the extractor forward on ``s'`` once and forward and backward on ``s`` once, what a DQN update
does (``benchmarks/discrete_sac_update.py`` measures both). Without sharing (the default, and the seed authors'
networks) the next-state policy is the current actor's.

- :class:`DiscreteSAC`: the algorithm (``learn``, ``predict``, ``save``/``load``, callbacks, logger as in SB3);
- :class:`DiscreteSACPolicy` (``"MlpPolicy"``), :class:`CnnPolicy` (``"CnnPolicy"``, ``NatureCNN`` features),
  :class:`MultiInputPolicy` (``"MultiInputPolicy"``, ``Dict`` observations), built from :class:`DiscreteActor`
  and :class:`DiscreteCritic`;
- :func:`discrete_sac_losses` and :class:`DiscreteSACLosses`: the losses above.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch import nn
from torch.nn.functional import log_softmax, mse_loss

SelfDiscreteSAC = TypeVar("SelfDiscreteSAC", bound="DiscreteSAC")

DEFAULT_TARGET_ENTROPY_SCALE = 0.89
"""``target_entropy="auto"`` is this fraction of ``log|A|``, the entropy of the uniform policy."""


# ----------------------------------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------------------------------


class DiscreteSACLosses(NamedTuple):
    """What :func:`discrete_sac_losses` returns; every tensor is on the device of its inputs."""

    critic_loss: th.Tensor
    """Scalar ``0.5 * sum_i MSE(Q_i(s, a), y)``; its gradient reaches only ``q1`` and ``q2``."""
    actor_loss: th.Tensor
    """Scalar ``mean_s sum_a pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]``; its gradient reaches only ``logits``."""
    ent_coef_loss: th.Tensor | None
    """Scalar ``mean_s [-log_alpha (target_entropy - H(s))]``, gradient to ``log_ent_coef`` only; None if not tuned."""
    target_q: th.Tensor
    """``(B, 1)`` critic target ``y``, without gradient."""
    entropy: th.Tensor
    """``(B,)`` exact entropy ``H(pi(.|s))`` of the actor at the batch's states, without gradient."""


class DiscreteSACOutputs(NamedTuple):
    """The networks' outputs on a batch that :func:`discrete_sac_losses` takes (see its arguments)."""

    q1: th.Tensor
    q2: th.Tensor
    q1_targ_next: th.Tensor
    q2_targ_next: th.Tensor
    logits: th.Tensor
    logits_next: th.Tensor


def discrete_sac_losses(
    q1: th.Tensor,
    q2: th.Tensor,
    q1_targ_next: th.Tensor,
    q2_targ_next: th.Tensor,
    logits: th.Tensor,
    logits_next: th.Tensor,
    actions: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    ent_coef: float | th.Tensor,
    gamma: float | th.Tensor,
    target_entropy: float | None = None,
    log_ent_coef: th.Tensor | None = None,
) -> DiscreteSACLosses:
    """The SAC-Discrete critic, actor and temperature losses from the networks' outputs on a batch of ``B`` states.

    Args:
        q1: ``(B, |A|)`` first critic's ``Q1(s, .)``, with gradient.
        q2: ``(B, |A|)`` second critic's ``Q2(s, .)``, with gradient.
        q1_targ_next: ``(B, |A|)`` first target critic at the next states, ``Q1_targ(s', .)``.
        q2_targ_next: ``(B, |A|)`` second target critic at the next states.
        logits: ``(B, |A|)`` actor logits at ``s``, with gradient.
        logits_next: ``(B, |A|)`` actor logits at ``s'`` (used without gradient).
        actions: ``(B,)`` or ``(B, 1)`` integer indices of the actions taken.
        rewards: ``(B,)`` or ``(B, 1)`` rewards.
        dones: ``(B,)`` or ``(B, 1)`` 1.0 where ``s'`` is terminal (no bootstrap), else 0.0.
        ent_coef: the temperature ``alpha >= 0`` used in the critic target and the actor loss (a float or a
            one-element tensor, treated as a constant).
        gamma: discount, a float or a ``(B, 1)`` tensor (n-step returns: ``gamma ** n`` per sample).
        target_entropy: the entropy the temperature aims at; required with ``log_ent_coef``.
        log_ent_coef: ``log(alpha)`` as a one-element tensor that requires grad, when ``alpha`` is autotuned; None:
            no temperature loss.

    Returns:
        :class:`DiscreteSACLosses`. The three losses have disjoint gradient paths (critics, actor,
        ``log_ent_coef``), so each can be backpropagated into its own optimiser.
    """
    if log_ent_coef is not None and target_entropy is None:
        raise ValueError("target_entropy must be given with log_ent_coef (the temperature loss needs it)")
    if isinstance(ent_coef, th.Tensor):
        ent_coef = ent_coef.detach()
    rewards = rewards.reshape(-1, 1)
    dones = dones.reshape(-1, 1)

    with th.no_grad():
        # soft state value of s' under the current actor, min over the twin target critics (clipped double Q)
        log_pi_next = log_softmax(logits_next, dim=-1)
        min_q_next = th.min(q1_targ_next, q2_targ_next)
        v_next = (log_pi_next.exp() * (min_q_next - ent_coef * log_pi_next)).sum(dim=-1, keepdim=True)
        target_q = rewards + gamma * (1.0 - dones) * v_next

    taken = actions.reshape(-1, 1).long()
    critic_loss = 0.5 * (mse_loss(q1.gather(1, taken), target_q) + mse_loss(q2.gather(1, taken), target_q))

    log_pi = log_softmax(logits, dim=-1)  # stable where softmax underflows: pi * log pi stays finite
    pi = log_pi.exp()
    min_q = th.min(q1, q2).detach()  # the actor follows the critics; it must not move them
    actor_loss = (pi * (ent_coef * log_pi - min_q)).sum(dim=-1).mean()

    entropy = -(pi * log_pi).sum(dim=-1).detach()
    ent_coef_loss = None
    if log_ent_coef is not None:
        assert target_entropy is not None  # checked above; for the type checker
        ent_coef_loss = -(log_ent_coef * (target_entropy - entropy)).mean()
    return DiscreteSACLosses(critic_loss, actor_loss, ent_coef_loss, target_q, entropy)


# ----------------------------------------------------------------------------------------------------------------------
# Networks and policies
# ----------------------------------------------------------------------------------------------------------------------


class DiscreteActor(BasePolicy):
    """Categorical actor: a features extractor, then an MLP to ``|A|`` logits.

    :param observation_space: observation space.
    :param action_space: the ``Discrete`` action space.
    :param net_arch: hidden layer sizes between the features and the logits (may be empty: a linear head).
    :param features_extractor: the actor's own features extractor.
    :param features_dim: its output size.
    :param activation_fn: activation after each hidden layer.
    :param normalize_images: divide image observations by 255.
    """

    action_space: spaces.Discrete

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.logits_net = nn.Sequential(*create_mlp(features_dim, int(action_space.n), net_arch, activation_fn))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            features_extractor=self.features_extractor,
            features_dim=self.features_dim,
            activation_fn=self.activation_fn,
        )
        return data

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        """The ``(B, |A|)`` logits of ``pi(.|obs)``."""
        return self.logits_net(self.extract_features(obs, self.features_extractor))

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters after the features extractor (all the actor trains when it shares the critic's)."""
        return list(self.logits_net.parameters())

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        logits = self(observation)
        if deterministic:
            return logits.argmax(dim=-1)
        return th.distributions.Categorical(logits=logits).sample()


class DiscreteCritic(BaseModel):
    """Twin soft Q-networks on one features extractor; each head outputs ``Q(s, .)`` for all ``|A|`` actions.

    As in SB3's ``ContinuousCritic``, the two heads share this critic's features extractor (the actor has its own).

    :param observation_space: observation space.
    :param action_space: the ``Discrete`` action space.
    :param net_arch: hidden layer sizes of each head (may be empty: linear heads).
    :param features_extractor: the critic's own features extractor.
    :param features_dim: its output size.
    :param activation_fn: activation after each hidden layer.
    :param normalize_images: divide image observations by 255.
    """

    action_space: spaces.Discrete
    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        n_actions = int(action_space.n)
        self.qf0 = nn.Sequential(*create_mlp(features_dim, n_actions, net_arch, activation_fn))
        self.qf1 = nn.Sequential(*create_mlp(features_dim, n_actions, net_arch, activation_fn))

    def forward(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """``(Q1(obs, .), Q2(obs, .))``, each ``(B, |A|)``."""
        return self.q_heads(self.extract_features(obs, self.features_extractor))

    def q_heads(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``(Q1, Q2)`` from this critic's features of the observations."""
        return self.qf0(features), self.qf1(features)


class DiscreteSACPolicy(BasePolicy):
    """Actor, twin critics and their target copies for :class:`DiscreteSAC` (registered as ``"MlpPolicy"``).

    By default the actor, the critics and the target critics each have their own features extractor: the critic
    loss never moves the actor's features and vice versa. With ``share_features_extractor=True`` the actor's head
    reads the critics' extractor, which only the critic loss trains, and :attr:`actor_target` (the target copy's actor
    head on the target critics' extractor) gives the next-state policy: see the module docstring.

    :param observation_space: observation space.
    :param action_space: the ``Discrete`` action space.
    :param lr_schedule: learning-rate schedule; ``lr_schedule(1)`` is the optimisers' initial rate.
    :param net_arch: hidden layers after the features extractor: a list for both actor and critics, or
        ``dict(pi=[...], qf=[...])``. None: ``[]`` after a ``NatureCNN`` (its 512-unit layer is the hidden layer),
        else ``[256, 256]``.
    :param activation_fn: activation after each hidden layer.
    :param features_extractor_class: features extractor for every network; None: the class's
        ``default_features_extractor`` (``FlattenExtractor`` here).
    :param features_extractor_kwargs: keyword arguments for it.
    :param normalize_images: divide image observations by 255.
    :param optimizer_class: optimiser of the actor and of the critics.
    :param optimizer_kwargs: its keyword arguments other than the learning rate.
    :param share_features_extractor: one features extractor for the actor and the critics, trained by the critic
        loss, and the target copy's policy in the critic target (one extractor forward on ``s'`` per update).
    """

    default_features_extractor: ClassVar[type[BaseFeaturesExtractor]] = FlattenExtractor
    actor: DiscreteActor
    critic: DiscreteCritic
    critic_target: DiscreteCritic
    actor_target: DiscreteActor | None
    action_space: spaces.Discrete

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = False,
    ) -> None:
        features_extractor_class = features_extractor_class or self.default_features_extractor
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        if net_arch is None:
            net_arch = [] if issubclass(features_extractor_class, NatureCNN) else [256, 256]
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.share_features_extractor = share_features_extractor
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        common = dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            activation_fn=activation_fn,
            normalize_images=normalize_images,
        )
        self.actor_kwargs = {**common, "net_arch": actor_arch}
        self.critic_kwargs = {**common, "net_arch": critic_arch}
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.critic = self.make_critic()
        self.critic.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_target = self.make_critic()
        self.critic_target.load_state_dict(self.critic.state_dict())
        # target networks only ever evaluate (no dropout, frozen batch-norm statistics)
        self.critic_target.set_training_mode(False)
        if self.share_features_extractor:
            self.actor = self.make_actor(self.critic.features_extractor)
            actor_parameters = self.actor.head_parameters()  # the critic loss alone trains the shared extractor
            self.actor_target = self.make_actor(self.critic_target.features_extractor)
            self.actor_target.load_state_dict(self.actor.state_dict())
            self.actor_target.set_training_mode(False)
        else:
            self.actor = self.make_actor()
            actor_parameters = list(self.actor.parameters())
            self.actor_target = None
        self.actor.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            actor_parameters, lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> DiscreteActor:
        """A new actor on ``features_extractor``, or on a new one of its own when None."""
        kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return DiscreteActor(**kwargs).to(self.device)

    def make_critic(self) -> DiscreteCritic:
        """A new pair of Q-heads with its own features extractor."""
        return DiscreteCritic(**self._update_features_extractor(self.critic_kwargs)).to(self.device)

    def batch_outputs(self, observations: PyTorchObs, next_observations: PyTorchObs) -> DiscreteSACOutputs:
        """Every network output of one gradient step on a batch; only ``q1``, ``q2`` and ``logits`` carry gradient.

        Shared extractor: the target copy's features of ``s'`` give both ``Q_targ(s', .)`` and the next-state policy,
        and the critics' features of ``s`` reach the actor's head detached. Otherwise each network reads its own.
        """
        if self.actor_target is not None:
            with th.no_grad():
                features_next = self.critic_target.extract_features(
                    next_observations, self.critic_target.features_extractor
                )
                q1_targ_next, q2_targ_next = self.critic_target.q_heads(features_next)
                logits_next = self.actor_target.logits_net(features_next)
            features = self.critic.extract_features(observations, self.critic.features_extractor)
            q1, q2 = self.critic.q_heads(features)
            logits = self.actor.logits_net(features.detach())
        else:
            with th.no_grad():
                logits_next = self.actor(next_observations)
                q1_targ_next, q2_targ_next = self.critic_target(next_observations)
            q1, q2 = self.critic(observations)
            logits = self.actor(observations)
        return DiscreteSACOutputs(q1, q2, q1_targ_next, q2_targ_next, logits, logits_next)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            lr_schedule=self._dummy_schedule,  # the optimisers' rates are restored with their state dicts
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            share_features_extractor=self.share_features_extractor,
        )
        return data

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """Actions for ``obs``: argmax of the logits if ``deterministic``, else a sample of ``pi(.|obs)``."""
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor._predict(observation, deterministic=deterministic)

    def set_training_mode(self, mode: bool) -> None:
        """Training (True) or evaluation (False) mode of the actor and the critics; the targets stay in eval."""
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


MlpPolicy = DiscreteSACPolicy


class CnnPolicy(DiscreteSACPolicy):
    """:class:`DiscreteSACPolicy` on images: ``NatureCNN`` features (``"CnnPolicy"``); same parameters."""

    default_features_extractor = NatureCNN


class MultiInputPolicy(DiscreteSACPolicy):
    """:class:`DiscreteSACPolicy` on ``Dict`` observations: ``CombinedExtractor`` (``"MultiInputPolicy"``)."""

    default_features_extractor = CombinedExtractor


# ----------------------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    """An integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """A finite real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _require(ok: bool, rule: str, value: Any) -> None:
    """Raise ``ValueError("<rule>, got <value>")`` unless ``ok``; ``rule`` starts with the field's name."""
    if not ok:
        raise ValueError(f"{rule}, got {value!r}")


def parse_ent_coef(ent_coef: str | float) -> tuple[bool, float]:
    """``(autotuned, initial or fixed alpha)`` from ``ent_coef``: ``"auto"`` (tuned from 1.0), ``"auto_0.1"``
    (tuned from 0.1) or a fixed float ``>= 0``.

    Raises:
        ValueError: anything else, or a non-positive initial value.
    """
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return True, 1.0
        if ent_coef.startswith("auto_"):
            try:
                init = float(ent_coef[len("auto_") :])
            except ValueError:
                init = float("nan")
            if not (math.isfinite(init) and init > 0):
                raise ValueError(f"ent_coef 'auto_<initial value>' needs a positive initial value, got {ent_coef!r}")
            return True, init
        raise ValueError(f"ent_coef must be 'auto', 'auto_<initial value>' or a float >= 0, got {ent_coef!r}")
    if not (_is_real(ent_coef) and ent_coef >= 0):
        raise ValueError(f"ent_coef must be 'auto', 'auto_<initial value>' or a float >= 0, got {ent_coef!r}")
    return False, float(ent_coef)


def _check_arguments(
    learning_rate: float | Schedule,
    buffer_size: int,
    learning_starts: int,
    batch_size: int,
    tau: float,
    gamma: float,
    gradient_steps: int,
    n_steps: int,
    ent_coef: str | float,
    target_update_interval: int,
    target_entropy: str | float,
    target_entropy_scale: float,
) -> None:
    """Fail fast, before any environment or network is built, with a message naming the bad field."""
    lr_ok = callable(learning_rate) or (_is_real(learning_rate) and learning_rate >= 0)
    _require(lr_ok, "learning_rate must be a float >= 0 or a schedule", learning_rate)
    _require(_is_int(buffer_size) and buffer_size >= 1, "buffer_size must be an int >= 1", buffer_size)
    _require(_is_int(learning_starts) and learning_starts >= 0, "learning_starts must be an int >= 0", learning_starts)
    _require(_is_int(batch_size) and batch_size >= 1, "batch_size must be an int >= 1", batch_size)
    _require(_is_real(tau) and 0 < tau <= 1, "tau must be in (0, 1]", tau)
    _require(_is_real(gamma) and 0 <= gamma <= 1, "gamma must be in [0, 1]", gamma)
    steps_ok = _is_int(gradient_steps) and gradient_steps >= -1
    _require(steps_ok, "gradient_steps must be an int >= -1 (-1: one per environment step)", gradient_steps)
    _require(_is_int(n_steps) and n_steps >= 1, "n_steps must be an int >= 1", n_steps)
    interval_ok = _is_int(target_update_interval) and target_update_interval >= 1
    _require(interval_ok, "target_update_interval must be an int >= 1", target_update_interval)
    scale_ok = _is_real(target_entropy_scale) and 0 < target_entropy_scale <= 1
    _require(scale_ok, "target_entropy_scale must be in (0, 1]", target_entropy_scale)
    entropy_ok = target_entropy == "auto" or _is_real(target_entropy)
    _require(entropy_ok, "target_entropy must be 'auto' or a finite float", target_entropy)
    parse_ent_coef(ent_coef)


# ----------------------------------------------------------------------------------------------------------------------
# Algorithm
# ----------------------------------------------------------------------------------------------------------------------


class DiscreteSAC(OffPolicyAlgorithm):
    """Soft actor-critic for ``Discrete`` action spaces (SAC-Discrete), with exact expectations over actions.

    See the module docstring for the losses. Everything else (rollouts, replay buffer, ``learn``, callbacks,
    logger, progress bar, ``save``/``load``) is SB3's ``OffPolicyAlgorithm``.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a :class:`DiscreteSACPolicy` class.
    :param env: a gymnasium environment, an SB3 ``VecEnv`` or a registered id, with a ``Discrete`` action space
        (None only when loading).
    :param learning_rate: learning rate of the actor, critic and temperature optimisers, or a schedule of the
        progress remaining (1 to 0).
    :param buffer_size: replay buffer capacity (transitions per environment).
    :param learning_starts: environment steps of uniformly random actions before the first gradient step.
    :param batch_size: minibatch size of each gradient step.
    :param tau: Polyak coefficient of the target critics, in ``(0, 1]``; ``1.0``: exact copy.
    :param gamma: discount factor.
    :param train_freq: train every ``train_freq`` steps, or ``(n, "step" | "episode")``.
    :param gradient_steps: gradient steps per training round; ``-1``: as many as environment steps in the round.
    :param replay_buffer_class: replay buffer class (a subclass of SB3's ``ReplayBuffer``); None: SB3's choice.
    :param replay_buffer_kwargs: extra keyword arguments for the replay buffer.
    :param optimize_memory_usage: SB3's memory-efficient replay buffer variant.
    :param n_steps: n-step returns through SB3's ``NStepReplayBuffer`` (only when ``replay_buffer_class`` is None).
    :param ent_coef: temperature ``alpha``: ``"auto"`` (autotuned from 1.0), ``"auto_<init>"`` (autotuned from
        ``init``) or a fixed float ``>= 0``.
    :param target_update_interval: update the target critics every this many gradient steps.
    :param target_entropy: entropy target of the autotuned temperature: ``"auto"``
        (``target_entropy_scale * log|A|``) or a float used as given.
    :param target_entropy_scale: fraction of ``log|A|`` for ``target_entropy="auto"``, in ``(0, 1]``.
    :param stats_window_size: episodes averaged in the rollout logs.
    :param tensorboard_log: TensorBoard log directory (None: none).
    :param policy_kwargs: extra keyword arguments of the policy (``net_arch``, ``activation_fn``, ...).
    :param verbose: 0 silent, 1 info, 2 debug.
    :param seed: seed of Python's, numpy's and torch's generators, the action space and the environment.
    :param device: torch device (``"auto"``: CUDA if available).
    :param _init_setup_model: build the networks now (False when loading).

    Raises:
        ValueError: a non-``Discrete`` action space, or an invalid argument (the message names it).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DiscreteSACPolicy
    actor: DiscreteActor
    critic: DiscreteCritic
    critic_target: DiscreteCritic

    def __init__(
        self,
        policy: str | type[DiscreteSACPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        target_entropy_scale: float = DEFAULT_TARGET_ENTROPY_SCALE,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        _check_arguments(
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            gradient_steps,
            n_steps,
            ent_coef,
            target_update_interval,
            target_entropy,
            target_entropy_scale,
        )
        if isinstance(env, str):
            env = maybe_make_env(env, verbose)  # what SB3 would build, so that its action space can be checked here
        if env is not None and not isinstance(env.action_space, spaces.Discrete):
            raise ValueError(
                f"DiscreteSAC needs a Discrete action space, got {env.action_space}; for Box actions use SAC"
            )

        super().__init__(
            policy,
            env,  # type: ignore[arg-type]  # None only when loading, as in SB3
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=None,  # additive noise has no meaning for categorical actions
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Discrete,),
            support_multi_env=True,
        )
        self.ent_coef = ent_coef
        self.target_update_interval = target_update_interval
        self.target_entropy = target_entropy
        self.target_entropy_scale = target_entropy_scale
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef_optimizer: th.optim.Adam | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self._create_aliases()
        # batch-norm running statistics are buffers, not parameters: the target copies them (as SB3's SAC)
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])

        if self.target_entropy == "auto":
            n_actions = int(self.action_space.n)  # type: ignore[attr-defined]
            self.target_entropy = float(self.target_entropy_scale * np.log(n_actions))
        else:
            self.target_entropy = float(self.target_entropy)

        autotuned, init = parse_ent_coef(self.ent_coef)
        if autotuned:
            # optimise log(alpha): alpha stays positive without constraints
            self.log_ent_coef = th.full((1,), math.log(init), device=self.device).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(init, device=self.device)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def _update_target_networks(self) -> None:
        """Target critics (and the target actor head, with a shared extractor) <- ``tau`` online + ``(1 - tau)``
        targets; an exact copy when ``tau == 1``."""
        actor_target = self.policy.actor_target
        if self.tau == 1.0:
            # exact: Polyak with tau = 1 computes 0 * target + param, which is NaN where the target is inf or NaN
            self.critic_target.load_state_dict(self.critic.state_dict())
            if actor_target is not None:
                actor_target.logits_net.load_state_dict(self.actor.logits_net.state_dict())
        else:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            if actor_target is not None:
                polyak_update(self.actor.head_parameters(), actor_target.head_parameters(), self.tau)

    def current_ent_coef(self) -> th.Tensor:
        """The temperature ``alpha`` now, a one-element tensor without gradient."""
        if self.log_ent_coef is not None:
            return self.log_ent_coef.detach().exp()
        return self.ent_coef_tensor

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` updates of the critics, the actor and (if autotuned) the temperature.

        :param gradient_steps: number of minibatches, each sampled from the replay buffer.
        :param batch_size: minibatch size.
        """
        assert self.replay_buffer is not None
        assert isinstance(self.target_entropy, float)
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        # logged values stay on the device until the end: one .item() per step would wait for the GPU each time
        logged: dict[str, list[th.Tensor]] = {"ent_coef": [], "actor_loss": [], "critic_loss": [], "entropy": []}
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            # n-step buffers give gamma ** (steps actually summed) per sample
            discounts = batch.discounts if batch.discounts is not None else self.gamma
            ent_coef = self.current_ent_coef()

            outputs = self.policy.batch_outputs(batch.observations, batch.next_observations)
            losses = discrete_sac_losses(
                *outputs,
                batch.actions,
                batch.rewards,
                batch.dones,
                ent_coef,
                discounts,
                self.target_entropy,
                self.log_ent_coef,
            )

            # the three graphs are disjoint (critics / actor / log_alpha), so each backward fills only its own grads
            if losses.ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                losses.ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
                logged.setdefault("ent_coef_loss", []).append(losses.ent_coef_loss.detach())

            self.critic.optimizer.zero_grad()
            losses.critic_loss.backward()
            self.critic.optimizer.step()

            self.actor.optimizer.zero_grad()
            losses.actor_loss.backward()
            self.actor.optimizer.step()

            self._n_updates += 1
            # counted over all gradient steps since the start, not within this call
            if self._n_updates % self.target_update_interval == 0:
                self._update_target_networks()

            logged["critic_loss"].append(losses.critic_loss.detach())
            logged["actor_loss"].append(losses.actor_loss.detach())
            logged["ent_coef"].append(ent_coef.reshape(()))
            logged["entropy"].append(losses.entropy.mean())

        if gradient_steps == 0:
            return  # nothing to average
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        means = th.stack([th.stack(values).float().mean() for values in logged.values()]).tolist()  # one transfer
        for key, mean in zip(logged, means, strict=True):
            self.logger.record(f"train/{key}", mean)

    def learn(
        self: SelfDiscreteSAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DiscreteSAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDiscreteSAC:
        """Train for ``total_timesteps`` environment steps (SB3's ``learn``; ``log_interval`` in episodes)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        # aliases of the policy's modules: saved once, inside the policy's state dict
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            return [*state_dicts, "ent_coef_optimizer"], ["log_ent_coef"]
        return state_dicts, ["ent_coef_tensor"]
