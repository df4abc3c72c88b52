"""Terminal states, differentiable policy evaluation, the leader's value and problems over contexts."""

from __future__ import annotations

import pytest
import torch

from conftest import F64, central_difference, nonlinear_problem, random_transitions, to_sparse
from sobirl.tabular import (
    BilevelProblem,
    TabularMDP,
    hypergradient,
    hyperobjective,
    soft_policy_iteration,
    soft_value_iteration,
)
from sobirl.tabular.contexts import Context, contextual_problem
from sobirl.tabular.evaluation import LeaderValue, policy_value


def chain_with_goal(sparse: bool) -> TabularMDP:
    """3 states; action 0 moves right, action 1 stays; state 2 is terminal (its row is all zero)."""
    P = torch.zeros(3, 2, 3, dtype=F64)
    P[0, 0, 1] = P[1, 0, 2] = 1.0
    P[0, 1, 0] = P[1, 1, 1] = 1.0
    terminal = torch.tensor([False, False, True])
    return TabularMDP(to_sparse(P) if sparse else P, gamma=0.9, tau=0.5, terminal=terminal)


@pytest.mark.parametrize("sparse", [False, True])
def test_terminal_state_collects_its_reward_and_nothing_follows(sparse):
    mdp = chain_with_goal(sparse)
    r = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=F64)
    for solve in (soft_value_iteration, soft_policy_iteration):
        sol = solve(mdp, r, tol=1e-13)
        torch.testing.assert_close(sol.Q[2], r[2])  # Q(goal, a) = r(goal, a)
        assert sol.V[2].item() == pytest.approx(0.5 * torch.logsumexp(r[2] / 0.5, 0).item(), abs=1e-12)
        assert sol.Q[1, 0].item() == pytest.approx(0.9 * sol.V[2].item(), abs=1e-12)


def test_terminal_rows_are_not_required_to_sum_to_one():
    P = torch.zeros(2, 1, 2, dtype=F64)
    P[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="non-terminal state must sum to 1"):
        TabularMDP(P)
    TabularMDP(P, terminal=torch.tensor([False, True]))


def test_terminal_mask_is_validated():
    P = random_transitions(3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"terminal must have shape \(S,\) = \(3,\)"):
        TabularMDP(P, terminal=torch.tensor([True, False]))
    with pytest.raises(TypeError, match="boolean"):
        TabularMDP(P, terminal=torch.tensor([1, 0, 0]))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("entropy", [False, True])
def test_policy_value_and_its_gradients(sparse, entropy):
    gen = torch.Generator().manual_seed(1)
    P = random_transitions(5, 3, gen)
    mdp = TabularMDP(to_sparse(P) if sparse else P, gamma=0.9, tau=0.3)
    logits = torch.randn(5, 3, generator=gen, dtype=F64)
    r = torch.randn(5, 3, generator=gen, dtype=F64)
    w = torch.randn(5, generator=gen, dtype=F64)
    # The soft value of the soft-optimal policy is the soft Bellman solution.
    if entropy:
        sol = soft_policy_iteration(mdp, r, tol=1e-14)
        torch.testing.assert_close(policy_value(mdp, sol.pi, r, entropy=True), sol.V, rtol=1e-10, atol=1e-12)

    def loss(z: torch.Tensor) -> torch.Tensor:
        pi = torch.softmax(z[:15].view(5, 3), dim=1)
        return w @ policy_value(mdp, pi, z[15:].view(5, 3), entropy=entropy)

    z = torch.cat([logits.reshape(-1), r.reshape(-1)]).requires_grad_(True)
    (g,) = torch.autograd.grad(loss(z), z)
    fd = central_difference(lambda v: loss(v).detach(), z.detach(), 1e-4)
    torch.testing.assert_close(g, fd, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("sparse", [False, True])
def test_leader_value_problem_gradient(sparse):
    gen = torch.Generator().manual_seed(2)
    P = random_transitions(6, 3, gen)
    mdp = TabularMDP(to_sparse(P) if sparse else P, gamma=0.9, tau=0.2)
    F = torch.randn(6, 3, 4, generator=gen, dtype=F64)
    R_L = torch.randn(6, 3, generator=gen, dtype=F64)
    prob = BilevelProblem(
        mdp,
        reward=lambda x: torch.tanh(F @ x),
        upper=LeaderValue(mdp, lambda x: R_L - 0.1 * (x**2).sum()),
    )
    x = torch.randn(4, generator=gen, dtype=F64)
    g = hypergradient(prob, x)
    fd = central_difference(lambda z: hyperobjective(prob, z), x, 1e-4)
    assert ((g - fd).norm() / g.norm()).item() <= 1e-6


def test_contexts_average_objective_and_gradient():
    gen = torch.Generator().manual_seed(3)
    n = 3
    singles, contexts = [], []
    for i, (S, weight) in enumerate([(4, 0.25), (6, 0.75)]):
        P = random_transitions(S, 2, gen)
        if i == 1:
            P = to_sparse(P)
        single = nonlinear_problem(P, gamma=0.9, tau=0.5, n=n, gen=gen)
        singles.append((single, weight))
        contexts.append(Context(single.mdp, single.reward_fn, single.upper_fn, weight))
    joint = contextual_problem(contexts)
    assert joint.mdp.n_states == 10 and joint.context_slices == [slice(0, 4), slice(4, 10)]
    x = torch.randn(n, generator=gen, dtype=F64)
    expected_f = sum(w * hyperobjective(p, x) for p, w in singles)
    expected_g = sum(w * hypergradient(p, x) for p, w in singles)
    assert hyperobjective(joint, x).item() == pytest.approx(expected_f.item(), abs=1e-10)
    torch.testing.assert_close(hypergradient(joint, x), expected_g, rtol=1e-9, atol=1e-12)


def test_contexts_must_match():
    gen = torch.Generator().manual_seed(4)
    a = TabularMDP(random_transitions(3, 2, gen), gamma=0.9)
    b = TabularMDP(random_transitions(3, 2, gen), gamma=0.5)
    r = lambda x: torch.zeros(3, 2, dtype=F64)  # noqa: E731
    f = lambda x, pi: pi.sum()  # noqa: E731
    with pytest.raises(ValueError, match="context 1: gamma"):
        contextual_problem([Context(a, r, f, 0.5), Context(b, r, f, 0.5)])
    with pytest.raises(ValueError, match="context weights must be a probability distribution"):
        contextual_problem([Context(a, r, f, 0.5), Context(a, r, f, 0.6)])


def test_soft_policy_value_gradient_is_finite_where_pi_is_zero():
    mdp = TabularMDP(random_transitions(3, 2, torch.Generator().manual_seed(5)), gamma=0.9, tau=0.1)
    pi = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=F64, requires_grad=True)
    r = torch.ones(3, 2, dtype=F64)
    (g,) = torch.autograd.grad(policy_value(mdp, pi, r, entropy=True).sum(), pi)
    assert torch.isfinite(g).all()
