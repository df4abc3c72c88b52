"""``sobirl plot``: run directories read and grouped, mean +/- s.e. on the steps all seeds reached, the figures' lines,
bands and legends, PNG and PDF files, sweep directories expanded, and one-line errors for bad input."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.collections import PolyCollection

from smoke import SMOKE
from sobirl.cli import main
from sobirl.experiments.aggregate import mean_and_se
from sobirl.experiments.figures import (
    aggregate,
    expand_run_dirs,
    load_runs,
    performance_profile_figure,
    plot_performance_profile,
    profile_thresholds,
    read_run,
    rlhf_figure,
    tabular_figure,
    write_figures,
)
from sobirl.experiments.sweep import SWEEP_FILE, SweepSpec, trial_name
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.run_logger import METRIC_COLUMNS

VERSIONS = {"sobirl": "0.1.0", "torch": "2.4.0", "python": "3.11.9", "numpy": "2.1.0"}
COMMAND = "sobirl sweep configs/pendulum-cpu.yaml --algos drlhf,sobirl,sac-true-reward --seeds 3"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, float | str]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def rlhf_run(
    run_dir: Path,
    algo: str,
    seed: int,
    returns: Sequence[float],
    *,
    env: str = "Pendulum-v1",
    total_steps: int = 3000,
    command: str = COMMAND,
    versions: dict[str, str] = VERSIONS,
) -> Path:
    """An rlhf run directory with a metrics row per 1000 agent steps: eval returns ``returns`` (NaN: empty cell),
    accuracy ``0.5 + seed / 10 + k / 100`` at row k (none for sac-true-reward), 10 s of wall time per row."""
    run_dir.mkdir(parents=True)
    config = RLHFConfig.from_dict({**SMOKE, "algo": algo, "seed": seed, "env": env, "total_steps": total_steps})
    values = {"experiment": "rlhf", **config.to_dict(), "versions": versions, "command_line": command}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    rows = []
    for k, value in enumerate(returns, start=1):
        row: dict[str, float | str] = dict.fromkeys(METRIC_COLUMNS, 0.0)
        accuracy = "" if algo == "sac-true-reward" else 0.5 + seed / 10 + k / 100
        row.update(iteration=k, agent_steps=1000 * k, eval_return="" if math.isnan(value) else value)
        row.update(preference_accuracy=accuracy, steps_per_s=100.0, wall_time=10.0 * k)
        rows.append(row)
    write_csv(run_dir / "metrics.csv", METRIC_COLUMNS, rows)
    return run_dir


def synthetic_run(
    run_dir: Path, method: str, seed: int, objectives: Sequence[float], grads: Sequence[float], optimum: float | None
) -> Path:
    """A ``sobirl synthetic`` run directory with one metrics row per iteration 0, 1, ..."""
    run_dir.mkdir(parents=True)
    config = {"experiment": "synthetic", "seed": seed, "method": method, "optimum": optimum, "command_line": "x"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {"iteration": k, "objective": f, "grad_norm": g, "wall_time": 0.1 * k}
        for k, (f, g) in enumerate(zip(objectives, grads, strict=True))
    ]
    write_csv(run_dir / "metrics.csv", ["iteration", "objective", "grad_norm", "wall_time"], rows)
    return run_dir


def write_sweep_file(sweep: Path, algos: Sequence[str], seeds: Sequence[int], total_steps: int = 3000) -> Path:
    """``sweep/sweep.yaml`` of a grid of Pendulum trials (the directory is created)."""
    sweep.mkdir(parents=True)
    spec = SweepSpec(
        RLHFConfig.from_dict({**SMOKE, "total_steps": total_steps}), algos=tuple(algos), seeds=tuple(seeds)
    )
    (sweep / SWEEP_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    return sweep


def legend(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


# ---- numbers -------------------------------------------------------------------------------------------------------


def test_mean_and_se_uses_the_n_minus_1_standard_deviation():
    mean, se = mean_and_se([[1.0, 2.0], [3.0, 6.0]])
    # columns (1, 3) and (2, 6): std_{n-1} = sqrt(2) and 2 sqrt(2), over sqrt(2)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(se, [1.0, 2.0])
    mean, se = mean_and_se([[5.0, -1.0]])  # one seed: no spread
    np.testing.assert_array_equal(mean, [5.0, -1.0])
    np.testing.assert_array_equal(se, [0.0, 0.0])
    with pytest.raises(ValueError, match="at least one row"):
        mean_and_se(np.zeros((0, 3)))


def test_aggregate_on_the_steps_every_seed_reached(tmp_path):
    done = read_run(rlhf_run(tmp_path / "a", "sobirl", 0, [-900.0, -300.0, -100.0]))
    running = read_run(rlhf_run(tmp_path / "b", "sobirl", 1, [-700.0, -500.0]))  # 2000 of 3000 steps so far
    steps, mean, se = aggregate([done, running], "eval_return")
    np.testing.assert_array_equal(steps, [1000.0, 2000.0])
    np.testing.assert_allclose(mean, [-800.0, -400.0])
    np.testing.assert_allclose(se, [100.0, 100.0])  # std_{n-1} of two values 200 apart: 141.42; / sqrt(2)
    # a step where one seed has no value (NaN) is left out too
    gap = read_run(rlhf_run(tmp_path / "c", "sobirl", 2, [math.nan, -200.0, -300.0]))
    steps, mean, se = aggregate([done, gap], "eval_return")
    np.testing.assert_array_equal(steps, [2000.0, 3000.0])
    np.testing.assert_allclose(mean, [-250.0, -200.0])
    np.testing.assert_allclose(se, [50.0, 100.0])
    # one seed: its own curve, s.e. 0; a metric NaN throughout: nothing
    steps, mean, se = aggregate([done], "preference_accuracy")
    np.testing.assert_allclose(mean, [0.51, 0.52, 0.53])
    np.testing.assert_array_equal(se, [0.0, 0.0, 0.0])
    oracle = read_run(rlhf_run(tmp_path / "d", "sac-true-reward", 0, [-1.0, -2.0]))
    assert all(len(a) == 0 for a in aggregate([oracle], "preference_accuracy"))
    with pytest.raises(ValueError, match="at least one run"):
        aggregate([], "eval_return")


def test_read_run_takes_the_grouping_from_the_config(tmp_path):
    run = read_run(rlhf_run(tmp_path / "r", "drlhf", 4, [-5.0, -4.0], env="HalfCheetah-v5"))
    assert (run.experiment, run.env, run.method, run.seed, run.optimum) == ("rlhf", "HalfCheetah-v5", "drlhf", 4, None)
    assert [row["agent_steps"] for row in run.rows] == [1000, 2000]
    run = read_run(synthetic_run(tmp_path / "s", "m-sobirl", 3, [2.0, 1.0], [0.5, 0.1], optimum=0.25))
    assert (run.experiment, run.env, run.method, run.seed, run.optimum) == ("synthetic", "", "m-sobirl", 3, 0.25)


# ---- figures -------------------------------------------------------------------------------------------------------


def rlhf_runs(root: Path) -> list[Path]:
    """Pendulum: drlhf 2 seeds, sobirl 1 seed, sac-true-reward 2 seeds; HalfCheetah: drlhf 1 seed."""
    return [
        rlhf_run(root / "p-drlhf-0", "drlhf", 0, [-900.0, -300.0, -100.0]),
        rlhf_run(root / "p-sobirl-0", "sobirl", 0, [-800.0, -200.0, -50.0]),
        rlhf_run(root / "p-drlhf-1", "drlhf", 1, [-700.0, -500.0, -300.0]),
        rlhf_run(root / "p-oracle-0", "sac-true-reward", 0, [-600.0, -150.0, -140.0]),
        rlhf_run(root / "p-oracle-1", "sac-true-reward", 1, [-500.0, -250.0, -160.0]),
        rlhf_run(root / "h-drlhf-0", "drlhf", 0, [100.0, 900.0], env="HalfCheetah-v5"),
    ]


def test_return_figure_one_panel_per_env_one_line_per_algo_with_bands(tmp_path):
    runs = load_runs(rlhf_runs(tmp_path))
    fig = rlhf_figure(runs, "eval_return")
    pendulum, cheetah = [ax for ax in fig.axes if ax.get_visible()]
    assert (pendulum.get_title(), cheetah.get_title()) == ("Pendulum-v1", "HalfCheetah-v5")
    assert legend(pendulum) == ["drlhf (2 seeds)", "sobirl (1 seed)", "sac-true-reward (2 seeds)"]
    assert legend(cheetah) == ["drlhf (1 seed)"]
    drlhf, sobirl, oracle = pendulum.get_lines()
    np.testing.assert_array_equal(drlhf.get_xdata(), [1000, 2000, 3000])
    np.testing.assert_allclose(drlhf.get_ydata(), [-800.0, -400.0, -200.0])
    np.testing.assert_allclose(sobirl.get_ydata(), [-800.0, -200.0, -50.0])
    np.testing.assert_allclose(oracle.get_ydata(), [-550.0, -200.0, -150.0])
    assert drlhf.get_color() == cheetah.get_lines()[0].get_color() != sobirl.get_color()  # one color per algo
    # bands only for the groups with several seeds: drlhf (s.e. 100 at every step) and the oracle
    drlhf_band, _ = bands(pendulum)
    ys = drlhf_band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(-900.0) and ys.max() == pytest.approx(-100.0)
    assert bands(cheetah) == []
    assert pendulum.get_xlabel() == "agent steps" and pendulum.get_ylabel() == "evaluation return"


def test_accuracy_figure_leaves_out_algorithms_without_accuracy(tmp_path):
    fig = rlhf_figure(load_runs(rlhf_runs(tmp_path)), "preference_accuracy")
    pendulum = fig.axes[0]
    assert legend(pendulum) == ["drlhf (2 seeds)", "sobirl (1 seed)"]
    np.testing.assert_allclose(pendulum.get_lines()[0].get_ydata(), [0.56, 0.57, 0.58])  # 0.5 + 0.05 + k/100
    assert pendulum.get_ylabel() == "held-out preference accuracy"
    oracle_only = load_runs([tmp_path / "p-oracle-0"])
    with pytest.raises(ValueError, match="no run has a preference_accuracy to plot"):
        rlhf_figure(oracle_only, "preference_accuracy")


def test_write_figures_writes_valid_png_and_pdf(tmp_path):
    out = tmp_path / "paper" / "figs"
    paths = write_figures(rlhf_runs(tmp_path / "runs"), out)
    names = ["rlhf-return.png", "rlhf-return.pdf", "rlhf-accuracy.png", "rlhf-accuracy.pdf"]
    assert [p.name for p in paths] == names and all(p.parent == out for p in paths)
    for path in paths:
        head = path.read_bytes()[:8]
        assert head == PNG_MAGIC if path.suffix == ".png" else head.startswith(b"%PDF")
    # only the oracle: no accuracy figure
    paths = write_figures([tmp_path / "runs" / "p-oracle-0"], out, "oracle")
    assert [p.name for p in paths] == ["oracle-return.png", "oracle-return.pdf"]


def test_convergence_figure_gap_on_a_log_axis_when_the_optimum_is_shared(tmp_path):
    dirs = [
        synthetic_run(tmp_path / "m0", "m-sobirl", 0, [2.0, 1.0, 0.75], [1.0, 0.1, 0.01], optimum=0.5),
        synthetic_run(tmp_path / "m1", "m-sobirl", 1, [3.0, 1.5, 0.75], [3.0, 0.3, 0.03], optimum=0.5),
        synthetic_run(tmp_path / "e0", "exact", 0, [2.0, 0.6, 0.5 + 1e-3], [1.0, 0.01, 1e-4], optimum=0.5),
    ]
    fig = tabular_figure(load_runs(dirs))
    ax_f, ax_g = fig.axes
    assert ax_f.get_yscale() == ax_g.get_yscale() == "log" and "f - f*" in ax_f.get_ylabel()
    assert legend(ax_f) == ["m-sobirl (2 seeds)", "exact (1 seed)"]
    m_sobirl, exact = ax_f.get_lines()
    np.testing.assert_allclose(m_sobirl.get_ydata(), [2.0, 0.75, 0.25])  # mean f - f*
    np.testing.assert_allclose(exact.get_ydata(), [1.5, 0.1, 1e-3])
    np.testing.assert_allclose(ax_g.get_lines()[0].get_ydata(), [2.0, 0.2, 0.02])
    assert len(bands(ax_f)) == len(bands(ax_g)) == 1  # m-sobirl only
    # optima differ (one unknown): the objective itself on a linear axis
    other = synthetic_run(tmp_path / "u0", "exact", 1, [2.0, 0.6, 0.5], [1.0, 0.01, 1e-4], optimum=None)
    fig = tabular_figure(load_runs([*dirs, other]))
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].get_ylabel() == "objective f"
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [2.5, 1.25, 0.75])
    paths = write_figures(dirs, tmp_path / "out", "randmdp")
    assert [p.name for p in paths] == ["randmdp-convergence.png", "randmdp-convergence.pdf"]
    assert paths[0].read_bytes()[:8] == PNG_MAGIC and paths[1].read_bytes().startswith(b"%PDF")


def test_a_compare_directory_stands_for_its_trials_with_their_exact_values(tmp_path):
    small = ["--problem", "random-mdp", "--set", "S=4", "--set", "A=2", "--set", "n=3", "--workers", "1"]
    args = ["--methods", "exact,m-sobirl", "--seeds", "2", "--iterations", "20", "--evaluate-every", "5"]
    assert main(["compare", *small, *args, "--output-dir", str(tmp_path / "cmp")]) == 0
    (compare_dir,) = (tmp_path / "cmp").iterdir()
    runs = load_runs([compare_dir])
    assert [(run.experiment, run.method, run.seed) for run in runs] == [
        ("compare", "exact", 0),
        ("compare", "exact", 1),
        ("compare", "m-sobirl", 0),
        ("compare", "m-sobirl", 1),
    ]
    fig = tabular_figure(runs)
    ax_f, ax_g = fig.axes
    assert legend(ax_f) == ["exact (2 seeds)", "m-sobirl (2 seeds)"] and ax_f.get_ylabel() == "objective f"
    assert ax_g.get_yscale() == "log" and len(ax_g.get_lines()) == 2
    exact_line = ax_f.get_lines()[0]
    with (
        open(compare_dir / "trials" / "exact-seed0.csv") as fh0,
        open(compare_dir / "trials" / "exact-seed1.csv") as fh1,
    ):
        rows = [[r for r in csv.DictReader(fh) if r["exact_objective"]] for fh in (fh0, fh1)]
    np.testing.assert_allclose(exact_line.get_xdata(), [float(r["iteration"]) for r in rows[0]])
    expected = [(float(a["exact_objective"]) + float(b["exact_objective"])) / 2 for a, b in zip(*rows, strict=True)]
    np.testing.assert_allclose(exact_line.get_ydata(), expected)
    paths = write_figures([compare_dir], tmp_path / "out")
    assert [p.name for p in paths] == ["compare-convergence.png", "compare-convergence.pdf"]
    with pytest.raises(ValueError, match="cannot plot runs of different experiments together"):
        load_runs([compare_dir, synthetic_run(tmp_path / "s0", "exact", 0, [1.0], [1.0], optimum=None)])


# ---- directories ---------------------------------------------------------------------------------------------------


def test_a_sweep_directory_stands_for_its_trials_with_metrics_in_grid_order(tmp_path):
    sweep = write_sweep_file(tmp_path / "sweep", algos=("sobirl", "drlhf"), seeds=(0, 1, 2, 3))
    trial = {
        (algo, seed): sweep / trial_name("Pendulum-v1", algo, seed)
        for algo in ("sobirl", "drlhf")
        for seed in (0, 1, 2, 3, 9)
    }
    for algo, seed in [("drlhf", 1), ("drlhf", 0), ("sobirl", 1), ("drlhf", 9)]:  # seed 9 is not in the grid
        rlhf_run(trial[algo, seed], algo, seed, [-1.0])
    rlhf_run(trial["sobirl", 2], "sobirl", 2, [])  # header only: no row yet
    trial["drlhf", 3].mkdir()  # not started
    # the grid's order: seeds outermost, then the sweep's algorithms
    grid = [trial["drlhf", 0], trial["sobirl", 1], trial["drlhf", 1]]
    assert expand_run_dirs([sweep]) == grid
    again = sweep / "." / trial["drlhf", 0].name
    assert expand_run_dirs([trial["drlhf", 0], sweep, again]) == grid  # no repeats
    assert [(run.method, run.seed) for run in load_runs([sweep])] == [("drlhf", 0), ("sobirl", 1), ("drlhf", 1)]


def bad_input(tmp_path: Path, case: str) -> list[str]:
    """The ``sobirl plot`` arguments of a bad-input case."""
    path = tmp_path / case
    if case == "file":
        path.write_text("x")
    elif case in ("empty-dir", "no-metrics", "estimators", "empty-compare"):
        path.mkdir()
    if case == "no-metrics":
        (path / "config.yaml").write_text("experiment: rlhf\n")
    elif case == "estimators":
        (path / "config.yaml").write_text("experiment: estimators\n")
        (path / "metrics.csv").write_text("iteration\n1\n")
    elif case == "empty-compare":
        (path / "config.yaml").write_text("experiment: compare\nmethods: [exact]\nseeds: 2\n")
    elif case == "empty-sweep":
        write_sweep_file(path, algos=("drlhf",), seeds=(0,))
    elif case == "no-rows":
        rlhf_run(path, "drlhf", 0, [])
    elif case == "mixed":
        rlhf_run(tmp_path / "a", "drlhf", 0, [-1.0])
        synthetic_run(tmp_path / "b", "exact", 0, [1.0], [1.0], optimum=None)
        return [str(tmp_path / "a"), str(tmp_path / "b")]
    elif case == "name":
        rlhf_run(tmp_path / "a", "drlhf", 0, [-1.0])
        return [str(tmp_path / "a"), "--name", "sub/fig"]
    return [str(path)]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "missing does not exist"),
        ("file", "file is not a directory"),
        ("empty-dir", "empty-dir is not a run directory (no config.yaml), nor a sweep directory (no sweep.yaml)"),
        ("no-metrics", "no-metrics is not a run directory (no metrics.csv)"),
        ("no-rows", "no-rows/metrics.csv has no rows yet"),
        ("estimators", "estimators/config.yaml: cannot plot experiment 'estimators'; valid: rlhf, synthetic, compare"),
        ("empty-compare", "empty-compare has no trial with a row in trials/ yet"),
        ("empty-sweep", "sweep directory {tmp}/empty-sweep has no trial with a row in its metrics.csv yet"),
        ("mixed", "cannot plot runs of different experiments together (rlhf in {tmp}/a, synthetic in {tmp}/b)"),
        ("name", "the figure name must be a non-empty file name without a directory, got 'sub/fig'"),
    ],
)
def test_bad_input_fails_with_one_line_and_writes_nothing(case, message, tmp_path, capsys):
    out = tmp_path / "figures"
    with pytest.raises(SystemExit) as exc:
        main(["plot", *bad_input(tmp_path, case), "--output", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("sobirl plot: error: ")
    assert message.format(tmp=tmp_path) in err
    assert not out.exists()


def test_cli_writes_and_prints_the_figures(tmp_path, capsys, monkeypatch):
    dirs = rlhf_runs(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    assert main(["plot", *map(str, dirs), "--name", "pendulum"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [f"figures/pendulum-{kind}.{fmt}" for kind in ("return", "accuracy") for fmt in ("png", "pdf")]
    assert all((tmp_path / p).stat().st_size > 1000 for p in printed)


def grid_sweep(root: Path) -> Path:
    """A sweep of drlhf over reward_lr 0.0001 (seeds 0, 1: final returns -100, -300) and 0.0003 (seed 0: -200)."""
    sweep = root / "sweep"
    sweep.mkdir(parents=True)
    base = RLHFConfig.from_dict({**SMOKE, "total_steps": 3000})
    spec = SweepSpec(base, algos=("drlhf",), seeds=(0, 1), grid={"reward_lr": [1e-4, 3e-4]})
    (sweep / SWEEP_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    finals = {(1e-4, 0): -100.0, (1e-4, 1): -300.0, (3e-4, 0): -200.0}  # (3e-4, 1) not started
    for trial in spec.trials():
        lr, seed = trial.config.reward_lr, trial.config.seed
        if (lr, seed) in finals:
            rlhf_run(sweep / trial.name, "drlhf", seed, [-500.0, -400.0, finals[lr, seed]])
            config = sweep / trial.name / "config.yaml"
            config.write_text(config.read_text().replace("reward_lr: 0.0003", f"reward_lr: {lr}"))
    return sweep


def test_a_sweeps_grid_keys_split_the_lines_by_grid_point(tmp_path):
    sweep = grid_sweep(tmp_path)
    runs = load_runs([sweep])
    assert [(run.label, run.seed) for run in runs] == [
        ("drlhf reward_lr=0.0001", 0),
        ("drlhf reward_lr=0.0003", 0),
        ("drlhf reward_lr=0.0001", 1),
    ]
    pendulum = rlhf_figure(runs, "eval_return").axes[0]
    assert legend(pendulum) == ["drlhf reward_lr=0.0001 (2 seeds)", "drlhf reward_lr=0.0003 (1 seed)"]
    low, high = pendulum.get_lines()
    np.testing.assert_allclose(low.get_ydata(), [-500.0, -400.0, -200.0])  # seeds 0 and 1 of 0.0001 only
    np.testing.assert_allclose(high.get_ydata(), [-500.0, -400.0, -200.0])
    assert low.get_color() != high.get_color()
    together = load_runs([sweep], group_by=())  # grouped by algo only: one line of 3 seeds
    assert legend(rlhf_figure(together, "eval_return").axes[0]) == ["drlhf (3 seeds)"]
    with pytest.raises(ValueError, match="lacks reward_lrr, needed to plot rlhf runs"):
        load_runs([sweep], group_by=("reward_lrr",))


def test_performance_profile_fraction_of_runs_above_each_threshold_with_bands(tmp_path):
    runs = load_runs([grid_sweep(tmp_path)])
    taus = profile_thresholds([-100.0, -300.0, -200.0])
    np.testing.assert_allclose(taus[[0, 25, 100]], [-310.0, -255.0, -90.0])  # the range, 5% wider either side
    assert len(taus) == 101
    ax = performance_profile_figure(runs, seed=0, reps=500).axes[0]
    assert ax.get_title() == "Pendulum-v1" and ax.get_xlabel() == "final evaluation return threshold"
    assert legend(ax) == ["drlhf reward_lr=0.0001 (2 seeds)", "drlhf reward_lr=0.0003 (1 seed)"]
    two, one = ax.get_lines()
    np.testing.assert_allclose(two.get_xdata(), taus)
    np.testing.assert_allclose(two.get_ydata()[[0, 25, 100]], [1.0, 0.5, 0.0])  # -100 and -300 above -310, -255
    np.testing.assert_allclose(one.get_ydata()[[0, 25, 100]], [1.0, 1.0, 0.0])
    # the bootstrap band at -255 of 2 runs (one above): 0, 1/2 or 1 of them above, so 0 .. 1; one run: no width
    two_band, one_band = bands(ax)
    xs, ys = two_band.get_paths()[0].vertices.T
    assert ys[np.isclose(xs, -255.0)].min() == 0.0 and ys[np.isclose(xs, -255.0)].max() == 1.0
    xs, ys = one_band.get_paths()[0].vertices.T
    assert set(ys[np.isclose(xs, -255.0)]) == {1.0}
    (tmp_path / "figs").mkdir()
    paths = plot_performance_profile(runs, tmp_path / "figs" / "profile", seed=0, reps=200)
    assert [p.name for p in paths] == ["profile.png", "profile.pdf"] and paths[0].read_bytes()[:8] == PNG_MAGIC
