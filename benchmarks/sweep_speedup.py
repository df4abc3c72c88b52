"""Wall time of one sweep of CPU-bound RLHF trials with 1 worker and with 2, and the speed-up.

Usage::

    python benchmarks/sweep_speedup.py [--quick] [--trials N] [--steps N] [--backend local|ray] [--markdown PATH]

The sweep (:func:`sobirl.experiments.sweep.run_sweep`) holds ``--trials`` trials (default 4: ``drlhf`` on Pendulum-v1,
seeds 0 .. N-1, from ``configs/pendulum-cpu.yaml``) of ``--steps`` agent steps each (default 2000), one torch thread
per trial. It runs once with ``workers=1`` and once with ``workers=2``, each into a fresh directory, and the table gives
each wall time (process start-up included: it is part of a sweep) and the ratio. Target: ``>= 1.6`` with 2 workers on
2 cores; run it on an otherwise idle machine. ``--backend ray`` measures the Ray backend the same way (a local Ray
instance, started once per sweep and counted). ``--quick``: 2 trials of 300 steps, a smoke check.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sobirl.experiments.sweep import SweepSpec, run_sweep
from sobirl.experiments.sweep_backends import BACKENDS
from sobirl.profiling import machine_line, print_report
from sobirl.rlhf.config import RLHFConfig

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pendulum-cpu.yaml"
TARGET = 1.6
QUICK = dict(sac_learning_starts=100, reward_update_interval=100, initial_pairs=10, total_pairs=30, held_out_pairs=10)


def sweep_seconds(spec: SweepSpec, backend: str) -> float:
    """Wall seconds of ``spec`` run to completion in a fresh directory; every trial must succeed."""
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = run_sweep(spec, root, "sweep", backend=backend, command=["benchmarks/sweep_speedup.py"])
        seconds = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"trials failed: {result.failed}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 trials of 300 steps: a smoke check")
    parser.add_argument("--trials", type=int, default=4, help="trials in the sweep (default 4)")
    parser.add_argument("--steps", type=int, default=2000, help="agent steps per trial (default 2000)")
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="where the trials run")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.trials < 2 or args.steps < 1:
        parser.error(f"--trials must be >= 2 and --steps >= 1, got {args.trials} and {args.steps}")
    trials, steps = (2, 300) if args.quick else (args.trials, args.steps)
    changes: dict[str, object] = dict(total_steps=steps, device="cpu", threads=1, eval_episodes=1)
    if args.quick:
        changes.update(QUICK)
    base = RLHFConfig.from_yaml(DEFAULT_CONFIG).replace(**changes)
    base = base.replace(eval_interval=steps, checkpoint_interval=steps)
    start = time.perf_counter()
    seconds = {}
    for workers in (1, 2):
        spec = SweepSpec(base, algos=("drlhf",), seeds=tuple(range(trials)), workers=workers, max_retries=0)
        seconds[workers] = sweep_seconds(spec, args.backend)
        print(f"workers {workers}: {seconds[workers]:.1f} s", flush=True)
    ratio = seconds[1] / seconds[2]
    rows = [
        "| workers | sweep wall time (s) | speed-up |",
        "|---|---|---|",
        f"| 1 | {seconds[1]:.1f} | 1.00 |",
        f"| 2 | {seconds[2]:.1f} | {ratio:.2f} |",
    ]
    setting = (
        f"{trials} trials (drlhf on {base.env}, seeds 0-{trials - 1}) of {steps} agent steps, one torch thread each, "
        f"backend {args.backend}"
    )
    summary = f"speed-up with 2 workers = {ratio:.2f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})"
    print_report([machine_line(), setting, "\n".join(rows), summary], args.markdown, argv, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
