"""Per-action reward nets for Discrete actions: the taken action's reward, every action's reward, the exact
``E_pi r(s, .)``, seeding, normalisation by the taken actions' statistics, the Nature CNN's shapes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from sobirl.rlhf.action_reward_net import (
    CnnActionRewardNet,
    MlpActionRewardNet,
    action_reward_net,
)
from sobirl.rlhf.preference_model import preference_logits

OBS, A = 5, 3


def mlp(**kwargs: object) -> MlpActionRewardNet:
    return MlpActionRewardNet(OBS, A, hidden=(8,), dtype=torch.float64, **kwargs)


def test_taken_action_rewards_index_every_action_reward():
    net = mlp(seed=1)
    obs = torch.randn(4, 6, OBS, dtype=torch.float64)
    actions = torch.randint(0, A, (4, 6))
    every = net.action_rewards(obs)
    assert every.shape == (4, 6, A)
    expected = torch.stack([every[i, j, actions[i, j]] for i in range(4) for j in range(6)]).reshape(4, 6)
    torch.testing.assert_close(net(obs, actions), expected, rtol=0, atol=0)
    # SB3 stores Discrete actions as (..., 1) floats: the same rewards
    torch.testing.assert_close(net(obs, actions.unsqueeze(-1).double()), expected, rtol=0, atol=0)
    # the exploration baseline E_pi r(s, .) is a dot product with the actor's probabilities
    probs = torch.softmax(torch.randn(4, 6, A, dtype=torch.float64), dim=-1)
    baseline = (probs * every).sum(-1)
    by_sum = sum(probs[..., a] * every[..., a] for a in range(A))
    torch.testing.assert_close(baseline, by_sum)


def test_same_seed_same_net_without_the_global_rng():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    a, b, c = mlp(seed=3), mlp(seed=3), mlp(seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    # PyTorch's default bound 1/sqrt(fan_in)
    first = a.body[0]
    assert first.weight.abs().max().item() <= 1 / np.sqrt(OBS) and first.bias.abs().max().item() <= 1 / np.sqrt(OBS)


def test_normalisation_uses_the_taken_actions_statistics():
    net = mlp(normalize_output=True)
    obs = torch.randn(50, OBS, dtype=torch.float64)
    actions = torch.randint(0, A, (50,))
    raw = net.body(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1).detach()
    out = net(obs, actions)  # training mode: merges the batch first
    assert net.reward_count.item() == 50
    torch.testing.assert_close(net.reward_mean, raw.mean())
    torch.testing.assert_close(out.detach(), (raw - raw.mean()) / torch.sqrt(raw.var(correction=0) + 1e-8))
    every = net.action_rewards(obs)  # normalised with the statistics, which stay as they are
    assert net.reward_count.item() == 50
    torch.testing.assert_close(every.gather(-1, actions.unsqueeze(-1)).squeeze(-1), out)


def test_preference_model_takes_per_action_nets():
    net = mlp(seed=2)
    obs = torch.randn(3, 2, 4, OBS, dtype=torch.float64)  # (B, 2, L, obs)
    actions = torch.randint(0, A, (3, 2, 4, 1))
    logits = preference_logits(net, obs, actions)
    returns = net(obs, actions).sum(-1)
    torch.testing.assert_close(logits, returns[:, 0] - returns[:, 1])


def test_nature_cnn_on_stacked_frames():
    net = CnnActionRewardNet((4, 84, 84), 9, seed=0)
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    linears = [m for m in net.body if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 7 * 7, 512), (512, 9)]
    frames = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    every = net.action_rewards(frames)
    assert every.shape == (2, 3, 9) and every.dtype == torch.float32 and torch.isfinite(every).all()
    # pixels are scaled by 1/255 inside: the first convolution sees [0, 1]
    scaled = net.body[1](frames.reshape(-1, 4, 84, 84).float() / 255.0)
    torch.testing.assert_close(net.body[:2](frames.reshape(-1, 4, 84, 84).float()), scaled)
    torch.testing.assert_close(net(frames, torch.full((2, 3), 4)), every[..., 4])
    again = CnnActionRewardNet((4, 84, 84), 9, seed=0)
    torch.testing.assert_close(again.action_rewards(frames), every, rtol=0, atol=0)


def test_factory_picks_the_network_from_the_spaces():
    image = spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
    assert isinstance(action_reward_net(image, spaces.Discrete(6), seed=1), CnnActionRewardNet)
    flat = spaces.Box(-1.0, 1.0, shape=(OBS,))
    net = action_reward_net(flat, spaces.Discrete(2), hidden=(4,))
    assert isinstance(net, MlpActionRewardNet) and net.n_actions == 2 and net.obs_shape == (OBS,)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: action_reward_net(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,))),
            TypeError,
            "action_space must be gymnasium.spaces.Discrete for a per-action reward net, got Box",
        ),
        (
            lambda: action_reward_net(spaces.Discrete(4), spaces.Discrete(2)),
            TypeError,
            "observation_space must be a gymnasium.spaces.Box (1-D or an image), got Discrete(4)",
        ),
        (
            lambda: action_reward_net(spaces.Box(0, 255, (84, 84, 4), np.uint8), spaces.Discrete(2)),
            ValueError,
            "channels-first image (C, H, W), got shape (84, 84, 4); wrap the VecEnv in",
        ),
        (
            lambda: action_reward_net(spaces.Box(-1, 1, (3, 2)), spaces.Discrete(2)),
            ValueError,
            "observation_space must be 1-D or a uint8 image, got shape (3, 2)",
        ),
        (lambda: CnnActionRewardNet((4, 30, 84), 2), ValueError, "obs_shape must be (C, H, W) with H, W >= 36"),
        (lambda: MlpActionRewardNet(3, 1), ValueError, "n_actions must be an integer >= 2, got 1"),
    ],
)
def test_bad_spaces_and_sizes_name_the_field(make, error, message):
    with pytest.raises(error) as exc:
        make()
    assert message in str(exc.value)


def test_bad_actions_and_observations_name_the_problem():
    net = mlp()
    obs = torch.zeros(4, OBS, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"actions must be integers in \[0, 3\), got \[0, 3\]"):
        net(obs, torch.tensor([0, 3, 0, 0]))
    with pytest.raises(ValueError, match=r"actions must be integers in \[0, 3\), got \[0.0, 0.5\]"):
        net(obs, torch.tensor([0.0, 0.5, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"actions must have shape \(4,\) or \(4, 1\)"):
        net(obs, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"observations must end in \(5,\), got \(4, 6\)"):
        net.action_rewards(torch.zeros(4, 6))


def test_taken_and_all_rewards_from_one_pass():
    net = mlp(normalize_output=True, seed=5)
    obs = torch.randn(7, OBS, dtype=torch.float64)
    actions = torch.randint(0, A, (7, 1))
    taken, every = net.taken_and_all(obs, actions)
    assert net.reward_count.item() == 7  # the taken actions' statistics, merged once
    torch.testing.assert_close(every, net.action_rewards(obs))
    torch.testing.assert_close(taken, every.gather(-1, actions).squeeze(-1))


def test_state_only_nets_give_every_action_one_reward():
    net = mlp(state_only=True, normalize_output=True, seed=6)
    assert net.body[-1].out_features == 1
    obs = torch.randn(4, 6, OBS, dtype=torch.float64)
    actions = torch.randint(0, A, (4, 6))
    taken, every = net.taken_and_all(obs, actions)
    assert every.shape == (4, 6, A)
    torch.testing.assert_close(every, every[..., :1].expand(-1, -1, A), rtol=0, atol=0)
    torch.testing.assert_close(taken, every[..., 0], rtol=0, atol=0)
    raw = net.body(obs.reshape(-1, OBS)).detach().reshape(4, 6)
    torch.testing.assert_close(net.reward_mean, raw.mean())  # the statistics of one reward per visited state
    # the exploration baseline E_pi r(s, .) is that reward whatever the policy
    probs = torch.softmax(torch.randn(4, 6, A, dtype=torch.float64), dim=-1)
    torch.testing.assert_close((probs * every).sum(-1), every[..., 0])
    cnn = CnnActionRewardNet((4, 84, 84), 9, state_only=True, seed=0)
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert cnn.body[-1].out_features == 1
    assert torch.equal(cnn.action_rewards(frames), cnn.action_rewards(frames)[:, :1].expand(2, 9))
    with pytest.raises(TypeError, match="state_only must be true or false, got 'yes'"):
        mlp(state_only="yes")
