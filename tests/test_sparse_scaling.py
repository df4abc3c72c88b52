"""Sparse P stays sparse: the exact engine's memory is of the order of nnz(P), never S x S."""

from __future__ import annotations

import pytest
import torch

from sobirl.problems.gridworld import gridworld_problem
from sobirl.profiling import PeakMemory, peak_memory_supported
from sobirl.tabular import hypergradient, lower_level


@pytest.mark.skipif(not peak_memory_supported(), reason="needs Linux /proc/self/clear_refs to reset the peak RSS")
def test_large_sparse_hypergradient_memory_is_of_order_nnz():
    """22,500 states: one S x S float64 matrix would be 3.8 GiB; the whole solve + hyper-gradient stays small."""
    prob = gridworld_problem(150, gamma=0.9)
    mdp = prob.mdp
    S = mdp.n_states
    nnz_mib = mdp.nnz * (8 + 8 + 8) / 2**20  # values + two index arrays, as COO
    dense_mib = S * S * 8 / 2**20
    out = {}

    def run():
        out["solution"] = lower_level(prob, prob.x0, solver="policy-iteration", tol=1e-10)
        out["grad"] = hypergradient(prob, prob.x0, solution=out["solution"])

    with PeakMemory() as peak:
        run()
    assert torch.isfinite(out["grad"]).all() and out["grad"].shape == (S,)
    assert peak.mib < 10 * nnz_mib + 50, (peak.mib, nnz_mib)
    assert peak.mib < dense_mib / 20
