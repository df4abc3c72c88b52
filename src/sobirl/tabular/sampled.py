"""The sample-based (model-free) lower level: soft Q-learning and soft policy evaluation from sampled transitions.

The follower never reads ``P``; it only queries a generative model (docs/math.md, section 2). Each step draws
``m = samples_per_pair`` successors ``s'_1 .. s'_m ~ P(.|s, a)`` for EVERY pair ``(s, a)`` at once (one batched
:func:`~sobirl.tabular.sampler.sample_trajectories` call with ``horizon=2``) and moves ``Q`` towards a sampled target:

    Q_{k+1}(s,a) = Q_k(s,a) + lr_k * ( r(s,a) + gamma * (1/m) sum_j V_k(s'_j) * [s not terminal] - Q_k(s,a) )
    V_k(s)       = sum_a pi_k(a|s) ( Q_k(s,a) - tau log pi_k(a|s) )        (0 log 0 = 0)

- :func:`soft_q_learning` (control): ``pi_k = softmax(Q_k / tau)``, so ``V_k = tau logsumexp(Q_k / tau)`` and the
  expected update is the soft Bellman optimality operator; the fixed point is the soft-VI solution ``Q*``.
- :func:`soft_policy_evaluation`: ``pi_k = pi`` fixed (soft Bellman expectation operator); the fixed point is the
  soft ``Q^pi = r + gamma P V^pi``.

Step sizes ``lr``:

- ``"rescaled-linear"`` (default): ``lr_k = 1 / (1 + (1 - gamma)(k + 1))``, ``k = step_offset, step_offset + 1, ...``
  (pass the steps already taken as ``step_offset``, and the last ``Q`` as ``Q0``, to continue one run across outer
  iterations). Both operators are gamma-contractions in the sup norm, and this schedule satisfies the
  Robbins-Monro conditions (sum lr_k = inf, sum lr_k^2 < inf), so ``Q_k`` converges almost surely for ANY
  ``samples_per_pair``; scaling ``k`` by ``1 - gamma`` is what keeps the bias term from decaying only like
  ``k^-(1-gamma)`` (plain ``1/(k+1)`` is exponentially slow in ``1/(1-gamma)``). The distance from the start still
  only decays like ``1 / ((1 - gamma) k)``: thousands of steps for a cold start at gamma = 0.9.
- a constant ``lr`` in ``(0, 1]``: the distance from the start shrinks by ``1 - lr (1 - gamma)`` per step, down to a
  noise floor that grows with ``lr`` and shrinks like ``1 / sqrt(m)`` (measured: 0.6 at m = 1, 0.02 at m = 1024 for
  lr = 1, gamma = 0.9, |Q*| ~ 6.5). Suits tracking a moving reward across outer iterations
  from a warm start ``Q0``; ``lr = 1`` is empirical soft value iteration (the model-free counterpart of the
  ``N`` soft Bellman sweeps of M-SoBiRL, docs/math.md section 4).

The exact lower level (soft value / policy iteration with known ``P``) is :mod:`sobirl.tabular.soft`; running both
on the same reward separates the estimator's error from the lower level's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.tabular.mdp import DTYPE, ROW_SUM_ATOL, TabularMDP
from sobirl.tabular.sampler import sample_trajectories
from sobirl.tabular.soft import check_reward, soft_policy
from sobirl.validation import check_choice, check_int, check_range

LR_SCHEDULES = ("rescaled-linear",)
"""Names of the step-size schedules accepted as ``lr`` (a number in ``(0, 1]`` means a constant step)."""


@dataclass(frozen=True)
class SampledSoftSolution:
    """The follower's estimate after sample-based soft Q-learning or soft policy evaluation.

    Attributes:
        Q: soft action values ``(S, A)``, float64.
        V: ``V(s) = sum_a pi(a|s) (Q(s,a) - tau log pi(a|s))``, ``(S,)``; ``tau logsumexp(Q / tau)`` for control.
        pi: ``softmax(Q / tau)`` for control, the evaluated policy for evaluation, ``(S, A)``.
        transitions: generative-model queries made, ``steps * S * A * samples_per_pair`` (a query from a terminal
            state returns "no successor" and still counts).
        steps: updates of the whole table performed.
    """

    Q: torch.Tensor
    V: torch.Tensor
    pi: torch.Tensor
    transitions: int
    steps: int


def soft_q_learning(
    mdp: TabularMDP,
    r: torch.Tensor,
    *,
    Q0: torch.Tensor | None = None,
    steps: int,
    samples_per_pair: int = 1,
    lr: float | str = "rescaled-linear",
    step_offset: int = 0,
    generator: torch.Generator,
) -> SampledSoftSolution:
    """Synchronous soft Q-learning towards the soft-VI solution ``Q*`` (module docstring; docs/math.md section 2).

    Args:
        mdp: the MDP; only sampled from (its ``P`` is never read directly).
        r: reward table ``(S, A)``; detached (the sampled follower is not differentiated through).
        Q0: warm start ``(S, A)``, e.g. the previous outer iteration's ``Q``; zeros when None.
        steps: table updates, >= 1.
        samples_per_pair: successors drawn per ``(s, a)`` and step, >= 1.
        lr: ``"rescaled-linear"`` or a constant step in ``(0, 1]``.
        step_offset: index of the first step in the ``"rescaled-linear"`` schedule, >= 0 (ignored for a constant).
        generator: the source of randomness (same seed, same result).

    Raises:
        ValueError / TypeError: naming the bad argument, before anything is sampled.
    """
    r, Q, rates = _check_common(mdp, r, Q0, steps, samples_per_pair, lr, step_offset, generator)
    return _iterate(mdp, r, Q, None, samples_per_pair, rates, generator)


def soft_policy_evaluation(
    mdp: TabularMDP,
    r: torch.Tensor,
    pi: torch.Tensor,
    *,
    Q0: torch.Tensor | None = None,
    steps: int,
    samples_per_pair: int = 1,
    lr: float | str = "rescaled-linear",
    step_offset: int = 0,
    generator: torch.Generator,
) -> SampledSoftSolution:
    """Sample-based soft policy evaluation of a fixed ``pi`` towards ``Q^pi = r + gamma P V^pi``.

    The target is the soft Bellman expectation ``r + gamma sum_a' pi(a'|s') (Q(s',a') - tau log pi(a'|s'))``
    with ``0 log 0 = 0``. Arguments as :func:`soft_q_learning`, plus ``pi``: the policy ``(S, A)``, rows summing
    to 1.
    """
    r, Q, rates = _check_common(mdp, r, Q0, steps, samples_per_pair, lr, step_offset, generator)
    pi = check_reward(mdp, pi, "pi").detach()
    worst = (pi.sum(dim=1) - 1.0).abs().max().item()
    if pi.min() < 0 or worst > ROW_SUM_ATOL:
        raise ValueError(
            f"pi must have rows that are distributions; min {pi.min().item():.3g}, row sum off by {worst:.3g}"
        )
    return _iterate(mdp, r, Q, pi, samples_per_pair, rates, generator)


def _iterate(
    mdp: TabularMDP,
    r: torch.Tensor,
    Q: torch.Tensor,
    pi: torch.Tensor | None,
    m: int,
    rates: list[float],
    generator: torch.Generator,
) -> SampledSoftSolution:
    """The update shared by both solvers, one step per entry of ``rates``; ``pi = None`` means control."""
    S, A = mdp.shape
    tau = mdp.tau
    # Every pair m times, the samples of one pair consecutive: row (s*A + a)*m + j.
    pairs = torch.arange(S * A, device=Q.device).repeat_interleave(m)
    starts, first_actions = pairs // A, pairs % A
    # The sampler also draws an action at the successor; it is unused, so any valid policy will do.
    rollout_pi = torch.full((S, A), 1.0 / A, dtype=DTYPE, device=Q.device) if pi is None else pi
    entropy = None if pi is None else -tau * torch.special.xlogy(pi, pi).sum(dim=1)  # tau H(pi), 0 log 0 = 0

    def backup(Q: torch.Tensor) -> torch.Tensor:
        if pi is None:
            return tau * torch.logsumexp(Q / tau, dim=1)  # = sum_a pi (Q - tau log pi) at pi = softmax(Q/tau)
        return (pi * Q).sum(dim=1) + entropy

    for rate in rates:
        paths = sample_trajectories(
            mdp, rollout_pi, S * A * m, 2, start_states=starts, start_actions=first_actions, generator=generator
        )
        # alive[:, 1] is False after a terminal state: its reward is collected and nothing follows.
        next_v = torch.where(paths.alive[:, 1], backup(Q)[paths.states[:, 1]], 0.0)
        target = r + mdp.gamma * next_v.view(S, A, m).mean(dim=2)
        Q = Q + rate * (target - Q)
    policy = soft_policy(Q, tau) if pi is None else pi
    steps = len(rates)
    return SampledSoftSolution(Q=Q, V=backup(Q), pi=policy, transitions=steps * S * A * m, steps=steps)


def _check_common(
    mdp: TabularMDP,
    r: torch.Tensor,
    Q0: torch.Tensor | None,
    steps: int,
    samples_per_pair: int,
    lr: float | str,
    step_offset: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Validate the arguments both solvers share; return ``r`` and the start ``Q`` (float64, detached) and the
    step sizes ``lr_k``, one per step."""
    r = check_reward(mdp, r).detach()
    Q = torch.zeros(mdp.shape, dtype=DTYPE, device=r.device) if Q0 is None else check_reward(mdp, Q0, "Q0").detach()
    check_int("steps", steps, low=1)
    check_int("samples_per_pair", samples_per_pair, low=1)
    check_int("step_offset", step_offset, low=0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(lr, str):
        check_choice("lr", lr, LR_SCHEDULES)
        return r, Q, [1.0 / (1.0 + (1.0 - mdp.gamma) * (k + 1)) for k in range(step_offset, step_offset + steps)]
    return r, Q, [check_range("lr", lr, low=0.0, high=1.0, low_open=True)] * steps
