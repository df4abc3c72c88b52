"""The sample-based lower level (docs/math.md, section 2): soft Q-learning and soft policy evaluation from samples.

Every tolerance below was set from the errors measured over 30 seeds, with a margin of at least 2x: the
assertions must survive any change of the random stream.
"""

from __future__ import annotations

import pytest
import torch

from conftest import F64, random_transitions, to_sparse
from sobirl.tabular import TabularMDP, policy_value, soft_bellman, soft_value_iteration
from sobirl.tabular.sampled import SampledSoftSolution, soft_policy_evaluation, soft_q_learning
from sobirl.validation import NonFiniteError

GAMMA, TAU = 0.9, 0.5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mdp(sparse: bool = False, terminal: torch.Tensor | None = None, P: torch.Tensor | None = None) -> TabularMDP:
    P = random_transitions(5, 3, _gen(0)) if P is None else P
    return TabularMDP(to_sparse(P) if sparse else P, gamma=GAMMA, tau=TAU, terminal=terminal)


def _reward(seed: int = 1) -> torch.Tensor:
    return torch.randn(5, 3, generator=_gen(seed), dtype=F64)


def _policy() -> torch.Tensor:
    """A fixed policy with a zero entry, so the entropy term needs 0 log 0 = 0."""
    pi = torch.softmax(torch.randn(5, 3, generator=_gen(3), dtype=F64), dim=1)
    pi[0] = torch.tensor([0.0, 0.3, 0.7], dtype=F64)
    return pi


def _exact_q_pi(mdp: TabularMDP, r: torch.Tensor, pi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The soft ``Q^pi = r + gamma P V^pi`` and ``V^pi`` by a linear solve."""
    V = policy_value(mdp, pi, r, entropy=True)
    return r + mdp.gamma * mdp.expect(V), V


def _expectation_step(mdp: TabularMDP, r: torch.Tensor, pi: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """The exact soft Bellman expectation operator ``r + gamma P (sum_a pi (Q - tau log pi))``."""
    V = (pi * Q).sum(dim=1) - mdp.tau * torch.special.xlogy(pi, pi).sum(dim=1)
    return r + mdp.gamma * mdp.expect(V)


def _err(Q: torch.Tensor, Q_ref: torch.Tensor) -> float:
    return (Q - Q_ref).abs().max().item()


@pytest.mark.parametrize("sparse", [False, True])
def test_q_learning_converges_to_soft_value_iteration(sparse):
    """Constant lr = 1 (empirical soft VI): the error floor shrinks like 1/sqrt(samples_per_pair).

    Measured max |Q - Q*| over 30 seeds (|Q*| ~ 6.5): ~0.5-0.8 at 1 sample, 0.02-0.12 at 64, 0.004-0.027 at 1024.
    """
    mdp, r = _mdp(sparse), _reward()
    Q_star = soft_value_iteration(mdp, r, tol=1e-13).Q
    errors = {
        m: _err(soft_q_learning(mdp, r, steps=100, samples_per_pair=m, lr=1.0, generator=_gen(7)).Q, Q_star)
        for m in (1, 64, 1024)
    }
    assert errors[1024] < 0.06
    assert errors[64] < 0.25
    assert errors[64] < errors[1] / 2
    assert errors[1024] < errors[1] / 5


def test_rescaled_linear_schedule_converges_and_continues_across_calls():
    """The default schedule converges with 4 samples per pair; a warm start with ``step_offset`` continues it.

    Measured over 30 seeds: 0.34-0.45 after 150 steps, 0.03-0.07 after 1500.
    """
    mdp, r = _mdp(), _reward()
    Q_star = soft_value_iteration(mdp, r, tol=1e-13).Q
    first = soft_q_learning(mdp, r, steps=150, samples_per_pair=4, generator=_gen(0))
    more = soft_q_learning(mdp, r, Q0=first.Q, steps=1350, samples_per_pair=4, step_offset=150, generator=_gen(1))
    assert _err(more.Q, Q_star) < 0.15 < _err(first.Q, Q_star)
    assert _err(more.Q, Q_star) < _err(first.Q, Q_star) / 3


@pytest.mark.parametrize("sparse", [False, True])
def test_deterministic_transitions_give_the_exact_updates(sparse):
    """With one successor per pair every sample is the expectation: the updates match the exact operators to
    rounding, including terminal states, the rescaled-linear schedule with an offset and the evaluation target."""
    gen = _gen(5)
    successor = torch.randint(0, 5, (5, 3), generator=gen)
    P = torch.nn.functional.one_hot(successor, 5).to(F64)
    terminal = torch.tensor([False, True, False, False, True])
    mdp, r = _mdp(sparse, terminal=terminal, P=P), _reward()
    Q0 = torch.randn(5, 3, generator=gen, dtype=F64)

    sol = soft_q_learning(mdp, r, Q0=Q0, steps=5, samples_per_pair=2, lr=1.0, generator=_gen(0))
    torch.testing.assert_close(sol.Q, soft_bellman(mdp, r, Q0, steps=5), rtol=0, atol=1e-12)

    sol = soft_q_learning(mdp, r, Q0=Q0, steps=4, step_offset=3, generator=_gen(0))
    Q = Q0
    for k in range(3, 7):
        Q = Q + (soft_bellman(mdp, r, Q) - Q) / (1 + (1 - GAMMA) * (k + 1))
    torch.testing.assert_close(sol.Q, Q, rtol=0, atol=1e-12)

    pi = _policy()
    sol = soft_policy_evaluation(mdp, r, pi, Q0=Q0, steps=3, lr=0.5, generator=_gen(0))
    Q = Q0
    for _ in range(3):
        Q = Q + 0.5 * (_expectation_step(mdp, r, pi, Q) - Q)
    torch.testing.assert_close(sol.Q, Q, rtol=0, atol=1e-12)


def test_one_step_with_many_samples_is_the_expected_step():
    """20000 successors per pair: one sampled step is one exact step up to Monte-Carlo noise (measured <= 9e-3)."""
    mdp, r = _mdp(), _reward()
    Q0 = torch.randn(5, 3, generator=_gen(2), dtype=F64)
    sol = soft_q_learning(mdp, r, Q0=Q0, steps=1, samples_per_pair=20_000, lr=1.0, generator=_gen(0))
    assert _err(sol.Q, soft_bellman(mdp, r, Q0)) < 2.5e-2
    pi = _policy()
    sol = soft_policy_evaluation(mdp, r, pi, Q0=Q0, steps=1, samples_per_pair=20_000, lr=0.5, generator=_gen(0))
    assert _err(sol.Q, Q0 + 0.5 * (_expectation_step(mdp, r, pi, Q0) - Q0)) < 2e-2


@pytest.mark.parametrize("sparse", [False, True])
def test_policy_evaluation_converges_to_the_soft_q_of_the_policy(sparse):
    """Measured over 30 seeds: max |Q - Q^pi| <= 0.017 and |V - V^pi| <= 0.012 at 1024 samples per pair."""
    mdp, r, pi = _mdp(sparse), _reward(), _policy()
    Q_pi, V_pi = _exact_q_pi(mdp, r, pi)
    many = soft_policy_evaluation(mdp, r, pi, steps=100, samples_per_pair=1024, lr=1.0, generator=_gen(4))
    one = soft_policy_evaluation(mdp, r, pi, steps=100, samples_per_pair=1, lr=1.0, generator=_gen(4))
    assert _err(many.Q, Q_pi) < 0.05
    assert _err(many.V, V_pi) < 0.05
    assert _err(many.Q, Q_pi) < _err(one.Q, Q_pi) / 2
    torch.testing.assert_close(many.pi, pi)


def test_terminal_states_add_no_successor_value():
    """In a terminal state ``Q(s, a) = r(s, a)`` after any lr = 1 step; the rest converges to the exact solution
    (measured max error 0.02-0.06 over 30 seeds)."""
    terminal = torch.tensor([False, False, True, False, True])
    mdp, r = _mdp(terminal=terminal), _reward()
    Q0 = 10.0 + torch.randn(5, 3, generator=_gen(2), dtype=F64)
    sol = soft_q_learning(mdp, r, Q0=Q0, steps=1, lr=1.0, generator=_gen(0))
    torch.testing.assert_close(sol.Q[terminal], r[terminal], rtol=0, atol=1e-12)
    Q_star = soft_value_iteration(mdp, r, tol=1e-13).Q
    sol = soft_q_learning(mdp, r, steps=60, samples_per_pair=2048, lr=1.0, generator=_gen(0))
    assert _err(sol.Q, Q_star) < 0.15


def test_warm_start_at_the_solution_stays_close():
    """From ``Q*`` with lr = 0.1 and 16 samples per pair, 20 steps stay within 0.06 (measured over 30 seeds);
    the same steps from zero are still ~5 away."""
    mdp, r = _mdp(), _reward()
    Q_star = soft_value_iteration(mdp, r, tol=1e-13).Q
    warm = soft_q_learning(mdp, r, Q0=Q_star, steps=20, samples_per_pair=16, lr=0.1, generator=_gen(0))
    cold = soft_q_learning(mdp, r, steps=20, samples_per_pair=16, lr=0.1, generator=_gen(0))
    assert _err(warm.Q, Q_star) < 0.15
    assert _err(cold.Q, Q_star) > 3.0


def test_result_fields_and_determinism():
    mdp, r = _mdp(sparse=True), _reward()

    def run(seed: int) -> SampledSoftSolution:
        return soft_q_learning(mdp, r, steps=7, samples_per_pair=3, generator=_gen(seed))

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.Q, b.Q) and not torch.equal(a.Q, c.Q)
    assert (a.steps, a.transitions) == (7, 7 * 15 * 3)
    assert a.Q.dtype == a.V.dtype == a.pi.dtype == F64
    torch.testing.assert_close(a.V, TAU * torch.logsumexp(a.Q / TAU, dim=1))
    torch.testing.assert_close(a.pi, torch.softmax(a.Q / TAU, dim=1))
    pe = soft_policy_evaluation(mdp, r, _policy(), steps=2, generator=_gen(0))
    assert (pe.steps, pe.transitions) == (2, 2 * 15)


def test_tiny_tau_and_large_rewards_stay_finite():
    """tau = 1e-3 with rewards of order 1e3: Q / tau ~ 1e6, handled by the stable log-sum-exp."""
    mdp = TabularMDP(random_transitions(5, 3, _gen(0)), gamma=GAMMA, tau=1e-3)
    r = 1e3 * _reward()
    sol = soft_q_learning(mdp, r, steps=20, samples_per_pair=4, lr=1.0, generator=_gen(0))
    assert torch.isfinite(sol.Q).all() and torch.isfinite(sol.V).all() and torch.isfinite(sol.pi).all()
    gap = sol.V - sol.Q.max(dim=1).values  # the soft max lies above the max, by at most tau log A
    assert (gap >= -1e-9).all() and (gap <= 1e-3 * torch.log(torch.tensor(3.0)) + 1e-9).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.0}, TypeError, "steps"),
        ({"samples_per_pair": 0}, ValueError, "samples_per_pair"),
        ({"step_offset": -1}, ValueError, "step_offset"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": 1.5}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": "linear"}, ValueError, "lr"),
        ({"Q0": torch.zeros(5, 2, dtype=F64)}, ValueError, "Q0"),
        ({"Q0": torch.full((5, 3), float("nan"), dtype=F64)}, NonFiniteError, "Q0"),
        ({"r": torch.zeros(3, 5, dtype=F64)}, ValueError, "reward"),
        ({"r": torch.full((5, 3), float("inf"), dtype=F64)}, NonFiniteError, "reward"),
        ({"generator": None}, TypeError, "generator"),
        ({"pi": torch.full((5, 3), 0.5, dtype=F64)}, ValueError, "pi"),
        ({"pi": torch.full((5, 4), 0.25, dtype=F64)}, ValueError, "pi"),
        ({"pi": torch.full((5, 3), float("nan"), dtype=F64)}, NonFiniteError, "pi"),
    ],
)
def test_bad_inputs_fail_fast_naming_the_field(kwargs, error, match):
    mdp = _mdp()
    args = {"r": _reward(), "steps": 1, "generator": _gen(0), **kwargs}
    pi = args.pop("pi", None)
    with pytest.raises(error, match=match):
        if pi is None:
            soft_q_learning(mdp, **args)
        else:
            soft_policy_evaluation(mdp, pi=pi, **args)
    if pi is None:  # the evaluation shares the checks
        with pytest.raises(error, match=match):
            soft_policy_evaluation(mdp, pi=_policy(), **args)
