"""Bad input fails fast, naming the field and the allowed values."""

from __future__ import annotations

import re

import pytest
import torch

from conftest import F64, nonlinear_problem, random_transitions, to_sparse
from sobirl.algorithms import METHODS, solve
from sobirl.tabular import BilevelProblem, TabularMDP, hypergradient, hyperobjective, soft_value_iteration


@pytest.fixture
def P():
    return random_transitions(4, 3, torch.Generator().manual_seed(0))


@pytest.fixture
def prob(P):
    return nonlinear_problem(P, gamma=0.9, tau=1.0, n=2, gen=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda P: P[:, :, :3], r"shape \(S, A, S\)"),
        (lambda P: P.reshape(12, 4), r"shape \(S, A, S\)"),
        (lambda P: P.reshape(12, 4)[:11].to_sparse(), r"shape \(S\*A, S\)"),
        (lambda P: P * 1.1, "sum to 1"),
        (lambda P: torch.cat([P[..., :1] * 0 - 0.5, P[..., 1:] + 0.5 / 3], dim=-1), "non-negative"),
        (lambda P: P.masked_fill(P.max() == P, float("nan")), "finite"),
        (lambda P: P.masked_fill(P.max() == P, float("inf")), "finite"),
        (lambda P: P.to(torch.int64), "floating"),
        (lambda P: to_sparse(P).to_sparse_csc(), "layout"),
    ],
)
def test_bad_transitions(P, make, match):
    with pytest.raises(ValueError, match=match):
        TabularMDP(make(P), gamma=0.9, tau=1.0)


def test_sparse_row_sums_checked(P):
    bad = P.clone()
    bad[0, 0] *= 0.5
    with pytest.raises(ValueError, match="sum to 1"):
        TabularMDP(to_sparse(bad), gamma=0.9, tau=1.0)


def test_P_must_be_a_tensor(P):
    with pytest.raises(TypeError, match=r"P must be a torch\.Tensor"):
        TabularMDP(P.numpy(), gamma=0.9, tau=1.0)


@pytest.mark.parametrize("gamma", [-0.1, 1.0, 1.5, float("nan")])
def test_gamma_range(P, gamma):
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\)"):
        TabularMDP(P, gamma=gamma, tau=1.0)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf")])
def test_tau_positive(P, tau):
    with pytest.raises(ValueError, match=r"tau must be in \(0, inf\)"):
        TabularMDP(P, gamma=0.9, tau=tau)


@pytest.mark.parametrize(
    ("rho", "match"),
    [
        (torch.tensor([0.5, 0.5, 0.0], dtype=F64), r"shape \(S,\)"),
        (torch.tensor([0.5, 0.5, 0.5, -0.5], dtype=F64), "probability distribution"),
        (torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=F64), "probability distribution"),
        (torch.tensor([0.5, 0.5, float("nan"), 0.0], dtype=F64), "finite"),
    ],
)
def test_rho_is_a_distribution(P, rho, match):
    with pytest.raises(ValueError, match=match):
        TabularMDP(P, gamma=0.9, tau=1.0, rho=rho)


def test_reward_of_wrong_shape(P):
    prob = BilevelProblem(TabularMDP(P), reward=lambda x: torch.zeros(3, 3, dtype=F64), upper=lambda x, pi: pi.sum())
    with pytest.raises(ValueError, match=r"reward\(x\) must have shape \(S, A\) = \(4, 3\)"):
        hypergradient(prob, torch.zeros(2, dtype=F64))


def test_reward_not_finite(P):
    prob = BilevelProblem(
        TabularMDP(P), reward=lambda x: torch.full((4, 3), float("nan"), dtype=F64), upper=lambda x, pi: pi.sum()
    )
    with pytest.raises(ValueError, match=r"reward\(x\) must be finite"):
        hyperobjective(prob, torch.zeros(2, dtype=F64))


def test_upper_not_scalar(P):
    prob = BilevelProblem(TabularMDP(P), reward=lambda x: torch.zeros(4, 3, dtype=F64), upper=lambda x, pi: pi)
    with pytest.raises(ValueError, match=r"upper\(x, pi\) must return a 0-dim"):
        hypergradient(prob, torch.zeros(2, dtype=F64))


@pytest.mark.parametrize(
    "x", [torch.zeros(2, 2, dtype=F64), torch.zeros(2, dtype=torch.int64), torch.tensor([0.0, float("nan")])]
)
def test_x_is_a_1d_floating_finite_tensor(prob, x):
    with pytest.raises(ValueError, match="x"):
        hypergradient(prob, x)


def test_x_not_a_tensor(prob):
    with pytest.raises(TypeError, match=r"1-D floating torch\.Tensor"):
        hyperobjective(prob, [0.0, 1.0])


def test_unknown_method_lists_valid_ones(prob):
    with pytest.raises(ValueError, match=re.escape("unknown method 'adam'; valid: " + ", ".join(METHODS))):
        solve(prob, torch.zeros(2, dtype=F64), method="adam")


def test_unknown_method_parameter_lists_valid_ones(prob):
    with pytest.raises(TypeError, match=r"unknown parameter.*lr.*valid: beta, clip, zeta, inner_steps"):
        solve(prob, torch.zeros(2, dtype=F64), method="m-sobirl", lr=0.1)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"beta": 0.0}, "beta"),
        ({"zeta": -1.0}, "zeta"),
        ({"inner_steps": 0}, "inner_steps"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_bad_method_parameters(prob, params, match):
    with pytest.raises(ValueError, match=match):
        solve(prob, torch.zeros(2, dtype=F64), **params)


def test_unknown_solver(prob):
    with pytest.raises(ValueError, match="unknown solver 'lp'; valid: policy-iteration, value-iteration"):
        hypergradient(prob, torch.zeros(2, dtype=F64), solver="lp")


def test_bad_tolerance(prob):
    with pytest.raises(ValueError, match="tol"):
        soft_value_iteration(prob.mdp, torch.zeros(4, 3, dtype=F64), tol=0.0)
