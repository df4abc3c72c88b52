"""``sobirl rlhf-summary``, ``plot`` and ``report``: tables, figures and reports of finished runs and sweeps
(:mod:`~sobirl.experiments.rlhf_summary`, :mod:`~sobirl.experiments.figures`, :mod:`~sobirl.experiments.report`)."""

from __future__ import annotations

import argparse
import functools
import shlex
from pathlib import Path

from sobirl.cli.common import reported
from sobirl.experiments.figures import write_figures
from sobirl.experiments.report import write_report
from sobirl.experiments.rlhf_summary import summary_table


def add_rlhf_summary(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "rlhf-summary",
        help="a markdown table of rlhf runs: final evaluation return mean +/- s.e. per environment and algorithm",
        description=(
            "Print a markdown table of `sobirl rlhf` run directories grouped by (env, algo): the final evaluation "
            "return and the mean of the last WINDOW evaluations (mean +/- standard error over seeds), the final "
            "return per seed, the held-out preference accuracy, wall time and agent steps per second."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="rlhf run directories")
    sub.add_argument("--window", type=int, default=5, help="evaluations averaged per run for the windowed column")
    sub.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    sub.set_defaults(handler=functools.partial(_run_rlhf_summary, sub))


def _run_rlhf_summary(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    with reported(parser):
        table = summary_table(args.run_dirs, window=args.window)
    print(table)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"Command: `{shlex.join(command)}`\n\n{table}\n")
    return 0


def add_plot(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "plot",
        help="paper-style figures (PNG and PDF) of rlhf, synthetic or compare runs: mean over seeds +/- standard error",
        description=(
            "Write figures of run directories of one experiment, as PNG and PDF, into OUTPUT: for rlhf runs "
            "NAME-return (evaluation return against agent steps, one subplot per env, one line per algorithm) and "
            "NAME-accuracy (held-out preference accuracy likewise); for synthetic runs NAME-convergence (objective, "
            "or the gap f - f* when every run has the same optimum, and |grad phi| against the iteration, one line "
            "per method; for a compare directory the same figure of the exact objective and |grad phi| of its trials). "
            "A line is the mean over seeds on the steps all of them reached, shaded +/- standard error "
            "std_{n-1}/sqrt(n). A sweep directory stands for its trials that have metrics."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run, sweep or compare directories")
    sub.add_argument("--output", type=Path, default=Path("figures"), help="directory of the figures, made if missing")
    sub.add_argument(
        "--name", default=None, help="file name stem; when not given: the experiment (rlhf, synthetic, compare)"
    )
    sub.set_defaults(handler=functools.partial(_run_plot, sub))


def _run_plot(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    with reported(parser):
        paths = write_figures(args.run_dirs, args.output, args.name)
    for path in paths:
        print(path)
    return 0


def add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "report",
        help="a markdown report of a sweep: grid, results table, figures, missing trials, commands and versions",
        description=(
            "Write a markdown report of a `sobirl sweep` directory: its grid, the results table of `sobirl "
            "rlhf-summary` over the trials with metrics (a row per env, algo and grid point), the interquartile "
            "means of the final and windowed returns with 95% stratified bootstrap intervals (rliable's method), the "
            "figures of `sobirl plot` and a performance profile of the final returns (written to figures/ next to "
            "the report), the failed, unfinished and missing trials, and the command lines and software versions "
            "that produced them."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="a sweep directory")
    sub.add_argument("--output", type=Path, default=None, help="the report file; when not given: SWEEP_DIR/report.md")
    sub.add_argument("--window", type=int, default=5, help="evaluations averaged per run for the windowed column")
    sub.add_argument(
        "--complete-only",
        action="store_true",
        help="the table, figures and command lines over the complete trials only (unfinished ones are listed as "
        "missing), for publishing the report of a sweep that is running or was stopped",
    )
    sub.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap (intervals, profile bands): same seed, same report"
    )
    sub.set_defaults(handler=functools.partial(_run_report, sub))


def _run_report(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    with reported(parser):
        path = write_report(
            args.sweep_dir, args.output, window=args.window, complete_only=args.complete_only, seed=args.seed
        )
    print(path)
    return 0
