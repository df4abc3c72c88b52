"""``sobirl estimators``: the estimator study's numbers, its determinism, its files and its input validation."""

from __future__ import annotations

import csv
import dataclasses
import math

import pytest
import yaml

from sobirl.cli import main
from sobirl.estimators import ESTIMATORS
from sobirl.experiments import estimator_study as study

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rlhf_rows() -> list[study.StudyRow]:
    plan = study.plan_study("tabular-rlhf", batches=[1000, 10], seeds=8)
    return study.run_study(plan)


def by_key(rows: list[study.StudyRow]) -> dict[tuple[str, int], study.StudyRow]:
    return {(row.estimator, row.batch): row for row in rows}


def test_tabular_rlhf_rows(rlhf_rows):
    assert [(r.estimator, r.batch) for r in rlhf_rows] == [(e, b) for e in ESTIMATORS for b in (10, 1000)]
    for row in rlhf_rows:
        assert row.problem == "tabular-rlhf" and row.seeds == 8
        assert row.trajectories == 2 * row.batch  # a preference pair is two trajectories
        assert -1.0 <= row.cosine <= 1.0
        assert row.bias_se == pytest.approx(row.std / math.sqrt(8))
        assert row.transitions > 0 and row.seconds > 0
    critic = by_key(rlhf_rows)["critic", 1000]
    # Measured: bias 0.036, noise floor 0.064, cosine 0.991 (8 seeds of 1,000 pairs).
    assert critic.bias < 0.2 and critic.cosine > 0.95
    assert by_key(rlhf_rows)["critic", 10].bias > critic.bias


def test_at_x0_every_loss_is_log2_so_no_estimator_adds_exploration(rlhf_rows):
    """At x0 = 0 all losses are equal: their leave-one-out score weights vanish and, on the same data, the
    estimators that do not extend the paths return the same estimate."""
    rows = by_key(rlhf_rows)
    for batch in (10, 1000):
        one_step = dataclasses.replace(rows["one-step", batch], seconds=0.0)
        for estimator in ("monte-carlo", "td-critic", "critic"):
            assert dataclasses.replace(rows[estimator, batch], seconds=0.0, estimator="one-step") == one_step


def test_one_step_misses_the_exploration_term_on_four_rooms():
    plan = study.plan_study("four-rooms", estimators=["one-step", "critic"], batches=[100], seeds=2)
    assert plan.problem_params["gamma"] == 0.9  # the study's gamma, not four rooms' default 0.99
    one_step, critic = study.run_study(plan)
    assert one_step.trajectories == 100
    assert one_step.bias > 0.9  # measured 0.9999: four rooms' incentives do not depend on the action
    assert -1.0 <= critic.cosine <= 1.0 and critic.cosine > one_step.cosine


def test_plan_resolves_seeds_and_batches():
    plan = study.plan_study(
        "tabular-rlhf",
        estimators=["critic", "monte-carlo", "one-step"],
        batches=[1e5, 10, 1000],
        seeds=[3, 5, 4],
        estimator_seeds={"one-step": 2},
    )
    assert plan.batches == (10, 1000, 100_000)
    assert plan.seeds == {"critic": (5, 4, 3), "monte-carlo": (5, 4, 3), "one-step": (2, 2, 2)}
    assert plan.n_estimates == 30
    defaults = study.plan_study("tabular-rlhf", estimators=["critic", "monte-carlo"]).seeds
    assert defaults == {"critic": (200, 200, 200, 50, 20), "monte-carlo": (240,) * 5}
    assert study.default_seeds("critic", 10_000) == 50


def test_same_options_same_numbers_with_any_number_of_workers(tmp_path):
    def run(workers: int) -> list[dict[str, str]]:
        out = tmp_path / f"w{workers}"
        options = ["--problem", "four-rooms", "--estimators", "critic,monte-carlo", "--batches", "20,50"]
        assert main(["estimators", *options, "--seeds", "3", "--workers", str(workers), "--output-dir", str(out)]) == 0
        (run_dir,) = out.iterdir()
        with open(run_dir / study.RESULTS_CSV) as fh:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]

    one, two = run(1), run(2)
    assert one == two and len(one) == 4


def test_cli_writes_the_run_directory(tmp_path, capsys):
    code = main(
        [
            "estimators",
            "--problem",
            "tabular-rlhf",
            "--set",
            "gamma=0.5",
            "--estimators",
            "one-step,critic",
            "--batches",
            "10,1e2",
            "--seeds",
            "2",
            "--estimator-seeds",
            "critic=3,4",
            "--x-scale",
            "0.5",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["config.yaml", study.RESULTS_CSV, study.RESULTS_MD, *study.PLOT_FILES.values()]
    )
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["problem_params"] == {"gamma": 0.5}
    assert config["batches"] == [10, 100] and config["trajectories"] == [20, 200]
    assert config["seeds"] == {"one-step": [2, 2], "critic": [3, 4]}
    assert config["x_scale"] == 0.5 and config["workers"] == 1
    with open(run_dir / study.RESULTS_CSV) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(study.COLUMNS)
    assert [(r["estimator"], r["batch"], r["seeds"]) for r in rows] == [
        ("one-step", "10", "2"),
        ("one-step", "100", "2"),
        ("critic", "10", "3"),
        ("critic", "100", "4"),
    ]
    table = (run_dir / study.RESULTS_MD).read_text()
    assert "| critic | 100 | 200 | 4 |" in table and "Machine:" in table
    for file in study.PLOT_FILES.values():
        assert (run_dir / file).read_bytes()[:8] == PNG_SIGNATURE
    out = capsys.readouterr().out
    assert "| one-step | 10 | 20 | 2 |" in out and str(run_dir) in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--problem", "nope"], "unknown problem 'nope'; valid: random-mdp, four-rooms"),
        (["--problem", "random-mdp"], "has no sampled form of its upper objective"),
        (["--problem", "tabular-rlhf", "--set", "colour=1"], "unexpected keyword argument 'colour'"),
        (["--problem", "tabular-rlhf", "--estimators", "critic,td"], "unknown estimator 'td'; valid: one-step"),
        (["--problem", "tabular-rlhf", "--batches", "10,0"], "batch must be an integer >= 1, got 0"),
        (["--problem", "tabular-rlhf", "--batches", "10,2.5"], "batch must be an integer, got float"),
        (["--problem", "tabular-rlhf", "--seeds", "0"], "seeds must be an integer >= 1, got 0"),
        (["--problem", "tabular-rlhf", "--seeds", "2,3,4"], "seeds needs 1 or 5 counts (one per batch), got 3"),
        (["--problem", "tabular-rlhf", "--estimator-seeds", "critic=0"], "seeds of critic must be an integer >= 1"),
        (
            ["--problem", "tabular-rlhf", "--estimators", "critic", "--estimator-seeds", "one-step=3"],
            "seeds given for estimator 'one-step', which is not studied (critic)",
        ),
        (["--problem", "tabular-rlhf", "--estimator-seeds", "critic"], "--estimator-seeds expects ESTIMATOR=N"),
        (["--problem", "tabular-rlhf", "--workers", "0"], "workers must be an integer >= 1, got 0"),
        (["--problem", "tabular-rlhf", "--pairs-per-path", "0"], "pairs_per_path must be an integer >= 1, got 0"),
        (["--problem", "tabular-rlhf", "--x-scale", "-1"], "x_scale must be in [0, inf), got -1"),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["estimators", *options, "--output-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
