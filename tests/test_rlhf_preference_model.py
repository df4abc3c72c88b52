"""The batched preference model equals a per-pair, per-step loop (values and gradients, float64, 1e-12)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import F64
from sobirl.rlhf import RewardNet, fragment_returns, preference_accuracy, preference_logits, preference_loss

B, L, OBS, ACT = 6, 5, 3, 2


def batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, 2, L, OBS, generator=gen, dtype=F64)
    act = torch.randn(B, 2, L, ACT, generator=gen, dtype=F64)
    labels = torch.rand(B, generator=gen, dtype=F64)
    labels[:2] = torch.tensor([0.0, 1.0], dtype=F64)  # hard labels too
    return obs, act, labels


def reference_loss(net, obs, act, labels, discount):
    """Bradley-Terry loss pair by pair, one reward-net call per step: the definition, written out."""
    losses, logits = [], []
    for i in range(B):
        R = []
        for k in range(2):
            R.append(sum(discount**t * net(obs[i, k, t], act[i, k, t]) for t in range(L)))
        z = R[0] - R[1]
        y = labels[i]
        losses.append(-(y * torch.nn.functional.logsigmoid(z) + (1 - y) * torch.nn.functional.logsigmoid(-z)))
        logits.append(z)
    return torch.stack(losses).mean(), torch.stack(logits)


class CountingNet(torch.nn.Module):
    """Counts forward calls of the wrapped net."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, obs, act):
        self.calls += 1
        return self.net(obs, act)


@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("normalize", [False, True])
def test_batched_equals_per_pair_loop(discount, normalize):
    net = RewardNet(OBS, ACT, hidden=(16, 16), activation="tanh", normalize_output=normalize, seed=2, dtype=F64)
    obs, act, labels = batch()
    if normalize:  # statistics from a training-mode pass, then frozen (training mode would update them per call)
        net(obs.reshape(-1, OBS), act.reshape(-1, ACT))
        net.eval()
    counting = CountingNet(net)
    logits = preference_logits(counting, obs, act, discount=discount)
    loss = preference_loss(logits, labels)
    assert counting.calls == 1 and logits.shape == (B,)
    ref_loss, ref_logits = reference_loss(net, obs, act, labels, discount)
    assert abs(loss.item() - ref_loss.item()) < 1e-12
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-12)

    params = list(net.parameters())
    grads = torch.autograd.grad(loss, params)
    ref_grads = torch.autograd.grad(ref_loss, params)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-12)


def test_fragment_returns_and_discrete_actions():
    """Any reward function of (M, ...) inputs works; Discrete actions are (B, 2, L) integers."""
    obs = torch.arange(2 * 2 * 3, dtype=F64).reshape(2, 2, 3, 1)
    act = torch.ones(2, 2, 3, dtype=torch.int64)

    def reward(o, a):
        return o[:, 0] * a

    R = fragment_returns(reward, obs, act, discount=0.5)
    expected = obs[..., 0] @ torch.tensor([1.0, 0.5, 0.25], dtype=F64)
    torch.testing.assert_close(R, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"must start with the same \(B, 2, L\)"):
        fragment_returns(reward, obs, act[:, :, :2])
    with pytest.raises(ValueError, match=r"one reward per step, shape \(12,\)"):
        fragment_returns(lambda o, a: o, obs, act)


def test_loss_values_and_accuracy():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=F64)
    labels = torch.tensor([1.0, 1.0, 0.5, 0.0], dtype=F64)
    # per pair -[y log sigmoid(z) + (1 - y) log sigmoid(-z)] = log(1 + e^z) - y z
    expected = sum(math.log1p(math.exp(z)) - y * z for z, y in zip(logits.tolist(), labels.tolist(), strict=True)) / 4
    assert abs(preference_loss(logits, labels).item() - expected) < 1e-14
    assert preference_accuracy(logits, labels) == pytest.approx(1 / 3)  # the 0.5 label is left out
    assert math.isnan(preference_accuracy(logits[2:3], labels[2:3]))
    with pytest.raises(ValueError, match=r"labels must have the logits' shape \(4,\)"):
        preference_loss(logits, labels[:3])
