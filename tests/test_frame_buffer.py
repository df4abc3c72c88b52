"""The frame-stack replay buffer: it returns exactly what SB3's ReplayBuffer returns, in a fraction of the memory."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecTransposeImage

from sobirl.agents import (
    DiscreteSAC,
    FrameStackReplayBuffer,
    RelabelingFrameStackReplayBuffer,
    RelabelingReplayBuffer,
    frame_buffer_bytes,
)

FIELDS = ("observations", "actions", "next_observations", "dones", "rewards")
GROWN = "ignore:FrameStackReplayBuffer frame ring grown"  # short test episodes outgrow the default ring's reserve


class NoiseFrames(gym.Env):
    """``(H, W, 1)`` uint8 noise frames as SB3's AtariWrapper shapes them, one in six all-zero (so zero frames that
    ARE stored meet the zero padding that is not); episodes of 1 to ``max_len`` steps end by termination or by a
    time-limit truncation, at random; the reward is random."""

    def __init__(self, shape: tuple[int, int] = (12, 10), max_len: int = 9) -> None:
        self.observation_space = spaces.Box(0, 255, (*shape, 1), np.uint8)
        self.action_space = spaces.Discrete(3)
        self.max_len = max_len

    def _frame(self) -> np.ndarray:
        if self.np_random.random() < 1 / 6:
            return np.zeros(self.observation_space.shape, np.uint8)
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(1, self.max_len + 1))
        self.truncates = bool(self.np_random.random() < 0.5)
        return self._frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        end = self.t >= self.length
        reward = float(self.np_random.normal()) + action
        return self._frame(), reward, end and not self.truncates, end and self.truncates, {}


def stacked_env(layout: str, n_stack: int, n_envs: int = 2, seed: int = 0, **env_kwargs) -> VecEnv:
    """``n_envs`` NoiseFrames under VecFrameStack: channels-last ``(H, W, k)``, or channels-first ``(k, H, W)``
    through the VecTransposeImage SB3 adds for image observations."""
    venv: VecEnv = VecFrameStack(DummyVecEnv([lambda: NoiseFrames(**env_kwargs)] * n_envs), n_stack)
    if layout == "first":
        venv = VecTransposeImage(venv)
    venv.seed(seed)
    return venv


def transitions(venv: VecEnv, steps: int, restart_at: int | None = None) -> Iterator[tuple]:
    """``add`` arguments as SB3's ``OffPolicyAlgorithm._store_transition`` builds them (terminal observations in
    ``next_obs`` of done envs), random actions; at step ``restart_at`` the envs are reset mid-episode, as a new
    ``learn(reset_num_timesteps=True)`` does."""
    rng = np.random.default_rng(1)
    obs = venv.reset()
    for t in range(steps):
        if t == restart_at:
            obs = venv.reset()
        actions = rng.integers(0, 3, size=venv.num_envs)
        new_obs, rewards, dones, infos = venv.step(actions)
        next_obs = new_obs.copy()
        for i, done in enumerate(dones):
            if done:
                next_obs[i] = infos[i]["terminal_observation"]
        yield obs, next_obs, actions, rewards, dones, infos
        obs = new_obs


def assert_same_samples(naive: ReplayBuffer, ours: FrameStackReplayBuffer) -> None:
    """Every field of ``_get_samples`` equal, dtypes included, over every stored (row, env), and of ``sample``."""
    assert (ours.pos, ours.full) == (naive.pos, naive.full)
    inds = np.tile(np.arange(naive.size()), 8)
    seen = np.zeros((naive.size(), naive.n_envs), bool)
    for seed in range(3):
        np.random.seed(seed)  # noqa: NPY002
        seen[inds, np.random.randint(0, naive.n_envs, size=len(inds))] = True  # noqa: NPY002  # what both draw
        batches = []
        for buffer in (naive, ours):
            np.random.seed(seed)  # noqa: NPY002
            batches.append(buffer._get_samples(inds))
        np.random.seed(seed)  # noqa: NPY002
        batches.append(naive.sample(32))
        np.random.seed(seed)  # noqa: NPY002
        batches.append(ours.sample(32))
        for a, b in (batches[:2], batches[2:]):
            assert a.discounts is b.discounts is None  # SB3's n-step field, unused
            for field in FIELDS:
                x, y = getattr(a, field), getattr(b, field)
                assert x.dtype == y.dtype and torch.equal(x, y), field
    assert seen.all()


@pytest.mark.filterwarnings(GROWN)
@pytest.mark.parametrize("layout", ["last", "first"])
@pytest.mark.parametrize("n_stack", [4, 2])
def test_equal_to_sb3_replay_buffer_through_wrap_around(layout, n_stack):
    venv = stacked_env(layout, n_stack)
    space = venv.observation_space
    assert space.shape == ((12, 10, n_stack) if layout == "last" else (n_stack, 12, 10))
    args = (120, space, venv.action_space)  # 60 rows of 2 envs, filled more than 3 times
    naive = ReplayBuffer(*args, device="cpu", n_envs=2)
    ours = FrameStackReplayBuffer(*args, device="cpu", n_envs=2, n_stack=n_stack)
    assert ours.buffer_size == naive.buffer_size == 60 and ours.channels_first == (layout == "first")
    for t, transition in enumerate(transitions(venv, 200, restart_at=130), start=1):
        naive.add(*transition)
        ours.add(*transition)
        if t in (1, 37, 60, 61, 131, 200):
            assert_same_samples(naive, ours)
    terminations = naive.dones.sum() - naive.timeouts.sum()
    assert terminations > 10 and naive.timeouts.sum() > 10  # in the last 60 rows
    assert (ours._head > 2 * ours.frames.shape[1]).all()  # the rings wrapped around, twice
    # a frame per transition, one per episode start (episodes of 5 steps on average), k per env: naive stores 2k
    assert ours.frames.shape[1] < 1.4 * ours.buffer_size


def test_ring_grows_when_episodes_are_short_and_samples_stay_equal():
    venv = stacked_env("first", 4, max_len=2)
    naive = ReplayBuffer(100, venv.observation_space, venv.action_space, device="cpu", n_envs=2)
    ours = FrameStackReplayBuffer(
        100, venv.observation_space, venv.action_space, device="cpu", n_envs=2, n_stack=4, frame_capacity=5
    )
    with pytest.warns(UserWarning, match=r"frame ring grown from \d+ to \d+ frames per env") as record:
        for transition in transitions(venv, 150):
            naive.add(*transition)
            ours.add(*transition)
    # episodes of 1.5 steps: ~1.7 frames per transition, at most 2 per row + k, grown by a quarter at a time
    assert 1.5 * 50 < ours.frames.shape[1] <= 1.25 * (2 * 50 + 4)
    assert "grown from 5 to " in str(record[0].message)
    assert_same_samples(naive, ours)


def test_default_ring_suits_long_episodes_and_memory_matches_the_estimate():
    venv = stacked_env("last", 4, max_len=40)
    ours = FrameStackReplayBuffer(200, venv.observation_space, venv.action_space, device="cpu", n_envs=2, n_stack=4)
    assert ours.frames.shape == (2, 100 + 100 // 16 + 4, 12, 10)
    estimate = frame_buffer_bytes(200, (12, 10), 4, n_envs=2)
    assert ours.nbytes == estimate == 2 * 110 * 120 + 100 * 2 * (8 + 1 + 8 + 3 * 4) + 2 * (8 + 4 * 120 + 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ring never grows
        for transition in transitions(venv, 300):
            ours.add(*transition)
    assert ours.nbytes == estimate


def test_million_atari_transitions_fit_well_under_10_gb():
    frame, n_stack, size = (84, 84), 4, 1_000_000
    ours = frame_buffer_bytes(size, frame, n_stack)
    # SB3's ReplayBuffer's own estimate (its warning where memory is short): observations and next_observations
    # (4, 84, 84) uint8, int64 actions, float32 rewards and dones (its float32 timeouts, 4 MB more, are not counted)
    sb3 = size * (2 * n_stack * 84 * 84 + 8 + 2 * 4)
    assert sb3 == 56_464_000_000
    assert ours == (size + size // 16 + n_stack) * 84 * 84 + size * (8 + 1 + 8 + 3 * 4) + 8 + n_stack * 7056 + 8
    assert 7.5e9 < ours < 7.6e9 and sb3 / ours > 7.4
    assert frame_buffer_bytes(size, frame, n_stack, n_envs=8) < 7.6e9  # 8 envs share the rows


@pytest.mark.parametrize("algo", ["dqn", "discrete_sac"])
def test_sb3_learns_with_the_buffer_and_matches_the_plain_buffer(algo):
    """Two seeded runs, one per buffer: since the buffers return the same batches, they train the same weights."""

    def run(buffer_class: type[ReplayBuffer], **buffer_kwargs):
        # NatureCNN needs at least 36x36 frames; SB3 adds VecTransposeImage to the channels-last stack
        env = stacked_env("last", 4, n_envs=1, shape=(36, 36), max_len=40)
        model = (DQN if algo == "dqn" else DiscreteSAC)(
            "CnnPolicy",
            env,
            buffer_size=500,
            learning_starts=50,
            batch_size=16,
            replay_buffer_class=buffer_class,
            replay_buffer_kwargs=buffer_kwargs,
            policy_kwargs={"features_extractor_kwargs": {"features_dim": 16}},
            seed=0,
            train_freq=4,
            device="cpu",
        )
        return model.learn(200)

    plain, ours = run(ReplayBuffer), run(FrameStackReplayBuffer, n_stack=4)
    buffer = ours.replay_buffer
    assert isinstance(buffer, FrameStackReplayBuffer) and buffer.channels_first and buffer.size() == 200
    assert_same_samples(plain.replay_buffer, buffer)
    for p, q in zip(plain.policy.parameters(), ours.policy.parameters(), strict=True):
        assert torch.equal(p, q)
    stacks = plain.replay_buffer.observations.nbytes + plain.replay_buffer.next_observations.nbytes
    assert buffer.nbytes < stacks / 7  # 0.71 MB against 5.2 MB


@pytest.mark.filterwarnings(GROWN)
@pytest.mark.parametrize("layout", ["last", "first"])
def test_relabelling_on_frames_is_the_reward_fn_of_the_stacks(layout):
    venv = stacked_env(layout, 4)
    weights = torch.arange(4 * 12 * 10, dtype=torch.float32).reshape(venv.observation_space.shape) / 1e6

    def reward_fn(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return (obs * weights).sum(dim=(1, 2, 3)) - actions[:, 0]

    args = (80, venv.observation_space, venv.action_space)
    naive = RelabelingReplayBuffer(*args, device="cpu", n_envs=2, reward_fn=reward_fn, clip=10.0)
    ours = RelabelingFrameStackReplayBuffer(*args, device="cpu", n_envs=2, n_stack=4, reward_fn=reward_fn, clip=10.0)
    for transition in transitions(venv, 100):
        naive.add(*transition)
        ours.add(*transition)
    assert_same_samples(naive, ours)
    np.random.seed(0)  # noqa: NPY002
    batch = ours.sample(64)
    expected = reward_fn(batch.observations.float(), batch.actions.float()).clamp(-10, 10).reshape(-1, 1)
    torch.testing.assert_close(batch.rewards, expected, rtol=0, atol=0)
    assert (batch.rewards == 10).any() and (batch.rewards < 10).sum() > 10  # clipped and not


IMAGE = spaces.Box(0, 255, (84, 84, 4), np.uint8)


@pytest.mark.parametrize(
    ("space", "n_stack", "kwargs", "match"),
    [
        (spaces.Box(0, 255, (12, 40), np.uint8), 4, {}, "^observation_space: .*image Box"),
        (spaces.Box(0.0, 1.0, (84, 84, 4), np.float32), 4, {}, "^observation_space: .*uint8"),
        (spaces.Discrete(5), 4, {}, "^observation_space: "),
        (IMAGE, 2, {}, r"^n_stack: .*\(84, 84, 4\) stacks 4 .* last axis, so n_stack must be 4, got 2"),
        (spaces.Box(0, 255, (3, 84, 84), np.uint8), 4, {}, r"^n_stack: .* first axis, so n_stack must be 3, got 4"),
        (spaces.Box(0, 255, (84, 84, 12), np.uint8), 4, {}, "^observation_space: .* n_stack=4 RGB frames; only gray"),
        (IMAGE, 4, {"optimize_memory_usage": True}, "^optimize_memory_usage: must be False"),
    ],
)
def test_bad_input_fails_fast_naming_the_field(space, n_stack, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        FrameStackReplayBuffer(10, space, spaces.Discrete(3), device="cpu", n_stack=n_stack, **kwargs)
    assert "\n" not in str(error.value)


def test_next_obs_that_is_not_obs_shifted_by_one_frame_is_refused():
    buffer = FrameStackReplayBuffer(10, IMAGE, spaces.Discrete(3), device="cpu", n_envs=2, n_stack=4)
    obs = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4), dtype=np.uint8)
    next_obs = np.concatenate((obs[..., 1:], obs[..., :1]), axis=-1)
    next_obs[1, 0, 0, 0] += 1
    with pytest.raises(ValueError, match=r"^next_obs: must be obs shifted by one frame.*env\(s\) \[1\]$"):
        buffer.add(obs, next_obs, np.zeros(2), np.zeros(2), np.zeros(2), [{}, {}])
    assert buffer.pos == 0 and not buffer._head.any()
