"""The ``sobirl`` command line and the run-directory tools it is built on (sobirl.experiments)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sobirl
import sobirl.experiments.synthetic
from sobirl.algorithms import MSoBiRLConfig, SoBiRLConfig
from sobirl.cli import main
from sobirl.experiments import MetricsLogger, create_run_dir, plot_convergence

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ITERATIONS = 50
RUN_FILES = ("config.yaml", "metrics.csv", "plot.png", "summary.yaml")
SYNTHETIC_OPTIONS = (
    "--S",
    "--A",
    "--n",
    "--gamma",
    "--tau",
    "--seed",
    "--method",
    "--iterations",
    "--beta",
    "--zeta",
    "--inner-steps",
    "--inner-tol",
    "--inner-solver",
    "--output-dir",
    "--name",
    "--no-progress",
)


def synthetic(root: Path, *extra: str, iterations: int = ITERATIONS) -> int:
    """Run ``sobirl synthetic`` in-process with a short run written under ``root``."""
    args = ["synthetic", "--iterations", str(iterations), "--output-dir", str(root), "--no-progress", *extra]
    return main(args)


def only_run_dir(root: Path) -> Path:
    (run_dir,) = root.iterdir()
    return run_dir


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def read_yaml(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One short run with every default but the iterations (shared: it is the slow part of these tests)."""
    root = tmp_path_factory.mktemp("runs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = synthetic(root)
    assert status == 0
    return only_run_dir(root), out.getvalue()


# ---- a successful run leaves a complete, self-describing run directory ---------------------------------------------


def test_run_directory_holds_every_output(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    assert run_dir.name.startswith("synthetic-m-sobirl-seed0-")
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "plot.png").read_bytes().startswith(PNG_SIGNATURE)


def test_config_yaml_holds_the_resolved_config(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    config = read_yaml(run_dir / "config.yaml")
    assert config["experiment"] == "synthetic"
    assert config["problem"] == {
        "name": "random-mdp-S10-A5-n100-seed0",
        "S": 10,
        "A": 5,
        "n": 100,
        "gamma": 0.5,
        "tau": 1.0,
    }
    assert config["seed"] == 0
    assert config["method"] == "m-sobirl"
    assert config["method_config"] == {"beta": 8e-3, "clip": None, "zeta": 0.5, "inner_steps": 10}
    assert config["method_config"] == MSoBiRLConfig(zeta=0.5).to_dict()  # random_mdp suggests the paper's zeta
    assert config["iterations"] == ITERATIONS
    assert config["optimum"] == 1.0
    assert config["outputs"]["run_dir"] == str(run_dir)
    assert config["outputs"]["metrics"] == str(run_dir / "metrics.csv")
    assert config["versions"]["sobirl"] == sobirl.__version__
    assert {"sobirl", "python", "torch", "numpy", "gymnasium", "stable-baselines3", "git"} <= set(config["versions"])
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|not a git checkout", config["versions"]["git"])
    assert config["command_line"].startswith("sobirl synthetic --iterations 50")


def test_metrics_csv_has_one_row_per_iteration(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    rows = read_metrics(run_dir)
    assert len(rows) == ITERATIONS
    assert {"iteration", "objective", "grad_norm", "wall_time", "adjoint_residual"} <= set(rows[0])
    assert [float(row["iteration"]) for row in rows] == list(range(ITERATIONS))
    wall = [float(row["wall_time"]) for row in rows]
    assert wall == sorted(wall)


def test_tensorboard_has_every_metric_but_iteration_as_a_scalar(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"objective", "grad_norm", "adjoint_residual", "wall_time"}
    objective = events.Scalars("objective")
    assert [event.step for event in objective] == list(range(ITERATIONS))
    csv_objective = [float(row["objective"]) for row in read_metrics(run_dir)]
    assert [event.value for event in objective] == pytest.approx(csv_objective, rel=1e-6)  # stored as float32


def test_summary_and_printed_paths(default_run: tuple[Path, str]) -> None:
    run_dir, printed = default_run
    summary = read_yaml(run_dir / "summary.yaml")
    assert summary["iterations"] == ITERATIONS
    assert summary["objective"] >= 1.0  # the global minimum S / (2A)
    assert summary["optimality_gap"] == pytest.approx(summary["objective"] - 1.0)
    assert summary["grad_norm"] > 0
    assert summary["wall_time_s"] >= summary["method_time_s"] > 0
    for name in (*RUN_FILES, "tensorboard"):
        assert str(run_dir / name) in printed, name
    assert f"final f = {summary['objective']:.10g}" in printed
    assert f"final |grad phi| = {summary['grad_norm']:.3g}" in printed


def test_sobirl_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synthetic(tmp_path, "--method", "sobirl", "--inner-solver", "policy-iteration", "--beta", "0.01") == 0
    run_dir = only_run_dir(tmp_path)
    printed = capsys.readouterr().out
    assert str(run_dir / "plot.png") in printed
    assert str(run_dir / "summary.yaml") in printed
    assert run_dir.name.startswith("synthetic-sobirl-seed0-")
    config = read_yaml(run_dir / "config.yaml")
    assert config["method_config"] == {
        "beta": 0.01,
        "clip": None,
        "inner_tol": SoBiRLConfig().inner_tol,
        "inner_solver": "policy-iteration",
    }
    rows = read_metrics(run_dir)
    assert len(rows) == ITERATIONS
    assert "inner_iterations" in rows[0]


# ---- bad input: status 2, a message naming the field, and nothing written ------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--gamma", "1.5"], ["gamma", "[0, 1)", "1.5"]),
        (["--tau", "0"], ["tau", "(0, inf)"]),
        (["--S", "1"], ["S must be", ">= 2"]),
        (["--seed", "-1"], ["seed"]),
        (["--iterations", "0"], ["iterations", ">= 1"]),
        (["--iterations", "-5"], ["iterations", ">= 1"]),
        (["--beta", "-1"], ["beta", "(0, inf)"]),
        (["--inner-steps", "0"], ["inner_steps", ">= 1"]),
        (["--iterations", "ten"], ["--iterations", "invalid int value"]),
        (["--method", "nope"], ["--method", "nope", "m-sobirl", "sobirl"]),
        (["--inner-solver", "newton", "--method", "sobirl"], ["--inner-solver", "value-iteration"]),
        (["--zeta", "0.1", "--method", "sobirl"], ["--zeta", "'sobirl'", "--inner-tol"]),
        (["--inner-tol", "1e-6"], ["--inner-tol", "'m-sobirl'", "--zeta"]),
        (["--name", "a/b"], ["run name", "'a/b'"]),
    ],
)
def test_invalid_input_exits_2_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    root = tmp_path / "runs"
    with pytest.raises(SystemExit) as exc:
        main(["synthetic", "--output-dir", str(root), "--no-progress", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: sobirl synthetic" in err
    for text in expected:
        assert text in err
    assert not root.exists()


def test_missing_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


# ---- help and version ----------------------------------------------------------------------------------------------


def help_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def help_entries(text: str) -> dict[str, str]:
    """Each option's help entry, its wrapped continuation lines joined, keyed by its first flag."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-"):
            current = stripped.split()[0].rstrip(",")
            entries[current] = stripped
        elif current is not None and line.startswith("    "):
            entries[current] += " " + stripped
        else:
            current = None
    return entries


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = help_text(["--help"], capsys)
    for option in ("--help", "--version", "synthetic", "RandMDP"):
        assert option in text


def test_synthetic_help_lists_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside "(default: ...)"
    text = help_text(["synthetic", "--help"], capsys)
    lines = help_entries(text)
    assert set(SYNTHETIC_OPTIONS) <= set(lines)
    for option in SYNTHETIC_OPTIONS:
        assert "default" in lines[option], option
    for option, default in [
        ("--S", "10"),
        ("--A", "5"),
        ("--n", "100"),
        ("--gamma", "0.5"),
        ("--tau", "1.0"),
        ("--seed", "0"),
        ("--method", "m-sobirl"),
        ("--iterations", "3000"),
        ("--beta", "0.008"),
        ("--zeta", "None"),
        ("--inner-steps", "10"),
        ("--inner-tol", "1e-08"),
        ("--inner-solver", "value-iteration"),
        ("--output-dir", "runs"),
    ]:
        assert f"(default:{default})" in lines[option].replace(" ", ""), option  # wrapped lines rejoined


def test_every_method_parameter_is_an_option_with_its_documentation(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from sobirl.algorithms import METHODS

    text = help_text(["synthetic", "--help"], capsys)
    lines = help_entries(text)
    for method, cls in METHODS.items():
        for field in dataclasses.fields(cls.Config):
            if field.name != "seed":  # --seed seeds the problem and a stochastic method
                entry = lines["--" + field.name.replace("_", "-")]
                assert method in entry and f"(default:{field.default})" in entry.replace(" ", ""), (method, field.name)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert help_text(["--version"], capsys).strip() == f"sobirl {sobirl.__version__}"


# ---- run directories are never reused; runs are reproducible -------------------------------------------------------


def test_same_name_twice_gives_two_directories(tmp_path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert synthetic(tmp_path, "--name", "same", iterations=2) == 0
        assert synthetic(tmp_path, "--name", "same", iterations=2) == 0
    run_dirs = sorted(tmp_path.iterdir())
    assert len(run_dirs) == 2
    assert all(path.name.startswith("same-") for path in run_dirs)
    assert all(len(read_metrics(path)) == 2 for path in run_dirs)


def test_create_run_dir_never_reuses_a_directory(tmp_path: Path) -> None:
    made = [create_run_dir(tmp_path / "root", "run") for _ in range(3)]
    assert len(set(made)) == 3
    assert all(path.is_dir() and path.parent == tmp_path / "root" for path in made)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../up"])
def test_create_run_dir_rejects_names_that_are_not_one_path_component(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="run name"):
        create_run_dir(tmp_path / "root", name)
    assert not (tmp_path / "root").exists()


def test_same_seed_reproduces_the_run(tmp_path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        for root in ("a", "b"):
            assert synthetic(tmp_path / root, "--seed", "3", "--n", "20") == 0
    first, second = (read_metrics(only_run_dir(tmp_path / root)) for root in ("a", "b"))
    assert [row["objective"] for row in first] == [row["objective"] for row in second]
    assert [row["grad_norm"] for row in first] == [row["grad_norm"] for row in second]


# ---- failures after the run started keep the run directory ---------------------------------------------------------


def test_keyboard_interrupt_keeps_the_metrics_so_far(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_solve = sobirl.experiments.synthetic.solve

    def interrupted_solve(*args, callback, **kwargs):  # Ctrl-C after the fifth iteration
        def log_then_interrupt(row: dict[str, float]) -> None:
            callback(row)
            if row["iteration"] == 4:
                raise KeyboardInterrupt

        return real_solve(*args, callback=log_then_interrupt, **kwargs)

    monkeypatch.setattr(sobirl.experiments.synthetic, "solve", interrupted_solve)
    assert synthetic(tmp_path) == 130
    run_dir = only_run_dir(tmp_path)
    assert len(read_metrics(run_dir)) == 5
    assert (run_dir / "config.yaml").is_file()
    assert not (run_dir / "summary.yaml").exists()
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert str(run_dir) in err


def test_divergence_exits_1_and_keeps_the_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synthetic(tmp_path, "--beta", "1e3") == 1
    run_dir = only_run_dir(tmp_path)
    assert len(read_metrics(run_dir)) >= 1
    err = capsys.readouterr().err
    assert "failed" in err
    assert str(run_dir / "metrics.csv") in err


# ---- the building blocks -------------------------------------------------------------------------------------------


def test_metrics_logger_rows_and_errors(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        logger.log({"iteration": 0.0, "objective": 2.0, "extra": 1.0})
        logger.log({"iteration": 1.0, "objective": 1.5})  # a missing column is left empty
        with pytest.raises(ValueError, match="iteration"):
            logger.log({"objective": 1.0})
        with pytest.raises(ValueError, match="new"):
            logger.log({"iteration": 2.0, "new": 1.0})
    assert read_metrics(tmp_path)[1] == {"iteration": "1.0", "objective": "1.5", "extra": ""}
    with pytest.raises(ValueError, match="closed"):
        logger.log({"iteration": 3.0})
    with pytest.raises(FileExistsError):  # a run directory's metrics are never overwritten
        MetricsLogger(tmp_path)


def test_metrics_logger_fixed_columns(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, columns=["iteration", "objective", "newer"]) as logger:
        assert (tmp_path / "metrics.csv").read_text().splitlines() == ["iteration,objective,newer"]  # before any row
        logger.log({"iteration": 0.0, "objective": 2.0})  # a row read back from a file without the newer column
        logger.log({"iteration": 1.0, "newer": 3.0})
        with pytest.raises(ValueError, match="columns extra outside the header iteration, objective, newer"):
            logger.log({"iteration": 2.0, "extra": 1.0})
    assert read_metrics(tmp_path) == [
        {"iteration": "0.0", "objective": "2.0", "newer": ""},
        {"iteration": "1.0", "objective": "", "newer": "3.0"},
    ]
    with pytest.raises(ValueError, match="columns must include 'iteration'"):
        MetricsLogger(tmp_path / "other", columns=["objective"])


def test_plot_convergence_without_optimum_and_from_plain_rows(tmp_path: Path) -> None:
    rows = [{"iteration": float(k), "objective": 5.0 - k, "grad_norm": 2.0**-k} for k in range(5)]
    path = plot_convergence(rows, tmp_path / "plot.png", title="test")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="grad_norm"):
        plot_convergence([{"iteration": 0.0, "objective": 1.0}], tmp_path / "bad.png", title="test")


# ---- the installed entry point -------------------------------------------------------------------------------------


def test_python_dash_m_sobirl_runs(tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    cmd = [
        sys.executable,
        "-m",
        "sobirl",
        "synthetic",
        "--iterations",
        "5",
        "--output-dir",
        str(tmp_path),
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(tmp_path)
    assert str(run_dir) in done.stdout
    assert "final f = " in done.stdout
    assert len(read_metrics(run_dir)) == 5


def test_the_git_commit_is_recorded_or_said_missing(tmp_path, monkeypatch):
    from sobirl import rundir

    monkeypatch.setattr(rundir.sobirl, "__file__", str(tmp_path / "sobirl" / "__init__.py"))  # outside any checkout
    assert rundir.software_versions()["git"] == "not a git checkout"
