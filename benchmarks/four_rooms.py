"""Four-rooms (HPGD's reward-shaping problem): the leader objective F reached by exact hyper-gradient descent.

Usage::

    python benchmarks/four_rooms.py [--iterations 3000] [--workers 2] [--markdown PATH]

For every follower temperature lam in {0.001, 0.003, 0.005} and incentive cost c in {1, 3, 5}, runs ``exact``
(gradient descent with the exact hyper-gradient, gradient-norm clipping at 1 as in HPGD's experiments) from
uniform incentives for each step size of a small grid, and reports the best final F = -phi(x) over the grid (the
"tuned step"), next to Table 1 of Thoma et al. (NeurIPS 2024): HPGD, AMD and Zero-Order, mean +/- s.e. over 10
seeds, as published with their code.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from sobirl.experiments.compare import TrialSpec, run_trials

LAMS = (0.001, 0.003, 0.005)
COSTS = (1.0, 3.0, 5.0)
STEPS = (0.5, 2.0, 5.0)
CLIP = 1.0

HPGD_TABLE_1 = {  # (lam, c): (HPGD, AMD, Zero-Order), mean +/- s.e. over 10 seeds
    (0.001, 1.0): ("0.91 +/- 0.088", "0.58 +/- 0.000", "0.59 +/- 0.059"),
    (0.001, 3.0): ("0.51 +/- 0.006", "0.51 +/- 0.000", "0.50 +/- 0.005"),
    (0.001, 5.0): ("0.46 +/- 0.006", "0.46 +/- 0.003", "0.46 +/- 0.007"),
    (0.003, 1.0): ("0.95 +/- 0.002", "1.00 +/- 0.000", "0.91 +/- 0.048"),
    (0.003, 3.0): ("0.73 +/- 0.001", "0.39 +/- 0.000", "0.40 +/- 0.028"),
    (0.003, 5.0): ("0.29 +/- 0.003", "0.32 +/- 0.000", "0.32 +/- 0.002"),
    (0.005, 1.0): ("1.17 +/- 0.011", "1.28 +/- 0.003", "1.15 +/- 0.026"),
    (0.005, 3.0): ("1.01 +/- 0.002", "1.13 +/- 0.004", "1.02 +/- 0.027"),
    (0.005, 5.0): ("0.87 +/- 0.003", "0.97 +/- 0.009", "0.79 +/- 0.027"),
}


def main() -> int:
    """Run the grid and print (and optionally write) the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        specs = [
            TrialSpec(
                problem="four-rooms",
                problem_params={"lam": lam, "c": c},
                method="exact",
                method_params={"beta": beta, "clip": CLIP},
                seed=0,
                iterations=args.iterations,
                evaluate_every=args.iterations,
                metrics_path=Path(tmp) / f"{lam}-{c}-{beta}.csv",
            )
            for lam in LAMS
            for c in COSTS
            for beta in STEPS
        ]
        results = run_trials(specs, workers=args.workers)
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"failed: {r.spec.problem_params} beta={r.spec.method_params['beta']}: {r.error}", file=sys.stderr)

    lines = [
        f"Command: `python benchmarks/four_rooms.py {shlex.join(sys.argv[1:])}`",
        f"exact, {args.iterations} iterations from uniform incentives, clip {CLIP}, best step of {STEPS}; "
        f"{time.perf_counter() - start:.0f} s with {args.workers} workers.",
        "",
        "| lam | c | F, exact (sobirl) | best step | F at each step | HPGD | AMD | Zero-Order |",
        "|---:|---:|---:|---:|---|---|---|---|",
    ]
    for lam in LAMS:
        for c in COSTS:
            finals = {
                r.spec.method_params["beta"]: -r.rows[-1]["exact_objective"]
                for r in results
                if r.error is None and r.spec.problem_params == {"lam": lam, "c": c}
            }
            best = max(finals, key=finals.get)
            each = ", ".join(f"{finals[b]:.3f}" for b in STEPS if b in finals)
            lines.append(
                f"| {lam} | {c:g} | {finals[best]:.3f} | {best:g} | {each} | "
                + " | ".join(HPGD_TABLE_1[(lam, c)])
                + " |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
