"""Successor features of the reward net's head: a learned critic of ``dQ/dx`` for the exploration term.

The reward net ends in a linear layer: ``r_x(s, a) = F(s, a) . theta + c`` with ``theta`` the head's parameters
(:func:`~sobirl.rlhf.reward_net.head_parameters`) and ``F(s, a) = d r_x(s, a) / d theta`` its input features
(``head_features``). Since the follower is soft-optimal, ``dQ(s, a)/dx`` is the Q-function of the vector reward
``J = d r_x/dx`` under the follower's own policy (docs/math.md, section 3). For the head's parameters that reward is
``F``, so

    dQ(s, a)/d theta = psi(s, a) = E_pi[ sum_t gamma^t F(s_t, a_t) | s_0 = s, a_0 = a ],

the successor features of ``F`` (Barreto et al. 2017). :class:`SuccessorFeatures` learns ``psi`` by TD on the
follower's own transitions with the follower's next actions,

    psi(s, a) <- F(s, a) + gamma (1 - done) E_{a' ~ pi(.|s')} psi'(s', a'),

``psi'`` a Polyak-averaged target copy (``critic_target_tau = 1``: the current estimate). Where the follower's rewards
are clamped, ``F`` is the clamped reward's Jacobian (zero where the clamp binds). Box actions: ``psi`` is a network
on ``[s, a]`` and the expectation over ``a'`` one draw of the actor; Discrete actions: a network on ``s`` with a
block per action, and the expectation is exact under the actor's probabilities.

``F`` is the head's input only: the critic gives the exploration term's gradient for the head's parameters. The
feature layers get no exploration term from it (for a reward net without hidden layers, e.g. a table on one-hot
observations, the head is the whole net and the critic is the whole of ``dQ/dx``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from sobirl.rlhf.action_reward_net import ActionRewardNet
from sobirl.rlhf.reward_net import RewardNet, head_parameters, seeded_mlp
from sobirl.validation import check_int, check_range


@dataclass(frozen=True)
class CriticConfig:
    """How the successor-feature critic is built and trained; validated at construction.

    The names are the flat config keys of ``sobirl rlhf``.

    Attributes:
        critic_hidden: hidden widths of the critic's MLP (empty: linear, a table on one-hot observations).
        critic_lr: Adam's learning rate.
        critic_steps: TD steps per reward update.
        critic_batch_size: transitions per TD step.
        critic_target_tau: Polyak coefficient of the target copy in ``(0, 1]`` (1: no lag).
    """

    critic_hidden: tuple[int, ...] = (256, 256)
    critic_lr: float = 3e-4
    critic_steps: int = 200
    critic_batch_size: int = 256
    critic_target_tau: float = 0.005

    def __post_init__(self) -> None:
        object.__setattr__(self, "critic_hidden", tuple(self.critic_hidden))
        for i, width in enumerate(self.critic_hidden):
            check_int(f"critic_hidden[{i}]", width, low=1)
        check_range("critic_lr", self.critic_lr, low=0.0, low_open=True)
        check_int("critic_steps", self.critic_steps, low=0)
        check_int("critic_batch_size", self.critic_batch_size, low=1)
        check_range("critic_target_tau", self.critic_target_tau, low=0.0, high=1.0, low_open=True)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The setting names (flat config keys)."""
        return tuple(f.name for f in fields(cls))


class SuccessorFeatures(nn.Module):
    """``psi(s, a) ~ dQ(s, a)/d theta_head`` for a reward net (module docstring).

    Args:
        reward_net: a :class:`~sobirl.rlhf.RewardNet` (Box actions, ``act_dim`` given) or an
            :class:`~sobirl.rlhf.ActionRewardNet` (Discrete actions); its ``head_features`` are the TD rewards.
        gamma: the follower's discount in ``[0, 1)``.
        config: the critic's architecture and training.
        seed: seed of the initialisation (a private generator, as the reward nets).
    """

    def __init__(
        self, reward_net: RewardNet | ActionRewardNet, *, gamma: float, config: CriticConfig, seed: int = 0
    ) -> None:
        super().__init__()
        self.gamma = check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)
        self.config = config
        self.discrete = isinstance(reward_net, ActionRewardNet)
        head = reward_net.head
        self.features = head.out_features * (head.in_features + 1)
        dtype = head.weight.dtype
        gen = torch.Generator().manual_seed(check_int("seed", seed))
        if self.discrete:
            if len(reward_net.obs_shape) != 1:
                raise ValueError(f"the successor-feature critic needs 1-D observations, got {reward_net.obs_shape}")
            self.n_actions = reward_net.n_actions
            widths: Sequence[int] = (reward_net.obs_shape[0], *config.critic_hidden, self.n_actions * self.features)
        else:
            widths = (reward_net.obs_dim + reward_net.act_dim, *config.critic_hidden, self.features)
        self.net = seeded_mlp(widths, "relu", gen, dtype)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.critic_lr)

    def _psi(self, net: nn.Module, observations: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
        if self.discrete:
            return net(observations).reshape(*observations.shape[:-1], self.n_actions, self.features)
        return net(torch.cat([observations, actions], dim=-1))

    def psi(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``psi(s, a)``, ``(..., features)``; Discrete actions are indices ``(...)`` or ``(..., 1)``."""
        if not self.discrete:
            return self._psi(self.net, observations, actions)
        every = self._psi(self.net, observations, None)
        index = actions.reshape(every.shape[:-2]).long()
        return every.gather(-2, index[..., None, None].expand(*index.shape, 1, self.features)).squeeze(-2)

    def psi_all(self, observations: torch.Tensor) -> torch.Tensor:
        """Discrete actions: ``psi(s, a)`` of every action, ``(..., n_actions, features)``."""
        if not self.discrete:
            raise TypeError("psi_all is for Discrete actions; Box actions use psi(observations, actions)")
        return self._psi(self.net, observations, None)

    def advantage_sum(
        self,
        observations: torch.Tensor,
        actions: torch.Tensor,
        *,
        policy_actions: torch.Tensor | None = None,
        policy_probs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``sum_{i,h} (psi(s_h, a_h) - E_{a~pi} psi(s_h, a))`` per pair, ``(B, features)``, of visited steps
        ``(B, 2, L, ...)``: Box actions with ``k`` policy draws per state ``(B, 2, L, k, act_dim)`` (their mean), or
        Discrete actions with the policy's probabilities ``(B, 2, L, n_actions)`` (exact). The critic's last layer is
        linear, so the sums are taken over its inputs and the layer is applied once per pair (no graph)."""
        body, last = self.net[:-1], self.net[-1]
        with torch.no_grad():
            if self.discrete:
                h = body(observations)  # (B, 2, L, H)
                index = actions.reshape(h.shape[:-1]).long()
                c = torch.nn.functional.one_hot(index, self.n_actions).to(h) - policy_probs.to(h)  # (B, 2, L, A)
                M = torch.einsum("bijh,bija->bah", h, c)
                W = last.weight.reshape(self.n_actions, self.features, -1)
                b = last.bias.reshape(self.n_actions, self.features)
                return torch.einsum("aph,bah->bp", W, M) + c.sum(dim=(1, 2)) @ b
            k = policy_actions.shape[3]
            taken = body(torch.cat([observations, actions], dim=-1))
            repeated = observations.unsqueeze(3).expand(*observations.shape[:3], k, observations.shape[-1])
            drawn = body(torch.cat([repeated, policy_actions], dim=-1)).mean(dim=3)
            return (taken - drawn).sum(dim=(1, 2)) @ last.weight.T  # the biases cancel

    def td_step(
        self,
        reward_net: RewardNet | ActionRewardNet,
        observations: torch.Tensor,
        actions: torch.Tensor,
        next_observations: torch.Tensor,
        dones: torch.Tensor,
        next_policy: torch.Tensor,
        *,
        clip: float | None = None,
    ) -> float:
        """One Adam step on the mean squared TD error of a batch of transitions; returns the loss.

        Args:
            reward_net: the current reward net (its ``head_features`` are the rewards ``F(s, a)``).
            observations, actions, next_observations: ``(M, ...)`` transitions of the follower.
            dones: ``(M,)`` or ``(M, 1)``, 1 where ``s'`` is terminal (no bootstrap).
            next_policy: Box: the actor's actions at ``s'`` ``(M, act_dim)``; Discrete: its probabilities
                ``(M, n_actions)``.
            clip: the clamp of the follower's rewards, ``r -> clamp(r, -clip, clip)``: ``F`` is that reward's
                Jacobian, zero where ``|r| >= clip``.
        """
        dtype = next(self.net.parameters()).dtype
        observations, next_observations = observations.to(dtype), next_observations.to(dtype)
        alive = 1.0 - dones.reshape(-1, 1).to(dtype)
        with torch.no_grad():
            rewards = reward_net.head_features(observations, actions).to(dtype)
            if clip is not None:
                r = rewards @ head_parameters(reward_net).to(dtype) - reward_net.output_offset()
                rewards = rewards * (r.abs() < clip).unsqueeze(-1)
            if self.discrete:
                bootstrap = (next_policy.to(dtype).unsqueeze(-1) * self._psi(self.target, next_observations, None)).sum(
                    -2
                )
            else:
                bootstrap = self._psi(self.target, next_observations, next_policy.to(dtype))
            target = rewards + self.gamma * alive * bootstrap
        loss = (
            (self.psi(observations, actions.to(dtype) if not self.discrete else actions) - target).pow(2).sum(-1).mean()
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for p, q in zip(self.net.parameters(), self.target.parameters(), strict=True):
                q.lerp_(p, self.config.critic_target_tau)
        return loss.item()
