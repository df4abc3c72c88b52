"""Estimators of the exploration term ``sum_i w_i (dQ/dx - dV/dx)`` against a dense, independent computation."""

from __future__ import annotations

import pytest
import torch

from conftest import F64, nonlinear_problem, random_transitions
from sobirl.estimators import ESTIMATORS, exploration_term
from sobirl.tabular import BilevelProblem, TabularMDP, sample_trajectories
from sobirl.tabular.hypergrad import lower_level


def make_case(gamma: float, *, seed: int = 0, S: int = 5, A: int = 3, n: int = 4, m: int = 6, terminal: bool = False):
    """A tiny problem, its soft-optimal policy and a batch of m visited pairs with signed weights."""
    gen = torch.Generator().manual_seed(seed)
    prob = nonlinear_problem(random_transitions(S, A, gen), gamma=gamma, tau=0.5, n=n, gen=gen)
    if terminal:
        mask = torch.zeros(S, dtype=torch.bool)
        mask[-1] = True
        mdp = TabularMDP(prob.mdp.P, gamma=gamma, tau=0.5, terminal=mask)
        prob = BilevelProblem(mdp, reward=prob.reward_fn, upper=prob.upper_fn)
    x = torch.randn(n, generator=gen, dtype=F64)
    pi = lower_level(prob, x).pi
    states = torch.randint(0, S, (m,), generator=gen)
    actions = torch.randint(0, A, (m,), generator=gen)
    weights = torch.randn(m, generator=gen, dtype=F64)
    return prob, x, pi, states, actions, weights


def follower_paths(prob, pi, n: int = 200, horizon: int = 30, seed: int = 0):
    """On-policy trajectories of the follower from rho: the experience "continuation" and "td-critic" learn from."""
    return sample_trajectories(prob.mdp, pi, n, horizon, generator=torch.Generator().manual_seed(seed))


def dense_exact(prob, x, pi, states, actions, weights) -> torch.Tensor:
    """``sum_i w_i (dQ(s_i,a_i) - dV(s_i))`` with the explicit Jacobian and ``(I - gamma P Pi)^{-1}`` on (S*A)."""
    mdp = prob.mdp
    S, A = mdp.shape
    J = torch.autograd.functional.jacobian(prob.reward, x.detach().clone()).reshape(S * A, -1)  # (S*A, n)
    Pi = torch.zeros(S, S * A, dtype=F64)
    Pi[torch.arange(S).repeat_interleave(A), torch.arange(S * A)] = pi.reshape(-1)
    P = mdp.P.reshape(S * A, S)  # terminal rows are zero
    dQ = torch.linalg.solve(torch.eye(S * A, dtype=F64) - mdp.gamma * P @ Pi, J)  # (S*A, n)
    dV = Pi @ dQ  # (S, n)
    return (weights.unsqueeze(1) * (dQ[states * A + actions] - dV[states])).sum(dim=0)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("terminal", [False, True])
def test_critic_is_exact(gamma, terminal):
    case = make_case(gamma, seed=1, terminal=terminal)
    E, samples = exploration_term(*case, estimator="critic")
    exact = dense_exact(*case)
    assert samples == 0
    assert exact.norm() > 1e-3
    torch.testing.assert_close(E, exact, rtol=0, atol=1e-10)


def test_one_step_exact_at_gamma_zero_and_biased_otherwise(capsys):
    case = make_case(0.0, seed=2)
    E, samples = exploration_term(*case, estimator="one-step")
    assert samples == 0
    torch.testing.assert_close(E, dense_exact(*case), rtol=0, atol=1e-12)

    case = make_case(0.9, seed=2)
    E, _ = exploration_term(*case, estimator="one-step")
    exact = dense_exact(*case)
    bias = ((E - exact).norm() / exact.norm()).item()
    with capsys.disabled():
        print(f"\none-step relative bias at gamma=0.9: {bias:.3g}")
    assert bias > 1e-2


@pytest.mark.parametrize(("gamma", "horizon"), [(0.5, 40), (0.9, 120)])
@pytest.mark.parametrize("terminal", [False, True])
def test_monte_carlo_mean_matches_exact(gamma, horizon, terminal, capsys):
    case = make_case(gamma, seed=3, terminal=terminal)
    exact = dense_exact(*case)
    seeds = 16
    estimates = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        E, samples = exploration_term(*case, estimator="monte-carlo", horizon=horizon, rollouts=500, generator=gen)
        assert samples > 0
        estimates.append(E)
    est = torch.stack(estimates)
    mean, se = est.mean(dim=0), est.std(dim=0) / seeds**0.5
    rel = ((mean - exact).norm() / exact.norm()).item()
    z = ((mean - exact).abs() / se).max().item()
    with capsys.disabled():
        print(f"\nmonte-carlo gamma={gamma} terminal={terminal}: relative error {rel:.3g}, max |z| {z:.2f}")
    assert rel < 0.1
    assert z < 5.0


def test_monte_carlo_is_deterministic_given_the_seed():
    case = make_case(0.9, seed=4)
    options = {"estimator": "monte-carlo", "horizon": 30, "rollouts": 8}
    a, na = exploration_term(*case, **options, generator=torch.Generator().manual_seed(7))
    b, nb = exploration_term(*case, **options, generator=torch.Generator().manual_seed(7))
    c, _ = exploration_term(*case, **options, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert na == nb
    assert not torch.equal(a, c)


def test_bad_input_fails_clearly():
    case = make_case(0.5, seed=5)
    with pytest.raises(ValueError, match="unknown estimator 'td'; valid: one-step, monte-carlo, continuation, td-"):
        exploration_term(*case, estimator="td")
    with pytest.raises(ValueError, match="rollouts must be an integer >= 1, got 0"):
        exploration_term(*case, estimator="monte-carlo", rollouts=0)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        exploration_term(*case, estimator="critic", horizon=0)
    prob, x, pi, states, actions, weights = case
    paths = follower_paths(prob, pi)
    for estimator in ESTIMATORS:
        with pytest.raises(ValueError, match="same length, got states 6, actions 5, weights 6"):
            exploration_term(prob, x, pi, states, actions[:5], weights, estimator=estimator, paths=paths)
    for estimator in ("continuation", "td-critic"):
        with pytest.raises(ValueError, match=f"estimator '{estimator}' learns from the follower's trajectories"):
            exploration_term(*case, estimator=estimator)
    with pytest.raises(ValueError, match="pairs must be an integer >= 1, got 0"):
        exploration_term(*case, estimator="monte-carlo", pairs=0)
    with pytest.raises(ValueError, match="not both: rollouts = 2"):
        exploration_term(*case, estimator="monte-carlo", pairs=4, rollouts=2)
    with pytest.raises(ValueError, match="states must lie in"):
        exploration_term(prob, x, pi, states + 5, actions, weights, estimator="one-step")
    with pytest.raises(ValueError, match=r"does not allow \(restarts=False\)"):
        exploration_term(*case, estimator="monte-carlo", restarts=False)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_one_reward_call_one_backward(estimator):
    prob, x, pi, states, actions, weights = make_case(0.9, seed=6)
    calls = {"reward": 0, "backward": 0}
    reward_fn = prob.reward_fn

    def counting_reward(z):
        calls["reward"] += 1
        r = reward_fn(z)
        if r.requires_grad:
            r.register_hook(lambda grad: calls.__setitem__("backward", calls["backward"] + 1))
        return r

    prob.reward_fn = counting_reward
    gen = torch.Generator().manual_seed(0)
    paths = follower_paths(prob, pi)
    E, _ = exploration_term(
        prob, x, pi, states, actions, weights, estimator=estimator, horizon=20, rollouts=4, generator=gen, paths=paths
    )
    assert calls == {"reward": 1, "backward": 1}
    assert E.shape == x.shape and E.dtype == F64


def test_empty_batch_gives_zero():
    prob, x, pi, *_ = make_case(0.5, seed=7)
    empty = torch.zeros(0, dtype=torch.long)
    for estimator in ESTIMATORS:
        E, samples = exploration_term(
            prob, x, pi, empty, empty, torch.zeros(0, dtype=F64), estimator=estimator, paths=follower_paths(prob, pi)
        )
        assert samples == 0
        torch.testing.assert_close(E, torch.zeros_like(x), rtol=0, atol=0)


@pytest.mark.parametrize("estimator", ["continuation", "td-critic"])
@pytest.mark.parametrize("terminal", [False, True])
def test_estimators_from_the_followers_paths_are_consistent(estimator, terminal, capsys):
    """No restarts: learned from on-policy trajectories, the estimate approaches the exact one as they grow."""
    case = make_case(0.9, seed=3, terminal=terminal)
    prob, _, pi, *_ = case
    exact = dense_exact(*case)
    errors = []
    for n in (300, 30_000):
        paths = follower_paths(prob, pi, n=n, horizon=150, seed=n)
        E, samples = exploration_term(*case, estimator=estimator, paths=paths, horizon=100)
        assert samples == 0
        errors.append(((E - exact).norm() / exact.norm()).item())
    with capsys.disabled():
        print(f"\n{estimator} terminal={terminal}: relative error {errors[0]:.3g} / {errors[1]:.3g} (300 / 30k paths)")
    # With the terminal state some pairs are rare under pi (~2,000 visits in 30k paths): the error there is
    # sampling noise of about 0.1 (0.03-0.16 over sampler streams), still falling like 1/sqrt(paths).
    assert errors[1] < (0.3 if terminal else 0.05)
    assert errors[1] < errors[0] / 3


def test_td_critic_equals_the_exact_critic_when_transitions_are_deterministic():
    """With one-hot P, any observed transition gives the exact row of P: the TD fixed point is the exact critic."""
    S, A = 5, 3
    gen = torch.Generator().manual_seed(11)
    P = torch.nn.functional.one_hot(torch.randint(0, S, (S, A), generator=gen), S).to(F64)
    prob = nonlinear_problem(P, gamma=0.9, tau=0.5, n=4, gen=gen)
    x = torch.randn(4, generator=gen, dtype=F64)
    pi = lower_level(prob, x).pi
    starts = torch.arange(S).repeat_interleave(A)
    paths = sample_trajectories(
        prob.mdp, pi, S * A, 2, start_states=starts, start_actions=torch.arange(A).repeat(S), generator=gen
    )
    states, actions = torch.randint(0, S, (6,), generator=gen), torch.randint(0, A, (6,), generator=gen)
    weights = torch.randn(6, generator=gen, dtype=F64)
    case = (prob, x, pi, states, actions, weights)
    E, _ = exploration_term(*case, estimator="td-critic", paths=paths)
    torch.testing.assert_close(E, dense_exact(*case), rtol=0, atol=1e-9)


def test_monte_carlo_with_a_total_number_of_pairs_is_unbiased(capsys):
    case = make_case(0.9, seed=3)
    exact = dense_exact(*case)
    seeds = 16
    est = torch.stack(
        [
            exploration_term(
                *case, estimator="monte-carlo", horizon=120, pairs=3000, generator=torch.Generator().manual_seed(seed)
            )[0]
            for seed in range(seeds)
        ]
    )
    mean, se = est.mean(dim=0), est.std(dim=0) / seeds**0.5
    z = ((mean - exact).abs() / se).max().item()
    rel = ((mean - exact).norm() / exact.norm()).item()
    with capsys.disabled():
        print(f"\nmonte-carlo, 3000 pairs drawn by |w|: relative error {rel:.3g}, max |z| {z:.2f}")
    assert rel < 0.1
    assert z < 5.0
