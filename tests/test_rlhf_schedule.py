"""The query schedule: C(0) = initial, totals exact however often it is asked, hyperbolic front-loaded."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from sobirl.rlhf import QuerySchedule

SEED_AUTHORS = {"total_pairs": 3000, "initial_pairs": 600, "total_steps": 4_300_000}


def step_grids():
    """Steps at which a training loop may ask: regular, irregular (past the end), only at the start and the end."""
    irregular = np.sort(np.random.default_rng(0).integers(1, 5_000_000, size=300)).tolist()
    return {
        "every-10k": [*range(0, 4_300_000, 10_000), 4_300_000],
        "every-7919": [*range(0, 4_300_000, 7_919), 4_300_000],
        "irregular": [0, *irregular],
        "ends": [0, 4_300_000],
    }


@pytest.mark.parametrize("kind", ["constant", "hyperbolic"])
@pytest.mark.parametrize("grid", ["every-10k", "every-7919", "irregular", "ends"])
def test_queries_add_up_to_the_total(kind, grid):
    sched = QuerySchedule(**SEED_AUTHORS, kind=kind)
    queried = 0
    for step in step_grids()[grid]:
        queried += sched.pairs_to_query(step, queried)
        assert queried == sched.cumulative(step)
    assert queried == 3000


def test_cumulative_formula():
    hyp = QuerySchedule(**SEED_AUTHORS)
    const = QuerySchedule(**SEED_AUTHORS, kind="constant")
    assert hyp.cumulative(0) == const.cumulative(0) == hyp.pairs_to_query(0, 0) == 600
    half = 2_150_000
    assert const.cumulative(half) == 600 + 1200
    assert hyp.cumulative(half) == 600 + math.floor(2400 * math.log(1.5) / math.log(2.0)) == 2003
    steep = QuerySchedule(**SEED_AUTHORS, hyperbolic_rate=25.0)
    assert steep.cumulative(half) == 600 + math.floor(2400 * math.log(13.5) / math.log(26.0))
    assert hyp.cumulative(4_300_000) == hyp.cumulative(10**9) == 3000
    grid = range(0, 4_400_000, 50_000)
    for sched in (hyp, const, steep):
        c = [sched.cumulative(t) for t in grid]
        assert all(a <= b for a, b in pairwise(c))  # never decreases
    # front-loaded: the first half of the run asks for more of the remaining pairs, the steeper the more
    assert const.cumulative(half) < hyp.cumulative(half) < steep.cumulative(half)
    assert hyp.pairs_to_query(100, queried=2000) == 0  # already ahead: nothing new, never negative


def test_no_initial_pairs():
    sched = QuerySchedule(total_pairs=10, total_steps=100, kind="constant")
    assert [sched.cumulative(t) for t in (0, 9, 10, 55, 99, 100)] == [0, 0, 1, 5, 9, 10]
