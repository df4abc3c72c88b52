"""The ``sobirl`` command line: ``sobirl COMMAND [options]``; ``sobirl COMMAND --help`` describes each command.

Every run leaves a self-describing run directory (see :mod:`sobirl.rundir`). Arguments are
validated, by building the problem and the method's config, before that directory is created, so bad input
exits with status 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import os
import shlex
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NoReturn

import yaml
from gymnasium import error as gym_error
from tqdm.auto import tqdm

import sobirl
from sobirl.algorithms import METHODS, DivergenceError, MethodConfig, resolve_config, solve
from sobirl.estimators import ESTIMATORS
from sobirl.experiments import (
    MetricsLogger,
    compare,
    create_run_dir,
    plot_convergence,
    sweep,
    sweep_backends,
    tracking,
    write_config,
)
from sobirl.experiments import estimator_study as study
from sobirl.experiments.evaluate import evaluate_run, format_result
from sobirl.experiments.figures import plot_comparison, plot_returns, plot_study, write_figures
from sobirl.experiments.report import write_report
from sobirl.experiments.rlhf_summary import summary_table
from sobirl.problems import PROBLEMS, random_mdp
from sobirl.profiling import machine_line
from sobirl.rlhf import settings as rlhf_settings
from sobirl.rlhf.artifacts import POLICY_FILE, REWARD_NET_FILE
from sobirl.rlhf.checkpoints import CHECKPOINT_DIR, RETURN_PLOT, CheckpointWriteError
from sobirl.rlhf.config import ALGOS, RLHFConfig, check_device
from sobirl.rlhf.environments import make_env
from sobirl.rlhf.run_logger import NonFiniteError
from sobirl.rlhf.trainer import RLHFTrainer
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, TENSORBOARD_DIR, read_metrics
from sobirl.tabular import BilevelProblem, hypergradient, hyperobjective
from sobirl.validation import check_int

PROG = "sobirl"
PLOT_FILE = "plot.png"
SUMMARY_FILE = "summary.yaml"

# Every field of every method's Config becomes an option `--field-name` (except `seed`: `--seed` seeds both the
# problem and a stochastic method). Their argparse default is SUPPRESS, so an option is in the namespace only when
# the user gives it: omitted ones take the chosen method's own Config default, and one the method does not use
# can be rejected. Help texts come from the Configs' docstrings, the single source of the documentation.
_SHARED_SEED = "seed"


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
    _add_synthetic(commands)
    _add_compare(commands)
    _add_estimators(commands)
    _add_rlhf(commands)
    _add_evaluate(commands)
    _add_rlhf_summary(commands)
    _add_plot(commands)
    _add_report(commands)
    _add_sweep(commands)
    return parser


def _add_synthetic(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "synthetic",
        help="run a method on the paper's synthetic RandMDP problem",
        description=(
            "Run a bilevel method on the synthetic RandMDP problem (docs/math.md, section 4). The defaults are "
            "the paper's settings (method parameters not given take the problem's suggestion, here M-SoBiRL's "
            "zeta = 0.5, then the method's default). Writes config.yaml, metrics.csv, tensorboard/, plot.png and "
            "summary.yaml to "
            "a new run directory OUTPUT_DIR/NAME-<timestamp>."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    problem = sub.add_argument_group("problem")
    problem.add_argument("--S", type=int, default=10, help="number of states")
    problem.add_argument("--A", type=int, default=5, help="number of actions")
    problem.add_argument("--n", type=int, default=100, help="dimension of the leader's parameters x")
    problem.add_argument("--gamma", type=float, default=0.5, help="discount factor, in [0, 1)")
    problem.add_argument("--tau", type=float, default=1.0, help="entropy temperature, > 0")
    problem.add_argument(
        "--seed", type=int, default=0, help="seed of the transitions, rewards, M and x0 (and of a stochastic method)"
    )

    method = sub.add_argument_group("method")
    method.add_argument("--method", choices=list(METHODS), default="m-sobirl", help="outer-loop method")
    method.add_argument("--iterations", type=int, default=3000, help="outer iterations K")
    for name, help_text in _method_options().items():
        method.add_argument(_flag(name), default=argparse.SUPPRESS, type=_parse_value, help=help_text)

    output = sub.add_argument_group("output")
    output.add_argument("--output-dir", type=Path, default=Path("runs"), help="root of the run directories")
    output.add_argument(
        "--name",
        default=argparse.SUPPRESS,
        help="run name, the prefix of the run directory (default: synthetic-<method>-seed<seed>)",
    )
    output.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.set_defaults(handler=functools.partial(_run_synthetic, sub))


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _method_options() -> dict[str, str]:
    """Option name -> help text, for every field of every registered method's Config (except ``seed``)."""
    texts: dict[str, dict[str, list[str]]] = {}  # field -> description with default -> methods
    for method, cls in METHODS.items():
        docs = _attribute_docs(cls.Config)
        for field in dataclasses.fields(cls.Config):
            if field.name != _SHARED_SEED:
                text = f"{docs.get(field.name, '').rstrip('.')} (default: {field.default})"
                texts.setdefault(field.name, {}).setdefault(text, []).append(method)
    return {
        name: "; ".join(f"{', '.join(methods)}: {text}" for text, methods in by_text.items()).replace("%", "%%")
        for name, by_text in texts.items()
    }


def _attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` sections of the Google-style docstrings of ``cls`` and its bases as {name: one-line
    description}; a subclass's description of a field replaces its base's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_own_attribute_docs(klass))
    return docs


def _own_attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of ``cls``'s own docstring as {name: one-line description}."""
    docs: dict[str, str] = {}
    lines = (cls.__dict__.get("__doc__") or "").splitlines()
    if not any(line.strip() == "Attributes:" for line in lines):
        return docs
    start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1
    name = None
    for line in lines[start:]:
        stripped = line.strip()
        if not stripped:
            break
        head, sep, text = stripped.partition(": ")
        if sep and head.isidentifier() and line.startswith(" " * 8) and not line.startswith(" " * 12):
            name = head
            docs[name] = text
        elif name is not None:
            docs[name] += " " + stripped
    return docs


def _run_synthetic(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    method = args.method
    config_cls = METHODS[method].Config
    accepted = [field.name for field in dataclasses.fields(config_cls)]
    given = {name: getattr(args, name) for name in _method_options() if hasattr(args, name)}
    unused = [name for name in given if name not in accepted]
    if unused:
        options = ", ".join(_flag(name) for name in accepted if name != _SHARED_SEED)
        parser.error(
            f"{', '.join(_flag(name) for name in unused)}: not used by method {method!r} (its options: {options})"
        )
    if _SHARED_SEED in accepted:
        given[_SHARED_SEED] = args.seed
    try:
        prob = random_mdp(S=args.S, A=args.A, n=args.n, gamma=args.gamma, tau=args.tau, seed=args.seed)
        config = resolve_config(prob, method, given)
        check_int("iterations", args.iterations, low=1)
        run_dir = create_run_dir(args.output_dir, getattr(args, "name", f"synthetic-{method}-seed{args.seed}"))
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"cannot create a run directory in {args.output_dir}: {err}")

    try:
        return _execute_synthetic(args, prob, config, run_dir, command)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the run directory keeps the metrics logged so far: {run_dir}", file=sys.stderr)
        return 130


def _execute_synthetic(
    args: argparse.Namespace, prob: BilevelProblem, config: MethodConfig, run_dir: Path, command: list[str]
) -> int:
    paths = {
        "run_dir": run_dir,
        "config": run_dir / CONFIG_FILE,
        "metrics": run_dir / METRICS_FILE,
        "tensorboard": run_dir / TENSORBOARD_DIR,
        "plot": run_dir / PLOT_FILE,
        "summary": run_dir / SUMMARY_FILE,
    }
    optimum = args.S / (2 * args.A)  # global minimum of RandMDP's f, at x = 0 (see random_mdp)
    resolved = {
        "experiment": "synthetic",
        "problem": {"name": prob.name, "S": args.S, "A": args.A, "n": args.n, "gamma": args.gamma, "tau": args.tau},
        "seed": args.seed,
        "method": args.method,
        "method_config": config.to_dict(),
        "iterations": args.iterations,
        "optimum": optimum,
        "outputs": {key: str(path) for key, path in paths.items()},
    }
    write_config(run_dir, resolved, command=command)

    start = time.perf_counter()
    try:
        with MetricsLogger(run_dir) as logger:
            res = solve(
                prob,
                prob.x0,
                args.method,
                args.iterations,
                progress=not args.no_progress,
                callback=logger.log,
                **config.to_dict(),
            )
    except DivergenceError as err:
        print(f"error: the run failed: {err}\nmetrics up to the failure: {paths['metrics']}", file=sys.stderr)
        return 1
    wall_time = time.perf_counter() - start

    # The logged objective and grad_norm are the method's own estimates; the summary holds the exact values.
    objective = hyperobjective(prob, res.x).item()
    grad_norm = hypergradient(prob, res.x).norm().item()
    plot_convergence(res.history, paths["plot"], title=f"{args.method} on {prob.name}", optimum=optimum)
    summary = {
        "iterations": len(res.history),
        "objective": objective,
        "optimality_gap": objective - optimum,
        "grad_norm": grad_norm,
        "wall_time_s": wall_time,
        "method_time_s": res.history.rows[-1]["wall_time"],
    }
    with open(paths["summary"], "x") as fh:
        yaml.safe_dump(summary, fh, sort_keys=False)

    width = max(map(len, paths))
    for key, path in paths.items():
        print(f"{key:<{width}}  {path}")
    print(f"final f = {objective:.10g}  (f* = {optimum:g}, gap {objective - optimum:.3g})")
    print(f"final |grad phi| = {grad_norm:.3g}")
    print(f"wall time {wall_time:.1f} s; view the curves with: tensorboard --logdir {paths['tensorboard']}")
    return 0


def _add_compare(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "compare",
        help="compare methods on one problem over seeds, with the same budget",
        description=(
            "Run every method for the same number of iterations on one problem, once per seed, in parallel "
            "processes. Records the exact objective every --evaluate-every iterations (not counted in wall time). "
            "Writes config.yaml, trials/<method>-seed<k>.csv, results.md (final objective mean +/- standard error, "
            "work counters, wall time) and objective.png to a new run directory OUTPUT_DIR/NAME-<timestamp>."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("--problem", required=True, help=f"problem, one of: {', '.join(PROBLEMS)}")
    sub.add_argument(
        "--set",
        dest="problem_params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a problem parameter (repeatable), e.g. --set lam=0.001; numbers, else YAML values",
    )
    sub.add_argument("--methods", required=True, help=f"comma-separated methods, from: {', '.join(METHODS)}")
    sub.add_argument(
        "--param",
        dest="method_params",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="a method parameter (repeatable), e.g. --param exact.beta=0.5; numbers, else YAML values",
    )
    sub.add_argument("--seeds", type=int, default=3, help="number of seeds: 0, 1, ..., SEEDS-1")
    sub.add_argument("--iterations", type=int, default=200, help="outer iterations per trial (the same budget)")
    sub.add_argument("--evaluate-every", type=int, default=10, help="iterations between exact evaluations")
    sub.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel worker processes")
    sub.add_argument("--output-dir", type=Path, default=Path("runs"), help="root of the run directories")
    sub.add_argument("--name", default=None, help="run name (default: compare-<problem>)")
    sub.set_defaults(handler=functools.partial(_run_compare, sub))


def key_values(items: list[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` items (of ``option``, named in the error) as a dict; values parsed as numbers, else YAML.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key] = _parse_value(value)
    return out


def grid_values(items: list[str], option: str) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` items (of ``option``, named in the error) as ``{key: [values]}``, keys in the given order;
    each value parsed as by ``--set`` (numbers, else YAML), split at the commas outside brackets and quotes, so a
    list value stays whole: ``reward_hidden=[64, 64],[32]``.

    Raises:
        ValueError: an item without ``=``, with an empty key, an empty value, unbalanced brackets or quotes, or a key
            given twice.
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE1,VALUE2,..., got {item!r}")
        if key in out:
            raise ValueError(f"{option} {key} is given twice; list all its values in one {option} {key}=V1,V2,...")
        parts = _split_top_level(text, f"{option} {key}")
        if any(not part.strip() for part in parts):
            raise ValueError(f"{option} {key} has an empty value in {text!r}; expected {key}=VALUE1,VALUE2,...")
        out[key] = [_parse_value(part.strip()) for part in parts]
    return out


def _split_top_level(text: str, what: str) -> list[str]:
    """``text`` split at the commas that are outside brackets (``[]``, ``{}``) and quotes.

    Raises:
        ValueError: unbalanced brackets or an unclosed quote, naming ``what``.
    """
    parts, current, depth, quote = [], [], 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{what}: unbalanced brackets in {text!r}")
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth or quote:
        raise ValueError(f"{what}: unbalanced brackets or quotes in {text!r}")
    return [*parts, "".join(current)]


def _parse_value(text: str) -> Any:
    """A number when the text is one (YAML 1.1 reads ``1e4`` as a string), else YAML (``true``, ``[1, 2]``)."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _run_compare(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    try:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        problem_params = key_values(args.problem_params, "--set")
        method_params: dict[str, dict[str, Any]] = {}
        for key, value in key_values(args.method_params, "--param").items():
            method, sep, name = key.partition(".")
            if not sep:
                raise ValueError(f"--param expects METHOD.FIELD=VALUE, got {key!r}")
            method_params.setdefault(method, {})[name] = value
        check_int("seeds", args.seeds, low=1)
        check_int("iterations", args.iterations, low=1)
        check_int("evaluate-every", args.evaluate_every, low=1)
        check_int("workers", args.workers, low=1)
        compare.validate(args.problem, problem_params, methods, method_params)
        run_dir = create_run_dir(args.output_dir, args.name or f"compare-{args.problem}")
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"cannot create a run directory in {args.output_dir}: {err}")

    write_config(
        run_dir,
        {
            "experiment": "compare",
            "problem": args.problem,
            "problem_params": problem_params,
            "methods": methods,
            "method_params": method_params,
            "seeds": args.seeds,
            "iterations": args.iterations,
            "evaluate_every": args.evaluate_every,
            "workers": args.workers,
        },
        command=command,
    )
    specs = [
        compare.TrialSpec(
            problem=args.problem,
            problem_params=problem_params,
            method=method,
            method_params=method_params.get(method, {}),
            seed=seed,
            iterations=args.iterations,
            evaluate_every=args.evaluate_every,
            metrics_path=compare.trial_path(run_dir, method, seed),
        )
        for method in methods
        for seed in range(args.seeds)
    ]
    with tqdm(total=len(specs), desc="trials", dynamic_ncols=True) as bar:

        def done(result: compare.TrialResult) -> None:
            bar.update()
            if result.error:
                tqdm.write(f"{result.spec.method} seed {result.spec.seed} failed: {result.error}", file=sys.stderr)

        results = compare.run_trials(specs, workers=args.workers, on_done=done)
    table = compare.markdown_table(compare.summarise(results), args.iterations)
    (run_dir / "results.md").write_text(f"# {args.problem}: {', '.join(methods)} over {args.seeds} seeds\n\n{table}")
    plot_comparison(results, run_dir / "objective.png", title=f"{args.problem}, {args.seeds} seeds")
    print(table)
    print(f"run_dir  {run_dir}\nresults  {run_dir / 'results.md'}\nfigure   {run_dir / 'objective.png'}")
    return 1 if any(r.error for r in results) else 0


def _add_estimators(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "estimators",
        help="bias, spread and cosine of the model-free hyper-gradient estimators against the exact gradient",
        description=(
            "Draw SEEDS estimates of grad phi(x) per estimator and batch size (seeds 0, 1, ...), with the follower "
            "at its exact soft optimum, and compare them with the exact hyper-gradient: relative bias "
            "|mean g - grad phi| / |grad phi| with its noise floor (relative std / sqrt(seeds)), relative standard "
            "deviation and cosine similarity, against the number of sampled trajectories (docs/estimator-study.md). "
            "A batch counts draws of the upper level's data: preference pairs (2 trajectories each) for "
            "tabular-rlhf, trajectories for four-rooms. Writes config.yaml, results.csv, results.md, bias.png, "
            "std.png and cosine.png to a new run directory OUTPUT_DIR/NAME-<timestamp>."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument(
        "--problem",
        required=True,
        help=f"problem with a sampled upper objective (e.g. tabular-rlhf, four-rooms), one of: {', '.join(PROBLEMS)}",
    )
    sub.add_argument(
        "--set",
        dest="problem_params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a problem parameter (repeatable), over the study's {study.DEFAULT_PROBLEM_PARAMS}",
    )
    sub.add_argument(
        "--estimators",
        default=",".join(ESTIMATORS),
        help="comma-separated estimators: tabular ones, or deep RLHF rules run on a tabular-rlhf problem as "
        "deep:<rule>[/<estimator>] (e.g. deep:sobirl/successor-features, deep:sobirl/one-step, deep:hpgd)",
    )
    sub.add_argument(
        "--batches",
        default=",".join(map(str, study.DEFAULT_BATCHES)),
        help="comma-separated batch sizes: draws per estimate (preference pairs or trajectories); 1e5 is accepted",
    )
    sub.add_argument(
        "--seeds",
        default=None,
        metavar="N[,N...]",
        help=(
            f"seeds of every estimator: one count, or one per batch; default: {study.MONTE_CARLO_SEEDS} for "
            f"monte-carlo, else ceil({study.SEED_DRAWS} / batch) within [{study.MIN_SEEDS}, {study.MAX_SEEDS}]"
        ),
    )
    sub.add_argument(
        "--estimator-seeds",
        action="append",
        default=[],
        metavar="ESTIMATOR=N[,N...]",
        help="seeds of one estimator (repeatable), over --seeds, e.g. monte-carlo=100",
    )
    sub.add_argument(
        "--pairs-per-path",
        type=int,
        default=study.DEFAULT_PAIRS_PER_PATH,
        help="monte-carlo: restart pairs per sampled trajectory (memory grows with it: 2.2 GB per four-rooms "
        "estimate of 10^5 trajectories with 1, 3.6 GB with 2)",
    )
    sub.add_argument(
        "--x-scale",
        type=float,
        default=0.0,
        help="evaluate at the base point (--at) + X_SCALE * N(0, I) (a fixed draw)",
    )
    sub.add_argument(
        "--at",
        choices=study.POINTS,
        default="x0",
        help="base point: the problem's x0, or (tabular-rlhf) the true reward in the labels' units, where only the "
        "exploration term is left in expectation",
    )
    sub.add_argument(
        "--reference-pairs",
        type=int,
        default=study.REFERENCE_PAIRS,
        help="pairs of the Monte-Carlo reference (exact per-step sensitivities) where f cannot be enumerated",
    )
    sub.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (one torch thread each; 1: in-process)"
    )
    sub.add_argument("--output-dir", type=Path, default=Path("runs"), help="root of the run directories")
    sub.add_argument("--name", default=None, help="run name (default: estimators-<problem>)")
    sub.set_defaults(handler=functools.partial(_run_estimators, sub))


def _run_estimators(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    def counts(text: str) -> list[Any]:
        return [_parse_value(item) for item in text.split(",")]

    try:
        estimator_seeds = {}
        for item in args.estimator_seeds:
            estimator, sep, text = item.partition("=")
            if not sep or not estimator:
                raise ValueError(f"--estimator-seeds expects ESTIMATOR=N[,N...], got {item!r}")
            estimator_seeds[estimator] = counts(text)
        check_int("workers", args.workers, low=1)
        plan = study.plan_study(
            args.problem,
            problem_params=key_values(args.problem_params, "--set"),
            estimators=[e.strip() for e in args.estimators.split(",") if e.strip()],
            batches=counts(args.batches),
            seeds=None if args.seeds is None else counts(args.seeds),
            estimator_seeds=estimator_seeds,
            pairs_per_path=args.pairs_per_path,
            x_scale=args.x_scale,
            at=args.at,
            reference_pairs=args.reference_pairs,
        )
        run_dir = create_run_dir(args.output_dir, args.name or f"estimators-{args.problem}")
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"cannot create a run directory in {args.output_dir}: {err}")

    write_config(run_dir, {**plan.to_config(), "workers": args.workers}, command=command)
    with tqdm(total=plan.n_estimates, desc="estimates", dynamic_ncols=True) as bar:
        rows = study.run_study(plan, workers=args.workers, on_estimate=bar.update)
    base = "x0" if plan.at == "x0" else "r_true / T"
    point = base if plan.x_scale == 0 else f"{base} + {plan.x_scale:g} N(0, I)"
    title = f"{args.problem}, gamma {plan.problem_params.get('gamma')}, at {point}: |grad phi| {plan.exact.norm():.3g}"
    table = study.markdown_table(rows)
    study.write_csv(rows, run_dir / study.RESULTS_CSV)
    (run_dir / study.RESULTS_MD).write_text(f"# {title}\n\n{machine_line()}\n\n{table}")
    figures = plot_study(rows, run_dir, title=title)
    print(table)
    print(f"run_dir  {run_dir}\nresults  {run_dir / study.RESULTS_CSV}")
    for path in figures.values():
        print(f"figure   {path}")
    return 0


def _add_rlhf(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "rlhf",
        help="deep RLHF: soft actor-critic learning from a reward net trained on synthetic preferences",
        description=(
            "Train a soft actor-critic (SAC for Box actions, DiscreteSAC for Discrete actions) on a gymnasium "
            "environment with 1-D observations from a reward network learned from synthetic preferences between "
            "fragments of its own episodes (drlhf, sobirl, stoc-sobirl, hpgd, pbrl), or on the true reward "
            "(sac-true-reward). Settings: defaults < --config FILE (without it: the shipped config for --env, where "
            "there is one, and the run says so) < --set KEY=VALUE < the options below, every one listed below by group "
            "with its default (the fields of sobirl.rlhf.config.RLHFConfig, the update rules' and the critic's "
            "settings). Writes config.yaml, metrics.csv, tensorboard/, "
            "return.png and checkpoints/ to a new run directory OUTPUT_DIR/NAME-<timestamp>; --resume RUN_DIR "
            "continues a killed run from its latest checkpoint."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML file of config fields (e.g. configs/*.yaml); without it, --env ID starts from the shipped config "
        f"for ID where there is one ({', '.join(f'{e}: {f}' for e, f in rlhf_settings.ENV_CONFIGS.items())})",
    )
    sub.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config field (repeatable), e.g. --set reward_update_interval=2000; numbers, else YAML values",
    )
    sub.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR", help="continue this run's latest checkpoint"
    )
    sub.add_argument("--output-dir", type=Path, default=Path("runs"), help="root of the run directories")
    sub.add_argument("--name", default=None, help="run name (default: rlhf-<env>-<algo>-seed<seed>)")
    sub.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.add_argument(
        "--track",
        action="store_true",
        help='send the run to Weights & Biases (config and TensorBoard scalars; pip install "sobirl[track]")',
    )
    sub.add_argument("--wandb-project", default="sobirl", help="the W&B project of --track")
    _add_rlhf_settings(sub)
    sub.set_defaults(handler=functools.partial(_run_rlhf, sub))


def _add_rlhf_settings(sub: argparse.ArgumentParser) -> None:
    """One option per setting (:func:`sobirl.rlhf.settings.settings`), in its group, with its default and description;
    given ones override the config and ``--set`` (argparse default SUPPRESS: only given options reach the namespace)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in rlhf_settings.settings():
        if setting.group not in groups:
            groups[setting.group] = sub.add_argument_group(f"settings: {setting.group}")
        text = f"{setting.doc.rstrip('.')} (default: {setting.default})".replace("%", "%%")
        groups[setting.group].add_argument(
            setting.flag,
            dest=setting.name,
            default=argparse.SUPPRESS,
            type=str if setting.default and _is_plain_string(setting) else _parse_value,
            metavar=_metavar(setting.default),
            help=text,
        )


def _is_plain_string(setting: rlhf_settings.Setting) -> bool:
    """Whether the setting's default is a string (its option then takes the text as given, never YAML)."""
    return isinstance(_parse_value(setting.default), str) and ";" not in setting.default


def _metavar(default: str) -> str:
    value = _parse_value(default) if ";" not in default else None
    if isinstance(value, bool):
        return "BOOL"
    for kind, name in ((int, "INT"), (float, "FLOAT"), (str, "STR"), (list, "LIST"), (dict, "MAP")):
        if isinstance(value, kind):
            return name
    return "VALUE"


def _run_rlhf(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    def fail(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    flags = {s.name: getattr(args, s.name) for s in rlhf_settings.settings() if hasattr(args, s.name)}
    if args.track and importlib.util.find_spec("wandb") is None:
        fail(tracking.MISSING)
    try:
        if args.resume is not None:
            given = [f"--{k.replace('_', '-')}" for k in flags] + ["--config"] * (args.config is not None)
            if given or args.overrides:
                fail(f"--resume continues the run's own config; drop {', '.join(given) or '--set'}")
            run_dir = args.resume
            trainer = RLHFTrainer.resume(run_dir)
        else:
            changes = {**key_values(args.overrides, "--set"), **flags}
            base = args.config
            if base is None and "env" in changes:  # the shipped config for the environment, if there is one
                base = rlhf_settings.shipped_config(changes["env"])
                if base is not None:
                    print(
                        f"starting from {rlhf_settings.display_path(base)}, the shipped config for {changes['env']} "
                        "(--config FILE starts from another; --set and the options override it)"
                    )
            config = RLHFConfig() if base is None else RLHFConfig.from_yaml(base)
            config = config.replace(**changes)
            check_device(config.device)  # a bad device or environment fails before the run directory exists
            make_env(config).close()
            name = args.name or sweep.trial_name(config.env, config.algo, config.seed)
            run_dir = create_run_dir(args.output_dir, name)
            write_config(run_dir, {"experiment": "rlhf", **config.resolved()}, command=command)
            trainer = RLHFTrainer(config, run_dir)
    # a missing extra: make_env's message names the command that installs it
    except (gym_error.DependencyNotInstalled, ValueError, TypeError, OSError, yaml.YAMLError) as err:
        fail(str(err).replace("\n", " "))

    config = trainer.config
    bar = tqdm(total=config.total_steps, initial=trainer.steps, desc=config.algo, unit="step", disable=args.no_progress)
    track = tracking.tracked(run_dir, config.resolved(), project=args.wandb_project) if args.track else nullcontext()
    try:
        with track, bar:
            trainer.run(on_steps=bar.update)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: {PROG} rlhf --resume {run_dir}", file=sys.stderr)
        return 130
    except (NonFiniteError, CheckpointWriteError) as err:  # the last good checkpoint is kept
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    rows = read_metrics(run_dir)
    plot = plot_returns(rows, run_dir / RETURN_PLOT, title=f"{config.algo} on {config.env}, seed {config.seed}")
    paths = {
        "run_dir": run_dir,
        "config": run_dir / CONFIG_FILE,
        "metrics": run_dir / METRICS_FILE,
        "tensorboard": run_dir / TENSORBOARD_DIR,
        "plot": plot,
        "checkpoints": run_dir / CHECKPOINT_DIR,
        "policy": run_dir / POLICY_FILE,
        **({"reward_net": run_dir / REWARD_NET_FILE} if trainer.reward_net is not None else {}),
    }
    width = max(map(len, paths))
    for key, path in paths.items():
        print(f"{key:<{width}}  {path}")
    last = rows[-1]
    print(
        f"{last['agent_steps']} agent steps: eval return {last['eval_return']:.4g}, "
        f"train return {last['train_return']:.4g}, preference accuracy {last['preference_accuracy']:.3g}"
    )
    return 0


def _add_evaluate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "evaluate",
        help="the true return of a trained rlhf run's policy, with videos and the learned reward against the true one",
        description=(
            "Load RUN_DIR/policy.zip (written at every checkpoint of `sobirl rlhf`), run it for EPISODES episodes of "
            "the run's evaluation environment and print the mean +/- std of the true return; with --video DIR, "
            "write an mp4 of each episode (gymnasium's RecordVideo); with reward_net.pt, plot the learned reward "
            "along the first episode against the true reward (reward_vs_true.png, in DIR or else RUN_DIR)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="an rlhf run directory")
    sub.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    sub.add_argument(
        "--video", type=Path, default=None, metavar="DIR", help='write mp4s here (pip install "sobirl[video]")'
    )
    sub.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the policy's mean (or most likely) action; --no-deterministic samples",
    )
    sub.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts (and of sampled actions)")
    sub.set_defaults(handler=functools.partial(_run_evaluate, sub))


def _run_evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    try:
        result = evaluate_run(
            args.run_dir, episodes=args.episodes, deterministic=args.deterministic, video_dir=args.video, seed=args.seed
        )
    except (ValueError, TypeError, OSError, ImportError) as err:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(err).split())}\n")
    print(format_result(result))
    return 0


def _add_rlhf_summary(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    try:
        table = summary_table(args.run_dirs, window=args.window)
    except (ValueError, TypeError, OSError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(table)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"Command: `{shlex.join(command)}`\n\n{table}\n")
    return 0


def _add_plot(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    try:
        paths = write_figures(args.run_dirs, args.output, args.name)
    except (ValueError, TypeError, OSError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    for path in paths:
        print(path)
    return 0


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    try:
        path = write_report(
            args.sweep_dir, args.output, window=args.window, complete_only=args.complete_only, seed=args.seed
        )
    except (ValueError, TypeError, OSError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(path)
    return 0


def _add_sweep(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "sweep",
        help="a grid of rlhf trials (algorithms x seeds x environments x any config fields) on local processes or "
        "Ray, resumable",
        description=(
            "Run every (env, algo, grid point, seed) trial of a grid of `sobirl rlhf` runs from one base config, "
            "WORKERS at a time, into OUTPUT_DIR/NAME/<trial>; each --grid KEY=V1,V2 adds a config field as an axis "
            "(trials named rlhf-<env>-<algo>-KEY=V-seed<seed>). Running the same command again skips complete "
            "trials, resumes interrupted ones from their checkpoints and starts the missing ones; failed trials are "
            "retried up to --max-retries times, then listed (with their errors) in NAME/failures.yaml. Unknown "
            "algorithms, environments, grid keys and bad grid values are rejected before anything starts."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("config", type=Path, metavar="CONFIG", help="base config YAML (e.g. configs/pendulum-cpu.yaml)")
    sub.add_argument("--algos", required=True, help=f"comma-separated, from: {', '.join(ALGOS)}")
    sub.add_argument("--seeds", type=int, default=3, help="seeds 0 .. SEEDS-1")
    sub.add_argument("--envs", default=None, help="comma-separated environment ids (default: the config's env)")
    sub.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    sub.add_argument(
        "--grid",
        dest="grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config field and its values, one trial each (repeatable: every combination); values parsed as by "
        "--set, e.g. --grid reward_lr=1e-4,3e-4 --grid reward_hidden=[64,64],[32]",
    )
    sub.add_argument("--workers", type=int, default=1, help="trials run side by side (one process each)")
    sub.add_argument("--max-retries", type=int, default=1, help="extra attempts of a failed trial")
    sub.add_argument(
        "--backend",
        choices=sweep_backends.BACKENDS,
        default="local",
        help='where trials run: local worker processes, or tasks on a Ray cluster (pip install "sobirl[ray]")',
    )
    sub.add_argument(
        "--address",
        default=None,
        help="with --backend ray: the cluster to join (auto, ray://head:10001); default: a local Ray instance",
    )
    sub.add_argument("--output-dir", type=Path, default=Path("runs"), help="root of the sweep directory")
    sub.add_argument("--name", default=None, help="sweep directory name (default: sweep-<config file stem>)")
    sub.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.set_defaults(handler=functools.partial(_run_sweep, sub))


def _run_sweep(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    def fail(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    try:
        check_int("--seeds", args.seeds, low=1)
        base = RLHFConfig.from_yaml(args.config).replace(**key_values(args.overrides, "--set"))
        spec = sweep.SweepSpec(
            base=base,
            algos=tuple(a.strip() for a in args.algos.split(",")),
            seeds=tuple(range(args.seeds)),
            envs=None if args.envs is None else tuple(e.strip() for e in args.envs.split(",")),
            workers=args.workers,
            max_retries=args.max_retries,
            grid=grid_values(args.grid, "--grid"),
        )
        trials = spec.trials()
        counts = {"done": 0, "running": 0, "failed": 0}
        running: set[str] = set()
        bar = tqdm(total=len(trials), desc="trials", unit="trial", disable=args.no_progress)

        def on_event(kind: str, trial: str, detail: str) -> None:
            (running.add if kind == "start" else running.discard)(trial)  # any other event ends an attempt
            counts["running"] = len(running)
            if kind in ("done", "skipped"):
                counts["done"] += 1
                bar.update(1)
            elif kind == "failed":
                counts["failed"] += 1
                bar.update(1)
            bar.set_postfix(counts, refresh=True)
            if kind in ("failed", "retry", "busy"):
                bar.write(f"{trial}: {kind}: {detail}")

        with bar:
            result = sweep.run_sweep(
                spec,
                args.output_dir,
                args.name or f"sweep-{args.config.stem}",
                on_event=on_event,
                command=command,
                backend=args.backend,
                address=args.address,
            )
    except ImportError as err:
        fail(str(err))
    # a missing extra: make_env's message names the command that installs it
    except (gym_error.DependencyNotInstalled, ValueError, TypeError, OSError, yaml.YAMLError) as err:
        fail(str(err).replace("\n", " "))
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"sweep    {result.sweep_dir}")
    busy = f", {len(result.busy)} run by another process" if result.busy else ""
    print(f"trials   {len(result.done)} run, {len(result.skipped)} already complete, {len(result.failed)} failed{busy}")
    for trial, error in result.failed.items():
        print(f"failed   {trial}: {error}")
    return 0 if result.ok else 1
