"""RewardNet: deterministic by seed without the global RNG, shapes, running output normalisation, from_spaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from conftest import F64
from sobirl.rlhf import RewardNet
from sobirl.rlhf.reward_net import NORM_EPS


def parameters(net: RewardNet) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_same_seed_same_net_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = RewardNet(17, 6, seed=4)
    b = RewardNet(17, 6, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    c = RewardNet(17, 6, seed=5)
    for pa, pb in zip(parameters(a), parameters(b), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(parameters(a)[0], parameters(c)[0])
    assert all(p.dtype == torch.float32 for p in a.parameters())
    # PyTorch's default nn.Linear range U(-1/sqrt(fan_in), 1/sqrt(fan_in)), filled (the weights reach near the bound)
    for layer, fan_in in zip([m for m in a.mlp if isinstance(m, torch.nn.Linear)], (23, 256, 256), strict=True):
        bound = fan_in**-0.5
        assert 0.9 * bound < layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound


def test_shapes_layers_and_dtype():
    net = RewardNet(3, 1, hidden=(8, 5), activation="tanh", dtype=F64)
    assert [type(m).__name__ for m in net.mlp] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    obs, act = torch.randn(4, 7, 3, dtype=F64), torch.randn(4, 7, 1, dtype=F64)
    out = net(obs, act)
    assert out.shape == (4, 7) and out.dtype == F64
    torch.testing.assert_close(out[2, 3], net(obs[2, 3], act[2, 3]), rtol=0, atol=1e-15)
    linear = RewardNet(3, 1, hidden=(), dtype=F64)
    assert len(linear.mlp) == 1
    with pytest.raises(ValueError, match=r"must end in obs_dim = 3 and act_dim = 1, got \(4, 7, 3\) and \(4, 7, 2\)"):
        net(obs, torch.randn(4, 7, 2, dtype=F64))


def test_output_normalisation_running_statistics():
    net = RewardNet(3, 2, hidden=(16,), normalize_output=True, seed=1, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(n, 3, generator=gen, dtype=F64) * 3, torch.randn(n, 2, generator=gen, dtype=F64))
               for n in (50, 1, 200, 37)]  # fmt: skip
    raw = [net.mlp(torch.cat(b, dim=-1)).squeeze(-1).detach() for b in batches]

    x0 = net(*batches[0])  # first training-mode forward: the statistics of the first batch alone
    torch.testing.assert_close(x0, (raw[0] - raw[0].mean()) / (raw[0].var(correction=0) + NORM_EPS).sqrt())
    for b in batches[1:]:
        net(*b)
    seen = torch.cat(raw)
    assert net.reward_count.item() == seen.numel() == 288
    torch.testing.assert_close(net.reward_mean, seen.mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(net.reward_var, seen.var(correction=0), rtol=0, atol=1e-12)

    net.eval()  # frozen statistics; outputs over everything seen have mean 0 and variance ~1
    state = {k: v.clone() for k, v in net.state_dict().items()}
    out = torch.cat([net(*b) for b in batches]).detach()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert abs(out.mean().item()) < 1e-12 and abs(out.var(correction=0).item() - 1) < 1e-6
    torch.testing.assert_close(out, (seen - net.reward_mean) / (net.reward_var + NORM_EPS).sqrt(), rtol=0, atol=1e-12)

    fresh = RewardNet(3, 2, hidden=(16,), normalize_output=True, seed=1, dtype=F64).eval()
    torch.testing.assert_close(fresh(*batches[0]), raw[0] / (1 + NORM_EPS) ** 0.5, rtol=0, atol=1e-15)
    fresh.load_state_dict(net.state_dict())  # the statistics travel with the state dict
    torch.testing.assert_close(fresh(*batches[0]), net(*batches[0]), rtol=0, atol=0)


def test_gradients_flow_through_the_raw_output_only():
    net = RewardNet(3, 1, hidden=(4,), normalize_output=True, dtype=F64)
    obs, act = torch.randn(10, 3, dtype=F64), torch.randn(10, 1, dtype=F64)
    net(obs, act)  # set the statistics
    net.eval()
    (g,) = torch.autograd.grad(net(obs, act).sum(), [net.mlp[-1].bias])
    torch.testing.assert_close(g, torch.full((1,), 10.0, dtype=F64) / (net.reward_var + NORM_EPS).sqrt())


def test_from_spaces():
    obs = spaces.Box(-np.inf, np.inf, shape=(17,), dtype=np.float32)
    act = spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)
    net = RewardNet.from_spaces(obs, act, hidden=(32,), seed=3)
    assert (net.obs_dim, net.act_dim, net.hidden) == (17, 6, (32,))
    assert torch.equal(parameters(net)[0], parameters(RewardNet(17, 6, hidden=(32,), seed=3))[0])
