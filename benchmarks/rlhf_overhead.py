"""Wall time per agent step of ``sobirl``, ``drlhf`` and ``sac-true-reward`` at equal settings.

Usage::

    python benchmarks/rlhf_overhead.py [--quick] [--steps N] [--repeats R] [--config PATH] [--set KEY=VALUE]
                                       [--markdown PATH]

Each algorithm trains a full :class:`sobirl.rlhf.RLHFTrainer` run of ``--steps`` agent steps (default 5000) from the
same config (``configs/pendulum-cpu.yaml`` by default), seed 0, one torch thread, with the exploration term on from
the first reward update (``exploration_warmup=0``) and a single evaluation and checkpoint at the end, so the time is
SAC's, the relabelling replay buffer's, and the reward updates' (the first with ``initial_reward_epochs`` passes).
The runs are interleaved (repeat 1: every algorithm, repeat 2: every algorithm in the next order, ...) so all see the
same machine load; the table gives the median seconds per agent step of each, and the ratios to ``drlhf`` and to
``sac-true-reward``. The target: ``sobirl`` (with its successor-feature critic, trained ``critic_steps`` TD steps
before every reward update) at most 1.25 times ``drlhf``.

``--set KEY=VALUE`` overrides a config field for every run (e.g. ``estimator=one-step``); ``--quick`` runs 600 steps
with updates every 200 (a smoke check of seconds); ``--markdown PATH`` also writes the command line, the machine line
and the table to PATH.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sobirl.cli import key_values
from sobirl.profiling import machine_line, print_report
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.trainer import RLHFTrainer

ALGOS = ("sac-true-reward", "drlhf", "sobirl")
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pendulum-cpu.yaml"
TARGET = 1.25
QUICK = dict(sac_learning_starts=200, reward_update_interval=200, initial_pairs=20, total_pairs=60, held_out_pairs=20)


def run_seconds(config: RLHFConfig, root: Path) -> float:
    """Wall seconds of one complete run of ``config`` in a fresh directory under ``root``."""
    run_dir = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    RLHFTrainer(config, run_dir).run()
    return time.perf_counter() - start


def measure(base: RLHFConfig, repeats: int) -> dict[str, list[float]]:
    """Seconds per agent step of each algorithm, ``repeats`` interleaved runs each (rotating the order)."""
    seconds: dict[str, list[float]] = {algo: [] for algo in ALGOS}
    with tempfile.TemporaryDirectory() as root:
        for r in range(repeats):
            for algo in ALGOS[r % len(ALGOS) :] + ALGOS[: r % len(ALGOS)]:
                s = run_seconds(base.replace(algo=algo), Path(root))
                seconds[algo].append(s / base.total_steps)
                per_step = 1e3 * s / base.total_steps
                print(f"repeat {r + 1}/{repeats} {algo}: {s:.1f} s, {per_step:.2f} ms/step", flush=True)
    return seconds


def rule_line(config: RLHFConfig) -> str:
    """The sobirl runs' rule settings and, with the successor-feature critic, its size and TD steps."""
    rule = config.replace(algo="sobirl").update_rule().config
    line = f"sobirl estimator {rule.estimator}, action_samples {rule.action_samples}"
    if rule.estimator == "successor-features":
        critic = config.critic_config()
        line += f", critic {list(critic.critic_hidden)} x {critic.critic_steps} TD steps of {critic.critic_batch_size}"
    return line


def table(seconds: dict[str, list[float]]) -> list[str]:
    """Markdown rows: median ms per agent step and the ratios to drlhf and sac-true-reward."""
    median = {algo: statistics.median(v) for algo, v in seconds.items()}
    rows = ["| algo | ms / agent step (median) | runs | / drlhf | / sac-true-reward |", "|---|---|---|---|---|"]
    for algo in ALGOS:
        rows.append(
            f"| {algo} | {1e3 * median[algo]:.2f} | {len(seconds[algo])} | {median[algo] / median['drlhf']:.3f} "
            f"| {median[algo] / median['sac-true-reward']:.3f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 steps, one repeat: a smoke check")
    parser.add_argument("--steps", type=int, default=5000, help="agent steps per run (default 5000)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per algorithm (default 2)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the runs' config (default pendulum-cpu)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps and --repeats must be >= 1, got {args.steps} and {args.repeats}")
    changes: dict[str, object] = dict(
        total_steps=600 if args.quick else args.steps,
        seed=0,
        device="cpu",
        threads=1,
        exploration_warmup=0,
        eval_episodes=1,
    )
    if args.quick:
        changes.update(QUICK)
    try:
        changes.update(key_values(args.overrides, "--set"))
    except ValueError as err:
        parser.error(str(err))
    base = RLHFConfig.from_yaml(args.config).replace(**changes)
    base = base.replace(eval_interval=base.total_steps, checkpoint_interval=base.total_steps)
    repeats = 1 if args.quick else args.repeats
    torch.set_num_threads(1)
    start = time.perf_counter()
    seconds = measure(base, repeats)
    rows = table(seconds)
    ratio = statistics.median(seconds["sobirl"]) / statistics.median(seconds["drlhf"])
    summary = f"sobirl / drlhf = {ratio:.3f} (target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'})"
    setting = (
        f"{base.env}, {base.total_steps} agent steps per run, reward update every {base.reward_update_interval} "
        f"steps, {base.total_pairs} pairs, SAC batch {base.sac_batch_size}, reward net {list(base.reward_hidden)}, "
        f"{rule_line(base)}, 1 thread"
    )
    print_report([machine_line(), setting, "\n".join(rows), summary], args.markdown, argv, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
