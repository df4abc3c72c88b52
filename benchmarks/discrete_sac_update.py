"""Time of one DiscreteSAC gradient step against one SB3 DQN gradient step on Nature-CNN batches of Atari frames.

Usage::

    python benchmarks/discrete_sac_update.py [--device cpu|cuda] [--batch-size B] [--updates U] [--repeats R]
                                             [--threads T] [--markdown PATH]

Three models on the same observation space (4 stacked 84x84 uint8 frames, BeamRider's 9 actions) sample batches of
the same size from one replay buffer of random frames and run ``train(gradient_steps=U, batch_size=B)``:

- ``dqn``: SB3's DQN with its ``CnnPolicy`` (one Nature CNN and its target copy);
- ``discrete-sac``: :class:`sobirl.agents.DiscreteSAC` with ``CnnPolicy``, linear heads (``net_arch=[]``), an actor
  and the twin critics each on their own Nature CNN, as the seed authors' networks;
- ``discrete-sac-shared``: the same with ``share_features_extractor=True``: one Nature CNN trained by the critic loss
  and the target copy's policy in the critic target.

The blocks of ``U`` updates are interleaved (every model, then every model again, ``R`` times) so all see the same
machine load; the table gives the median milliseconds per update and the ratio to DQN. Target: DiscreteSAC with the
shared extractor within 15% of DQN (ratio <= 1.15). Target-network copies are not timed for either (DQN copies in
``_on_step``; DiscreteSAC's copy interval is set beyond the timed updates).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger

from sobirl.agents import DiscreteSAC
from sobirl.profiling import machine_line, print_report

N_ACTIONS = 9  # BeamRider's action set
BUFFER = 2000
TARGET = 1.15


class FrameStackEnv(gym.Env):
    """Random stacks of 4 uint8 84x84 frames, channel first as SB3's Atari pipeline feeds the CNN; never trained on."""

    observation_space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = spaces.Discrete(N_ACTIONS)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def filled_buffer(device: str, seed: int = 0) -> ReplayBuffer:
    """A replay buffer of ``BUFFER`` random transitions (uint8 frames, random actions and rewards)."""
    env = FrameStackEnv()
    buffer = ReplayBuffer(BUFFER, env.observation_space, env.action_space, device=device)
    rng = np.random.default_rng(seed)
    for _ in range(BUFFER):
        obs, next_obs = rng.integers(0, 256, (2, 1, 4, 84, 84), dtype=np.uint8)
        buffer.add(obs, next_obs, rng.integers(N_ACTIONS, size=(1,)), rng.normal(size=(1,)), np.zeros(1), [{}])
    return buffer


def models(device: str, batch_size: int, buffer: ReplayBuffer) -> dict[str, BaseAlgorithm]:
    """The three models, sharing ``buffer``, with SB3's logger silenced."""
    common: dict[str, Any] = dict(buffer_size=BUFFER, batch_size=batch_size, learning_starts=0, device=device, seed=0)
    sac: dict[str, Any] = dict(tau=1.0, target_update_interval=10**9, learning_rate=1e-4)
    built: dict[str, BaseAlgorithm] = {
        "dqn": DQN("CnnPolicy", FrameStackEnv(), learning_rate=1e-4, **common),
        "discrete-sac": DiscreteSAC("CnnPolicy", FrameStackEnv(), policy_kwargs=dict(net_arch=[]), **sac, **common),
        "discrete-sac-shared": DiscreteSAC(
            "CnnPolicy",
            FrameStackEnv(),
            policy_kwargs=dict(net_arch=[], share_features_extractor=True),
            **sac,
            **common,
        ),
    }
    for model in built.values():
        model.replay_buffer = buffer
        model.set_logger(Logger(folder=None, output_formats=[]))
    return built


def block_seconds(model: BaseAlgorithm, updates: int, batch_size: int, device: str) -> float:
    """Seconds per update of one ``train(updates, batch_size)`` call."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=batch_size)  # type: ignore[attr-defined]
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / updates


def measure(built: dict[str, BaseAlgorithm], updates: int, repeats: int, batch_size: int, device: str):
    """Median seconds per update of each model over ``repeats`` interleaved blocks, after one warm-up block each."""
    for model in built.values():
        block_seconds(model, updates, batch_size, device)
    seconds: dict[str, list[float]] = {name: [] for name in built}
    for r in range(repeats):
        names = list(built)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(block_seconds(built[name], updates, batch_size, device))
    return {name: statistics.median(values) for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64, the paper's)")
    parser.add_argument("--updates", type=int, default=20, help="gradient steps per timed block (default 20)")
    parser.add_argument("--repeats", type=int, default=10, help="timed blocks per model (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    for name in ("batch_size", "updates", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    built = models(args.device, args.batch_size, filled_buffer(args.device))
    median = measure(built, args.updates, args.repeats, args.batch_size, args.device)
    rows = ["| model | ms / update (median) | / dqn |", "|---|---|---|"]
    rows += [f"| {name} | {1e3 * s:.2f} | {s / median['dqn']:.3f} |" for name, s in median.items()]
    ratio = median["discrete-sac-shared"] / median["dqn"]
    summary = (
        f"discrete-sac-shared / dqn = {ratio:.3f} (target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'})"
    )
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {args.threads} thread(s)"
    setting = (
        f"Nature CNN on 4x84x84 uint8 frames, {N_ACTIONS} actions, batch {args.batch_size}, {args.repeats} blocks of "
        f"{args.updates} updates per model, device: {device}"
    )
    print_report([machine_line(), setting, "\n".join(rows), summary], args.markdown, argv, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
