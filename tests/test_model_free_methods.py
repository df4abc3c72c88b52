"""sobirl-mf and stoc-sobirl through solve(): convergence against exact gradient descent, STORM, errors."""

from __future__ import annotations

import pytest
import torch

from sobirl.algorithms import METHODS, solve
from sobirl.algorithms.stoc_sobirl import StocSoBiRL
from sobirl.estimators.hypergradient import HypergradientEstimate
from sobirl.problems import four_rooms, random_mdp, tabular_rlhf

ITERATIONS = 200


@pytest.fixture(scope="module")
def rlhf():
    return tabular_rlhf()


@pytest.fixture(scope="module")
def exact_descent(rlhf):
    return solve(rlhf, rlhf.x0, "exact", ITERATIONS, evaluate_every=ITERATIONS)


@pytest.mark.parametrize("lower", ["q-learning", "exact"])
def test_stoc_sobirl_matches_exact_gradient_descent(rlhf, exact_descent, lower, capsys):
    """Must hold: on tabular_rlhf, within 5% of exact GD's objective at the same number of outer iterations."""
    result = solve(rlhf, rlhf.x0, "stoc-sobirl", ITERATIONS, evaluate_every=ITERATIONS, lower=lower)
    f_exact = exact_descent.history["exact_objective"][-1]
    f_stoc = result.history["exact_objective"][-1]
    f_start = exact_descent.history["exact_objective"][0]
    samples = result.history["samples_total"][-1]
    with capsys.disabled():
        print(
            f"\nstoc-sobirl ({lower}) after {ITERATIONS} iterations: phi {f_stoc:.5f} vs exact GD {f_exact:.5f} "
            f"(start {f_start:.5f}), {samples:.3g} transitions"
        )
    assert abs(f_stoc - f_exact) / abs(f_exact) < 0.05
    # Stricter than the must-hold: most of the decrease that exact GD achieves.
    assert f_start - f_stoc > 0.9 * (f_start - f_exact)


def test_sobirl_mf_with_exact_ingredients_follows_exact_descent(rlhf, exact_descent):
    """Exact follower + exact critic + a large batch: the iterates stay close to exact gradient descent."""
    result = solve(rlhf, rlhf.x0, "sobirl-mf", ITERATIONS, lower="exact", estimator="critic", batch=20_000)
    assert (result.x - exact_descent.x).norm() / exact_descent.x.norm() < 0.05


@pytest.mark.parametrize("method", ["sobirl-mf", "stoc-sobirl"])
def test_same_seed_same_run(rlhf, method):
    runs = [solve(rlhf, rlhf.x0, method, 5, batch=50, seed=seed).history.rows for seed in (1, 1, 2)]
    strip = [[{k: v for k, v in row.items() if k != "wall_time"} for row in rows] for rows in runs]
    assert strip[0] == strip[1]
    assert strip[0] != strip[2]


@pytest.mark.parametrize("method", ["sobirl-mf", "stoc-sobirl"])
def test_samples_are_counted(rlhf, method):
    history = solve(rlhf, rlhf.x0, method, 3, batch=10, lower_steps=2, samples_per_pair=4).history
    S, A = rlhf.mdp.shape
    lower = 2 * S * A * 4
    # per estimate: 2 fragments of H = 3 steps per pair, no restarts for td-critic; stoc-sobirl estimates twice
    # from its second iteration on.
    per_estimate = 10 * 2 * 3
    twice = 2 if method == "stoc-sobirl" else 1
    assert history["samples"] == [lower + per_estimate, lower + twice * per_estimate, lower + twice * per_estimate]
    assert history["samples_total"][-1] == sum(history["samples"])


def test_storm_recursion(rlhf, monkeypatch):
    """h_k = g(x_k; B_k) + (1 - eta_k)(h_{k-1} - g(x_{k-1}; B_k)), both estimates on the same batch."""
    calls = []

    def fake_estimate(self, x, pi, generator):
        seed = generator.initial_seed()
        calls.append((x.clone(), seed))
        grad = 2.0 * x + torch.full_like(x, float(seed % 1000) / 1000.0)  # a gradient plus batch noise
        return HypergradientEstimate(grad, 0.0, 1)

    monkeypatch.setattr(StocSoBiRL, "estimate", fake_estimate)
    x0 = torch.linspace(-1.0, 1.0, rlhf.x0.numel(), dtype=torch.float64)
    result = solve(rlhf, x0, "stoc-sobirl", 3, lower="exact", beta=0.1, eta=0.5, decay=0.0)
    assert len(calls) == 5
    assert calls[1][1] == calls[2][1] and calls[3][1] == calls[4][1]  # the same batch at x_k and x_{k-1}
    assert torch.equal(calls[2][0], x0) and torch.equal(calls[4][0], calls[1][0])
    x = [x0]
    h = None
    for k in range(3):
        noise = (calls[0 if k == 0 else 2 * k - 1][1] % 1000) / 1000.0
        g_new = 2.0 * x[k] + noise
        h = g_new if h is None else g_new + 0.5 * (h - (2.0 * x[k - 1] + noise))
        x.append(x[k] - 0.1 * h)
    torch.testing.assert_close(result.x, x[-1], rtol=0, atol=1e-12)
    assert result.history["eta"] == [0.5, 0.5, 0.5] and result.history["beta"] == [0.1, 0.1, 0.1]


def test_storm_schedules(rlhf):
    history = solve(rlhf, rlhf.x0, "stoc-sobirl", 3, batch=5, beta=0.2, eta=0.8, decay=2.0).history
    for k, (beta, eta) in enumerate(zip(history["beta"], history["eta"], strict=True)):
        assert beta == pytest.approx(0.2 * (1 + k / 2.0) ** (-1 / 3))
        assert eta == pytest.approx(0.8 * (1 + k / 2.0) ** (-2 / 3))


def test_four_rooms_runs_model_free(capsys):
    """The leader's value in sampled form: both methods run on the contextual four-rooms problem."""
    prob = four_rooms(gamma=0.9)
    for method in ("sobirl-mf", "stoc-sobirl"):
        history = solve(prob, prob.x0, method, 2, batch=20, evaluate_every=1).history
        assert all(torch.isfinite(torch.tensor(history["grad_norm"])))


def test_bad_input_fails_clearly(rlhf):
    assert {"sobirl-mf", "stoc-sobirl"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown estimator 'td'; valid: one-step"):
        solve(rlhf, rlhf.x0, "sobirl-mf", 1, estimator="td")
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        solve(rlhf, rlhf.x0, "stoc-sobirl", 1, batch=0)
    with pytest.raises(ValueError, match="unknown lower 'sarsa'; valid: q-learning, exact"):
        solve(rlhf, rlhf.x0, "sobirl-mf", 1, lower="sarsa")
    with pytest.raises(ValueError, match="samples_per_pair must be an integer >= 1, got 0"):
        solve(rlhf, rlhf.x0, "sobirl-mf", 1, samples_per_pair=0)
    with pytest.raises(ValueError, match=r"eta must be in \(0, 1\]"):
        solve(rlhf, rlhf.x0, "stoc-sobirl", 1, eta=0.0)
    synthetic = random_mdp(S=4, A=2, n=3)
    with pytest.raises(ValueError, match="has no sampled form of its upper objective"):
        solve(synthetic, synthetic.x0, "sobirl-mf", 1)
