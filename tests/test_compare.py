"""``sobirl compare``: trials over methods x seeds, the table, the figure, and input validation."""

from __future__ import annotations

import csv

import pytest

from sobirl.cli import main
from sobirl.experiments import compare

SMALL = ["--problem", "random-mdp", "--set", "S=4", "--set", "A=2", "--set", "n=3"]


def _run_dir(tmp_path):
    (run_dir,) = tmp_path.iterdir()
    return run_dir


def test_compare_writes_trials_table_and_figure(tmp_path, capsys):
    code = main(
        [
            "compare",
            *SMALL,
            "--methods",
            "exact,m-sobirl",
            "--seeds",
            "2",
            "--iterations",
            "20",
            "--evaluate-every",
            "5",
            "--workers",
            "2",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    run_dir = _run_dir(tmp_path)
    trials = sorted(p.name for p in (run_dir / "trials").iterdir())
    assert trials == ["exact-seed0.csv", "exact-seed1.csv", "m-sobirl-seed0.csv", "m-sobirl-seed1.csv"]
    with open(run_dir / "trials" / "exact-seed0.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert [r["iteration"] for r in rows if r["exact_objective"]] == ["0.0", "5.0", "10.0", "15.0", "19.0"]
    table = (run_dir / "results.md").read_text()
    assert "| exact |" in table and "| m-sobirl |" in table and "0/2" in table
    assert (run_dir / "objective.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "config.yaml").exists()
    assert str(run_dir) in capsys.readouterr().out


def test_parallel_and_sequential_trials_agree(tmp_path):
    def specs(sub):
        return [
            compare.TrialSpec(
                "random-mdp", {"S": 4, "A": 2, "n": 3}, "m-sobirl", {}, seed, 15, 5, tmp_path / sub / f"{seed}.csv"
            )
            for seed in range(2)
        ]

    one = compare.run_trials(specs("a"), workers=1)
    two = compare.run_trials(specs("b"), workers=2)
    assert [r.rows[-1]["exact_objective"] for r in one] == [r.rows[-1]["exact_objective"] for r in two]
    assert one[0].rows[-1]["exact_objective"] != one[1].rows[-1]["exact_objective"]  # seeds differ


def test_a_failed_trial_is_reported_not_dropped(tmp_path, capsys):
    code = main(
        [
            "compare",
            *SMALL,
            "--methods",
            "m-sobirl",
            "--param",
            "m-sobirl.beta=1e4",
            "--seeds",
            "1",
            "--iterations",
            "50",
            "--workers",
            "1",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "1/1" in (_run_dir(tmp_path) / "results.md").read_text()
    assert "diverged" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--problem", "nope", "--methods", "exact"], "unknown problem 'nope'; valid: random-mdp"),
        (["--problem", "random-mdp", "--methods", "exact,adam"], "unknown method 'adam'; valid: exact"),
        (["--problem", "random-mdp", "--methods", "exact", "--param", "sobirl.beta=1"], "not compared"),
        (["--problem", "random-mdp", "--methods", "exact", "--param", "exact.lr=1"], "unknown parameter(s) lr"),
        (["--problem", "random-mdp", "--methods", "exact", "--param", "exact.beta=-1"], "beta must be in"),
        (["--problem", "random-mdp", "--set", "gamma=2", "--methods", "exact"], "gamma must be in"),
        (["--problem", "random-mdp", "--set", "gamma", "--methods", "exact"], "--set expects KEY=VALUE"),
        (["--problem", "random-mdp", "--methods", "exact", "--seeds", "0"], "seeds must be an integer >= 1"),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *extra, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
