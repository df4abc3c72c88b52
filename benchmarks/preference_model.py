"""Speed of the batched preference model against a per-pair loop on the same mini-batch of fragment pairs.

Usage::

    python benchmarks/preference_model.py [--quick] [--threads N] [--markdown PATH]

For ``B = 64`` pairs of fragments of ``L = 25`` and ``L = 50`` steps, with Pendulum-sized (observation 3, action 1)
and HalfCheetah-sized (observation 17, action 6) inputs, a :class:`sobirl.rlhf.RewardNet` (hidden (256, 256), its
default, and (64, 64); ReLU, float32, seed 0) and random labels in ``[0, 1]``, it times one training step's forward and
backward pass of the Bradley-Terry loss (``zero_grad``, loss, ``backward``):

- batched: :func:`sobirl.rlhf.preference_logits` (ONE reward-net call on all ``B * 2 * L`` steps) and
  :func:`sobirl.rlhf.preference_loss`;
- loop: the seed authors' and ``imitation``'s way, one reward-net call per fragment (``2 B`` calls of ``L`` rows),
  ``R_k = net(obs[i, k], act[i, k]).sum()``, the ``B`` logits stacked, then the same loss.

The two are timed alternately (batched, loop, batched, ...) so that both see the same machine load: at least
:data:`MIN_REPEATS` of each, then until :data:`BUDGET_S` seconds per row are spent, at most :data:`MAX_REPEATS`; the
table gives the median of each and the ratio loop / batched. As a check that both compute the same thing, the largest
difference of their losses and gradients is printed to stderr (float32 rounding).

``--quick`` keeps ``L = 25``, hidden (256, 256) and a budget of 0.5 s per row (a smoke check of a few seconds);
``--threads N`` sets ``torch.set_num_threads(N)`` (default: torch's own choice); the machine line reports it.
``--markdown PATH`` also writes the command line, the machine line and the table to PATH.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sobirl.profiling import command_line, machine_line, write_report
from sobirl.rlhf import RewardNet, preference_logits, preference_loss

N_PAIRS = 64
HIDDENS = ((256, 256), (64, 64))
QUICK_HIDDENS = ((256, 256),)
SHAPES = (("Pendulum", 3, 1), ("HalfCheetah", 17, 6))
LENGTHS = (25, 50)
QUICK_LENGTHS = (25,)
MIN_REPEATS = 5
MAX_REPEATS = 200
BUDGET_S = 3.0
QUICK_BUDGET_S = 0.5
SEED = 0


@dataclass(frozen=True)
class Row:
    """One line of the table: the case and the median seconds of each way."""

    env: str
    obs_dim: int
    act_dim: int
    hidden: tuple[int, ...]
    length: int
    batched_s: float
    loop_s: float
    repeats: int


def loop_logits(net: RewardNet, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """``R(d_1) - R(d_2)`` pair by pair, one reward-net call per fragment (the per-pair reference)."""
    logits = []
    for i in range(obs.shape[0]):
        r1 = net(obs[i, 0], act[i, 0]).sum()
        r2 = net(obs[i, 1], act[i, 1]).sum()
        logits.append(r1 - r2)
    return torch.stack(logits)


def training_step(
    net: RewardNet, logits_fn: Callable[..., torch.Tensor], obs: torch.Tensor, act: torch.Tensor, labels: torch.Tensor
) -> tuple[float, list[torch.Tensor]]:
    """One forward and backward pass; returns the loss and the gradients (cloned, for the check)."""
    net.zero_grad(set_to_none=True)
    loss = preference_loss(logits_fn(net, obs, act), labels)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters() if p.grad is not None]


def run_case(env: str, obs_dim: int, act_dim: int, hidden: tuple[int, ...], length: int, *, budget_s: float) -> Row:
    """Time both ways on the same batch, alternately (module docstring)."""
    gen = torch.Generator().manual_seed(SEED)
    obs = torch.randn(N_PAIRS, 2, length, obs_dim, generator=gen)
    act = torch.rand(N_PAIRS, 2, length, act_dim, generator=gen) * 2 - 1
    labels = torch.rand(N_PAIRS, generator=gen)
    net = RewardNet(obs_dim, act_dim, hidden=hidden, seed=SEED)
    ways = {"batched": preference_logits, "loop": loop_logits}

    results = {name: training_step(net, fn, obs, act, labels) for name, fn in ways.items()}  # also a warm-up
    (loss_b, grads_b), (loss_l, grads_l) = results["batched"], results["loop"]
    grad_diff = max((gb - gl).abs().max().item() for gb, gl in zip(grads_b, grads_l, strict=True))
    grad_max = max(g.abs().max().item() for g in grads_l)
    print(
        f"  {env} hidden={hidden} L={length}: loss batched {loss_b:.7g}, loop {loss_l:.7g}; "
        f"largest gradient difference {grad_diff:.2g} (largest gradient entry {grad_max:.2g})",
        file=sys.stderr,
        flush=True,
    )

    times: dict[str, list[float]] = {name: [] for name in ways}
    started = time.perf_counter()
    while len(times["loop"]) < MIN_REPEATS or (
        len(times["loop"]) < MAX_REPEATS and time.perf_counter() - started < budget_s
    ):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            training_step(net, fn, obs, act, labels)
            times[name].append(time.perf_counter() - t0)
    return Row(
        env,
        obs_dim,
        act_dim,
        hidden,
        length,
        statistics.median(times["batched"]),
        statistics.median(times["loop"]),
        len(times["loop"]),
    )


COLUMNS = (
    "inputs",
    "obs dim",
    "act dim",
    "hidden",
    "B",
    "L",
    "rows per batched forward",
    "batched: ms per step",
    "loop: ms per step",
    "ratio loop/batched",
    "repeats of each",
)


def table(rows: list[Row]) -> str:
    """The results as a markdown table (a step = zero_grad, forward, loss, backward)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    for r in rows:
        cells = (
            r.env,
            str(r.obs_dim),
            str(r.act_dim),
            "x".join(map(str, r.hidden)),
            str(N_PAIRS),
            str(r.length),
            f"{N_PAIRS * 2 * r.length:,}",
            f"{1e3 * r.batched_s:.3g}",
            f"{1e3 * r.loop_s:.3g}",
            f"{r.loop_s / r.batched_s:.3g}",
            str(r.repeats),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line: the range of the speed-up."""
    ratios = [r.loop_s / r.batched_s for r in rows]
    return f"Batched over per-pair loop: {min(ratios):.3g}x to {max(ratios):.3g}x faster per training step."


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, optionally write it to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only L = 25 and hidden (256, 256), 0.5 s per row")
    parser.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's choice)")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    command = command_line(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    machine = machine_line()
    print(machine, flush=True)
    started = time.perf_counter()
    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    hiddens = QUICK_HIDDENS if args.quick else HIDDENS
    budget = QUICK_BUDGET_S if args.quick else BUDGET_S
    rows = [run_case(env, d, k, h, L, budget_s=budget) for h in hiddens for env, d, k in SHAPES for L in lengths]
    elapsed = time.perf_counter() - started
    text = table(rows)
    print()
    print(text)
    print()
    print(summary(rows))
    if args.markdown is not None:
        write_report(args.markdown, command, [machine, text, summary(rows)], elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
