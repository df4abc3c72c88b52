"""The relabelling replay buffer: sampled rewards are the current reward net's, everything else is SB3's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sobirl.agents import RelabelingReplayBuffer
from sobirl.rlhf import RewardNet

OBS = spaces.Box(-5.0, 5.0, shape=(3,), dtype=np.float32)
ACT = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
ENV_REWARD = 1000.0  # what the environment paid; must never come out of the buffer


def fill(buffer: ReplayBuffer, steps: int, seed: int = 0) -> None:
    """``steps`` vectorised transitions of random data, env reward ENV_REWARD; an episode ends every 4th step,
    every other end a time-limit truncation."""
    rng = np.random.default_rng(seed)
    n = buffer.n_envs
    for t in range(steps):
        obs = rng.uniform(-5, 5, size=(n, 3)).astype(np.float32)
        next_obs = rng.uniform(-5, 5, size=(n, 3)).astype(np.float32)
        actions = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        dones = np.full(n, t % 4 == 3)
        infos = [{"TimeLimit.truncated": bool(t % 8 == 3)} for _ in range(n)]
        buffer.add(obs, next_obs, actions, np.full(n, ENV_REWARD, dtype=np.float32), dones, infos)


def sample(buffer: ReplayBuffer, batch_size: int, seed: int) -> ReplayBufferSamples:
    """A batch drawn after seeding numpy's global generator, which SB3's buffers draw from."""
    np.random.seed(seed)  # noqa: NPY002
    return buffer.sample(batch_size)


def net_rewards(net: RewardNet, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The net's rewards on a sampled batch, computed independently of the buffer, as float32 ``(B, 1)``."""
    with torch.no_grad():
        return net(observations.double(), actions.double()).float().reshape(-1, 1)


@pytest.mark.parametrize("n_envs", [1, 3])
def test_samples_carry_the_current_nets_rewards(n_envs):
    net = RewardNet(3, 2, hidden=(8,), seed=1, dtype=torch.float64)
    buffer = RelabelingReplayBuffer(50, OBS, ACT, device="cpu", n_envs=n_envs, reward_fn=net)
    fill(buffer, 9)

    first = sample(buffer, 32, seed=0)
    assert first.rewards.shape == (32, 1) and first.rewards.dtype == torch.float32
    assert first.rewards.device == torch.device("cpu")
    assert first.observations.shape == (32, 3) and first.actions.shape == (32, 2) and first.dones.shape == (32, 1)
    torch.testing.assert_close(first.rewards, net_rewards(net, first.observations, first.actions), rtol=0, atol=0)
    assert not torch.isclose(first.rewards, torch.tensor(ENV_REWARD)).any()

    with torch.no_grad():  # a reward-net update between two samples
        net.mlp[0].weight.mul_(-1.0)
        net.mlp[-1].bias.add_(0.5)
    second = sample(buffer, 32, seed=0)
    torch.testing.assert_close(second.observations, first.observations, rtol=0, atol=0)
    torch.testing.assert_close(second.actions, first.actions, rtol=0, atol=0)
    torch.testing.assert_close(second.rewards, net_rewards(net, second.observations, second.actions), rtol=0, atol=0)
    assert (second.rewards != first.rewards).all()


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_everything_but_the_rewards_is_sb3s(optimize_memory_usage):
    """Same seed, same data: the batch equals SB3's own buffer's, timeouts handled, except for the rewards."""
    kwargs = dict(
        device="cpu",
        n_envs=2,
        optimize_memory_usage=optimize_memory_usage,
        handle_timeout_termination=not optimize_memory_usage,
    )
    ours = RelabelingReplayBuffer(10, OBS, ACT, **kwargs, reward_fn=lambda obs, act: obs[:, 0] * act[:, 1])
    theirs = ReplayBuffer(10, OBS, ACT, **kwargs)
    for buffer in (ours, theirs):
        fill(buffer, 13)  # wraps around
    mine, reference = sample(ours, 64, seed=3), sample(theirs, 64, seed=3)
    for field in ("observations", "actions", "next_observations", "dones"):
        torch.testing.assert_close(getattr(mine, field), getattr(reference, field), rtol=0, atol=0)
    assert (reference.rewards == ENV_REWARD).all()
    expected = (mine.observations[:, 0] * mine.actions[:, 1]).reshape(-1, 1)
    torch.testing.assert_close(mine.rewards, expected, rtol=0, atol=0)


def test_clip_and_plain_callables():
    def big(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        assert obs.dtype == torch.float32 and act.dtype == torch.float32  # a plain callable gets float32
        return 3.0 * obs[:, 0]

    clipped = RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=big, clip=1.0)
    raw = RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=big)
    for buffer in (clipped, raw):
        fill(buffer, 20)
    a, b = sample(clipped, 100, seed=0), sample(raw, 100, seed=0)
    torch.testing.assert_close(b.rewards, 3.0 * b.observations[:, :1])
    torch.testing.assert_close(a.rewards, b.rewards.clamp(-1.0, 1.0))
    assert b.rewards.abs().max() > 1.0 and a.rewards.abs().max() == 1.0


def test_reward_net_in_eval_mode_for_the_call_and_mode_restored():
    """A normalising net's running statistics are not touched by relabelling, and its training mode comes back."""
    net = RewardNet(3, 2, hidden=(4,), normalize_output=True, seed=0)
    net(torch.randn(10, 3), torch.randn(10, 2))  # statistics from a training-mode forward
    count = net.reward_count.item()
    buffer = RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=net)
    fill(buffer, 5)
    buffer.sample(16)
    assert net.training and net.reward_count.item() == count


def test_reward_net_sees_raw_observations_under_observation_normalisation():
    class Doubling:  # the part of VecNormalize a buffer calls
        @staticmethod
        def normalize_obs(obs: np.ndarray) -> np.ndarray:
            return 2.0 * obs

    buffer = RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=lambda obs, act: obs[:, 1])
    fill(buffer, 5)
    batch = buffer.sample(16, env=Doubling())  # type: ignore[arg-type]
    torch.testing.assert_close(batch.rewards, batch.observations[:, 1:2] / 2.0)


def test_bad_reward_functions():
    with pytest.raises(ValueError, match=r"clip must be in \(0, inf\)"):
        RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=lambda o, a: o[:, 0], clip=0.0)
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=3.0)  # type: ignore[arg-type]
    buffer = RelabelingReplayBuffer(20, OBS, ACT, device="cpu", reward_fn=lambda o, a: o)
    fill(buffer, 5)
    with pytest.raises(ValueError, match=r"one reward per row, shape \(8,\), got \(8, 3\)"):
        buffer.sample(8)
