"""Apprenticeship learning (inverse RL) as a bilevel problem: fit a reward whose soft-optimal follower explains
expert demonstrations (docs/problems/apprenticeship.md; docs/math.md, section 9).

Data: ``N`` demonstrated state-action pairs ``(s_i, a_i)`` with weights ``w_i >= 0`` (all 1 by default), given as
arrays or taken from the steps of trajectories sampled from an expert policy (:func:`sample_demonstrations`),
summarised by their empirical frequencies

    D(s, a) = sum_i w_i 1{(s_i, a_i) = (s, a)} / sum_i w_i,      d(s) = sum_a D(s, a).

- Follower: the soft-optimal policy ``pi*(x)`` of the MDP for the reward ``r_x``, either linear in features,
  ``r_x(s, a) = sum_k Phi(s, a, k) x_k`` (``x in R^n``), or tabular, ``r_x = x.view(S, A)`` (``Phi`` the identity).
- Leader: the negative mean log-likelihood of the demonstrations under the follower's policy, plus an optional
  ridge term,

      f(x, pi) = -(1/N) sum_i w_i log pi(a_i|s_i) + 0.5 reg |x|^2 = -sum_{s,a} D(s, a) log pi(a|s) + 0.5 reg |x|^2.

Its hyper-gradient is the maximum-causal-entropy IRL feature-matching gradient (:func:`feature_matching_gradient`):

    grad phi(x) = (1/tau) Phi^T (nu_x - D) + reg x,
    nu_x(s, a) = pi(a|s) n_x(s),   (I - gamma P_pi^T) n_x = d - gamma P^T D,

the discounted state-action occupancy of the follower started from the "expert-state weights" ``d - gamma P^T D``
(which is ``(1 - gamma) rho`` when ``D`` is the expert's normalised discounted occupancy from ``rho``: then
``nu_x`` is the follower's own normalised occupancy and the gradient is the feature-expectation mismatch).

:func:`apprenticeship` is the registered instance: a slippery ``side x side`` grid (dense ``P``, uniform ``rho``),
a true reward linear in four cell-type features (goal, hazard, mud, gem; :data:`THETA_TRUE`), the expert soft-optimal
for it, and ``demonstrations`` expert trajectories of ``horizon`` steps drawn with the problem's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sobirl.problems.figures import heatmap, new_figure, save
from sobirl.problems.gridworld import gridworld_mdp
from sobirl.tabular import BilevelProblem, TabularMDP, lower_level, policy_value, soft_policy_iteration
from sobirl.tabular.linear import solve_adjoint
from sobirl.tabular.mdp import DTYPE
from sobirl.tabular.sampler import sample_trajectories
from sobirl.validation import check_choice, check_finite, check_int, check_range

REWARDS = ("linear", "tabular")
"""The follower's reward parameterisations: linear in the cell-type features, or one entry per ``(s, a)``."""

CELL_TYPES = ("goal", "hazard", "mud", "gem")
"""The features of :func:`apprenticeship`, in order: ``Phi(s, a, k) = 1{cell s has type k}`` for every action."""

THETA_TRUE = (1.0, -1.0, -0.3, 0.4)
"""The expert's reward weights on :data:`CELL_TYPES`: ``r_true(s, a) = THETA_TRUE[type(s)]`` (0 on plain cells)."""


BETA = {"linear": 0.2, "tabular": 0.5}
"""The leader step :func:`apprenticeship` suggests to every method, per reward parameterisation."""

ZETA = 0.5
"""M-SoBiRL's adjoint step on :func:`apprenticeship`: below ``2 / (1 + gamma)^2 >= 2 / |A_k|_2^2`` (0.554 at the
default ``gamma = 0.9``), so the step on ``w`` contracts (the conservative default ``1 / L_k`` is 0.28 at ``x0``)."""


@dataclass(frozen=True)
class Demonstrations:
    """Demonstrated state-action pairs.

    Attributes:
        states, actions: long ``(N,)``.
        weights: float64 ``(N,)``, non-negative with a positive sum.
    """

    states: torch.Tensor
    actions: torch.Tensor
    weights: torch.Tensor

    def frequencies(self, S: int, A: int) -> torch.Tensor:
        """``D(s, a)``: the weighted empirical frequency table ``(S, A)``, summing to 1."""
        D = torch.zeros(S * A, dtype=DTYPE).index_add_(0, self.states * A + self.actions, self.weights)
        return (D / D.sum()).view(S, A)


def check_demonstrations(
    mdp: TabularMDP, states: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor | None = None
) -> Demonstrations:
    """Validate demonstrated pairs against ``mdp`` and return them as :class:`Demonstrations`.

    Raises:
        TypeError, ValueError: naming the field (``states``, ``actions``, ``weights``) and its allowed values.
    """
    S, A = mdp.shape
    for name, t, size in (("states", states, S), ("actions", actions, A)):
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be an integer torch.Tensor of shape (N,)")
        if t.dim() != 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(t.shape)}")
        if t.min() < 0 or t.max() >= size:
            raise ValueError(f"{name} must hold indices in [0, {size - 1}], got [{t.min().item()}, {t.max().item()}]")
    if states.shape != actions.shape:
        raise ValueError(
            f"states and actions must have the same shape, got {tuple(states.shape)} and {tuple(actions.shape)}"
        )
    if weights is None:
        weights = torch.ones(states.shape, dtype=DTYPE)
    elif not isinstance(weights, torch.Tensor) or weights.shape != states.shape:
        raise ValueError(f"weights must be a tensor of shape (N,) = {tuple(states.shape)} or None")
    weights = weights.to(DTYPE)
    check_finite("weights", weights)
    if weights.min() < 0 or weights.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    return Demonstrations(states.long(), actions.long(), weights)


def sample_demonstrations(
    mdp: TabularMDP, expert: torch.Tensor, n: int, horizon: int, *, generator: torch.Generator
) -> Demonstrations:
    """The steps of ``n`` trajectories of the policy ``expert`` (``(S, A)``), ``horizon`` steps each, from ``mdp.rho``.

    Every step that happened (a trajectory ends after the action in a terminal state) is one demonstrated pair of
    weight 1.
    """
    check_int("n", n, low=1)
    paths = sample_trajectories(mdp, expert, n, horizon, generator=generator)
    return Demonstrations(
        paths.states[paths.alive], paths.actions[paths.alive], torch.ones(int(paths.alive.sum()), dtype=DTYPE)
    )


def apprenticeship_problem(
    mdp: TabularMDP,
    states: torch.Tensor,
    actions: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    reg: float = 0.0,
    x0: torch.Tensor | None = None,
    name: str = "apprenticeship",
    defaults: dict[str, dict[str, Any]] | None = None,
) -> BilevelProblem:
    """The apprenticeship-learning problem for demonstrations given as arrays (module docstring).

    Args:
        mdp: the follower's MDP (dense or sparse ``P``).
        states, actions: the demonstrated pairs, integer tensors ``(N,)``.
        weights: a non-negative weight per pair (``(N,)``), or None for all 1.
        features: ``Phi``, a float ``(S, A, n)`` tensor, for the linear reward ``r_x = Phi x``; None for the tabular
            reward ``r_x = x.view(S, A)`` (``n = S A``).
        reg: the ridge weight ``reg >= 0`` of ``0.5 reg |x|^2``.
        x0: the starting point, ``(n,)``; zeros (the uniform policy) when None.
        name: the problem's label.
        defaults: method parameters that suit the problem (see :class:`~sobirl.tabular.BilevelProblem`).

    Returns:
        The problem, with the extra attributes ``frequencies`` (``D``, ``(S, A)``), ``features`` (``Phi`` or None)
        and ``reg``.

    Raises:
        TypeError, ValueError: naming the field and its allowed values.
    """
    demos = check_demonstrations(mdp, states, actions, weights)
    reg = check_range("reg", reg, low=0.0)
    S, A = mdp.shape
    if features is not None:
        if not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[:2] != (S, A):
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"features must be a tensor of shape (S, A, n) = ({S}, {A}, n), got {shape}")
        features = features.to(DTYPE)
        check_finite("features", features)
    n = S * A if features is None else features.shape[2]
    if x0 is None:
        x0 = torch.zeros(n, dtype=DTYPE)
    elif not isinstance(x0, torch.Tensor) or x0.shape != (n,):
        shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"x0 must be a tensor of shape (n,) = ({n},), got {shape}")
    D = demos.frequencies(S, A)
    seen = D > 0

    def reward(x: torch.Tensor) -> torch.Tensor:
        return x.view(S, A) if features is None else features @ x

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        # log pi only where a pair was demonstrated: an unseen pair whose probability underflowed costs nothing.
        log_pi = torch.log(torch.where(seen, pi, 1.0))
        return -(D * log_pi).sum() + 0.5 * reg * x.pow(2).sum()

    prob = BilevelProblem(mdp, reward=reward, upper=upper, x0=x0, name=name, defaults=defaults)
    prob.frequencies, prob.features, prob.reg = D, features, reg
    return prob


def feature_matching_gradient(prob: BilevelProblem, x: torch.Tensor) -> torch.Tensor:
    """``grad phi(x) = (1/tau) Phi^T (nu_x - D) + reg x`` of a problem from :func:`apprenticeship_problem`.

    ``nu_x(s, a) = pi(a|s) n_x(s)`` with ``(I - gamma P_pi^T) n_x = d - gamma P^T D`` (module docstring): the
    difference of the follower's discounted feature expectations from the expert-state weights and the
    demonstrated feature expectations. Equal to :func:`~sobirl.tabular.hypergradient` (docs/math.md, section 9).
    """
    mdp, D = prob.mdp, prob.frequencies
    pi = lower_level(prob, x).pi
    n_x = discounted_occupancy(mdp, pi, D.sum(dim=1) - mdp.gamma * mdp.pushforward(D))
    mismatch = (pi * n_x.unsqueeze(1) - D) / mdp.tau
    Phi = prob.features
    grad = mismatch.reshape(-1) if Phi is None else torch.einsum("sa,san->n", mismatch, Phi)
    return grad + prob.reg * x.detach().to(DTYPE)


def discounted_occupancy(mdp: TabularMDP, pi: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """``n = (I - gamma P_pi^T)^{-1} start``, ``(S,)``: the discounted state visits ``sum_t gamma^t Pr(s_t = s)`` of
    ``pi`` started from the weights ``start`` (``(S,)``, any signs; ``mdp.rho`` gives the usual occupancy)."""
    return solve_adjoint(mdp, pi, start.to(DTYPE))


def cell_types(side: int) -> torch.Tensor:
    """The cell type of each state of the ``side x side`` grid of :func:`apprenticeship`: long ``(S,)``, ``-1``
    for a plain cell, else the index into :data:`CELL_TYPES`.

    Goal: the bottom-right cell. Hazard: row ``side // 2``, columns ``1 .. side - 3`` (a barrier with gaps at the
    left edge and on the right). Mud: rows below the barrier, columns ``< side // 3``. Gem: the top-right cell.
    """
    side = check_int("side", side, low=4)
    types = torch.full((side, side), -1, dtype=torch.long)
    types[side // 2 + 1 :, : side // 3] = CELL_TYPES.index("mud")
    types[side // 2, 1 : side - 2] = CELL_TYPES.index("hazard")
    types[side - 1, side - 1] = CELL_TYPES.index("goal")
    types[0, side - 1] = CELL_TYPES.index("gem")
    return types.view(-1)


def apprenticeship(
    side: int = 10,
    *,
    demonstrations: int = 1000,
    horizon: int = 20,
    reward: str = "linear",
    slip: float = 0.1,
    gamma: float = 0.9,
    tau: float = 0.2,
    reg: float = 0.0,
    seed: int = 0,
) -> BilevelProblem:
    """The grid apprenticeship-learning instance (module docstring; docs/problems/apprenticeship.md).

    Args:
        side: grid side, an integer ``>= 4`` (``S = side**2`` states, 4 actions; dense ``P``, uniform ``rho``).
        demonstrations: number of expert trajectories, an integer ``>= 1``.
        horizon: steps per trajectory, an integer ``>= 1``.
        reward: the follower's reward, one of :data:`REWARDS` (``"linear"``: ``x in R^4`` on :data:`CELL_TYPES`;
            ``"tabular"``: ``x in R^{4 S}``).
        slip: probability mass moved from the intended move to the three others, in ``[0, 1]``.
        gamma: discount, in ``[0, 1)``.
        tau: the follower's (and the expert's) entropy temperature, ``> 0``.
        reg: ridge weight, ``>= 0``.
        seed: seeds the demonstrations (``x0`` is zero).

    Returns:
        The problem from :func:`apprenticeship_problem`, with the extra attributes ``side``, ``cell_types``
        (:func:`cell_types`), ``true_reward`` (``(S, A)``), ``expert`` (the expert's policy) and ``expert_return``
        (its true discounted return from ``rho``, :func:`true_return`).

    Raises:
        TypeError, ValueError: naming the field and its allowed values.
    """
    check_int("demonstrations", demonstrations, low=1)
    check_int("horizon", horizon, low=1)
    check_choice("reward", reward, REWARDS)
    check_int("seed", seed, low=0)
    types = cell_types(side)
    grid = gridworld_mdp(side, slip=slip, gamma=gamma, tau=tau)
    S, A = grid.shape
    mdp = TabularMDP(grid.P.to_dense().view(S, A, S), gamma=gamma, tau=tau)  # dense: every method applies (parl)
    features = torch.zeros(S, A, len(CELL_TYPES), dtype=DTYPE)
    typed = types >= 0
    features[typed.nonzero().flatten(), :, types[typed]] = 1.0
    true_reward = features @ torch.tensor(THETA_TRUE, dtype=DTYPE)
    expert = soft_policy_iteration(mdp, true_reward, 1e-12).pi
    demos = sample_demonstrations(mdp, expert, demonstrations, horizon, generator=torch.Generator().manual_seed(seed))
    prob = apprenticeship_problem(
        mdp,
        demos.states,
        demos.actions,
        features=features if reward == "linear" else None,
        reg=reg,
        name=f"apprenticeship-{reward}-{side}x{side}-seed{seed}",
        defaults={"*": {"beta": BETA[reward]}, "m-sobirl": {"zeta": ZETA}},
    )
    prob.side, prob.cell_types, prob.true_reward, prob.expert = side, types, true_reward, expert
    prob.expert_return = (mdp.rho @ policy_value(mdp, expert, true_reward)).item()
    return prob


def true_return(prob: BilevelProblem, x: torch.Tensor) -> float:
    """The true discounted return from ``rho`` (no entropy) of the follower ``pi*(x)`` of :func:`apprenticeship`."""
    pi = lower_level(prob, x).pi
    return (prob.mdp.rho @ policy_value(prob.mdp, pi, prob.true_reward)).item()


def plot_solution(prob: BilevelProblem, x: torch.Tensor, path: str | Path, *, title: str = "") -> Path:
    """A PNG of a solution of :func:`apprenticeship` on the grid: the true reward, the learned reward ``r_x`` (mean
    over actions), the demonstrated state frequencies ``d`` and the learned follower's discounted state occupancy
    from ``rho`` (normalised to sum 1)."""
    side = prob.side
    pi = lower_level(prob, x).pi
    with torch.no_grad():
        learned = prob.reward(x.detach().to(DTYPE)).mean(dim=1)
    visits = discounted_occupancy(prob.mdp, pi, prob.mdp.rho) * (1 - prob.mdp.gamma)
    fig, axes = new_figure(4)
    panels = (
        (prob.true_reward.mean(dim=1), "true reward r(s)", "coolwarm", True),
        (learned, "learned reward r_x(s)", "coolwarm", True),
        (prob.frequencies.sum(dim=1), "demonstrated states d(s)", "viridis", False),
        (visits, "learned follower's occupancy", "viridis", False),
    )
    for ax, (values, name, cmap, symmetric) in zip(axes, panels, strict=True):
        heatmap(ax, values.view(side, side), title=name, cmap=cmap, symmetric=symmetric)
    ratio = true_return(prob, x) / prob.expert_return
    fig.suptitle(title or f"{prob.name}: true return {100 * ratio:.1f}% of the expert's")
    return save(fig, path)
