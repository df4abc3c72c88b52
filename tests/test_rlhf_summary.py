"""``sobirl rlhf-summary``: the grouped table of rlhf run directories, its numbers and its errors; the grid-point
grouping and the interquartile-mean table of ``sobirl report``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from sobirl.cli import main
from sobirl.experiments.rlhf_summary import aggregate_table, summary_table
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.run_logger import METRIC_COLUMNS


def fake_run(
    root: Path, algo: str, seed: int, returns: list[float], total_steps: int = 3000, **changes: object
) -> Path:
    """A run directory with one metrics row per 1000 steps, eval returns ``returns``, accuracy 0.5 + seed / 10;
    ``changes``: further config fields (named in the directory)."""
    run_dir = root / "-".join([algo, str(seed), *(f"{k}={v}" for k, v in changes.items())])
    run_dir.mkdir()
    config = RLHFConfig.from_dict({"algo": algo, "seed": seed, "total_steps": total_steps, **changes})
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"experiment": "rlhf", **config.to_dict()}))
    with open(run_dir / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        for k, value in enumerate(returns, start=1):
            row = dict.fromkeys(METRIC_COLUMNS, 0.0)
            row.update(iteration=k, agent_steps=1000 * k, eval_return=value, wall_time=10.0 * k)
            row["preference_accuracy"] = "" if algo == "sac-true-reward" else 0.5 + seed / 10
            writer.writerow(row)
    return run_dir


def test_groups_means_standard_errors_and_windows(tmp_path):
    runs = [
        fake_run(tmp_path, "sobirl", 0, [-900.0, -300.0, -100.0]),
        fake_run(tmp_path, "sac-true-reward", 0, [-500.0, -200.0, -150.0]),
        fake_run(tmp_path, "sobirl", 1, [-800.0, -400.0, -300.0]),
    ]
    lines = summary_table(runs, window=2).splitlines()
    assert lines[0].startswith("| env | algo | seeds |") and "last 2 evals" in lines[0] and len(lines) == 4
    sobirl = [cell.strip() for cell in lines[2].strip("|").split("|")]
    # final -100 and -300: mean -200, s.e. std(ddof=1)/sqrt(2) = 141.42/1.414 = 100; windows -200 and -350
    se_window = math.sqrt(((-200 + 275) ** 2 + (-350 + 275) ** 2) / 1) / math.sqrt(2)
    assert sobirl[:5] == ["Pendulum-v1", "sobirl", "2", "3000", "-200.0 +/- 100.0"]
    assert sobirl[5] == f"-275.0 +/- {se_window:.1f}" and sobirl[6] == "0: -100, 1: -300"
    assert sobirl[7] == "0.55" and sobirl[8] == "30" and sobirl[9] == "100.0"
    oracle = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert oracle[1:5] == ["sac-true-reward", "1", "3000", "-150.0 +/- 0.0"] and oracle[7] == "n/a"


def test_unfinished_runs_show_their_steps(tmp_path):
    run = fake_run(tmp_path, "drlhf", 0, [-900.0, -300.0], total_steps=5000)
    assert "| 2000 of 5000 |" in summary_table([run])


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    runs = [str(fake_run(tmp_path, "drlhf", s, [-300.0, -200.0])) for s in (0, 1)]
    out = tmp_path / "docs" / "table.md"
    assert main(["rlhf-summary", *runs, "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Pendulum-v1 | drlhf | 2 |" in printed
    assert out.read_text().startswith("Command: `sobirl rlhf-summary ") and printed.strip() in out.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-dir"], "missing-dir is not an rlhf run directory (no config.yaml)"),
        (["--window", "0", "RUN"], "window must be an integer >= 1, got 0"),
    ],
)
def test_bad_input_fails_with_one_line(args, message, tmp_path, capsys):
    run = fake_run(tmp_path, "drlhf", 0, [-1.0])
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "rlhf-summary",
                *[str(run) if a == "RUN" else str(tmp_path / a) if a == "missing-dir" else a for a in args],
            ]
        )
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and message in err


def grid_runs(root: Path) -> list[Path]:
    """drlhf at two reward_lr values: 2 seeds at 0.0001, 4 at 0.0003 (final returns -100, -200, -300, -1000)."""
    return [
        fake_run(root, "drlhf", 0, [-900.0, -300.0, -100.0], reward_lr=1e-4),
        fake_run(root, "drlhf", 1, [-800.0, -400.0, -300.0], reward_lr=1e-4),
        *(
            fake_run(root, "drlhf", seed, [-500.0, final], total_steps=2000, reward_lr=3e-4)
            for seed, final in enumerate([-100.0, -200.0, -300.0, -1000.0])
        ),
    ]


def test_group_by_splits_the_rows_by_grid_point(tmp_path):
    runs = grid_runs(tmp_path)
    lines = summary_table(runs, window=2, group_by=("reward_lr",)).splitlines()
    assert lines[0].startswith("| env | algo | reward_lr | seeds | agent steps | final eval return | last 2 evals |")
    assert lines[1] == "|---|---|---|---|---|---|---|---|---|---|---|"
    assert lines[2].startswith("| Pendulum-v1 | drlhf | 0.0001 | 2 | 3000 | -200.0 +/- 100.0 | -275.0 +/- 75.0 |")
    # -100, -200, -300, -1000: mean -400, std_{n-1} 408.2, s.e. 204.1
    assert lines[3].startswith("| Pendulum-v1 | drlhf | 0.0003 | 4 | 2000 | -400.0 +/- 204.1 |")
    assert len(lines) == 4 and len(summary_table(runs).splitlines()) == 3  # without group_by: one drlhf row
    with pytest.raises(ValueError, match="group_by keys reward_lrr are set in no run's config; set: env, algo"):
        summary_table(runs, group_by=("reward_lrr",))
    with pytest.raises(ValueError, match="group_by must not hold env, algo or seed"):
        summary_table(runs, group_by=("seed",))


def test_aggregate_table_iqm_and_bootstrap_intervals_by_hand(tmp_path):
    runs = grid_runs(tmp_path)
    lines = aggregate_table(runs, window=2, group_by=("reward_lr",), seed=0).splitlines()
    assert lines[0] == (
        "| env | algo | reward_lr | seeds | final eval return: IQM [95% CI] | last 2 evals: IQM [95% CI] |"
    )
    # 2 seeds: the IQM is their mean; a replicate is one of them twice (1/4 each) or both: the interval's ends are
    # the two runs. Final -100, -300; last 2 evaluations -200 and -350.
    assert lines[2] == "| Pendulum-v1 | drlhf | 0.0001 | 2 | -200.0 [-300.0, -100.0] | -275.0 [-350.0, -200.0] |"
    # 4 seeds: the IQM drops the best and the worst: (-200 - 300) / 2 = -250 (the mean would be -400)
    cells = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert cells[:4] == ["Pendulum-v1", "drlhf", "0.0003", "4"] and cells[4].startswith("-250.0 [")
    low, high = (float(v) for v in cells[4].split("[")[1].rstrip("]").split(","))
    assert -1000.0 <= low < -250.0 < high <= -100.0
    assert aggregate_table(runs, window=2, group_by=("reward_lr",), seed=0) == "\n".join(lines)  # seeded
    plain = aggregate_table(runs[:2], window=2, reps=1000)
    assert plain.splitlines()[2] == "| Pendulum-v1 | drlhf | 2 | -200.0 [-300.0, -100.0] | -275.0 [-350.0, -200.0] |"
    with pytest.raises(ValueError, match="reps must be an integer >= 1, got 0"):
        aggregate_table(runs, reps=0)
