"""The deep update rules on tabular RLHF against the exact hyper-gradient (sobirl.experiments.deep_bridge)."""

from __future__ import annotations

import pytest
import torch

from sobirl.experiments.deep_bridge import LONG_CREDIT, DeepBridge, make_rule, parse_deep, reference_hypergradient
from sobirl.problems import tabular_rlhf
from sobirl.tabular import hypergradient

F64 = torch.float64


def study(bridge: DeepBridge, reference: torch.Tensor, name: str, pairs: int, seeds: int) -> tuple[float, float, float]:
    """Over ``seeds`` estimates: the relative bias of their mean, its noise floor (relative std / sqrt(seeds)) and
    the mean cosine to the reference."""
    G = torch.stack([bridge.estimate(make_rule(name), pairs, seed) for seed in range(seeds)])
    cosine = (G @ reference / (G.norm(dim=1) * reference.norm())).mean().item()
    floor = (G.std(0).norm() / reference.norm()).item() / seeds**0.5
    return ((G.mean(0) - reference).norm() / reference.norm()).item(), floor, cosine


def long_credit() -> tuple[DeepBridge, torch.Tensor]:
    prob = tabular_rlhf(**LONG_CREDIT)
    return DeepBridge.build(prob, prob.r_true.reshape(-1).clone()), prob


def test_the_bridge_matches_the_exact_hypergradient_where_one_step_is_exact():
    """gamma = 0: dQ/dx - dV/dx is J - E_pi J, so the deep one-step estimate is unbiased for the exact gradient of an
    enumerable instance; this checks the bridge's own parts (episodes, fragment pairs, labeller, rule) end to end."""
    prob = tabular_rlhf(S=3, A=2, H=3, gamma=0.0)
    x = torch.randn(6, generator=torch.Generator().manual_seed(1), dtype=F64)
    bridge = DeepBridge.build(prob, x, critic=None)
    reference = reference_hypergradient(prob, x, bridge.pi)
    torch.testing.assert_close(reference, hypergradient(prob, x), rtol=0, atol=0)
    G = torch.stack([bridge.estimate(make_rule("deep:sobirl/one-step"), 5000, seed) for seed in range(16)])
    floor = (G.std(0).norm() / reference.norm()).item() / 4
    bias = ((G.mean(0) - reference).norm() / reference.norm()).item()
    assert bias <= 3 * floor, (bias, floor)  # measured 0.026 against a floor of 0.014


def test_successor_features_recover_the_long_horizon_hypergradient_fast():
    """Fast twin of the slow test below: 3e5 reference pairs (their own noise is ~0.18 of an estimate's), 12
    estimates of 10^4 pairs, the bias within 3 noise floors of the estimates and the reference together."""
    bridge, prob = long_credit()
    reference = reference_hypergradient(prob, bridge.x, bridge.pi, pairs=300_000)
    bias, floor, cosine = study(bridge, reference, "deep:sobirl/successor-features", 10_000, 12)
    reference_floor = floor * (12 * 10_000 / 300_000) ** 0.5
    assert cosine >= 0.98 and bias <= 3 * (floor**2 + reference_floor**2) ** 0.5, (bias, floor, cosine)
    *_, one_step = study(bridge, reference, "deep:sobirl/one-step", 10_000, 12)
    assert one_step <= 0.5, one_step


@pytest.mark.slow
def test_successor_features_recover_the_long_horizon_hypergradient():
    """The must-hold: at 10^4 pairs the faithful estimator has cosine >= 0.98 and relative bias <= 5% (128
    estimates: noise floor ~0.02; 4 10^6 reference pairs: ~0.01), where one-step's cosine is <= 0.5."""
    bridge, prob = long_credit()
    reference = reference_hypergradient(prob, bridge.x, bridge.pi, pairs=4_000_000)
    bias, floor, cosine = study(bridge, reference, "deep:sobirl/successor-features", 10_000, 128)
    assert cosine >= 0.98 and bias <= 0.05, (bias, floor, cosine)
    *_, one_step = study(bridge, reference, "deep:sobirl/one-step", 10_000, 128)
    assert one_step <= 0.5, one_step


def test_deep_names_and_bad_inputs():
    assert parse_deep("deep:sobirl/one-step") == ("sobirl", {"estimator": "one-step"})
    assert parse_deep("deep:hpgd") == ("hpgd", {})
    with pytest.raises(ValueError, match="deep rule 'sobirll' is not one of drlhf, sobirl"):
        make_rule("deep:sobirll")
    with pytest.raises(ValueError, match="unknown estimator 'two-step'"):
        make_rule("deep:sobirl/two-step")
    with pytest.raises(ValueError, match="needs a tabular RLHF problem"):
        from sobirl.problems import four_rooms

        prob = four_rooms()
        DeepBridge.build(prob, prob.x0)
