"""HPGD (sobirl.algorithms.hpgd): its formula with exact expectations, the Monte-Carlo estimate's bias, the method."""

from __future__ import annotations

import pytest
import torch

from conftest import F64, nonlinear_problem, random_transitions, to_sparse
from sobirl.algorithms import HPGD, HPGDConfig, solve
from sobirl.algorithms.hpgd import hpgd_exact_gradient, hpgd_gradient
from sobirl.tabular import (
    BilevelProblem,
    Context,
    LeaderValue,
    TabularMDP,
    contextual_problem,
    hypergradient,
    hyperobjective,
    lower_level,
)


def leader_problem(
    *,
    S: int = 6,
    A: int = 3,
    n: int = 4,
    gamma: float = 0.8,
    tau: float = 0.5,
    layout: str = "dense",
    terminal: torch.Tensor | None = None,
    leader_rho: torch.Tensor | None = None,
    leader_depends_on_x: bool = True,
    seed: int = 0,
) -> tuple[BilevelProblem, torch.Tensor]:
    """A follower reward nonlinear in x and a leader reward r_L(x) = R_L + 0.3 tanh(G x); returns (problem, x)."""
    gen = torch.Generator().manual_seed(seed)
    P = random_transitions(S, A, gen)
    mdp = TabularMDP(P if layout == "dense" else to_sparse(P, layout), gamma=gamma, tau=tau, terminal=terminal)
    F = torch.randn(S, A, n, generator=gen, dtype=F64)
    G = torch.randn(S, A, n, generator=gen, dtype=F64)
    R_L = torch.randn(S, A, generator=gen, dtype=F64)

    def leader_reward(x: torch.Tensor) -> torch.Tensor:
        return R_L + 0.3 * torch.tanh(G @ x) if leader_depends_on_x else R_L

    prob = BilevelProblem(
        mdp, reward=lambda x: torch.tanh(F @ x), upper=LeaderValue(mdp, leader_reward, rho=leader_rho)
    )
    return prob, torch.randn(n, generator=gen, dtype=F64)


def contextual_leader_problem(gamma: float = 0.7) -> tuple[BilevelProblem, torch.Tensor]:
    """Two contexts (dense 5 states; sparse 6 states with two terminal ones), each with its own LeaderValue."""
    first, x = leader_problem(S=5, gamma=gamma, seed=1, leader_rho=torch.tensor([0.5, 0.5, 0, 0, 0], dtype=F64))
    terminal = torch.tensor([False, False, True, False, False, True])
    second, _ = leader_problem(S=6, gamma=gamma, layout="csr", terminal=terminal, seed=2)
    contexts = [Context(p.mdp, p.reward_fn, p.upper_fn, w) for p, w in [(first, 0.3), (second, 0.7)]]
    return contextual_problem(contexts), x


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a @ b / (a.norm() * b.norm())).item()


# ---------------------------------------------------------------- (a) the formula with exact expectations


def test_formula_with_explicit_matrices_is_the_hypergradient():
    """grad F = d^T dr_L/dx + sum_{s,a} d(s,a) Q_L(s,a) (dQ*(s,a)/dx - dV*(s)/dx) / tau, everything formed densely:
    dQ*/dx = (I - gamma P Pi)^{-1} J on state-action pairs, Q_L by policy evaluation, d the discounted occupancy."""
    S, A, n, gamma, tau = 5, 3, 4, 0.8, 0.6
    prob, x = leader_problem(S=S, A=A, n=n, gamma=gamma, tau=tau)
    pi = lower_level(prob, x).pi
    P = prob.mdp.P.reshape(S * A, S)
    Pi = torch.zeros(S, S * A, dtype=F64)  # Pi[s, (s, a)] = pi(a|s)
    Pi[torch.arange(S).repeat_interleave(A), torch.arange(S * A)] = pi.reshape(-1)
    J = torch.autograd.functional.jacobian(prob.reward_fn, x).reshape(S * A, n)
    J_L = torch.autograd.functional.jacobian(prob.upper_fn.leader_reward, x).reshape(S * A, n)
    r_L = prob.upper_fn.leader_reward(x).reshape(S * A)

    dQ = torch.linalg.solve(torch.eye(S * A, dtype=F64) - gamma * P @ Pi, J)
    dV = Pi @ dQ
    dlogpi = (dQ - dV.repeat_interleave(A, dim=0)) / tau
    V_L = torch.linalg.solve(torch.eye(S, dtype=F64) - gamma * Pi @ P, Pi @ r_L)
    Q_L = r_L + gamma * P @ V_L
    d = torch.linalg.solve((torch.eye(S, dtype=F64) - gamma * Pi @ P).T, prob.mdp.rho) @ Pi
    grad_F = J_L.T @ d + dlogpi.T @ (d * Q_L)

    g = hypergradient(prob, x)
    assert _rel(-grad_F, g) <= 1e-9
    assert _rel(hpgd_exact_gradient(prob, x), g) <= 1e-9


@pytest.mark.parametrize(
    ("layout", "case"),
    [
        ("dense", "plain"),
        ("csr", "plain"),
        ("coo", "terminal"),
        ("dense", "terminal"),
        ("dense", "leader_rho"),
        ("csr", "constant_leader_reward"),
    ],
)
def test_exact_gradient_matches_hypergradient(layout, case):
    kwargs = {}
    if case == "terminal":
        kwargs["terminal"] = torch.tensor([False, False, True, False, False, True])
    if case == "leader_rho":
        kwargs["leader_rho"] = torch.tensor([0.7, 0.0, 0.1, 0.2, 0.0, 0.0], dtype=F64)
    if case == "constant_leader_reward":
        kwargs["leader_depends_on_x"] = False
    for gamma in (0.5, 0.9, 0.99):
        prob, x = leader_problem(layout=layout, gamma=gamma, tau=0.3, **kwargs)
        assert _rel(hpgd_exact_gradient(prob, x), hypergradient(prob, x)) <= 1e-8


# ---------------------------------------------------------------- (b) bias of the Monte-Carlo estimate


def _mean_estimate(prob, x, *, estimates: int, batch: int, horizon: int, leader_q: str, seed: int = 0):
    solution = lower_level(prob, x)
    gen = torch.Generator().manual_seed(seed)
    draws = [
        hpgd_gradient(prob, x, solution, batch=batch, horizon=horizon, generator=gen, leader_q=leader_q)[0]
        for _ in range(estimates)
    ]
    return torch.stack(draws)


def _assert_unbiased(draws: torch.Tensor, g: torch.Tensor, min_cos: float) -> None:
    mean = draws.mean(dim=0)
    assert _cos(mean, g) >= min_cos, (_cos(mean, g), _rel(mean, g))
    # every coordinate within 5 standard errors of the exact hyper-gradient
    z = (mean - g).abs() / (draws.std(dim=0) / draws.shape[0] ** 0.5)
    assert z.max() < 5.0, z


@pytest.mark.parametrize(
    ("leader_q", "layout", "terminal"),
    [("continuation", "dense", False), ("rollout", "csr", True)],
)
def test_monte_carlo_estimate_is_unbiased(leader_q, layout, terminal):
    """gamma = 0.6, horizon 40 (gamma^40 ~ 1e-9): the mean of 128 estimates of batch 64 (8192 trajectories)."""
    mask = torch.tensor([False] * 5 + [True]) if terminal else None
    prob, x = leader_problem(gamma=0.6, tau=0.5, layout=layout, terminal=mask)
    g = hypergradient(prob, x)
    draws = _mean_estimate(prob, x, estimates=128, batch=64, horizon=40, leader_q=leader_q)
    _assert_unbiased(draws, g, min_cos=0.99)


@pytest.mark.slow
@pytest.mark.parametrize("leader_q", ["continuation", "rollout"])
def test_monte_carlo_estimate_is_unbiased_gamma_09(leader_q):
    """gamma = 0.9, horizon 130 (H gamma^H ~ 1e-4): the mean of 256 estimates of batch 64 (16384 trajectories)."""
    prob, x = leader_problem(gamma=0.9, tau=0.5)
    g = hypergradient(prob, x)
    draws = _mean_estimate(prob, x, estimates=256, batch=64, horizon=130, leader_q=leader_q)
    _assert_unbiased(draws, g, min_cos=0.995)


def test_contexts_of_leader_values():
    """A problem over contexts with LeaderValue objectives is the leader's value on the joint MDP."""
    prob, x = contextual_leader_problem()
    g = hypergradient(prob, x)
    assert _rel(hpgd_exact_gradient(prob, x), g) <= 1e-8
    draws = _mean_estimate(prob, x, estimates=32, batch=64, horizon=30, leader_q="continuation")
    _assert_unbiased(draws, g, min_cos=0.98)


def test_estimate_is_one_backward_pass_and_seeded():
    """One call of r_fn and r_L and ONE backward pass through them; the same seed gives the same estimate."""
    prob, x = leader_problem()
    backward_calls = []

    class Tap(torch.autograd.Function):
        @staticmethod
        def forward(t):
            return t.clone()

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, grad):
            backward_calls.append(1)
            return grad

    reward_fn, leader_fn = prob.reward_fn, prob.upper_fn.leader_reward
    prob.reward_fn = lambda z: Tap.apply(reward_fn(z))
    prob.upper_fn.leader_reward = lambda z: Tap.apply(leader_fn(z))
    solution = lower_level(prob, x)

    def estimate(seed: int):
        return hpgd_gradient(prob, x, solution, batch=8, horizon=20, generator=torch.Generator().manual_seed(seed))

    backward_calls.clear()
    g1, n1 = estimate(3)
    assert len(backward_calls) == 2  # the two taps, reached by the one autograd.grad call
    g2, n2 = estimate(3)
    g3, _ = estimate(4)
    assert torch.equal(g1, g2) and n1 == n2
    assert not torch.equal(g1, g3)
    assert 8 * 20 < n1 <= 8 * 20 * (1 + 3 * 20)  # outer transitions + at most three rollouts per visit


# ---------------------------------------------------------------- (c) the method


def test_solve_hpgd_increases_leader_value():
    """20 steps of beta = 0.3 (batch 16, horizon 40) from F = 3.10: HPGD gets within 25% of exact descent's gain."""
    prob, x0 = leader_problem(gamma=0.8, tau=0.5)
    start = -hyperobjective(prob, x0).item()
    res = solve(prob, x0, method="hpgd", iterations=20, beta=0.3, batch=16, horizon=40, seed=0)
    gain = -hyperobjective(prob, res.x).item() - start
    exact = solve(prob, x0, method="exact", iterations=20, beta=0.3)
    exact_gain = -hyperobjective(prob, exact.x).item() - start
    assert gain > 0.8, gain
    assert gain > 0.75 * exact_gain, (gain, exact_gain)
    h = res.history
    assert h["objective"][0] == pytest.approx(-start, abs=1e-9)  # the exact phi at the iterate
    assert h["samples_total"] == pytest.approx(torch.tensor(h["samples"]).cumsum(0).tolist())
    assert min(h["samples"]) > 16 * 40


def test_clipping_and_seed():
    prob, x0 = leader_problem()
    algo = HPGD(prob, x0, HPGDConfig(beta=0.5, batch=4, horizon=10, clip=1e-3))
    row = algo.step()
    assert row["grad_norm"] > 1e-3  # the estimate's norm, before clipping
    assert (algo.x - x0).norm().item() == pytest.approx(0.5 * 1e-3, rel=1e-12)

    def run(seed: int) -> torch.Tensor:
        return solve(prob, x0, method="hpgd", iterations=3, beta=0.1, batch=4, horizon=10, seed=seed).x

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


# ---------------------------------------------------------------- (d) errors


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"beta": 0.0}, r"beta must be in \(0, inf\)"),
        ({"batch": 0}, "batch must be an integer >= 1"),
        ({"horizon": 0}, "horizon must be an integer >= 1"),
        ({"leader_q": "critic"}, "unknown leader_q 'critic'; valid: continuation, rollout"),
        ({"clip": 0.0}, r"clip must be in \(0, inf\)"),
        ({"clip": -1.0}, r"clip must be in \(0, inf\)"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"tol": 0.0}, r"tol must be in \(0, inf\)"),
    ],
)
def test_bad_config_values(params, message):
    with pytest.raises(ValueError, match=message):
        HPGDConfig(**params)
    prob, x0 = leader_problem()
    with pytest.raises(ValueError, match=message):
        solve(prob, x0, method="hpgd", iterations=1, **params)


def test_bad_config_types():
    with pytest.raises(TypeError, match="batch must be an integer"):
        HPGDConfig(batch=2.0)
    with pytest.raises(TypeError, match="unknown parameter"):
        solve(*leader_problem(), method="hpgd", iterations=1, zeta=1.0)


def test_needs_a_leader_value_problem():
    gen = torch.Generator().manual_seed(0)
    prob = nonlinear_problem(random_transitions(4, 2, gen), gamma=0.8, tau=0.5, n=3, gen=gen)
    x0 = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="hpgd needs a problem whose upper objective is a LeaderValue"):
        solve(prob, x0, method="hpgd", iterations=1)
    with pytest.raises(ValueError, match="LeaderValue"):
        hpgd_exact_gradient(prob, x0)
    # a LeaderValue measured on another MDP than the one the follower (and the sampler) lives in
    leader_prob, x = leader_problem()
    other = TabularMDP(leader_prob.mdp.P.clone(), gamma=0.8, tau=0.5)
    moved = BilevelProblem(
        leader_prob.mdp, leader_prob.reward_fn, LeaderValue(other, lambda z: torch.ones(6, 3, dtype=F64))
    )
    with pytest.raises(ValueError, match="must be built on the follower's own MDP"):
        HPGD(moved, x, HPGDConfig())
