"""Memory and speed of the preference dataset on Atari frame stacks: every stack whole against each frame once.

Usage::

    python benchmarks/preference_dataset.py [--quick] [--markdown PATH]

Pairs of BeamRider-shaped fragments (``L = 25`` stacks of ``k = 4`` uint8 84x84 frames, zero-padded at episode
starts as :func:`sobirl.envs.make_atari` stacks them; random frames, episodes of 200 steps, seed 0) fill two
:class:`sobirl.rlhf.PreferenceDataset` of ``CAPACITY`` pairs with the same pushes of ``PUSH`` pairs each:

- whole: ``PreferenceDataset(capacity)``, every stack kept (``L * k = 100`` frames per fragment);
- frames: ``PreferenceDataset(capacity, frame_stack=4)``, each fragment's ``L + k - 1 = 28`` distinct frames
  (:mod:`sobirl.rlhf.frame_stacks`).

It reports per way: the resident memory the fills added (:class:`sobirl.profiling.PeakMemory`, peak above the start;
the pushed pairs are made beforehand), the size of the saved ``npz`` (what a checkpoint holds), and the median time of
a push, of a mini-batch ``sample(64)`` (what a reward-update step draws) and of a ``save``; then the ratios
whole / frames. The two datasets' samples are checked equal, bit for bit, before timing.

``--quick``: capacity 200, 3 repeats per time (a smoke check of a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sobirl.profiling import PeakMemory, machine_line, print_report
from sobirl.rlhf import PreferenceDataset, Trajectory, sample_fragment_pairs

L, K, FRAME = 25, 4, (84, 84)
EPISODE = 200
PUSH = 100
BATCH = 64
CAPACITY, QUICK_CAPACITY = 1000, 200
REPEATS, QUICK_REPEATS = 5, 3
SEED = 0


def stacked_episode(rng: np.random.Generator) -> Trajectory:
    """``EPISODE`` steps of zero-padded stacks of the ``K`` newest random frames, the newest last."""
    frames = np.concatenate(
        [np.zeros((K - 1, *FRAME), np.uint8), rng.integers(0, 256, (EPISODE, *FRAME), dtype=np.uint8)]
    )
    stacks = np.lib.stride_tricks.sliding_window_view(frames, K, axis=0)  # (EPISODE, *FRAME, K)
    return Trajectory(
        np.moveaxis(stacks, -1, 1).copy(), rng.integers(0, 9, EPISODE), rng.normal(size=EPISODE), True, False
    )


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(dataset: PreferenceDataset, pushes: list, repeats: int, tmp: Path) -> dict[str, float]:
    """Fill ``dataset`` with ``pushes`` (its memory), then time push, sample and save (module docstring)."""
    with PeakMemory() as peak:
        for pairs, labels in pushes:
            dataset.push(pairs, labels)
    rng = np.random.default_rng(SEED)
    path = tmp / "dataset.npz"
    save_s = median_s(lambda: dataset.save(path), repeats)
    return {
        "fill MiB": peak.mib if peak.mib is not None else float("nan"),
        "npz MiB": path.stat().st_size / 2**20,
        "push ms": 1e3 * median_s(lambda: dataset.push(*pushes[0]), repeats),
        "sample ms": 1e3 * median_s(lambda: dataset.sample(BATCH, rng), repeats),
        "save ms": 1e3 * save_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, optionally write it to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="capacity 200, 3 repeats per time")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    capacity = QUICK_CAPACITY if args.quick else CAPACITY
    repeats = QUICK_REPEATS if args.quick else REPEATS

    rng = np.random.default_rng(SEED)
    episodes = [stacked_episode(rng) for _ in range(8)]
    pushes = [(sample_fragment_pairs(episodes, PUSH, L, rng), rng.random(PUSH)) for _ in range(capacity // PUSH)]
    whole, frames = PreferenceDataset(capacity), PreferenceDataset(capacity, frame_stack=K)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: measure(d, pushes, repeats, Path(tmp)) for name, d in (("whole", whole), ("frames", frames))}
    a, b = whole.sample(BATCH, np.random.default_rng(1)), frames.sample(BATCH, np.random.default_rng(1))
    np.testing.assert_array_equal(a[0].observations, b[0].observations)
    np.testing.assert_array_equal(a[1], b[1])

    columns = list(results["whole"])
    lines = [
        "| dataset | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
        *(f"| {name} | " + " | ".join(f"{v:.4g}" for v in r.values()) + " |" for name, r in results.items()),
        "| whole / frames | " + " | ".join(f"{results['whole'][c] / results['frames'][c]:.3g}" for c in columns) + " |",
    ]
    settings = (
        f"{capacity} pairs of L = {L} stacks of k = {K} uint8 {FRAME[0]}x{FRAME[1]} frames, pushes of {PUSH}, "
        f"sample({BATCH}); medians of {repeats} repeats. The two datasets' samples are equal, bit for bit."
    )
    print_report([machine_line(), settings, "\n".join(lines)], args.markdown, argv, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
