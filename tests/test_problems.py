"""Problem builders: the grid world matches its definition; builders validate their arguments."""

from __future__ import annotations

import pytest
import torch

from sobirl.problems import random_mdp
from sobirl.problems.gridworld import MOVES, gridworld_mdp, gridworld_problem
from sobirl.tabular import hypergradient


def naive_gridworld(side: int, slip: float) -> torch.Tensor:
    """The definition, cell by cell: dense (S, 4, S)."""
    S = side * side
    P = torch.zeros(S, 4, S, dtype=torch.float64)
    for row in range(side):
        for col in range(side):
            s = row * side + col
            for a in range(4):
                for m, (dr, dc) in enumerate(MOVES):
                    r2, c2 = row + dr, col + dc
                    target = r2 * side + c2 if 0 <= r2 < side and 0 <= c2 < side else s
                    P[s, a, target] += (1 - slip) if m == a else slip / 3
    return P


@pytest.mark.parametrize("side", [1, 2, 5])
@pytest.mark.parametrize("slip", [0.0, 0.2, 1.0])
def test_gridworld_matches_the_definition(side, slip):
    mdp = gridworld_mdp(side, slip=slip)
    assert mdp.is_sparse and mdp.shape == (side * side, 4)
    dense = mdp.P.to_dense().view(side * side, 4, side * side)
    torch.testing.assert_close(dense, naive_gridworld(side, slip), rtol=0, atol=1e-15)


def test_gridworld_problem_is_seeded_and_has_one_parameter_per_state():
    prob = gridworld_problem(6, seed=3)
    assert prob.x0.shape == (36,)
    assert torch.equal(prob.x0, gridworld_problem(6, seed=3).x0)
    assert hypergradient(prob, prob.x0).shape == (36,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"side": 0}, "side"), ({"side": 3, "slip": 1.5}, r"slip must be in \[0, 1\]"), ({"side": 3, "tau": 0}, "tau")],
)
def test_gridworld_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gridworld_mdp(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [({"S": 1}, "S"), ({"gamma": 1.0}, "gamma"), ({"seed": -1}, "seed")])
def test_random_mdp_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_mdp(**kwargs)
