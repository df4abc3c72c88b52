"""Upper objectives that are expectations over the follower's trajectories (docs/math.md, section 5).

Model-free SoBiRL needs ``f(x, pi) = E_{data ~ pi}[ l(data; x) ]`` in sampled form: a way to draw the data from
the follower and the loss of each draw. A :class:`SampledObjective` provides both, plus the score weights: by the
log-probability trick,

    grad phi(x) = E[ grad_x l ] + E[ sum_{visits (s_t, a_t)} omega_t d log pi(a_t|s_t)/dx ],
    d log pi(a|s)/dx = (dQ(s, a)/dx - dV(s)/dx) / tau,

where ``omega_t`` is the loss (every visit of a preference pair, :class:`PreferenceObjective`) or, for a
discounted sum, its causal part (the leader's value, :class:`LeaderObjective`).

A problem offers one by its ``sampled`` attribute (the tabular RLHF builder sets it); :func:`sampled_objective`
also derives one for every problem whose upper objective is the leader's value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from sobirl.tabular.contexts import ContextualProblem
from sobirl.tabular.evaluation import LeaderValue
from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.sampler import Trajectories, sample_trajectories
from sobirl.tabular.soft import check_reward


@dataclass(frozen=True)
class UpperSample:
    """``n`` draws of the upper level's data from the follower.

    Attributes:
        paths: every sampled trajectory, ``length`` steps each (the scored window, then any continuation).
        window: the first ``window`` steps of each path are the data the loss reads; the rest is continuation
            (for estimators that learn from the follower's experience).
        n: number of draws (a preference pair counts once, a trajectory of the leader's value once).
        labels: per-draw labels (preferences), or None.
    """

    paths: Trajectories
    window: int
    n: int
    labels: torch.Tensor | None = None

    @property
    def scored(self) -> torch.Tensor:
        """bool ``(n_paths, length)``: the visits whose ``log pi`` enters the score function."""
        t = torch.arange(self.paths.alive.shape[1], device=self.paths.alive.device)
        return self.paths.alive & (t < self.window).unsqueeze(0)


class SampledObjective(ABC):
    """``f(x, pi) = E_{data ~ pi}[ l(data; x) ]`` with the data drawn from the follower (module docstring)."""

    @abstractmethod
    def sample(
        self, mdp: TabularMDP, pi: torch.Tensor, n: int, generator: torch.Generator, *, continuation: int = 0
    ) -> UpperSample:
        """Draw ``n`` independent draws of the data under ``pi``, each path run ``continuation`` extra steps."""

    @abstractmethod
    def evaluate(self, x: torch.Tensor, r: torch.Tensor, sample: UpperSample) -> tuple[torch.Tensor, torch.Tensor]:
        """The losses and the score weights of a sample.

        Args:
            x: leader parameters (a leaf that requires grad).
            r: ``r_x = prob.reward(x)`` with its graph to ``x``.
            sample: drawn by :meth:`sample`.

        Returns:
            ``(losses, omega)``: ``l(data_j; x)`` per draw, ``(n,)``, differentiable in ``x``; and the detached
            score weight of every step of every path, ``(n_paths, length)``, zero outside
            :attr:`UpperSample.scored`.
        """


class PreferenceObjective(SampledObjective):
    """The expected Bradley-Terry loss of synthetic preferences over pairs of fragments (the tabular RLHF).

    A draw is two fragments of ``H`` steps from ``rho`` under ``pi`` and a label ``y ~ Bernoulli(q)``,
    ``q = sigmoid((R_true(d_1) - R_true(d_2)) / label_temperature)``; its loss is
    ``l = -y log sigmoid(D) - (1 - y) log sigmoid(-D) = softplus(-D) + (1 - y) D``, ``D = R_x(d_1) - R_x(d_2)``,
    ``R(d) = sum_h r(s_h, a_h)``. Every visit of both fragments has score weight ``l``.

    Args:
        H: fragment length (>= 1).
        r_true: the hidden true reward table ``(S, A)`` that labels the pairs.
        label_temperature: temperature of the labels (> 0).
    """

    def __init__(self, H: int, r_true: torch.Tensor, label_temperature: float) -> None:
        self.H = H
        self.r_true = r_true
        self.label_temperature = label_temperature

    def sample(
        self, mdp: TabularMDP, pi: torch.Tensor, n: int, generator: torch.Generator, *, continuation: int = 0
    ) -> UpperSample:
        paths = sample_trajectories(mdp, pi, 2 * n, self.H + continuation, generator=generator)
        window = UpperSample(paths, self.H, n)
        true_returns = self._returns(self.r_true, window).view(2, n)
        q = torch.sigmoid((true_returns[0] - true_returns[1]) / self.label_temperature)
        labels = (torch.rand(n, generator=generator, dtype=DTYPE, device=q.device) < q).to(DTYPE)
        return UpperSample(paths, self.H, n, labels)

    def evaluate(self, x: torch.Tensor, r: torch.Tensor, sample: UpperSample) -> tuple[torch.Tensor, torch.Tensor]:
        returns = self._returns(r, sample).view(2, sample.n)
        D = returns[0] - returns[1]
        losses = torch.nn.functional.softplus(-D) + (1.0 - sample.labels) * D
        omega = losses.detach() - leave_one_out_mean(losses.detach())
        return losses, omega.repeat(2).unsqueeze(1) * sample.scored

    @staticmethod
    def _returns(r: torch.Tensor, sample: UpperSample) -> torch.Tensor:
        """``sum_{h < window} r(s_h, a_h)`` per path."""
        paths = sample.paths
        return (r[paths.states, paths.actions] * sample.scored).sum(dim=1)


class LeaderObjective(SampledObjective):
    """The leader's value in sampled form: ``f = -E[ sum_t gamma^t r_L(s_t, a_t) ]`` (``LeaderValue``).

    A draw is one trajectory of ``horizon`` steps from the leader's ``rho`` under ``pi`` (truncation bias of
    order ``gamma^horizon``); its loss is ``l = -sum_t gamma^t r_L(s_t, a_t)``. Rewards after a visit depend on its
    action, earlier ones do not, so the score weight of visit ``t`` is the causal part
    ``omega_t = -gamma^t G_t``, ``G_t = sum_{k >= t} gamma^(k - t) r_L(s_k, a_k)`` (same expectation, lower variance).

    Args:
        leader: the leader's value on the follower's MDP.
        horizon: trajectory length (>= 1).
    """

    def __init__(self, leader: LeaderValue, horizon: int) -> None:
        self.leader = leader
        self.horizon = horizon

    def sample(
        self, mdp: TabularMDP, pi: torch.Tensor, n: int, generator: torch.Generator, *, continuation: int = 0
    ) -> UpperSample:
        starts = torch.multinomial(self.leader.rho, n, replacement=True, generator=generator)
        paths = sample_trajectories(mdp, pi, n, self.horizon + continuation, start_states=starts, generator=generator)
        return UpperSample(paths, self.horizon, n)

    def evaluate(self, x: torch.Tensor, r: torch.Tensor, sample: UpperSample) -> tuple[torch.Tensor, torch.Tensor]:
        r_L = check_reward(self.leader.mdp, self.leader.leader_reward(x), name="leader_reward(x)")
        paths = sample.paths
        discounted = paths.discounts(self.leader.mdp.gamma) * sample.scored * r_L[paths.states, paths.actions]
        # gamma^t G_t = sum_{k >= t} gamma^k r_L(s_k, a_k): a reversed cumulative sum along time.
        discounts = paths.discounts(self.leader.mdp.gamma) * sample.scored
        tail = discounted.detach().flip(1).cumsum(dim=1).flip(1)
        G = torch.where(discounts > 0, tail / discounts.clamp(min=torch.finfo(DTYPE).tiny), 0.0)
        baseline = _leave_one_path_out(paths.states, G, sample.scored, self.leader.mdp.n_states)
        return -discounted.sum(dim=1), -discounts * (G - baseline)


def leave_one_out_mean(values: torch.Tensor) -> torch.Tensor:
    """``b_j = mean_{k != j} v_k`` (0 for a single value): a baseline independent of draw ``j``."""
    n = values.numel()
    if n < 2:
        return torch.zeros_like(values)
    return (values.sum() - values) / (n - 1)


def _leave_one_path_out(states: torch.Tensor, G: torch.Tensor, scored: torch.Tensor, S: int) -> torch.Tensor:
    """Per visit, the mean of ``G`` over the visits of the same state in the OTHER paths (0 where there are none).

    Independent of the visit's own path, so subtracting it leaves the score-function estimate unbiased.
    """
    n_paths = states.shape[0]
    owner = torch.arange(n_paths, device=states.device).unsqueeze(1).expand_as(states)
    key = (owner * S + states)[scored]
    G_scored, s_scored = G[scored], states[scored]
    keys, inverse = torch.unique(key, return_inverse=True)
    own_sum = torch.zeros(keys.numel(), dtype=DTYPE, device=G.device).index_add_(0, inverse, G_scored)
    own_count = torch.bincount(inverse, minlength=keys.numel()).to(DTYPE)
    state_sum = torch.zeros(S, dtype=DTYPE, device=G.device).index_add_(0, s_scored, G_scored)
    state_count = torch.bincount(s_scored, minlength=S).to(DTYPE)
    others = state_count[s_scored] - own_count[inverse]
    mean = torch.where(others > 0, (state_sum[s_scored] - own_sum[inverse]) / others.clamp(min=1.0), 0.0)
    baseline = torch.zeros_like(G)
    baseline[scored] = mean
    return baseline


def sampled_objective(prob: BilevelProblem, *, horizon: int) -> SampledObjective:
    """The problem's upper objective in sampled form, or a ValueError naming what is supported.

    Args:
        prob: a problem with a ``sampled`` attribute (e.g. :func:`sobirl.problems.tabular_rlhf`), or whose upper
            objective is the leader's value (:func:`leader_value`; e.g. :func:`sobirl.problems.four_rooms`).
        horizon: trajectory length of the leader's value (>= 1).
    """
    sampled = getattr(prob, "sampled", None)
    if sampled is not None:
        return sampled
    try:
        leader = leader_value(prob)
    except ValueError as err:
        raise ValueError(
            f"problem {prob.name!r} has no sampled form of its upper objective: model-free methods need a problem "
            "whose `sampled` attribute is a SampledObjective (e.g. tabular-rlhf) or whose upper objective is a "
            f"LeaderValue (e.g. four-rooms); {err}"
        ) from None
    return LeaderObjective(leader, horizon)


def leader_value(prob: BilevelProblem) -> LeaderValue:
    """The problem's upper objective as a :class:`~sobirl.tabular.LeaderValue` on ``prob.mdp``, or a ValueError.

    A :class:`~sobirl.tabular.ContextualProblem` whose contexts all have LeaderValue objectives is one too:
    ``sum_c w_c rho_c . V_{L,c}`` is the leader's value on the joint (block-diagonal) MDP with the stacked leader
    rewards and the initial distribution ``(w_c rho_c)_c``.
    """
    if isinstance(prob, ContextualProblem) and all(isinstance(ctx.upper, LeaderValue) for ctx in prob.contexts):
        for i, ctx in enumerate(prob.contexts):
            _check_own_mdp(ctx.upper, ctx.mdp, f"context {i}'s LeaderValue")
        uppers = [ctx.upper for ctx in prob.contexts]

        def leader_reward(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([upper.leader_reward(x) for upper in uppers])

        rho = torch.cat([ctx.weight * ctx.upper.rho for ctx in prob.contexts])
        return LeaderValue(prob.mdp, leader_reward, rho=rho / rho.sum())
    leader = prob.upper_fn
    if not isinstance(leader, LeaderValue):
        raise ValueError(
            "the upper objective must be a LeaderValue (f(x, pi) = -rho . V_L^pi, the leader's own value) or "
            f"contexts of LeaderValues, got {type(leader).__name__}"
        )
    _check_own_mdp(leader, prob.mdp, "the LeaderValue")
    return leader


def _check_own_mdp(leader: LeaderValue, mdp: TabularMDP, what: str) -> None:
    if leader.mdp is not mdp:
        raise ValueError(
            f"sampling uses the follower's MDP, so {what} must be built on the follower's own MDP "
            "(LeaderValue(prob.mdp, ...))"
        )
