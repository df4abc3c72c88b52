"""``hpgd``: stochastic hyper-policy gradient descent (Thoma et al., NeurIPS 2024; docs/math.md, sections 3 and 6).

For problems whose upper objective is the leader's own value, ``f(x, pi) = -rho_L . V_L^pi`` with leader reward
``r_L(x)`` (:class:`~sobirl.tabular.LeaderValue`). With ``F(x) = rho_L . V_L^{pi*(x)} = -phi(x)``:

    grad F(x) = E_{tau ~ pi*}[ sum_t gamma^t d r_L(s_t, a_t)/dx ]
              + E_{tau ~ pi*}[ sum_t gamma^t Q_L(s_t, a_t) d log pi*(a_t|s_t)/dx ]
    d log pi*(a|s)/dx = (dQ*(s, a)/dx - dV*(s)/dx) / tau
    dQ*(s, a)/dx = E[ sum_k gamma^k J(s_k, a_k) | s_0 = s, a_0 = a, pi* ],   dV*(s)/dx = E_{a ~ pi*}[ dQ*(s, a)/dx ]

Monte-Carlo estimate (:func:`hpgd_gradient`), given the follower's exact soft-optimal ``pi*`` at ``x``: ``B`` outer
trajectories from ``rho_L`` under ``pi*``, truncated at the horizon ``H``. At every visited ``(s_t, a_t)`` draw a
second action ``a'_t ~ pi*(.|s_t)``; since ``a_t`` and ``a'_t`` are i.i.d.,

    E_a[ Q_L(s,a) (dQ*(s,a)/dx - dV*(s)/dx) ] = 1/2 E_{a,a'}[ (Q_L(s,a) - Q_L(s,a')) (dQ*(s,a)/dx - dQ*(s,a')/dx) ]

(the leader's advantage form: the state's level of ``Q_L`` cancels). Visits with ``a'_t = a_t`` contribute 0 and
are skipped. For the others, two follower rollouts ``+`` from ``(s_t, a_t)`` and ``-`` from ``(s_t, a'_t)`` share
their random numbers, so they coincide from the moment they meet; ``Q^_L(s_t, a_t)`` is the outer trajectory's
discounted continuation (``leader_q="continuation"``) or a rollout (``"rollout"``), ``Q^_L(s_t, a'_t)`` a rollout,
all independent of the ``+``/``-`` pair (a product of estimates sharing samples would be biased). Their discounted
visit counts fill two ``(S, A)`` weight tables

    W_L = (1/B) sum_{i,t} gamma^t e_(s_t,a_t)
    W   = (1/B) sum_{i,t} gamma^t A^_t / (2 tau) sum_k gamma^k [e_(s_k^+,a_k^+) - e_(s_k^-,a_k^-)],
          A^_t = Q^_L(s_t,a_t) - Q^_L(s_t,a'_t)
    grad phi(x) ~ -( (d r_L/dx)^T W_L + J^T W )            ONE autograd.grad through r_L(x) and r_x

The estimate is unbiased up to the truncation at ``H`` (relative bias of order ``H gamma^H``). Cost, with ``p`` the
fraction of visits where ``a'_t != a_t``: about ``B H (1 + 3 p H)`` sampled transitions (``B H (1 + 4 p H)`` with
``leader_q="rollout"``).

The same formula with exact expectations (:func:`hpgd_exact_gradient`), ``d = [(I - gamma P_pi)^{-T} rho_L] pi``
the discounted occupancy and ``c = d Q_L / tau``:

    y = c - pi * sum_a c(., a),    W = y + gamma pi * (I - gamma P_pi)^{-T} P^T y,    W_L = d

(``W^T = c^T (I - E Pi) (I - gamma P Pi)^{-1}`` with ``E`` copying a state's value to its actions, expanded by
the Woodbury identity), which equals the exact hyper-gradient of section 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sobirl.algorithms.base import MethodConfig, OuterLoop
from sobirl.estimators.objectives import leader_value
from sobirl.estimators.rollouts import coupled_occupancy
from sobirl.tabular.evaluation import LeaderValue, policy_value
from sobirl.tabular.hypergrad import TOL, as_parameters, lower_level
from sobirl.tabular.linear import solve_adjoint
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.sampler import sample_actions, sample_trajectories
from sobirl.tabular.soft import SoftSolution, check_reward, soft_policy_iteration
from sobirl.validation import check_choice, check_int, check_range

LEADER_Q = ("continuation", "rollout")
"""Estimators of ``Q_L(s_t, a_t)``: the outer trajectory's own discounted return-to-go, or a fresh rollout."""


@dataclass(frozen=True)
class HPGDConfig(MethodConfig):
    """Hyper-parameters of HPGD.

    Attributes:
        batch: outer trajectories per gradient estimate, B (>= 1).
        horizon: rollout length H (>= 1); the truncation bias is of order ``H gamma^H`` (negligible at
            gamma = 0.9, large at gamma = 0.99: raise it there, the cost grows like ``H^2``).
        leader_q: ``"continuation"`` or ``"rollout"`` (see :data:`LEADER_Q`).
        seed: seed of the method's own ``torch.Generator`` (>= 0).
        tol: tolerance of the follower's exact soft solve (scaled Bellman residual, > 0).
    """

    batch: int = 64
    horizon: int = 100
    leader_q: str = "continuation"
    seed: int = 0
    tol: float = 1e-10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("batch", self.batch, low=1)
        check_int("horizon", self.horizon, low=1)
        check_choice("leader_q", self.leader_q, LEADER_Q)
        check_int("seed", self.seed, low=0)
        check_range("tol", self.tol, low=0.0, low_open=True)


class HPGD(OuterLoop):
    """Gradient descent on ``phi = -F`` along the Monte-Carlo estimate of :func:`hpgd_gradient`.

    Each step solves the follower's problem exactly (soft policy iteration, warm-started), estimates the
    hyper-gradient from sampled trajectories, clips its norm to ``clip`` and steps ``x <- x - beta g``.
    Metrics: ``objective`` (the exact ``phi`` at the iterate, from the solve), ``grad_norm`` (the estimate's norm
    before clipping), ``samples`` (transitions sampled this step) and ``samples_total``.

    Raises:
        ValueError: the problem's upper objective is not a :class:`~sobirl.tabular.LeaderValue` on its MDP (see
            :func:`leader_value`).
    """

    name = "hpgd"
    Config = HPGDConfig

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: HPGDConfig) -> None:
        super().__init__(prob, x0, config)
        self.check_problem(prob)
        self.leader = leader_value(prob)
        self.generator = torch.Generator(device=self.mdp.rho.device).manual_seed(config.seed)
        self.V: torch.Tensor | None = None
        self.samples_total = 0

    @classmethod
    def check_problem(cls, prob: BilevelProblem) -> None:
        try:
            leader_value(prob)
        except ValueError as err:
            raise ValueError(f"hpgd needs a problem whose upper objective is a LeaderValue: {err}") from None

    def step(self) -> dict[str, float]:
        cfg: HPGDConfig = self.config  # type: ignore[assignment]
        x = as_parameters(self.x)
        r = self.prob.reward(x)
        solution = soft_policy_iteration(self.mdp, r.detach(), cfg.tol, V0=self.V)
        self.V = solution.V
        grad, samples = _estimate(
            self.prob, self.leader, x, r, solution.pi, cfg.batch, cfg.horizon, self.generator, cfg.leader_q
        )
        with torch.no_grad():
            objective = self.prob.upper(x.detach(), solution.pi)
        grad_norm = self.descend(grad)
        self.samples_total += samples
        return {
            "objective": objective.item(),
            "grad_norm": grad_norm,
            "samples": float(samples),
            "samples_total": float(self.samples_total),
        }


def hpgd_gradient(
    prob: BilevelProblem,
    x: torch.Tensor,
    solution: SoftSolution,
    *,
    batch: int,
    horizon: int,
    generator: torch.Generator,
    leader_q: str = "continuation",
) -> tuple[torch.Tensor, int]:
    """The Monte-Carlo HPGD estimate of ``grad phi(x)`` (module docstring) and the transitions it sampled.

    Args:
        prob: a problem whose upper objective is a :class:`~sobirl.tabular.LeaderValue` (see :func:`leader_value`).
        x: leader parameters.
        solution: the follower's soft-optimal solution at ``x`` (its ``pi`` generates every trajectory).
        batch: outer trajectories B (>= 1).
        horizon: rollout length H (>= 1).
        generator: the source of randomness.
        leader_q: ``"continuation"`` or ``"rollout"``.

    Returns:
        ``(grad, n_transitions)``: a float64 tensor shaped like ``x`` and the number of sampled transitions.
    """
    check_int("batch", batch, low=1)
    check_int("horizon", horizon, low=1)
    check_choice("leader_q", leader_q, LEADER_Q)
    leader = leader_value(prob)
    x = as_parameters(x)
    return _estimate(prob, leader, x, prob.reward(x), solution.pi, batch, horizon, generator, leader_q)


def hpgd_exact_gradient(
    prob: BilevelProblem, x: torch.Tensor, solution: SoftSolution | None = None, *, tol: float = TOL
) -> torch.Tensor:
    """HPGD's formula with exact expectations (module docstring): equals :func:`sobirl.tabular.hypergradient`.

    Every expectation is a linear solve with ``(I - gamma P_pi)^T`` (dense or sparse ``P``), and the gradient is
    ONE vector-Jacobian product through ``r_L(x)`` and ``r_x``.

    Args:
        prob: a problem whose upper objective is a :class:`~sobirl.tabular.LeaderValue` (see :func:`leader_value`).
        x: leader parameters.
        solution: the follower's solution at ``x``; solved to ``tol`` when None.
        tol: lower-level tolerance when ``solution`` is None.
    """
    leader = leader_value(prob)
    mdp = prob.mdp
    if solution is None:
        solution = lower_level(prob, x, tol=tol)
    pi = solution.pi
    x = as_parameters(x)
    r, r_L = prob.reward(x), _leader_reward(prob, leader, x)
    d = solve_adjoint(mdp, pi, leader.rho).unsqueeze(1) * pi
    Q_L = r_L.detach() + mdp.gamma * mdp.expect(policy_value(mdp, pi, r_L.detach()))
    c = d * Q_L / mdp.tau
    y = c - pi * c.sum(dim=1, keepdim=True)
    W = y + mdp.gamma * pi * solve_adjoint(mdp, pi, mdp.pushforward(y)).unsqueeze(1)
    return -_vjp(x, (r_L, r), (d, W))


def _estimate(
    prob: BilevelProblem,
    leader: LeaderValue,
    x: torch.Tensor,
    r: torch.Tensor,
    pi: torch.Tensor,
    batch: int,
    horizon: int,
    generator: torch.Generator,
    leader_q: str,
) -> tuple[torch.Tensor, int]:
    """The estimate of :func:`hpgd_gradient`; ``r = r_x`` with its graph to the leaf ``x``."""
    mdp = prob.mdp
    gamma = mdp.gamma
    r_L = _leader_reward(prob, leader, x)
    r_L_table = r_L.detach()
    starts = torch.multinomial(leader.rho, batch, replacement=True, generator=generator)
    outer = sample_trajectories(mdp, pi, batch, horizon, start_states=starts, generator=generator)
    visited = outer.alive
    s, a = outer.states[visited], outer.actions[visited]
    a_other = sample_actions(pi, s, generator)
    weight = outer.discounts(gamma)[visited] / (2 * mdp.tau * batch)

    # Visits with a' = a_t contribute 0: only the others are rolled out.
    differ = a_other != a
    s, a, a_other, weight = s[differ], a[differ], a_other[differ], weight[differ]
    m = s.numel()
    if leader_q == "rollout":
        pairs = {"start_states": s.repeat(2), "start_actions": torch.cat([a, a_other]), "coupled_blocks": 2}
        q_paths = sample_trajectories(mdp, pi, 2 * m, horizon, generator=generator, **pairs)
        Q_a, Q_other = q_paths.returns(gamma, r_L_table).view(2, m)
    else:
        q_paths = sample_trajectories(mdp, pi, m, horizon, start_states=s, start_actions=a_other, generator=generator)
        Q_a = outer.returns_to_go(gamma, r_L_table)[visited][differ]
        Q_other = q_paths.returns(gamma, r_L_table)
    coef = weight * (Q_a - Q_other)
    W, sensitivity_samples = coupled_occupancy(
        mdp, pi, s, torch.stack([a, a_other]), torch.stack([coef, -coef]), horizon, generator
    )
    W_L = outer.occupancy(gamma, mdp.shape) / batch
    samples = outer.n_transitions + sensitivity_samples + q_paths.n_transitions
    return -_vjp(x, (r_L, r), (W_L, W)), samples


def _leader_reward(prob: BilevelProblem, leader: LeaderValue, x: torch.Tensor) -> torch.Tensor:
    return check_reward(prob.mdp, leader.leader_reward(x), name="leader_reward(x)")


def _vjp(x: torch.Tensor, tables: tuple[torch.Tensor, ...], weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``sum_i (d tables_i / dx)^T weights_i`` in ONE backward pass; tables not depending on ``x`` contribute 0."""
    pairs = [(t, w) for t, w in zip(tables, weights, strict=True) if t.requires_grad]
    if not pairs:
        return torch.zeros_like(x)
    outputs, cotangents = zip(*pairs, strict=True)
    (grad,) = torch.autograd.grad(outputs, x, grad_outputs=cotangents, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad
