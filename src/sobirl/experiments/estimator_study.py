"""How good are the model-free hyper-gradient estimators? ``sobirl estimators`` (docs/estimator-study.md).

For each estimator of :data:`sobirl.estimators.ESTIMATORS` and each batch size ``B``, the study draws ``S``
independent estimates ``g_0, ..., g_{S-1}`` of ``grad phi(x)`` with
:func:`~sobirl.estimators.hypergradient.estimate_hypergradient` (estimate ``s`` from
``torch.Generator().manual_seed(s)``) and compares them with the exact ``g* = grad phi(x)``
(:func:`sobirl.tabular.hypergradient`), the follower playing its exact soft-optimal policy:

* relative bias ``|mean_s g_s - g*| / |g*|``;
* its noise floor ``bias_se = std / sqrt(S)``: the relative size of the noise left in ``mean_s g_s``. An unbiased
  estimator shows a relative bias of about ``bias_se``; a bias well above it is the estimator's own;
* relative standard deviation ``std = |(std_s g_s[i])_i| / |g*|`` (per coordinate, ``S - 1`` in the
  denominator), the error of one estimate;
* cosine similarity ``g_s . g* / (|g_s| |g*|)`` averaged over the seeds (0 for an all-zero estimate), with its
  standard error.

Standard errors are :func:`~sobirl.experiments.aggregate.mean_and_se`'s (per coordinate for ``bias_se``); the figures
are :func:`~sobirl.experiments.figures.plot_study`'s.

Estimators named ``deep:<rule>[/<estimator>]`` run a deep RLHF update rule on the same problem through
:class:`~sobirl.experiments.deep_bridge.DeepBridge` (tabular RLHF only): the deep pipeline's own reward net, fragment
sampling, labeller and surrogate, compared with the same reference. Where the problem's ``f`` cannot be enumerated
(long fragments), the reference is :func:`~sobirl.experiments.deep_bridge.reference_hypergradient`, a Monte-Carlo
average of the exact per-step sensitivities over ``reference_pairs`` pairs.

The batch counts draws of the upper level's data: preference pairs for tabular RLHF (two trajectories each),
trajectories of the leader's value for four rooms; rows report both the batch and the number of trajectories it
samples. Estimates run in worker processes with one torch thread each; every estimate depends on its seed only,
so the numbers do not depend on the number of workers.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sobirl.estimators import ESTIMATORS, default_horizon
from sobirl.estimators.hypergradient import estimate_hypergradient
from sobirl.estimators.objectives import sampled_objective
from sobirl.experiments.aggregate import mean_and_se
from sobirl.experiments.compare import build_problem
from sobirl.experiments.deep_bridge import DEEP_PREFIX, DeepBridge, make_rule, reference_hypergradient
from sobirl.profiling import machine_line
from sobirl.rundir import write_config
from sobirl.tabular import lower_level
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_choice, check_int, check_range

DEFAULT_BATCHES = (10, 100, 1_000, 10_000, 100_000)
"""Batch sizes of the study: draws of the upper level's data per estimate."""

DEFAULT_PROBLEM_PARAMS: dict[str, Any] = {"gamma": 0.9}
"""Problem parameters the study sets unless overridden (four rooms' own default is gamma = 0.99)."""

DEFAULT_PAIRS_PER_PATH = 1
"""``monte-carlo`` restart pairs per sampled trajectory. On four rooms at batch 10^4 (gamma 0.9, 16 seeds), 1, 2, 4
and 8 pairs per path give a relative std of 0.70, 0.53, 0.38 and 0.28 for 0.7, 1.3, 2.3 and 4.7 s per estimate:
variance times time 0.35, 0.37, 0.34 and 0.37, so more pairs buy no precision per second, while the rollouts'
memory grows with them (2.2 GB per estimate at batch 10^5 with 1 pair, 3.6 GB with 2)."""

SEED_DRAWS = 500_000
"""Default seeds: about this many draws per (estimator, batch) row, clipped to [MIN_SEEDS, MAX_SEEDS]."""
MIN_SEEDS = 20
"""Fewest default seeds of a row: the relative std of the critic on four rooms is about 0.04 at batch 10^5, so 20
seeds put the noise floor of the bias near 1%."""
MAX_SEEDS = 200
"""Most default seeds of a row (small batches are noise-dominated anyway; more seeds only cost time)."""
MONTE_CARLO_SEEDS = 240
"""Default seeds of every ``monte-carlo`` row: its relative std on four rooms is 0.22 at batch 10^5 with one pair
per path (five times the critic's), so 240 seeds put the noise floor near 1.4%, under the 2% the study checks."""

BIAS_TARGET = 0.02
"""The relative bias the consistent estimators must get under at batch 10^5 (a reference line of ``bias.png``)."""

X_SEED = 0
"""Seed of the random direction of the evaluation point ``x0 + x_scale * N(0, I)``."""

POINTS = ("x0", "truth")
"""Where the study evaluates before any ``x_scale`` offset: the problem's ``x0``, or (tabular RLHF) the true reward in
the labels' units, ``r_true / label_temperature``, where the reward model is calibrated and the exploitation term
vanishes in expectation (only the follower's response is left)."""

REFERENCE_PAIRS = 1_000_000
"""Default pairs of the Monte-Carlo reference where ``f`` cannot be enumerated."""

RESULTS_CSV = "results.csv"
"""The rows of a study run directory, every column of :class:`StudyRow`."""
RESULTS_MD = "results.md"
"""The machine line and the table of a study run directory."""
PLOT_FILES = {"bias": "bias.png", "std": "std.png", "cosine": "cosine.png"}
"""The figures of a study run directory, by the quantity they plot against the number of trajectories
(:func:`~sobirl.experiments.figures.plot_study`)."""


def default_seeds(estimator: str, batch: int) -> int:
    """The default number of seeds of one row (see :data:`SEED_DRAWS` and :data:`MONTE_CARLO_SEEDS`).

    Args:
        estimator: one of :data:`~sobirl.estimators.ESTIMATORS`.
        batch: draws per estimate (>= 1).

    Returns:
        ``MONTE_CARLO_SEEDS`` for ``"monte-carlo"``, else ``ceil(SEED_DRAWS / batch)`` clipped to
        ``[MIN_SEEDS, MAX_SEEDS]`` (more seeds where an estimate is cheap).
    """
    if estimator == "monte-carlo":
        return MONTE_CARLO_SEEDS
    return min(MAX_SEEDS, max(MIN_SEEDS, math.ceil(SEED_DRAWS / batch)))


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: what to estimate and where; built by :func:`plan_study`.

    Attributes:
        problem: name in :data:`sobirl.problems.PROBLEMS`.
        problem_params: the builder's keyword arguments (:data:`DEFAULT_PROBLEM_PARAMS` then the overrides).
        estimators: the estimators compared, in order.
        batches: the batch sizes (draws of the upper level's data per estimate), increasing.
        seeds: per estimator, the number of seeds of each batch (aligned with ``batches``).
        pairs_per_path: ``monte-carlo`` restart pairs per sampled trajectory.
        x_scale: the evaluation point is ``x0 + x_scale * N(0, I)`` (:data:`X_SEED`); 0 is ``x0``.
        at: the base point, one of :data:`POINTS`.
        reference_pairs: pairs of the Monte-Carlo reference (used where ``f`` cannot be enumerated).
        paths_per_draw: trajectories sampled per draw (2 for a preference pair, 1 for a leader trajectory).
        x: the evaluation point.
        pi: the follower's exact soft-optimal policy at ``x``.
        exact: the exact hyper-gradient ``grad phi(x)``.
    """

    problem: str
    problem_params: dict[str, Any]
    estimators: tuple[str, ...]
    batches: tuple[int, ...]
    seeds: dict[str, tuple[int, ...]]
    pairs_per_path: int
    x_scale: float
    at: str
    reference_pairs: int
    paths_per_draw: int
    x: torch.Tensor
    pi: torch.Tensor
    exact: torch.Tensor

    @property
    def n_estimates(self) -> int:
        """Number of estimates the study draws (the sum of all seeds)."""
        return sum(sum(counts) for counts in self.seeds.values())

    def to_config(self) -> dict[str, Any]:
        """The resolved options as plain YAML-representable values (for ``config.yaml``)."""
        return {
            "experiment": "estimators",
            "problem": self.problem,
            "problem_params": dict(self.problem_params),
            "estimators": list(self.estimators),
            "batches": list(self.batches),
            "trajectories": [batch * self.paths_per_draw for batch in self.batches],
            "seeds": {estimator: list(counts) for estimator, counts in self.seeds.items()},
            "pairs_per_path": self.pairs_per_path,
            "x_scale": self.x_scale,
            "at": self.at,
            "reference_pairs": self.reference_pairs,
            "x_seed": X_SEED,
            "exact_grad_norm": self.exact.norm().item(),
        }


def plan_study(
    problem: str,
    *,
    problem_params: Mapping[str, Any] | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    batches: Sequence[int | float] = DEFAULT_BATCHES,
    seeds: int | Sequence[int] | None = None,
    estimator_seeds: Mapping[str, int | Sequence[int]] | None = None,
    pairs_per_path: int = DEFAULT_PAIRS_PER_PATH,
    x_scale: float = 0.0,
    at: str = "x0",
    reference_pairs: int = REFERENCE_PAIRS,
) -> StudyPlan:
    """Validate the options, build the problem and compute the exact reference: everything before estimating.

    Args:
        problem: name in :data:`sobirl.problems.PROBLEMS`; its upper objective needs a sampled form
            (e.g. ``tabular-rlhf``, ``four-rooms``).
        problem_params: builder keyword arguments over :data:`DEFAULT_PROBLEM_PARAMS`.
        estimators: estimators to compare, from :data:`~sobirl.estimators.ESTIMATORS` or ``deep:<rule>[/<estimator>]``
            (no repeats).
        batches: batch sizes >= 1, no repeats (integral floats such as ``1e5`` are accepted); sorted.
        seeds: seeds of every estimator: one count for all batches or one per batch (in the given order of
            ``batches``); None for :func:`default_seeds`.
        estimator_seeds: per-estimator seeds (one count or one per batch), over ``seeds``.
        pairs_per_path: ``monte-carlo`` restart pairs per sampled trajectory (>= 1).
        x_scale: scale (>= 0) of the random offset of the evaluation point from the base point.
        at: the base point, one of :data:`POINTS`.
        reference_pairs: pairs (>= 1) of the Monte-Carlo reference where ``f`` cannot be enumerated.

    Returns:
        The :class:`StudyPlan`.

    Raises:
        ValueError / TypeError: naming the field: an unknown problem, problem parameter or estimator (the valid
            ones listed), a problem without a sampled upper objective, a batch or seed count < 1, seeds whose
            length matches neither 1 nor the batches, ``pairs_per_path`` < 1, a negative ``x_scale``, or a zero
            exact hyper-gradient (relative errors undefined).
    """
    check_range("x_scale", x_scale, low=0.0)
    check_int("pairs_per_path", pairs_per_path, low=1)
    check_choice("at", at, POINTS)
    check_int("reference_pairs", reference_pairs, low=1)
    for e in estimators:
        if e.startswith(DEEP_PREFIX):
            make_rule(e)  # a ValueError naming the valid rules and estimators
        else:
            check_choice("estimator", e, ESTIMATORS)
    estimators = tuple(estimators)
    if not estimators or len(set(estimators)) != len(estimators):
        raise ValueError(f"estimators must be distinct and not empty, got {list(estimators)}")
    given = [int(b) if isinstance(b, float) and b.is_integer() else b for b in batches]
    given = [check_int("batch", b, low=1) for b in given]
    if not given or len(set(given)) != len(given):
        raise ValueError(f"batches must be distinct and not empty, got {given}")
    order = sorted(range(len(given)), key=given.__getitem__)

    def per_batch(name: str, counts: int | Sequence[int]) -> tuple[int, ...]:
        counts = [counts] if isinstance(counts, int) else list(counts)
        if len(counts) == 1:
            counts *= len(given)
        if len(counts) != len(given):
            raise ValueError(f"{name} needs 1 or {len(given)} counts (one per batch), got {len(counts)}")
        return tuple(check_int(name, counts[i], low=1) for i in order)

    overrides = dict(estimator_seeds or {})
    for estimator in overrides:
        if estimator not in estimators:
            raise ValueError(f"seeds given for estimator {estimator!r}, which is not studied ({', '.join(estimators)})")
    seed_counts = {}
    for e in estimators:
        if e in overrides:
            seed_counts[e] = per_batch(f"seeds of {e}", overrides[e])
        elif seeds is not None:
            seed_counts[e] = per_batch("seeds", seeds)
        else:
            seed_counts[e] = tuple(default_seeds(e, given[i]) for i in order)

    params = {**DEFAULT_PROBLEM_PARAMS, **(problem_params or {})}
    prob = build_problem(problem, params, seed=0)
    objective = sampled_objective(prob, horizon=default_horizon(prob.mdp.gamma))  # rejects one without
    if any(e.startswith(DEEP_PREFIX) for e in estimators) and not hasattr(prob, "r_true"):
        raise ValueError(f"deep estimators run on tabular RLHF problems (tabular-rlhf), not {problem!r}")
    if at == "truth":
        if not hasattr(prob, "r_true"):
            raise ValueError(f"at='truth' needs a problem with a true reward (tabular-rlhf), not {problem!r}")
        x = (prob.r_true.reshape(-1) / objective.label_temperature).to(DTYPE)
    else:
        x = prob.x0.to(DTYPE)
    if x_scale > 0:
        x = x + x_scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(X_SEED), dtype=DTYPE)
    pi = lower_level(prob, x).pi.detach()
    exact = reference_hypergradient(prob, x, pi, pairs=reference_pairs)
    if exact.norm().item() == 0.0:
        raise ValueError(f"the exact hyper-gradient of {problem!r} is zero at x: relative errors are undefined")
    probe = objective.sample(prob.mdp, pi, 1, torch.Generator().manual_seed(0))  # trajectories per draw
    return StudyPlan(
        problem=problem,
        problem_params=params,
        estimators=estimators,
        batches=tuple(given[i] for i in order),
        seeds=seed_counts,
        pairs_per_path=pairs_per_path,
        x_scale=float(x_scale),
        at=at,
        reference_pairs=reference_pairs,
        paths_per_draw=probe.paths.states.shape[0],
        x=x,
        pi=pi,
        exact=exact,
    )


@dataclass(frozen=True)
class StudyRow:
    """One (estimator, batch) row of the study (module docstring for the definitions).

    Attributes:
        problem: the problem's name.
        estimator: the estimator.
        batch: draws of the upper level's data per estimate (preference pairs or leader trajectories).
        trajectories: trajectories of data sampled per estimate (``batch`` times the paths per draw).
        transitions: mean transitions sampled per estimate (the data and any restart rollouts).
        seeds: number of estimates, seeds ``0 .. seeds - 1``.
        bias: relative bias ``|mean_s g_s - g*| / |g*|``.
        bias_se: noise floor of ``bias``: ``std / sqrt(seeds)``.
        std: relative standard deviation of one estimate (NaN for one seed).
        cosine: mean cosine similarity of an estimate to ``g*``.
        cosine_se: standard error of ``cosine`` (NaN for one seed).
        seconds: mean wall time of one estimate, in seconds.
    """

    problem: str
    estimator: str
    batch: int
    trajectories: int
    transitions: float
    seeds: int
    bias: float
    bias_se: float
    std: float
    cosine: float
    cosine_se: float
    seconds: float


COLUMNS = tuple(f.name for f in fields(StudyRow))
"""The columns of ``results.csv``."""

# The follower's data and the reference, set once per worker process by _init_worker.
_WORKER: dict[str, Any] = {}


def _init_worker(problem: str, params: dict[str, Any], x: torch.Tensor, pi: torch.Tensor, deep: bool) -> None:
    torch.set_num_threads(1)  # estimates run side by side, one per core
    prob = build_problem(problem, params, seed=0)
    # the critic is trained once per worker from a fixed seed: every worker holds the same one
    _WORKER.update(prob=prob, x=x, pi=pi, bridge=DeepBridge.build(prob, x) if deep else None)


def _estimate(estimator: str, batch: int, seed: int, pairs_per_path: int) -> tuple[torch.Tensor, int, float]:
    start = time.perf_counter()
    if estimator.startswith(DEEP_PREFIX):
        bridge: DeepBridge = _WORKER["bridge"]
        grad = bridge.estimate(make_rule(estimator), batch, seed)
        return grad, 2 * batch * bridge.prob.sampled.H, time.perf_counter() - start
    est = estimate_hypergradient(
        _WORKER["prob"],
        _WORKER["x"],
        _WORKER["pi"],
        batch=batch,
        estimator=estimator,
        generator=torch.Generator().manual_seed(seed),
        pairs_per_path=pairs_per_path,
    )
    return est.grad, est.transitions, time.perf_counter() - start


def run_study(plan: StudyPlan, *, workers: int = 1, on_estimate: Callable[[], None] | None = None) -> list[StudyRow]:
    """Draw every estimate of the plan and summarise them per (estimator, batch).

    Args:
        plan: from :func:`plan_study`.
        workers: worker processes (>= 1); with 1 the estimates run in this process (with one torch thread).
        on_estimate: called after each estimate (e.g. to advance a progress bar).

    Returns:
        One :class:`StudyRow` per estimator and batch, estimators in the plan's order, batches increasing.

    Raises:
        ValueError: ``workers`` < 1.
    """
    check_int("workers", workers, low=1)
    tasks = [
        (estimator, batch, seed, plan.pairs_per_path)
        for estimator in plan.estimators
        for batch, count in zip(plan.batches, plan.seeds[estimator], strict=True)
        for seed in range(count)
    ]
    tasks.sort(key=lambda task: -task[1])  # largest first, so no long estimate starts last on an idle pool
    deep = any(e.startswith(DEEP_PREFIX) for e in plan.estimators)
    init_args = (plan.problem, plan.problem_params, plan.x, plan.pi, deep)
    results: dict[tuple[str, int, int], tuple[torch.Tensor, int, float]] = {}
    if workers == 1:
        _init_worker(*init_args)
        for task in tasks:
            results[task[:3]] = _estimate(*task)
            if on_estimate:
                on_estimate()
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=init_args) as pool:
            futures = {pool.submit(_estimate, *task): task[:3] for task in tasks}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_estimate:
                    on_estimate()
    return [
        _summarise(plan, estimator, batch, [results[estimator, batch, seed] for seed in range(count)])
        for estimator in plan.estimators
        for batch, count in zip(plan.batches, plan.seeds[estimator], strict=True)
    ]


def _summarise(
    plan: StudyPlan, estimator: str, batch: int, estimates: list[tuple[torch.Tensor, int, float]]
) -> StudyRow:
    grads = torch.stack([grad for grad, _, _ in estimates]).numpy()  # (seeds, dim)
    exact = plan.exact.numpy()
    scale = np.linalg.norm(exact)
    seeds = len(estimates)
    mean, se = mean_and_se(grads)  # per coordinate
    norms = np.linalg.norm(grads, axis=1)
    cosines = np.where(norms > 0, grads @ exact / (np.maximum(norms, 1e-300) * scale), 0.0)
    cosine, cosine_se = mean_and_se(cosines)
    bias_se = float(np.linalg.norm(se) / scale) if seeds > 1 else math.nan  # one seed: no spread to measure
    return StudyRow(
        problem=plan.problem,
        estimator=estimator,
        batch=batch,
        trajectories=batch * plan.paths_per_draw,
        transitions=sum(t for _, t, _ in estimates) / seeds,
        seeds=seeds,
        bias=float(np.linalg.norm(mean - exact) / scale),
        bias_se=bias_se,
        std=bias_se * math.sqrt(seeds),
        cosine=float(cosine),
        cosine_se=float(cosine_se) if seeds > 1 else math.nan,
        seconds=sum(s for _, _, s in estimates) / seeds,
    )


def write_study(
    plan: StudyPlan,
    run_dir: Path,
    *,
    workers: int = 1,
    command: Sequence[str] | None = None,
    on_estimate: Callable[[], None] | None = None,
) -> tuple[str, dict[str, Path]]:
    """The study behind ``sobirl estimators`` in the new run directory ``run_dir``: ``config.yaml``, then
    :func:`run_study`'s rows in ``results.csv`` and ``results.md`` (titled by the problem and the point, with the
    machine line) and the figures ``bias.png``, ``std.png`` and ``cosine.png``.

    Args:
        plan: the study, from :func:`plan_study`.
        run_dir: a new, empty run directory.
        workers: parallel worker processes (1: in this process).
        command: the command line recorded in ``config.yaml``; defaults to ``sys.argv``.
        on_estimate: called after each estimate.

    Returns:
        The markdown table and the figures' paths by name (:data:`PLOT_FILES`).
    """
    # not at the top: figures.comparisons imports this module
    from sobirl.experiments.figures import plot_study

    write_config(run_dir, {**plan.to_config(), "workers": workers}, command=command)
    rows = run_study(plan, workers=workers, on_estimate=on_estimate)
    base = "x0" if plan.at == "x0" else "r_true / T"
    point = base if plan.x_scale == 0 else f"{base} + {plan.x_scale:g} N(0, I)"
    title = f"{plan.problem}, gamma {plan.problem_params.get('gamma')}, at {point}: |grad phi| {plan.exact.norm():.3g}"
    table = markdown_table(rows)
    write_csv(rows, run_dir / RESULTS_CSV)
    (run_dir / RESULTS_MD).write_text(f"# {title}\n\n{machine_line()}\n\n{table}")
    return table, plot_study(rows, run_dir, title=title)


def write_csv(rows: Sequence[StudyRow], path: Path) -> Path:
    """Write the rows to a CSV file with the header :data:`COLUMNS` (floats at full precision)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return Path(path)


def markdown_table(rows: Sequence[StudyRow]) -> str:
    """The study's table in markdown: one line per row, as in ``results.csv``."""
    lines = [
        "| estimator | batch | trajectories | seeds | relative bias | noise floor | relative std | cosine "
        "| transitions / estimate | s / estimate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.estimator} | {r.batch:,} | {r.trajectories:,} | {r.seeds} | {r.bias:.3g} | {r.bias_se:.2g} | "
            f"{r.std:.3g} | {r.cosine:.3f} +/- {r.cosine_se:.1g} | {r.transitions:.3g} | {r.seconds:.3g} |"
        )
    return "\n".join(lines) + "\n"
