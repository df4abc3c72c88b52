"""``sobirl synthetic``, ``compare`` and ``estimators``: the tabular experiments. Each command parses and checks its
arguments, creating the run directory last, so bad input exits with status 2 and writes nothing, then calls its
experiment: :func:`~sobirl.experiments.synthetic.run_synthetic`, :func:`~sobirl.experiments.compare.run_comparison`,
:func:`~sobirl.experiments.estimator_study.write_study`."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from typing import Any

from tqdm.auto import tqdm

from sobirl.algorithms import METHODS, DivergenceError, resolve_config
from sobirl.cli.common import CommandError, add_output_options, key_values, new_run_dir, parse_value, reported
from sobirl.estimators import ESTIMATORS
from sobirl.experiments import compare
from sobirl.experiments import estimator_study as study
from sobirl.experiments.synthetic import run_synthetic
from sobirl.problems import PROBLEMS, random_mdp
from sobirl.rundir import METRICS_FILE
from sobirl.validation import check_int

# Every field of every method's Config becomes an option `--field-name` (except `seed`: `--seed` seeds both the
# problem and a stochastic method). Their argparse default is SUPPRESS, so an option is in the namespace only when
# the user gives it: omitted ones take the chosen method's own Config default, and one the method does not use
# can be rejected. Help texts come from the Configs' docstrings, the single source of the documentation.
_SHARED_SEED = "seed"


def add_synthetic(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        method.add_argument(_flag(name), default=argparse.SUPPRESS, type=parse_value, help=help_text)

    add_output_options(
        sub.add_argument_group("output"),
        name_help="run name, the prefix of the run directory (default: synthetic-<method>-seed<seed>)",
        name_default=argparse.SUPPRESS,
        progress=True,
    )
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
    with reported(parser, (ValueError, TypeError), usage=True):
        unused = [name for name in given if name not in accepted]
        if unused:
            options = ", ".join(_flag(name) for name in accepted if name != _SHARED_SEED)
            raise CommandError(
                f"{', '.join(_flag(name) for name in unused)}: not used by method {method!r} (its options: {options})"
            )
        if _SHARED_SEED in accepted:
            given[_SHARED_SEED] = args.seed
        problem = {"S": args.S, "A": args.A, "n": args.n, "gamma": args.gamma, "tau": args.tau}
        prob = random_mdp(**problem, seed=args.seed)
        config = resolve_config(prob, method, given)
        check_int("iterations", args.iterations, low=1)
        run_dir = new_run_dir(args.output_dir, getattr(args, "name", f"synthetic-{method}-seed{args.seed}"))

    try:
        result = run_synthetic(
            prob,
            config,
            run_dir,
            problem=problem,
            seed=args.seed,
            method=method,
            iterations=args.iterations,
            progress=not args.no_progress,
            command=command,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; the run directory keeps the metrics logged so far: {run_dir}", file=sys.stderr)
        return 130
    except DivergenceError as err:
        print(f"error: the run failed: {err}\nmetrics up to the failure: {run_dir / METRICS_FILE}", file=sys.stderr)
        return 1
    width = max(map(len, result.paths))
    for key, path in result.paths.items():
        print(f"{key:<{width}}  {path}")
    gap = result.objective - result.optimum
    print(f"final f = {result.objective:.10g}  (f* = {result.optimum:g}, gap {gap:.3g})")
    print(f"final |grad phi| = {result.grad_norm:.3g}")
    print(
        f"wall time {result.wall_time:.1f} s; view the curves with: tensorboard --logdir {result.paths['tensorboard']}"
    )
    return 0


def add_compare(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_output_options(sub, name_help="run name (default: compare-<problem>)")
    sub.set_defaults(handler=functools.partial(_run_compare, sub))


def _run_compare(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    with reported(parser, (ValueError, TypeError), usage=True):
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
        run_dir = new_run_dir(args.output_dir, args.name or f"compare-{args.problem}")

    with tqdm(total=len(methods) * args.seeds, desc="trials", dynamic_ncols=True) as bar:

        def done(result: compare.TrialResult) -> None:
            bar.update()
            if result.error:
                tqdm.write(f"{result.spec.method} seed {result.spec.seed} failed: {result.error}", file=sys.stderr)

        table, results = compare.run_comparison(
            run_dir,
            problem=args.problem,
            problem_params=problem_params,
            methods=methods,
            method_params=method_params,
            seeds=args.seeds,
            iterations=args.iterations,
            evaluate_every=args.evaluate_every,
            workers=args.workers,
            command=command,
            on_done=done,
        )
    print(table)
    results_md, figure = run_dir / compare.RESULTS_FILE, run_dir / compare.FIGURE_FILE
    print(f"run_dir  {run_dir}\nresults  {results_md}\nfigure   {figure}")
    return 1 if any(r.error for r in results) else 0


def add_estimators(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_output_options(sub, name_help="run name (default: estimators-<problem>)")
    sub.set_defaults(handler=functools.partial(_run_estimators, sub))


def _run_estimators(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    def counts(text: str) -> list[Any]:
        return [parse_value(item) for item in text.split(",")]

    with reported(parser, (ValueError, TypeError), usage=True):
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
        run_dir = new_run_dir(args.output_dir, args.name or f"estimators-{args.problem}")

    with tqdm(total=plan.n_estimates, desc="estimates", dynamic_ncols=True) as bar:
        table, figures = study.write_study(plan, run_dir, workers=args.workers, command=command, on_estimate=bar.update)
    print(table)
    print(f"run_dir  {run_dir}\nresults  {run_dir / study.RESULTS_CSV}")
    for path in figures.values():
        print(f"figure   {path}")
    return 0
