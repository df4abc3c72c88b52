"""``sobirl report``: the markdown report of a sweep directory: grid, results table (a row per grid point),
interquartile means with seeded bootstrap intervals, figures linked relatively (the performance profile included), the
failed, unfinished and missing trials, command lines and versions, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sobirl.cli import main
from sobirl.experiments.report import write_report
from sobirl.experiments.rlhf_summary import summary_table
from sobirl.experiments.sweep import FAILURES_FILE, SWEEP_FILE, is_complete, trial_name
from test_figures import COMMAND, PNG_MAGIC, VERSIONS, grid_sweep, rlhf_run, write_sweep_file

ORACLE_COMMAND = "sobirl sweep configs/pendulum-cpu.yaml --algos drlhf,sobirl,sac-true-reward --seeds 3 --workers 2"
RETURNS = {  # (algo, seed): eval returns at 1000, 2000, 3000 agent steps
    ("drlhf", 0): [-900.0, -500.0, -100.0],
    ("drlhf", 1): [-800.0, -600.0, -300.0],
    ("drlhf", 2): [-850.0, -400.0, -200.0],
    ("sobirl", 0): [-700.0, -300.0, -150.0],
    ("sobirl", 1): [-600.0, -200.0, -50.0],
    ("sobirl", 2): [-650.0, -250.0],  # failed at 2000 steps
    ("sac-true-reward", 0): [-500.0, -200.0, -140.0],  # seed 1 not started (empty directory), seed 2 absent
}


def make_sweep(root: Path, algos: tuple[str, ...] = ("drlhf", "sobirl", "sac-true-reward")) -> Path:
    """A sweep directory of 3000-step trials of ``algos`` x seeds 0..2 on Pendulum with the runs of :data:`RETURNS`
    (those of ``algos``), ``sobirl`` seed 2 listed in ``failures.yaml``."""
    sweep = write_sweep_file(root / "sweep-pendulum", algos, seeds=(0, 1, 2))
    for (algo, seed), returns in RETURNS.items():
        if algo in algos:
            oracle = algo == "sac-true-reward"
            rlhf_run(
                sweep / trial_name("Pendulum-v1", algo, seed),
                algo,
                seed,
                returns,
                command=ORACLE_COMMAND if oracle else COMMAND,
                versions={**VERSIONS, "torch": "2.5.0"} if oracle else VERSIONS,
            )
    if "sac-true-reward" in algos:
        (sweep / trial_name("Pendulum-v1", "sac-true-reward", 1)).mkdir()
    if "sobirl" in algos:
        failure = {"error": "RuntimeError: out of\nmemory | on cuda:0", "attempts": 2}
        (sweep / FAILURES_FILE).write_text(yaml.safe_dump({trial_name("Pendulum-v1", "sobirl", 2): failure}))
    return sweep


def section(text: str, title: str) -> str:
    """The body of the markdown section ``## title``."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_report_of_a_sweep_with_failed_unfinished_and_missing_trials(tmp_path):
    sweep = make_sweep(tmp_path)
    path = write_report(sweep, window=2)
    assert path == sweep / "report.md"
    text = path.read_text()
    assert text.startswith("# Sweep sweep-pendulum\n\n## Grid\n")
    grid = section(text, "Grid")
    assert "- environments: Pendulum-v1\n- algorithms: drlhf, sobirl, sac-true-reward\n- seeds: 0, 1, 2\n" in grid
    assert "- agent steps per trial: 3000\n- trials: 9; base config in [sweep.yaml](sweep.yaml)" in grid

    # the table is rlhf-summary's over the trials with metrics, in grid order
    with_metrics = [sweep / trial_name("Pendulum-v1", a, s) for s in (0, 1, 2) for a in ("drlhf", "sobirl")]
    with_metrics.insert(2, sweep / trial_name("Pendulum-v1", "sac-true-reward", 0))
    results = section(text, "Results")
    assert results.strip() == summary_table(with_metrics, window=2)
    # drlhf final returns -100, -300, -200: mean -200, s.e. 100 / sqrt(3); last 2 evals -300, -450, -300
    drlhf = "| Pendulum-v1 | drlhf | 3 | 3000 | -200.0 +/- 57.7 | -350.0 +/- 50.0 | 0: -100, 1: -300, 2: -200 |"
    assert drlhf in results
    assert "| Pendulum-v1 | sobirl | 3 | 2000, 3000 of 3000 | -150.0 +/- 57.7 |" in results
    assert "| last 2 evals |" in results

    figures = section(text, "Figures")
    for kind in ("return", "accuracy"):
        assert f"![rlhf-{kind}](figures/rlhf-{kind}.png)" in figures
        assert f"[rlhf-{kind}.pdf](figures/rlhf-{kind}.pdf)" in figures
        assert (sweep / "figures" / f"rlhf-{kind}.png").read_bytes()[:8] == PNG_MAGIC
        assert (sweep / "figures" / f"rlhf-{kind}.pdf").read_bytes().startswith(b"%PDF")

    missing = section(text, "Missing or failed trials")
    assert missing.strip().splitlines() == [
        "| trial | agent steps | state |",
        "|---|---|---|",
        "| rlhf-Pendulum-v1-sac-true-reward-seed1 | none | not started |",
        "| rlhf-Pendulum-v1-sobirl-seed2 | 2000 of 3000 | failed: RuntimeError: out of memory \\| on cuda:0 |",
        "| rlhf-Pendulum-v1-sac-true-reward-seed2 | none | not started |",
    ]

    produced = section(text, "How it was produced")
    assert f"```console\n{COMMAND}\n{ORACLE_COMMAND}\n```" in produced  # each distinct command once
    assert produced.count(COMMAND) == 2  # ORACLE_COMMAND starts with COMMAND
    versions = "- sobirl: 0.1.0\n- torch: 2.4.0, 2.5.0\n- python: 3.11.9\n- numpy: 2.1.0"
    assert produced.rstrip().endswith(versions)


def test_unfinished_trial_without_failure_and_a_complete_sweep(tmp_path):
    sweep = make_sweep(tmp_path, algos=("drlhf", "sobirl"))
    (sweep / FAILURES_FILE).unlink()  # e.g. the sweep is still running
    missing = section(write_report(sweep).read_text(), "Missing or failed trials")
    assert missing.strip().splitlines()[2:] == [
        "| rlhf-Pendulum-v1-sobirl-seed2 | 2000 of 3000 | unfinished (running or interrupted) |"
    ]
    complete = make_sweep(tmp_path / "other", algos=("drlhf",))
    text = write_report(complete).read_text()
    assert "## Missing or failed trials\n\nNone: all 3 trials are complete.\n" in text
    assert "rlhf-accuracy.png" in text


def test_complete_only_reports_the_complete_trials_and_lists_the_others(tmp_path):
    sweep = make_sweep(tmp_path)
    (sweep / FAILURES_FILE).unlink()  # sobirl seed 2 (2000 of 3000 steps) as if still running
    text = write_report(sweep, window=2, complete_only=True).read_text()
    grid = [(a, s) for s in (0, 1, 2) for a in ("drlhf", "sobirl", "sac-true-reward")]  # seeds outermost
    complete = [
        sweep / trial_name("Pendulum-v1", a, s) for a, s in grid if (a, s) in RETURNS and (a, s) != ("sobirl", 2)
    ]
    assert section(text, "Results").strip() == f"The 6 complete trials of 9.\n\n{summary_table(complete, window=2)}"
    assert "| Pendulum-v1 | sobirl | 2 | 3000 | -100.0 +/- 50.0 |" in section(text, "Results")  # seeds 0 and 1
    assert "| rlhf-Pendulum-v1-sobirl-seed2 | 2000 of 3000 | unfinished (running or interrupted) |" in text
    assert (sweep / "figures" / "rlhf-return.png").read_bytes()[:8] == PNG_MAGIC


def test_report_elsewhere_links_relative_to_it(tmp_path):
    sweep = make_sweep(tmp_path / "runs", algos=("drlhf",))
    path = write_report(sweep, tmp_path / "docs" / "results" / "pendulum.md")
    text = path.read_text()
    assert (tmp_path / "docs" / "results" / "figures" / "rlhf-return.png").is_file()
    assert "![rlhf-return](figures/rlhf-return.png)" in text
    assert "[sweep.yaml](sweep.yaml)" in text  # a copy beside the report: docs/results/ stands alone
    assert (tmp_path / "docs" / "results" / "sweep.yaml").read_text() == (sweep / "sweep.yaml").read_text()
    assert not (sweep / "report.md").exists() and not (sweep / "figures").exists()
    assert not (sweep / "trials").exists()


def test_report_elsewhere_keeps_the_complete_trials_and_they_resume_a_sweep(tmp_path):
    sweep = make_sweep(tmp_path / "runs", algos=("drlhf", "sobirl"))
    out = tmp_path / "docs" / "results"
    text = write_report(sweep, out / "report.md").read_text()
    assert "[trials/](trials/)<trial>/" in section(text, "Grid")
    complete = [trial_name("Pendulum-v1", algo, seed) for algo, seed in RETURNS if algo != "sac-true-reward"][:5]
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(complete)  # not sobirl seed 2 (unfinished)
    for name in complete:
        assert sorted(p.name for p in (out / "trials" / name).iterdir()) == ["config.yaml", "metrics.csv"]
        for file in ("config.yaml", "metrics.csv"):
            assert (out / "trials" / name / file).read_bytes() == (sweep / name / file).read_bytes()
        assert is_complete(out / "trials" / name, 3000)  # copied back into a sweep directory: skipped there
    assert not (sweep / "trials").exists()


def test_cli_writes_the_report_and_prints_its_path(tmp_path, capsys):
    sweep = make_sweep(tmp_path, algos=("drlhf",))
    assert main(["report", str(sweep), "--window", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(sweep / "report.md")
    assert "| last 3 evals |" in (sweep / "report.md").read_text()
    assert main(["report", str(sweep), "--complete-only"]) == 0
    assert "The 3 complete trials of 3.\n\n" in (sweep / "report.md").read_text()


def bad_sweep(tmp_path: Path, case: str) -> Path:
    """The sweep directory argument of a bad-input case."""
    if case == "run-dir":
        return rlhf_run(tmp_path / case, "drlhf", 0, [-1.0])
    path = tmp_path / case
    if case == "no-metrics":
        sweep = make_sweep(tmp_path, algos=("drlhf",))
        for trial in sweep.glob("rlhf-*"):
            (trial / "metrics.csv").unlink()
        return sweep
    if case == "bad-yaml":
        path.mkdir()
        (path / SWEEP_FILE).write_text("algos: [drlhf\n")
    if case == "window":
        return make_sweep(tmp_path, algos=("drlhf",))
    if case == "none-complete":
        sweep = make_sweep(tmp_path, algos=("drlhf",))
        for metrics in sweep.glob("rlhf-*/metrics.csv"):  # each trial stopped before its last evaluation
            metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:-1]))
        return sweep
    return path


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        ("missing", [], "{tmp}/missing does not exist"),
        ("run-dir", [], "{tmp}/run-dir is not a sweep directory (no sweep.yaml)"),
        ("bad-yaml", [], "{tmp}/bad-yaml/sweep.yaml is not a readable sweep file: while parsing a flow sequence"),
        ("no-metrics", [], "sweep directory {tmp}/sweep-pendulum has no trial with a row in its metrics.csv yet"),
        ("window", ["--window", "0"], "window must be an integer >= 1, got 0"),
        ("none-complete", ["--complete-only"], "sweep directory {tmp}/sweep-pendulum has no complete trial yet"),
    ],
)
def test_bad_input_fails_with_one_line(case, args, message, tmp_path, capsys):
    sweep = bad_sweep(tmp_path, case)
    with pytest.raises(SystemExit) as exc:
        main(["report", str(sweep), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("sobirl report: error: ")
    assert message.format(tmp=tmp_path) in err
    assert not (sweep / "report.md").exists() and not (sweep / "figures").exists()


def test_report_of_a_grid_has_a_row_per_grid_point_and_seeded_aggregates(tmp_path, capsys):
    sweep = grid_sweep(tmp_path)  # reward_lr 0.0001: seeds 0, 1 (final -100, -300); 0.0003: seed 0 (final -200)
    text = write_report(sweep, window=2, seed=0).read_text()
    assert "- algorithms: drlhf\n- reward_lr: 0.0001, 0.0003\n- seeds: 0, 1\n" in section(text, "Grid")
    results = section(text, "Results").strip().splitlines()
    assert results[0].startswith("| env | algo | reward_lr | seeds | agent steps | final eval return | last 2 evals |")
    assert results[2].startswith("| Pendulum-v1 | drlhf | 0.0001 | 2 | 3000 | -200.0 +/- 100.0 | -300.0 +/- 50.0 |")
    assert results[3].startswith("| Pendulum-v1 | drlhf | 0.0003 | 1 | 3000 | -200.0 +/- 0.0 | -300.0 +/- 0.0 |")
    aggregates = section(text, "Aggregates").strip().splitlines()
    assert "95% stratified bootstrap percentile interval (50000 replicates, seed 0" in aggregates[0]
    # two seeds: the IQM is the mean, the interval's ends the two runs (last 2 evaluations: -250 and -350)
    assert aggregates[-2:] == [
        "| Pendulum-v1 | drlhf | 0.0001 | 2 | -200.0 [-300.0, -100.0] | -300.0 [-350.0, -250.0] |",
        "| Pendulum-v1 | drlhf | 0.0003 | 1 | -200.0 [-200.0, -200.0] | -300.0 [-300.0, -300.0] |",
    ]
    figures = section(text, "Figures")
    assert "![rlhf-profile](figures/rlhf-profile.png)" in figures and "(2000 replicates, seed 0)" in figures
    assert (sweep / "figures" / "rlhf-profile.png").read_bytes()[:8] == PNG_MAGIC
    assert "| rlhf-Pendulum-v1-drlhf-reward_lr=0.0003-seed1 | none | not started |" in text
    assert write_report(sweep, window=2, seed=0).read_text() == text  # the same seed, the same report
    assert main(["report", str(sweep), "--window", "2", "--seed", "7"]) == 0
    assert capsys.readouterr().out.strip() == str(sweep / "report.md")
    assert "(50000 replicates, seed 7;" in (sweep / "report.md").read_text()
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        write_report(sweep, seed=-1)
