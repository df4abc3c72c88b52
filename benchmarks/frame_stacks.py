"""Memory and speed of Atari frame stacks kept whole against each frame once, in the preference pipeline.

Usage::

    python benchmarks/frame_stacks.py [--quick] [--markdown PATH]

BeamRider-shaped data: ``k = 4`` uint8 84x84 frames per stack, zero-padded at episode starts as
:func:`sobirl.envs.make_atari` stacks them; random frames, episodes of 200 steps, fragments of ``L = 25`` steps,
seed 0. Two tables, each with the ratios whole / frames:

1. The preference dataset: two :class:`sobirl.rlhf.PreferenceDataset` of ``CAPACITY`` pairs filled by the same pushes
   of ``PUSH`` pairs, one keeping every stack (``PreferenceDataset(capacity)``, ``L * k = 100`` frames per fragment),
   one each fragment's ``L + k - 1 = 28`` distinct frames (``frame_stack=4``, :mod:`sobirl.rlhf.frame_stacks`): the
   resident memory the fills added (:class:`sobirl.profiling.PeakMemory`, peak above the start; the pairs are made
   beforehand), the size of the saved ``npz`` (what a checkpoint holds), and the median time of a push, of a
   ``sample(64)`` (what a reward-update step draws) and of a ``save``.
2. The recorded episodes and a query: ``EPISODES`` episodes kept whole (``Trajectory``) or as their frames
   (``Trajectory.of_frames``, what ``EpisodeRecorder(frame_stack=4)`` keeps), their bytes, and the peak memory and
   median time of drawing ``QUERY`` pairs from them with :func:`sobirl.rlhf.sample_fragment_pairs` (one fancy index per
   episode drawn) and, for reference, by concatenating the drawn episodes first and indexing once.

Before timing, every way's pairs are checked equal, bit for bit. ``--quick``: capacity 200, 16 episodes, 100 pairs
per query, 3 repeats per time (a smoke check of a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sobirl.profiling import PeakMemory, machine_line, print_report
from sobirl.rlhf import PreferenceDataset, Trajectory, sample_fragment_pairs
from sobirl.rlhf.frame_stacks import frames_of

L, K, FRAME = 25, 4, (84, 84)
EPISODE = 200
PUSH = 100
BATCH = 64
CAPACITY, QUICK_CAPACITY = 1000, 200
EPISODES, QUICK_EPISODES = 100, 16
QUERY, QUICK_QUERY = 600, 100
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


def as_frames(traj: Trajectory) -> Trajectory:
    """The same episode held as its distinct frames."""
    frames = frames_of(traj.observations, K, axis=0)
    return Trajectory.of_frames(frames, K, traj.actions, traj.true_rewards, traj.terminated, traj.truncated)


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_mib(fn: Callable[[], object]) -> float:
    """The resident memory a call of ``fn`` adds at its peak, its result included (NaN where unsupported)."""
    with PeakMemory() as peak:
        fn()
    return peak.mib if peak.mib is not None else float("nan")


def concatenated_pairs(trajectories: Sequence[Trajectory], n: int, seed: int) -> np.ndarray:
    """The observations of the ``n`` pairs :func:`sample_fragment_pairs` draws with ``default_rng(seed)``, gathered
    from the concatenation of the drawn episodes (the reference way)."""
    rng = np.random.default_rng(seed)
    lengths = np.array([len(t) for t in trajectories])
    picks = rng.choice(len(trajectories), size=2 * n, p=lengths / lengths.sum())
    chosen, which = np.unique(picks, return_inverse=True)
    offsets = np.concatenate([[0], np.cumsum(lengths[chosen])[:-1]])
    index = (offsets[which] + rng.integers(0, lengths[picks] - L + 1))[:, None] + np.arange(L)
    out = np.concatenate([trajectories[j].observations for j in chosen])[index]
    return out.reshape(n, 2, L, *out.shape[2:])


def table(rows: dict[str, dict[str, float]], ratio: tuple[str, str]) -> str:
    """A markdown table of ``rows`` (name -> column -> value) and the ratio of the rows named in ``ratio``."""
    columns = list(next(iter(rows.values())))
    a, b = rows[ratio[0]], rows[ratio[1]]
    return "\n".join(
        [
            "| | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
            *(f"| {name} | " + " | ".join(f"{v:.4g}" for v in r.values()) + " |" for name, r in rows.items()),
            f"| {ratio[0]} / {ratio[1]} | " + " | ".join(f"{a[c] / b[c]:.3g}" for c in columns) + " |",
        ]
    )


def dataset_table(pushes: list, capacity: int, repeats: int) -> str:
    """Table 1 (module docstring)."""
    datasets = {"whole": PreferenceDataset(capacity), "frames": PreferenceDataset(capacity, frame_stack=K)}
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.npz"
        for name, dataset in datasets.items():
            fill_mib = peak_mib(lambda d=dataset: [d.push(*p) for p in pushes])
            save_s = median_s(lambda d=dataset: d.save(path), repeats)
            rng = np.random.default_rng(SEED)
            rows[name] = {
                "fill MiB": fill_mib,
                "npz MiB": path.stat().st_size / 2**20,
                "push ms": 1e3 * median_s(lambda d=dataset: d.push(*pushes[0]), repeats),
                "sample ms": 1e3 * median_s(lambda d=dataset, r=rng: d.sample(BATCH, r), repeats),
                "save ms": 1e3 * save_s,
            }
    a, b = (d.sample(BATCH, np.random.default_rng(1)) for d in datasets.values())
    np.testing.assert_array_equal(a[0].observations, b[0].observations)
    np.testing.assert_array_equal(a[1], b[1])
    return table(rows, ("whole", "frames"))


def query_table(whole: list[Trajectory], n: int, repeats: int) -> str:
    """Table 2 (module docstring)."""
    frames = [as_frames(t) for t in whole]
    whole_mib = sum(t.observations.nbytes for t in whole) / 2**20
    frames_mib = sum((len(t) + K - 1) * np.prod(FRAME) for t in whole) / 2**20  # uint8

    def sampled(ts: list[Trajectory]) -> np.ndarray:
        return sample_fragment_pairs(ts, n, L, np.random.default_rng(SEED)).observations

    ways: dict[str, tuple[list[Trajectory], float, Callable[[list[Trajectory]], np.ndarray]]] = {
        "whole, concatenated": (whole, whole_mib, lambda ts: concatenated_pairs(ts, n, SEED)),
        "whole": (whole, whole_mib, sampled),
        "frames": (frames, frames_mib, sampled),
    }
    reference = concatenated_pairs(whole, n, SEED)
    rows: dict[str, dict[str, float]] = {}
    for name, (trajs, held_mib, draw) in ways.items():
        np.testing.assert_array_equal(draw(trajs), reference)
        rows[name] = {
            "episodes MiB": held_mib,
            "query peak MiB": peak_mib(lambda d=draw, ts=trajs: d(ts)),
            "query ms": 1e3 * median_s(lambda d=draw, ts=trajs: d(ts), repeats),
        }
    return table(rows, ("whole, concatenated", "frames"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown tables, optionally write them to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="capacity 200, 16 episodes, 3 repeats per time")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    capacity = QUICK_CAPACITY if args.quick else CAPACITY
    repeats = QUICK_REPEATS if args.quick else REPEATS
    query = QUICK_QUERY if args.quick else QUERY

    rng = np.random.default_rng(SEED)
    episodes = [stacked_episode(rng) for _ in range(QUICK_EPISODES if args.quick else EPISODES)]
    pushes = [(sample_fragment_pairs(episodes, PUSH, L, rng), rng.random(PUSH)) for _ in range(capacity // PUSH)]
    sections = [
        machine_line(),
        f"Preference dataset: {capacity} pairs of L = {L} stacks of k = {K} uint8 {FRAME[0]}x{FRAME[1]} frames, pushes "
        f"of {PUSH}, sample({BATCH}); medians of {repeats} repeats; the two datasets' samples are equal, bit for bit.",
        dataset_table(pushes, capacity, repeats),
        f"Recorded episodes and a query: {len(episodes)} episodes of {EPISODE} steps, {query} pairs per query; "
        f"medians of {repeats} repeats; the three ways' pairs are equal, bit for bit.",
        query_table(episodes, query, repeats),
    ]
    print_report(sections, args.markdown, argv, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
