"""Contract design (principal-agent) as a bilevel problem (docs/problems/contract-design.md).

A principal (the leader) pays an agent (the follower) non-negative payments on top of the agent's own reward; the
agent plays the soft-optimal policy for reward + payment; the principal maximises its own expected discounted
return minus the expected discounted payments, optionally within a budget.

- Payments, kept feasible (``>= 0``) by the positive parameterisation ``softplus(z) = log(1 + e^z)``:
  ``contract="action"``: ``pay_x(s, a) = softplus(x[s, a])`` (``x in R^{S A}``; the principal observes actions);
  ``contract="outcome"``: ``pay_x(s, a) = sum_{s' != s} P(s'|s, a) softplus(x[s'])`` (``x in R^S``; a milestone
  payment on arriving in ``s'`` from another state, the expected payment of a risk-neutral agent; the principal
  observes outcomes only).
- Follower reward ``r_x(s, a) = r_A(s, a) + pay_x(s, a)``.
- Leader objective ``f(x, pi) = -U_P(pi)`` (+ a budget penalty), with the principal's utility
  ``U_P(pi) = rho . V^pi_{r_P - pay_x}`` (no entropy): a :class:`~sobirl.tabular.LeaderValue` with leader reward
  ``r_P - pay_x``, so every method of :func:`~sobirl.algorithms.solve` applies. With ``budget = B``:
  ``f = -U_P + budget_weight * max(0, rho . V^pi_{pay_x} - B)^2``, the squared excess of the expected discounted
  payments over the budget (hpgd and the model-free methods then do not apply: ``f`` is no longer a LeaderValue).

The instance (:func:`contract_design`): a project of ``stages`` stages, then "delivered" (terminal), starting in stage
0. In each stage the agent shirks, works or crunches (its own cost per step :data:`EFFORT_COSTS`); the project
advances one stage with probability ``ADVANCE[a] * EASE[k]`` (the middle stages are hard) and otherwise stays. The
principal earns ``value`` on delivery; the agent earns nothing there and pays the effort costs on the way, so without
payments it mostly shirks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from sobirl.problems.figures import heatmap, new_figure, save
from sobirl.tabular import BilevelProblem, LeaderValue, TabularMDP, lower_level, policy_value, soft_policy_iteration
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_choice, check_finite, check_int, check_range

CONTRACTS = ("action", "outcome")
"""What a payment is contingent on: the state and the action taken, or the state arrived in."""

ACTIONS = ("shirk", "work", "crunch")
"""The agent's actions, in order."""

EFFORT_COSTS = (0.0, 0.4, 1.0)
"""The agent's own cost of each action per step (its reward is the negative)."""

ADVANCE = (0.2, 0.6, 0.9)
"""Probability that each action advances the project one stage, before the stage's ease factor."""

EASE = (1.0, 0.7, 0.5, 0.9)
"""Ease factor of each stage of the default instance (advance probability multiplier)."""

PAY0 = 0.1
"""The initial payment on every contract parameter: ``x0 = softplus^{-1}(PAY0)`` plus seeded noise."""

X0_STD = 0.1
"""Standard deviation of the seeded noise on ``x0``."""

BETA, CLIP = 2.0, 5.0
"""The leader step and gradient-norm clipping :func:`contract_design` suggests to every method."""

ZETA = 0.5
"""M-SoBiRL's adjoint step on :func:`contract_design`: below ``2 / (1 + gamma)^2 >= 2 / |A_k|_2^2`` (0.617 at the
default ``gamma = 0.8``), so the step on ``w`` contracts (the conservative default ``1 / L_k`` is 0.30 at ``x0``)."""


def project_mdp(ease: tuple[float, ...] = EASE, *, gamma: float = 0.8, tau: float = 0.2) -> TabularMDP:
    """The project MDP (module docstring): states ``0 .. K-1`` the stages, ``K`` delivered (terminal); start in 0.

    Args:
        ease: the ease factor of each of the ``K = len(ease)`` stages, each in ``[0, 1]``.
        gamma: discount, in ``[0, 1)``.
        tau: the agent's entropy temperature, ``> 0``.
    """
    if len(ease) < 1:
        raise ValueError("ease must hold one factor in [0, 1] per stage, got none")
    ease = tuple(check_range(f"ease[{k}]", e, low=0.0, high=1.0) for k, e in enumerate(ease))
    K, A = len(ease), len(ACTIONS)
    S = K + 1
    P = torch.zeros(S, A, S, dtype=DTYPE)
    stage = torch.arange(K)
    advance = torch.tensor(ADVANCE, dtype=DTYPE).view(1, A) * torch.tensor(ease, dtype=DTYPE).view(K, 1)  # (K, A)
    P[stage, :, stage + 1] = advance
    P[stage, :, stage] = 1.0 - advance
    terminal = torch.zeros(S, dtype=torch.bool)
    terminal[K] = True
    rho = torch.zeros(S, dtype=DTYPE)
    rho[0] = 1.0
    return TabularMDP(P, gamma=gamma, tau=tau, rho=rho, terminal=terminal)


def contract_problem(
    mdp: TabularMDP,
    agent_reward: torch.Tensor,
    principal_reward: torch.Tensor,
    *,
    contract: str = "action",
    budget: float | None = None,
    budget_weight: float = 10.0,
    x0: torch.Tensor | None = None,
    name: str = "contract-design",
    defaults: dict[str, dict[str, Any]] | None = None,
) -> BilevelProblem:
    """The contract-design problem on any MDP (module docstring).

    Args:
        mdp: the agent's MDP (its ``rho`` is where the principal's utility is measured).
        agent_reward: ``r_A``, ``(S, A)``: the agent's own reward.
        principal_reward: ``r_P``, ``(S, A)``: the principal's reward before payments.
        contract: one of :data:`CONTRACTS`.
        budget: the bound ``B >= 0`` on the expected discounted payments, or None for no budget.
        budget_weight: the penalty weight ``> 0`` on the squared excess over the budget.
        x0: starting contract parameters; ``softplus^{-1}(PAY0)`` everywhere when None.
        name: the problem's label.
        defaults: method parameters that suit the problem (see :class:`~sobirl.tabular.BilevelProblem`).

    Returns:
        The problem, with the extra attributes ``contract``, ``payments`` (``x -> pay_x``, ``(S, A)``),
        ``payment_table`` (the same from the non-negative payment of each contract parameter, before ``softplus``),
        ``agent_reward``, ``principal_reward``, ``budget`` and ``utility`` (the principal's
        :class:`~sobirl.tabular.LeaderValue`, negated).

    Raises:
        TypeError, ValueError: naming the field and its allowed values.
    """
    check_choice("contract", contract, CONTRACTS)
    S, A = mdp.shape
    r_A = _check_table("agent_reward", agent_reward, S, A)
    r_P = _check_table("principal_reward", principal_reward, S, A)
    if budget is not None:
        budget = check_range("budget", budget, low=0.0)
    budget_weight = check_range("budget_weight", budget_weight, low=0.0, low_open=True)
    n = S * A if contract == "action" else S
    if x0 is None:
        x0 = torch.full((n,), inverse_softplus(PAY0), dtype=DTYPE)
    elif not isinstance(x0, torch.Tensor) or x0.shape != (n,):
        shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"x0 must be a tensor of shape ({n},) for a {contract!r} contract, got {shape}")
    stay = self_loops(mdp)

    def payment_table(pay: torch.Tensor) -> torch.Tensor:
        return pay.view(S, A) if contract == "action" else mdp.expect(pay) - stay * pay.unsqueeze(1)

    def payments(x: torch.Tensor) -> torch.Tensor:
        return payment_table(torch.nn.functional.softplus(x))

    def reward(x: torch.Tensor) -> torch.Tensor:
        return r_A + payments(x)

    utility = LeaderValue(mdp, lambda x: r_P - payments(x))
    if budget is None:
        upper = utility
    else:
        spent = LeaderValue(mdp, payments)  # f = -rho . V^pi_pay: minus the expected discounted payments

        def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
            excess = torch.relu(-spent(x, pi) - budget)
            return utility(x, pi) + budget_weight * excess.pow(2)

    prob = BilevelProblem(mdp, reward=reward, upper=upper, x0=x0, name=name, defaults=defaults)
    prob.contract, prob.payments, prob.payment_table, prob.budget = contract, payments, payment_table, budget
    prob.agent_reward, prob.principal_reward, prob.utility = r_A, r_P, utility
    return prob


def contract_design(
    stages: int = 4,
    *,
    value: float = 10.0,
    contract: str = "action",
    gamma: float = 0.8,
    tau: float = 0.2,
    budget: float | None = None,
    budget_weight: float = 10.0,
    seed: int = 0,
) -> BilevelProblem:
    """The project contract-design instance (module docstring; docs/problems/contract-design.md).

    Args:
        stages: number of stages before delivery, an integer in ``[1, len(EASE)]``: the first ``stages`` factors
            of :data:`EASE`.
        value: the principal's reward on delivery, ``> 0``.
        contract: one of :data:`CONTRACTS`.
        gamma: discount of agent and principal, in ``[0, 1)``.
        tau: the agent's entropy temperature, ``> 0``.
        budget, budget_weight: see :func:`contract_problem`.
        seed: seeds the noise ``N(0, X0_STD^2)`` on ``x0 = softplus^{-1}(PAY0)``.

    Raises:
        TypeError, ValueError: naming the field and its allowed values.
    """
    check_int("stages", stages, low=1)
    if stages > len(EASE):
        raise ValueError(f"stages must be an integer in [1, {len(EASE)}], got {stages}")
    value = check_range("value", value, low=0.0, low_open=True)
    check_int("seed", seed, low=0)
    mdp = project_mdp(EASE[:stages], gamma=gamma, tau=tau)
    S, A = mdp.shape
    agent_reward = -torch.tensor(EFFORT_COSTS, dtype=DTYPE).expand(S, A).clone()
    agent_reward[stages] = 0.0  # delivered: no effort
    principal_reward = torch.zeros(S, A, dtype=DTYPE)
    principal_reward[stages] = value
    n = S * A if contract == "action" else S
    gen = torch.Generator().manual_seed(seed)
    x0 = inverse_softplus(PAY0) + X0_STD * torch.randn(n, generator=gen, dtype=DTYPE)
    prob = contract_problem(
        mdp,
        agent_reward,
        principal_reward,
        contract=contract,
        budget=budget,
        budget_weight=budget_weight,
        x0=x0,
        name=f"contract-design-{contract}-{stages}stages-seed{seed}",
        defaults={"*": {"beta": BETA, "clip": CLIP}, "m-sobirl": {"zeta": ZETA}},
    )
    prob.state_names = (*[f"stage {k}" for k in range(stages)], "delivered")
    prob.action_names = ACTIONS
    return prob


def inverse_softplus(pay: float) -> float:
    """``x`` with ``softplus(x) = pay`` (``pay > 0``)."""
    pay = check_range("pay", pay, low=0.0, low_open=True)
    return pay + math.log(-math.expm1(-pay))


def principal_utility(prob: BilevelProblem, pay: torch.Tensor) -> float:
    """``U_P`` when the agent is paid the table ``pay`` (``(S, A)``, any non-negative payments, not only ``pay_x``):
    the agent's soft-optimal policy for ``r_A + pay``, then ``rho . V^pi_{r_P - pay}``."""
    pi = soft_policy_iteration(prob.mdp, prob.agent_reward + pay, 1e-12).pi
    return (prob.mdp.rho @ policy_value(prob.mdp, pi, prob.principal_reward - pay)).item()


def contract_utility(prob: BilevelProblem, x: torch.Tensor) -> float:
    """``U_P`` under the contract ``x`` (the agent's soft-optimal response ``pi*(x)``)."""
    pi = lower_level(prob, x).pi
    with torch.no_grad():
        return -prob.utility(x.to(DTYPE), pi).item()


def constant_payments(prob: BilevelProblem, level: float, family: str) -> torch.Tensor:
    """The payment table ``(S, A)`` of a one-parameter contract of the problem's kind (:func:`contract_problem`).

    ``family="constant"``: the same payment ``level`` on every contract parameter (every ``(s, a)`` of an action
    contract; every arrival in another state of an outcome contract). ``family="bonus"``: ``level`` on delivery only
    (every action in a terminal state; arriving in a terminal state), nothing before.
    """
    check_choice("family", family, ("constant", "bonus"))
    level = check_range("level", level, low=0.0)
    mdp = prob.mdp
    S, A = mdp.shape
    where = torch.ones(S, dtype=DTYPE) if family == "constant" else mdp.terminal.to(DTYPE)
    per_parameter = level * (where.unsqueeze(1).expand(S, A).reshape(-1) if prob.contract == "action" else where)
    return prob.payment_table(per_parameter)


def best_one_parameter_contract(prob: BilevelProblem, levels: torch.Tensor, family: str) -> tuple[float, float]:
    """Grid search over :func:`constant_payments` levels: ``(best level, its principal utility)``."""
    utilities = [principal_utility(prob, constant_payments(prob, float(c), family)) for c in levels]
    best = max(range(len(utilities)), key=utilities.__getitem__)
    return float(levels[best]), utilities[best]


def self_loops(mdp: TabularMDP) -> torch.Tensor:
    """``P(s|s, a)``, ``(S, A)``: the probability that ``(s, a)`` stays in ``s`` (zero in a terminal state)."""
    S, A = mdp.shape
    if not mdp.is_sparse:
        return mdp.P.diagonal(dim1=0, dim2=2).T.contiguous()
    coo = mdp.P.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    on_diag = cols == torch.div(rows, A, rounding_mode="floor")
    return torch.zeros(S * A, dtype=DTYPE).index_add_(0, rows[on_diag], coo.values()[on_diag]).view(S, A)


def plot_solution(prob: BilevelProblem, x: torch.Tensor, path: str | Path, *, title: str = "") -> Path:
    """A PNG of a contract ``x`` of :func:`contract_problem`: the payments ``pay_x(s, a)``, the agent's policy without
    payments and its policy under the contract, as ``(state, action)`` tables."""
    S, A = prob.mdp.shape
    ylabels = getattr(prob, "state_names", [f"s{s}" for s in range(S)])
    xlabels = getattr(prob, "action_names", [f"a{a}" for a in range(A)])
    with torch.no_grad():
        pay = prob.payments(x.detach().to(DTYPE))
    unpaid = soft_policy_iteration(prob.mdp, prob.agent_reward, 1e-12).pi
    fig, axes = new_figure(3, width=3.8, height=3.2)
    panels = (
        (pay, "payment pay_x(s, a)"),
        (unpaid, "agent's policy, no payment"),
        (lower_level(prob, x).pi, "agent's policy, contract"),
    )
    for ax, (values, name) in zip(axes, panels, strict=True):
        heatmap(ax, values, title=name, xlabels=xlabels, ylabels=ylabels, annotate=True)
    fig.suptitle(title or f"{prob.name}: principal's utility {contract_utility(prob, x):.4f}")
    return save(fig, path)


def _check_table(name: str, table: torch.Tensor, S: int, A: int) -> torch.Tensor:
    if not isinstance(table, torch.Tensor) or table.shape != (S, A):
        shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f"{name} must be a tensor of shape (S, A) = ({S}, {A}), got {shape}")
    table = table.to(DTYPE)
    check_finite(name, table)
    return table
