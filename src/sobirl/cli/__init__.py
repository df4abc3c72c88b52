"""The ``sobirl`` command line: ``sobirl COMMAND [options]``; ``sobirl COMMAND --help`` describes each command.

Every run leaves a self-describing run directory (see :mod:`sobirl.rundir`). Arguments are
validated, by building the problem and the method's config, before that directory is created, so bad input
exits with status 2 and writes nothing.

A command parses and checks its arguments, then calls one function of :mod:`sobirl.experiments`; expected errors
go through one funnel, :func:`sobirl.cli.common.reported`. The commands live by group: :mod:`~sobirl.cli.tabular`
(``synthetic``, ``compare``, ``estimators``), :mod:`~sobirl.cli.rlhf` (``rlhf``, ``evaluate``, ``sweep``, ``label``)
and :mod:`~sobirl.cli.reports` (``rlhf-summary``, ``plot``, ``report``).
"""

from __future__ import annotations

import argparse
import sys

import sobirl
from sobirl.cli import reports, rlhf, tabular
from sobirl.cli.common import PROG, grid_values, key_values

__all__ = ["PROG", "build_parser", "grid_values", "key_values", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``sobirl`` command line.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0 on success, 1 if the run failed numerically (diverged), 130 if it was interrupted
        (Ctrl-C). Invalid arguments exit through ``SystemExit`` with status 2 before anything is written.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    return args.handler(args, [PROG, *argv])


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``sobirl`` with all its subcommands.

    Returns:
        The parser; each subcommand stores its runner as ``handler(args, command_line) -> int``.
    """
    parser = argparse.ArgumentParser(
        prog=PROG, description="Bilevel reinforcement learning with fully first-order hyper-gradients (SoBiRL)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {sobirl.__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    tabular.add_synthetic(commands)
    tabular.add_compare(commands)
    tabular.add_estimators(commands)
    rlhf.add_rlhf(commands)
    rlhf.add_evaluate(commands)
    reports.add_rlhf_summary(commands)
    reports.add_plot(commands)
    reports.add_report(commands)
    rlhf.add_sweep(commands)
    rlhf.add_label(commands)
    return parser
