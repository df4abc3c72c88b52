"""A markdown report of a sweep directory (``sobirl sweep``), behind ``sobirl report``.

Usage::

    sobirl report SWEEP_DIR [--output FILE] [--window N] [--complete-only] [--seed S]

The report (default ``SWEEP_DIR/report.md``) holds: the grid of ``sweep.yaml`` (environments, algorithms, grid keys
and values, seeds, agent steps per trial); the results table of the trials that have metrics, a row per (env, algo,
grid point) (:func:`~sobirl.experiments.rlhf_summary.summary_table`: final evaluation return and the mean of the last
``N`` evaluations as mean +/- s.e. over seeds, ``s.e. = std_{n-1} / sqrt(n)``, per-seed returns, accuracy, wall
time, steps/s); the same groups' interquartile means of those two returns with 95% stratified bootstrap intervals
(:func:`~sobirl.experiments.rlhf_summary.aggregate_table`, rliable's method, the bootstrap seeded by ``seed`` so the
report is reproducible); the figures of :mod:`sobirl.experiments.figures` (returns and accuracy against agent steps,
one line per algorithm and grid point, and the performance profile of the final returns with its bootstrap bands),
written to ``figures/`` next to the report and linked relatively (a report
written outside the sweep directory also gets, beside it, a copy of ``sweep.yaml`` and of each complete trial's
``config.yaml`` and ``metrics.csv`` in ``trials/<trial>/``, so that it stands alone; ``sobirl sweep`` counts a trial
directory holding those two files as complete, so copying them back into a sweep directory resumes the grid); the
trials that are failed (``failures.yaml``), unfinished or not started; and how it was produced: each distinct
command line and the software versions recorded in the trials' ``config.yaml``. Trials that are still running are
reported with the steps they have; run the command again for an up-to-date report. With ``complete_only``
(``--complete-only``) the table, figures and provenance cover the complete trials only, so the report of a sweep
that is still running or was stopped can be published: its unfinished trials are only listed as missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from sobirl.experiments.aggregate import CONFIDENCE, INTERVAL_REPS, PROFILE_REPS
from sobirl.experiments.figures import load_runs, plot_performance_profile, read_config, read_sweep, write_figures
from sobirl.experiments.rlhf_summary import aggregate_table, summary_table
from sobirl.experiments.sweep import FAILURES_FILE, SWEEP_FILE, SweepSpec, Trial, grid_label, is_complete
from sobirl.rundir import CONFIG_FILE, METRICS_FILE, read_metrics
from sobirl.validation import check_int

REPORT_FILE = "report.md"
"""The report's default file name in the sweep directory."""
FIGURES_DIR = "figures"
"""The directory of the report's figures, next to the report."""
PROFILE_STEM = "rlhf-profile"
"""The performance profile's file name stem in :data:`FIGURES_DIR`."""
TRIALS_DIR = "trials"
"""The directory of the complete trials' ``config.yaml`` and ``metrics.csv``, next to a report written outside the
sweep directory."""


def write_report(
    sweep_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    window: int = 5,
    complete_only: bool = False,
    seed: int = 0,
) -> Path:
    """Write the markdown report of ``sweep_dir`` (module docstring) and its figures.

    Args:
        sweep_dir: a ``sobirl sweep`` directory.
        output: the report's path; None: ``sweep_dir/report.md``. The figures go to ``figures/`` beside it, and
            where that is not the sweep directory, a copy of ``sweep.yaml`` and of each complete trial's
            ``config.yaml`` and ``metrics.csv`` (in ``trials/<trial>/``).
        window: evaluations averaged per run for the table's windowed column (``>= 1``).
        complete_only: the table, figures and command lines over the complete trials only (``sweep.is_complete``);
            False: over every trial with a metrics row, running ones included.
        seed: seed of the bootstrap of the interquartile means' intervals and the performance profile's bands
            (``>= 0``): the same trials and seed give the same report.

    Returns:
        The report's path.

    Raises:
        ValueError: ``sweep_dir`` is not a sweep directory, no trial has metrics yet (no trial is complete, with
            ``complete_only``), ``window < 1`` or ``seed < 0``.
    """
    check_int("window", window, low=1)
    check_int("seed", seed)
    sweep_dir = Path(sweep_dir)
    spec = read_sweep(sweep_dir)
    trials = spec.trials()
    steps = {trial.name: _steps(sweep_dir / trial.name) for trial in trials}
    complete = [sweep_dir / t.name for t in trials if is_complete(sweep_dir / t.name, t.config.total_steps)]
    if complete_only:
        with_metrics = complete
        if not with_metrics:
            raise ValueError(f"sweep directory {sweep_dir} has no complete trial yet")
    else:
        with_metrics = [sweep_dir / name for name, reached in steps.items() if reached is not None]
        if not with_metrics:
            raise ValueError(f"sweep directory {sweep_dir} has no trial with a row in its {METRICS_FILE} yet")
    keys = tuple(spec.grid or {})
    table = summary_table(with_metrics, window=window, group_by=keys)
    aggregates = aggregate_table(with_metrics, window=window, group_by=keys, seed=seed)
    path = sweep_dir / REPORT_FILE if output is None else Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = write_figures(with_metrics, path.parent / FIGURES_DIR, group_by=keys)
    try:
        profile = plot_performance_profile(
            load_runs(with_metrics, keys), path.parent / FIGURES_DIR / PROFILE_STEM, seed=seed
        )
    except ValueError:  # no run has a final evaluation return yet: no profile, the rest of the report stands
        profile = []
    base_config = path.parent / SWEEP_FILE
    elsewhere = not base_config.exists() or not base_config.samefile(sweep_dir / SWEEP_FILE)
    if elsewhere:
        shutil.copyfile(sweep_dir / SWEEP_FILE, base_config)
        for trial_dir in complete:
            kept = path.parent / TRIALS_DIR / trial_dir.name
            kept.mkdir(parents=True, exist_ok=True)
            for file in (CONFIG_FILE, METRICS_FILE):
                shutil.copyfile(trial_dir / file, kept / file)
    scope = f"The {len(with_metrics)} complete trials of {len(trials)}.\n\n" if complete_only else ""
    sections = [
        f"# Sweep {sweep_dir.name}",
        _grid_section(spec, trials_kept=elsewhere),
        f"## Results\n\n{scope}{table}",
        _aggregates_section(aggregates, scope, seed),
        _figures_section(figures, profile, path.parent, seed),
        _missing_section(sweep_dir, trials, steps, complete),
        _provenance_section(with_metrics),
    ]
    path.write_text("\n\n".join(sections) + "\n")
    return path


def _link(target: Path, start: Path) -> str:
    """``target`` relative to the report's directory, with forward slashes (markdown links)."""
    return Path(os.path.relpath(target, start)).as_posix()


def _grid_section(spec: SweepSpec, *, trials_kept: bool) -> str:
    """The grid of the sweep and its base config (``sweep.yaml`` beside the report); with ``trials_kept``, where the
    complete trials' files are (``trials/``)."""
    lines = [
        "## Grid",
        "",
        f"- environments: {', '.join(spec.envs or ())}",
        f"- algorithms: {', '.join(spec.algos)}",
        *(f"- {key}: {', '.join(map(grid_label, values))}" for key, values in (spec.grid or {}).items()),
        f"- seeds: {', '.join(map(str, spec.seeds))}",
        f"- agent steps per trial: {spec.base.total_steps}",
        f"- trials: {len(spec.trials())}; base config in [{SWEEP_FILE}]({SWEEP_FILE})",
    ]
    if trials_kept:
        lines.append(
            f"- each complete trial's {CONFIG_FILE} and {METRICS_FILE}: [{TRIALS_DIR}/]({TRIALS_DIR}/)<trial>/ (copied "
            "back into the sweep directory, they count as complete there)"
        )
    return "\n".join(lines)


def _aggregates_section(table: str, scope: str, seed: int) -> str:
    """The interquartile means table (``aggregate_table``) with how it was computed."""
    level = f"{100 * CONFIDENCE:g}%"
    how = (
        f"Interquartile mean (25% trimmed mean) over seeds; in brackets its {level} stratified bootstrap percentile "
        f"interval ({INTERVAL_REPS} replicates, seed {seed}; rliable's method, sobirl.experiments.aggregate)."
    )
    return f"## Aggregates\n\n{scope}{how}\n\n{table}"


def _figures_section(figures: Sequence[Path], profile: Sequence[Path], report_dir: Path, seed: int) -> str:
    """Each PNG figure shown, with a link to its PDF; then the performance profile (when there is one), with how it
    was computed."""
    lines = ["## Figures", "", "Mean over seeds on the agent steps all seeds reached; shaded: +/- standard error."]
    lines += _figure_lines(figures, report_dir)
    if profile:
        lines += [
            "",
            f"Performance profile: the fraction of each group's runs whose final evaluation return is above each "
            f"threshold; shaded: its {100 * CONFIDENCE:g}% stratified bootstrap band ({PROFILE_REPS} replicates, "
            f"seed {seed}).",
            *_figure_lines(profile, report_dir),
        ]
    return "\n".join(lines)


def _figure_lines(figures: Sequence[Path], report_dir: Path) -> list[str]:
    """Markdown lines showing each PNG of ``figures`` with a link to its PDF."""
    lines = []
    for png in (p for p in figures if p.suffix == ".png"):
        pdf = png.with_suffix(".pdf")
        lines += ["", f"![{png.stem}]({_link(png, report_dir)})", "", f"[{pdf.name}]({_link(pdf, report_dir)})"]
    return lines


def _missing_section(
    sweep_dir: Path, trials: Sequence[Trial], steps: dict[str, int | None], complete: Sequence[Path]
) -> str:
    """The trials not in ``complete`` (their directories, ``sweep.is_complete``): failed (``failures.yaml``),
    unfinished, or not started; ``steps``: each trial's agent steps so far (None: no metrics row)."""
    failures = _read_failures(sweep_dir)
    done = {path.name for path in complete}
    rows = []
    for trial in trials:
        total = trial.config.total_steps
        if trial.name in done:
            continue
        reached = steps[trial.name]
        if trial.name in failures:
            state = f"failed: {failures[trial.name]}"
        else:
            state = "not started" if reached is None else "unfinished (running or interrupted)"
        rows.append(f"| {trial.name} | {'none' if reached is None else f'{reached} of {total}'} | {state} |")
    if not rows:
        return f"## Missing or failed trials\n\nNone: all {len(trials)} trials are complete."
    header = ["| trial | agent steps | state |", "|---|---|---|"]
    return "\n".join(["## Missing or failed trials", "", *header, *rows])


def _read_failures(sweep_dir: Path) -> dict[str, str]:
    """The failed trials of ``failures.yaml`` and their errors, each on one line and safe in a table cell (empty
    when there is no such file)."""
    path = sweep_dir / FAILURES_FILE
    if not path.is_file():
        return {}
    try:
        failures = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(failures, dict):
        raise ValueError(f"{path} must hold a mapping of trial names, got {type(failures).__name__}")
    errors = {name: entry.get("error", "") if isinstance(entry, dict) else entry for name, entry in failures.items()}
    return {str(name): " ".join(str(error).split()).replace("|", "\\|") for name, error in errors.items()}


def _steps(run_dir: Path) -> int | None:
    """The agent steps of the last row of ``run_dir/metrics.csv``; None when it is missing or has no row."""
    try:
        rows = read_metrics(run_dir)
    except FileNotFoundError:
        return None
    return int(rows[-1]["agent_steps"]) if rows else None


def _provenance_section(run_dirs: Sequence[Path]) -> str:
    """Each distinct command line of the trials' ``config.yaml``, and each software version (all values found)."""
    commands: dict[str, None] = {}
    versions: dict[str, dict[str, None]] = {}
    for run_dir in run_dirs:
        config = read_config(run_dir)
        if config.get("command_line"):
            commands[str(config["command_line"])] = None
        for name, version in (config.get("versions") or {}).items():
            versions.setdefault(str(name), {})[str(version)] = None
    lines = ["## How it was produced", "", f"Command lines (from the trials' {CONFIG_FILE}):", "", "```console"]
    lines += [*(commands or ["(none recorded)"]), "```", "", "Versions:", ""]
    lines += [f"- {name}: {', '.join(values)}" for name, values in versions.items()] or ["- (none recorded)"]
    return "\n".join(lines)
