"""The labelling page's clips: bytes per pair and encoding time for CartPole-v1 and Pendulum-v1 fragments.

Usage::

    python benchmarks/label_clips.py [--pairs N] [--markdown PATH]

For each environment and fragment length (25 and 50 steps), ``--pairs`` pairs (default 5) of fragments of a random
policy (each the first steps of an episode long enough), rendered with ``render_mode="rgb_array"`` and encoded by
:class:`sobirl.rlhf.human.ClipFormat` with its defaults (animated WebP, quality 70, at most 320 pixels wide, 50 ms a
frame). The table gives the bytes of a pair's two clips (mean, min, max) and the median encoding time of one clip.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from sobirl.profiling import machine_line, print_report
from sobirl.rlhf.human import ClipFormat

ENVS = ("CartPole-v1", "Pendulum-v1")
LENGTHS = (25, 50)


def fragments(env_id: str, length: int, count: int) -> list[np.ndarray]:
    """``count`` fragments' frames, uint8 ``(length, H, W, 3)``: the first steps of random-policy episodes."""
    env = gym.make(env_id, render_mode="rgb_array")
    env.action_space.seed(0)
    found: list[np.ndarray] = []
    seed = 0
    while len(found) < count:
        env.reset(seed=seed)
        seed += 1
        frames = []
        for _ in range(length):
            frames.append(env.render())
            if env.step(env.action_space.sample())[2]:
                break
        if len(frames) == length:
            found.append(np.stack(frames))
    env.close()
    return found


def main(argv: list[str] | None = None) -> int:
    """Measure, print the markdown table, optionally write it to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="pairs per environment and length (default: 5)")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    clip_format = ClipFormat()
    rows = [
        "| environment | steps | frame (H x W) | clip (H x W) | bytes per pair: mean (min-max) | encoding, one clip |",
        "|---|---|---|---|---|---|",
    ]
    for env_id in ENVS:
        for length in LENGTHS:
            sizes, seconds = [], []
            for frames in fragments(env_id, length, 2 * args.pairs):
                tic = time.perf_counter()
                sizes.append(len(clip_format.encode(frames)))
                seconds.append(time.perf_counter() - tic)
            pairs = np.add.reduceat(sizes, np.arange(0, len(sizes), 2))
            height, width = frames.shape[1:3]
            scaled = f"{round(height * clip_format.max_width / width)} x {clip_format.max_width}"
            rows.append(
                f"| {env_id} | {length} | {height} x {width} | {scaled} | {pairs.mean() / 1e3:.1f} kB "
                f"({pairs.min() / 1e3:.1f}-{pairs.max() / 1e3:.1f}) | {statistics.median(seconds) * 1e3:.0f} ms |"
            )
    settings = f"ClipFormat() = {clip_format}; {args.pairs} pairs of random-policy fragments per row."
    print_report([machine_line(), settings, "\n".join(rows)], args.markdown, argv, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
