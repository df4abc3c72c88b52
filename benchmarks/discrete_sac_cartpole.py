"""DiscreteSAC alone on CartPole-v1: the evaluation return against agent steps, over seeds.

Usage::

    python benchmarks/discrete_sac_cartpole.py [--quick] [--seeds N] [--steps N] [--workers W]
                                               [--share-features-extractor] [--markdown PATH]

Each seed trains :class:`sobirl.agents.DiscreteSAC` (``MlpPolicy``, 256x256, the defaults except a 1000-step warm-up
and a 50k buffer) on the environment's reward for ``--steps`` agent steps (default 50,000), one torch thread, and
evaluates its deterministic policy every 5000 steps on 5 episodes of a separate environment. Seeds run ``--workers``
at a time in separate processes. The table gives each seed's evaluation returns, the first step at which the
evaluation reached 450, and the final return; the target: every seed at least 450 within 50k steps. ``--quick``: 2
seeds, 2000 steps, a smoke check. ``--share-features-extractor``: the policy's ``share_features_extractor=True`` (on
CartPole's flattened observations this changes only the critic target's next-state policy, the target copy's).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from sobirl.agents import DiscreteSAC
from sobirl.profiling import machine_line, print_report

ENV = "CartPole-v1"
TARGET = 450.0
EVAL_EVERY = 5000
EVAL_EPISODES = 5


def evaluate(model: DiscreteSAC, seed: int) -> float:
    """Mean true return of the deterministic policy over :data:`EVAL_EPISODES` episodes."""
    env = gym.make(ENV)
    returns = []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=10_000 * seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def train(seed: int, steps: int, shared: bool = False) -> tuple[list[tuple[int, float]], float]:
    """One seed: the (step, evaluation return) curve and the wall seconds of training (evaluations excluded);
    ``shared``: one features extractor for the actor and the critics."""
    torch.set_num_threads(1)
    model = DiscreteSAC(
        "MlpPolicy",
        ENV,
        seed=seed,
        device="cpu",
        learning_starts=1000,
        buffer_size=50_000,
        policy_kwargs=dict(share_features_extractor=shared),
    )
    curve, seconds = [], 0.0
    done = 0
    while done < steps:
        chunk = min(EVAL_EVERY, steps - done)
        start = time.perf_counter()
        model.learn(chunk, reset_num_timesteps=done == 0)
        seconds += time.perf_counter() - start
        done += chunk
        curve.append((done, evaluate(model, seed)))
    return curve, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2000 steps: a smoke check")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    parser.add_argument("--steps", type=int, default=50_000, help="agent steps per seed (default 50,000)")
    parser.add_argument("--workers", type=int, default=2, help="seeds trained at the same time (default 2)")
    parser.add_argument(
        "--share-features-extractor", action="store_true", help="one features extractor for actor and critics"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1 or args.workers < 1:
        parser.error(f"--seeds, --steps and --workers must be >= 1, got {args.seeds}, {args.steps}, {args.workers}")
    seeds, steps = (2, 2000) if args.quick else (args.seeds, args.steps)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(args.workers, seeds)) as pool:
        results = list(pool.map(train, range(seeds), [steps] * seeds, [args.share_features_extractor] * seeds))
    checkpoints = [step for step, _ in results[0][0]]
    rows = [
        "| seed | " + " | ".join(f"{s // 1000}k" for s in checkpoints) + " | first >= 450 | train time (s) |",
        "|---|" + "---|" * len(checkpoints) + "---|---|",
    ]
    reached = []
    for seed, (curve, seconds) in enumerate(results):
        first = next((step for step, value in curve if value >= TARGET), None)
        reached.append(first)
        rows.append(
            f"| {seed} | "
            + " | ".join(f"{value:.0f}" for _, value in curve)
            + f" | {first if first is not None else 'not reached'} | {seconds:.0f} |"
        )
    finals = [curve[-1][1] for curve, _ in results]
    summary = (
        f"final evaluation return {statistics.fmean(finals):.1f} (min {min(finals):.0f}); seeds reaching {TARGET:.0f} "
        f"within {steps} steps: {sum(r is not None for r in reached)} of {seeds}"
    )
    setting = (
        f"DiscreteSAC MlpPolicy on {ENV}, {steps} agent steps per seed, learning_starts 1000, buffer 50,000, other "
        f"arguments at their defaults{', share_features_extractor' if args.share_features_extractor else ''}; "
        f"evaluation every {EVAL_EVERY} steps, {EVAL_EPISODES} deterministic episodes"
    )
    print_report([machine_line(), setting, "\n".join(rows), summary], args.markdown, argv, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
