"""Sweeps of tiny RLHF trials: the grid (grid keys over any config field included), validation before any write,
parallel runs equal to direct ones, skipping, resuming a killed sweep, retries of failed and crashed trials, refusing
a different grid in the same directory, and the command line with --grid and its report."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from smoke import SMOKE
from sobirl.cli import grid_values, main
from sobirl.experiments import sweep_backends
from sobirl.experiments.sweep import (
    FAILURES_FILE,
    LOCK_SUFFIX,
    SWEEP_FILE,
    SweepSpec,
    grid_label,
    is_complete,
    run_sweep,
    trial_lock,
    trial_name,
)
from sobirl.rlhf.checkpoints import latest_checkpoint
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.trainer import RLHFTrainer
from sobirl.rundir import read_metrics, write_config

TINY = {**SMOKE, "checkpoint_interval": 100}  # a checkpoint at every evaluation
TIMING = {"steps_per_s", "wall_time"}
COMMAND = ["sobirl", "sweep", "--name", "test"]


def base(**changes: object) -> RLHFConfig:
    return RLHFConfig.from_dict({**TINY, "total_steps": 200, **changes})


def untimed(rows: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """The rows without the timing columns, NaN as None (NaN != NaN)."""
    return [{k: None if math.isnan(v) else v for k, v in row.items() if k not in TIMING} for row in rows]


def recorder(events: list[tuple[str, str, str]]):
    return lambda kind, name, detail: events.append((kind, name, detail))


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: contents and modification time."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


# ---- the grid and validation ------------------------------------------------------------------------------------


def test_grid_names_and_configs():
    spec = SweepSpec(base(reward_lr=1e-3, seed=9), algos=("drlhf", "sobirl"), seeds=(3, 1))
    trials = spec.trials()
    assert [t.name for t in trials] == [
        "rlhf-Pendulum-v1-drlhf-seed3",
        "rlhf-Pendulum-v1-sobirl-seed3",
        "rlhf-Pendulum-v1-drlhf-seed1",
        "rlhf-Pendulum-v1-sobirl-seed1",
    ]
    assert spec.envs == ("Pendulum-v1",) and spec.workers == 1 and spec.max_retries == 1
    for trial, (algo, seed) in zip(trials, [("drlhf", 3), ("sobirl", 3), ("drlhf", 1), ("sobirl", 1)], strict=True):
        assert (trial.config.env, trial.config.algo, trial.config.seed) == ("Pendulum-v1", algo, seed)
        assert trial.config == base(reward_lr=1e-3, algo=algo, seed=seed)  # every other field from the base
    assert spec.trials() == trials  # deterministic
    # lists (YAML, the CLI) become tuples; the dict form round-trips to the same grid
    again = SweepSpec.from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())), workers=3)
    assert again.trials() == trials and again.workers == 3 and again.algos == ("drlhf", "sobirl")
    assert trial_name("ALE/Pong-v5", "pbrl", 0) == "rlhf-ALE_Pong-v5-pbrl-seed0"


def test_grid_keys_give_one_trial_per_point_named_by_its_values():
    spec = SweepSpec(
        base(reward_lr=1e-3),
        algos=("drlhf", "sobirl"),
        seeds=(0, 1),
        grid={"reward_lr": [1e-4, 3e-4], "reward_hidden": [(64, 64), [16]]},
    )
    # keys sorted, whatever their order: a grid point has one trial name
    assert spec.grid == {"reward_hidden": ([64, 64], [16]), "reward_lr": (1e-4, 3e-4)}  # tuples as YAML lists
    assert list(spec.grid) == ["reward_hidden", "reward_lr"]
    assert spec.points() == (
        (("reward_hidden", [64, 64]), ("reward_lr", 1e-4)),
        (("reward_hidden", [64, 64]), ("reward_lr", 3e-4)),
        (("reward_hidden", [16]), ("reward_lr", 1e-4)),
        (("reward_hidden", [16]), ("reward_lr", 3e-4)),
    )
    trials = spec.trials()
    assert len(trials) == 2 * 4 * 2  # seeds x points x algos
    assert [t.name for t in trials[:4]] == [
        "rlhf-Pendulum-v1-drlhf-reward_hidden=64x64-reward_lr=0.0001-seed0",
        "rlhf-Pendulum-v1-sobirl-reward_hidden=64x64-reward_lr=0.0001-seed0",
        "rlhf-Pendulum-v1-drlhf-reward_hidden=64x64-reward_lr=0.0003-seed0",
        "rlhf-Pendulum-v1-sobirl-reward_hidden=64x64-reward_lr=0.0003-seed0",
    ]
    assert trials[-1].name == "rlhf-Pendulum-v1-sobirl-reward_hidden=16-reward_lr=0.0003-seed1"
    last = trials[-1].config
    assert (last.reward_lr, last.reward_hidden, last.algo, last.seed) == (3e-4, (16,), "sobirl", 1)
    assert last == base(reward_lr=3e-4, reward_hidden=[16], algo="sobirl", seed=1)  # the rest from the base
    assert trials[-1].point == (("reward_hidden", [16]), ("reward_lr", 3e-4))
    assert all(re.fullmatch(r"[A-Za-z0-9._=+-]+", t.name) for t in trials)  # safe in a path
    again = SweepSpec.from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert again.trials() == trials and spec.to_dict()["grid"] == {
        "reward_hidden": [[64, 64], [16]],
        "reward_lr": [1e-4, 3e-4],
    }
    # no grid: the names and sweep.yaml of sweeps written before grids existed
    plain = SweepSpec(base(), algos=("drlhf",), seeds=(0,))
    assert plain.points() == ((),) and plain.trials()[0].name == "rlhf-Pendulum-v1-drlhf-seed0"
    stored = plain.to_dict()
    assert stored["grid"] == {} and SweepSpec.from_dict({k: v for k, v in stored.items() if k != "grid"}) == plain
    assert [grid_label(v) for v in (1e-5, 2.0, 3, True, None, "one-step", [32, 32])] == [
        "1e-05",
        "2.0",
        "3",
        "true",
        "null",
        "one-step",
        "32x32",
    ]
    joint = SweepSpec(base(), algos=("drlhf",), seeds=(0,), grid={"total_pairs": [100], "initial_pairs": [50]})
    assert joint.trials()[0].config.initial_pairs == 50  # 50 > the base's 40 pairs, valid with the grid's 100
    assert trial_name("ALE/Pong-v5", "pbrl", 0, {"estimator": "a/b", "clip": 1e20}) == (
        "rlhf-ALE_Pong-v5-pbrl-estimator=a_b-clip=1e+20-seed0"
    )


def test_grid_values_parse_like_set_and_keep_lists_whole():
    parsed = grid_values(["reward_lr=1e-4, 3e-4", "reward_hidden=[64, 64],[32]", "estimator='a,b',one-step"], "--grid")
    assert parsed == {"reward_lr": [1e-4, 3e-4], "reward_hidden": [[64, 64], [32]], "estimator": ["a,b", "one-step"]}
    assert grid_values(["reward_normalize=true,false", "clip=null,1"], "--grid") == {
        "reward_normalize": [True, False],
        "clip": [None, 1],
    }
    for items, message in (
        (["reward_lr"], "--grid expects KEY=VALUE1,VALUE2,..., got 'reward_lr'"),
        (["=1"], "--grid expects KEY=VALUE1,VALUE2,..., got '=1'"),
        (["reward_lr=1e-4,"], "--grid reward_lr has an empty value in '1e-4,'"),
        (["reward_lr=1", "reward_lr=2"], "--grid reward_lr is given twice"),
        (["reward_hidden=[64,64"], "--grid reward_hidden: unbalanced brackets or quotes in '[64,64'"),
    ):
        with pytest.raises(ValueError) as exc:
            grid_values(items, "--grid")
        assert message in str(exc.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"grid": {"reward_lrr": [1e-4]}},
            "trial rlhf-Pendulum-v1-sobirl-reward_lrr=0.0001-seed0: unknown config keys reward_lrr; valid: env,",
        ),
        ({"grid": {"seed": [1, 2]}}, "grid key 'seed' is an axis of its own: give it as the sweep's seeds"),
        (
            {"grid": {"reward_lr": [1e-4, -1]}},
            "trial rlhf-Pendulum-v1-sobirl-reward_lr=-1-seed0: reward_lr must be in (0, inf), got -1",
        ),
        (
            {"grid": {"estimator": ["sideways"]}},
            "trial rlhf-Pendulum-v1-sobirl-estimator=sideways-seed0: ",  # the config's message names the valid ones
        ),
        ({"grid": {"reward_lr": []}}, "grid reward_lr must hold at least one value"),
        ({"grid": {"reward_lr": [1e-4, 0.0001]}}, "grid reward_lr must not repeat a value, got 0.0001 more than once"),
        (
            {"grid": {"fragment_length": [25, 60]}},
            "grid point fragment_length=60: fragment_length (60) is longer than the episodes of Pendulum-v1",
        ),
        (  # 50 initial pairs are valid with 100 pairs in all, not with 40
            {"grid": {"total_pairs": [100, 40], "initial_pairs": [50]}},
            "trial rlhf-Pendulum-v1-sobirl-initial_pairs=50-total_pairs=40-seed0: initial_pairs",
        ),
        ({"grid": {"reward_lr": "1e-4"}}, "grid reward_lr must be a sequence of values, got str"),
        (
            {"algos": ("sobirl", "pbrl-x")},
            "unknown algo 'pbrl-x'; valid: drlhf, sobirl, stoc-sobirl, hpgd, pbrl, sac-true-reward",
        ),
        ({"envs": ("Pendulum-v1", "Pendulm-v1")}, "unknown env 'Pendulm-v1'"),
        ({"envs": ("FrozenLake-v1",)}, "env 'FrozenLake-v1' has observation_space Discrete(16); deep RLHF needs"),
        ({"envs": ()}, "envs must hold at least one value"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"seeds": ()}, "seeds must hold at least one value"),
        ({"seeds": (0, 1, 0)}, "seeds must not repeat a value, got 0 more than once"),
        ({"seeds": (-1,)}, "seed must be an integer >= 0, got -1"),
        ({"algos": ("pbrl", "pbrl")}, "algos must not repeat a value, got 'pbrl' more than once"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0, got -1"),
        (
            {"algos": ("sobirl", "pbrl"), "base": base(penalty=0.0)},  # a setting only pbrl checks
            "trial rlhf-Pendulum-v1-pbrl-seed0: penalty must be in (0, inf), got 0",
        ),
        ({"base": base(fragment_length=60)}, "fragment_length (60) is longer than the episodes of Pendulum-v1"),
        ({"name": "a/b"}, "sweep name must be a non-empty single path component, got 'a/b'"),
    ],
)
def test_bad_input_is_rejected_before_anything_is_written(changes, message, tmp_path):
    kwargs = {"base": base(), "algos": ("sobirl",), "seeds": (0,), **changes}
    name = kwargs.pop("name", "sweep")
    root = tmp_path / "sweeps"
    with pytest.raises((ValueError, TypeError)) as exc:
        run_sweep(SweepSpec(**kwargs), root, name)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not root.exists()


# ---- a finished two-worker sweep, shared by the tests below -------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 2-worker sweep of 2 tiny trials (200 agent steps each), run once."""
    root = tmp_path_factory.mktemp("sweeps")
    spec = SweepSpec(base(), algos=("sobirl", "sac-true-reward"), seeds=(1,), workers=2)
    events: list[tuple[str, str, str]] = []
    result = run_sweep(spec, root, "grid", on_event=recorder(events), command=COMMAND)
    return spec, root, result, events


def test_two_workers_complete_the_grid_with_the_metrics_of_direct_runs(finished, tmp_path):
    spec, root, result, events = finished
    names = ["rlhf-Pendulum-v1-sobirl-seed1", "rlhf-Pendulum-v1-sac-true-reward-seed1"]
    assert result.sweep_dir == root / "grid" and result.ok
    assert (result.done, result.skipped, result.failed) == (names, [], {})
    # both trials were running before either finished
    assert [kind for kind, _, _ in events[:2]] == ["start", "start"]
    assert sorted(events[:2]) == sorted(("start", n, "attempt 1 of 2, fresh") for n in names)
    assert sorted((kind, name) for kind, name, _ in events[2:]) == sorted(("done", n) for n in names)
    assert all(re.fullmatch(r"200 agent steps, eval return -?[\d.]+", detail) for _, _, detail in events[2:])
    assert sorted(p.name for p in result.sweep_dir.iterdir()) == sorted([SWEEP_FILE, *names])
    stored = yaml.safe_load((result.sweep_dir / SWEEP_FILE).read_text())
    assert stored == spec.to_dict() and stored["algos"] == ["sobirl", "sac-true-reward"] and stored["seeds"] == [1]
    for trial in spec.trials():
        run_dir = result.sweep_dir / trial.name
        written = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert written["experiment"] == "rlhf" and written["command_line"] == " ".join(COMMAND)
        assert RLHFConfig.from_dict(written).resolved() == trial.config.resolved()
        assert (run_dir / "return.png").is_file() and latest_checkpoint(run_dir).name == "step-200"
        rows = read_metrics(run_dir)
        assert [r["agent_steps"] for r in rows] == [100, 200] and [r["iteration"] for r in rows] == [1, 2]
        direct = tmp_path / trial.name  # the same trial in this process: same seed, same metrics
        direct.mkdir()
        assert untimed(RLHFTrainer(trial.config, direct).run()) == untimed(rows)


def test_rerun_skips_every_complete_trial_and_runs_nothing(finished, monkeypatch):
    spec, root, _, _ = finished
    before = snapshot(root)

    def no_process(*args, **kwargs):
        raise AssertionError("a complete sweep started a worker process")

    monkeypatch.setattr(sweep_backends, "ProcessPoolExecutor", no_process)
    # workers, max_retries and the base's own env/algo/seed (replaced by the grid's) may change between runs
    same_grid = dataclasses.replace(spec, workers=1, max_retries=3, base=spec.base.replace(algo="drlhf", seed=7))
    events: list[tuple[str, str, str]] = []
    again = run_sweep(same_grid, root, "grid", on_event=recorder(events))
    assert (again.done, again.failed) == ([], {}) and again.skipped == [t.name for t in spec.trials()]
    assert events == [("skipped", t.name, "complete (200 agent steps)") for t in spec.trials()]
    assert snapshot(root) == before  # nothing rewritten: metrics, checkpoints, sweep.yaml


def test_ray_backend_gives_the_metrics_of_the_local_backend(finished, tmp_path):
    pytest.importorskip("ray", reason='Ray is not installed (pip install "sobirl[ray]")')
    spec, root, _, _ = finished
    events: list[tuple[str, str, str]] = []
    result = run_sweep(spec, tmp_path, "grid", on_event=recorder(events), command=COMMAND, backend="ray")
    names = [t.name for t in spec.trials()]
    assert (result.done, result.skipped, result.failed) == (names, [], {})
    assert sorted(kind for kind, _, _ in events) == ["done", "done", "start", "start"]
    for name in names:
        rows = read_metrics(tmp_path / "grid" / name)
        assert [r["agent_steps"] for r in rows] == [100, 200]
        assert untimed(rows) == untimed(read_metrics(root / "grid" / name))
        assert latest_checkpoint(tmp_path / "grid" / name).name == "step-200"


def test_backend_problems_are_reported_before_anything_is_written(monkeypatch, tmp_path):
    spec = SweepSpec(base(), algos=("sobirl",), seeds=(0,))
    with pytest.raises(ValueError, match="unknown backend 'slurm'; valid: local, ray"):
        run_sweep(spec, tmp_path / "a", "grid", backend="slurm")
    with pytest.raises(ValueError, match="address is for the ray backend only, got 'auto' with backend 'local'"):
        run_sweep(spec, tmp_path / "a", "grid", address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=re.escape(sweep_backends.RAY_MISSING)):
        run_sweep(spec, tmp_path / "a", "grid", backend="ray")
    assert not (tmp_path / "a").exists()


def test_a_different_grid_in_the_same_directory_is_refused(finished):
    spec, root, _, _ = finished
    before = snapshot(root)
    for changes, message in (
        ({"algos": ("sobirl",)}, "algos: ['sobirl', 'sac-true-reward'] in sweep.yaml, ['sobirl'] given"),
        ({"seeds": (1, 2)}, "seeds: [1] in sweep.yaml, [1, 2] given"),
        ({"base": spec.base.replace(reward_lr=1e-3)}, "base reward_lr: 0.0003 in sweep.yaml, 0.001 given"),
        ({"grid": {"reward_lr": [1e-3]}}, "grid: {} in sweep.yaml, {'reward_lr': [0.001]} given"),
    ):
        with pytest.raises(ValueError) as exc:
            run_sweep(dataclasses.replace(spec, **changes), root, "grid")
        assert f"{root / 'grid'} holds a different sweep ({message}); rerun it with its own settings" in str(exc.value)
    assert snapshot(root) == before


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl")
def test_a_trial_locked_by_another_process_is_left_to_it_and_a_stale_lock_is_taken(tmp_path):
    spec = SweepSpec(base(), algos=("sac-true-reward",), seeds=(0, 1))
    locked, stale = (t.name for t in spec.trials())
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / f"{stale}{LOCK_SUFFIX}").write_text("4194304\n")  # left by a killed process: no lock held
    events: list[tuple[str, str, str]] = []
    with trial_lock(sweep_dir / locked) as held:  # what another sweep's worker running the trial holds
        assert held
        with trial_lock(sweep_dir / locked) as again:  # a second opener does not get it
            assert not again
        result = run_sweep(spec, tmp_path, "sweep", on_event=recorder(events))
    assert (result.done, result.skipped, result.failed, result.busy) == ([stale], [], {}, [locked])
    assert result.ok and ("busy", locked, "being run by another process (its lock is held); left to it") in events
    assert not (sweep_dir / locked).exists() and sorted(p.name for p in sweep_dir.iterdir()) == [stale, SWEEP_FILE]
    again_result = run_sweep(spec, tmp_path, "sweep")  # the lock released: the trial runs now
    assert (again_result.done, again_result.skipped, again_result.busy) == ([locked], [stale], [])


def test_two_sweep_processes_over_the_same_trials_run_each_exactly_once(tmp_path):
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(base().to_dict()))
    argv = [sys.executable, "-m", "sobirl", "sweep", str(config), "--algos", "drlhf,sac-true-reward", "--seeds", "2"]
    argv += ["--workers", "1", "--output-dir", str(tmp_path), "--name", "shared", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    pattern = r"trials   (\d) run, (\d) already complete, 0 failed(?:, (\d) run by another process)?"
    runs = [re.search(pattern, out.decode()) for out, _ in outputs]
    assert all(runs), [out.decode() for out, _ in outputs]
    assert sum(int(m.group(1)) for m in runs) == 4  # each of the 4 trials ran in exactly one process
    sweep_dir = tmp_path / "shared"
    names = sorted(trial_name("Pendulum-v1", algo, seed) for algo in ("drlhf", "sac-true-reward") for seed in (0, 1))
    assert sorted(p.name for p in sweep_dir.iterdir()) == sorted([SWEEP_FILE, *names])  # no lock file left
    for name in names:
        assert [r["agent_steps"] for r in read_metrics(sweep_dir / name)] == [100, 200]


# ---- an interrupted sweep, failures and crashes --------------------------------------------------------------------

_RUN = (  # a trial run in its own process, to be killed
    "import sys; from sobirl.rlhf.config import RLHFConfig; from sobirl.rlhf.trainer import RLHFTrainer; "
    "RLHFTrainer(RLHFConfig.from_yaml(sys.argv[1] + '/config.yaml'), sys.argv[1]).run()"
)


def start_trial_dir(sweep_dir: Path, config: RLHFConfig) -> Path:
    run_dir = sweep_dir / trial_name(config.env, config.algo, config.seed)
    run_dir.mkdir(parents=True)
    write_config(run_dir, {"experiment": "rlhf", **config.to_dict()}, command=COMMAND)
    return run_dir


def test_an_interrupted_sweep_completes_only_the_missing_work(tmp_path):
    spec = SweepSpec(base(total_steps=400), algos=("sobirl",), seeds=(0, 1, 2))
    done, killed, partial = (t.config for t in spec.trials())
    sweep_dir = tmp_path / "sweep"
    # seed 0 finished
    RLHFTrainer(done, start_trial_dir(sweep_dir, done)).run()
    # seed 1 killed after its first checkpoint
    killed_dir = start_trial_dir(sweep_dir, killed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(killed_dir)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and latest_checkpoint(killed_dir) is None:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    checkpoint = int(latest_checkpoint(killed_dir).name.removeprefix("step-"))
    assert checkpoint < 400 and not is_complete(killed_dir, 400)
    # seed 2 killed before its first checkpoint: a row, no checkpoint
    partial_dir = start_trial_dir(sweep_dir, partial)
    (partial_dir / "metrics.csv").write_text("iteration,agent_steps\n1,100\n")
    finished_before = snapshot(sweep_dir / "rlhf-Pendulum-v1-sobirl-seed0")

    events: list[tuple[str, str, str]] = []
    result = run_sweep(spec, tmp_path, "sweep", on_event=recorder(events))
    names = [t.name for t in spec.trials()]
    assert (result.skipped, result.done, result.failed) == (names[:1], names[1:], {})
    assert [(kind, name) for kind, name, _ in events] == [
        ("skipped", names[0]),
        ("start", names[1]),
        ("done", names[1]),
        ("start", names[2]),
        ("done", names[2]),
    ]
    assert events[1][2] == f"attempt 1 of 2, resume from step {checkpoint}"
    assert events[2][2].endswith(f", resumed from step {checkpoint}") and events[3][2] == "attempt 1 of 2, fresh"
    assert snapshot(sweep_dir / names[0]) == finished_before
    for name in names[1:]:  # neither lost nor duplicated rows
        rows = read_metrics(sweep_dir / name)
        assert [r["agent_steps"] for r in rows] == [100, 200, 300, 400] and [r["iteration"] for r in rows] == [
            1,
            2,
            3,
            4,
        ]
    assert not (sweep_dir / FAILURES_FILE).exists()


def test_failed_and_crashed_trials_are_retried_then_reported(tmp_path):
    spec = SweepSpec(base(total_steps=300), algos=("sobirl",), seeds=(0, 1), max_retries=1)
    broken, crashing = (t.name for t in spec.trials())
    sweep_dir = tmp_path / "sweep"
    # seed 0 fails on every attempt: its checkpoint is corrupt
    broken_dir = start_trial_dir(sweep_dir, spec.trials()[0].config)
    (broken_dir / "checkpoints" / "step-100").mkdir(parents=True)
    (broken_dir / "checkpoints" / "step-100" / "state.pt").write_bytes(b"not a checkpoint")

    # seed 1's worker process is killed after the trial's first checkpoint, on its first attempt only
    killers: list[threading.Thread] = []

    def kill_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and latest_checkpoint(sweep_dir / crashing) is None:
            time.sleep(0.005)
        (worker,) = multiprocessing.active_children()
        os.kill(worker.pid, signal.SIGKILL)

    events: list[tuple[str, str, str]] = []

    def on_event(kind: str, name: str, detail: str) -> None:
        events.append((kind, name, detail))
        if (kind, name, detail) == ("start", crashing, "attempt 1 of 2, fresh"):
            killers.append(threading.Thread(target=kill_after_first_checkpoint))
            killers[-1].start()

    result = run_sweep(spec, tmp_path, "sweep", on_event=on_event)
    for killer in killers:
        killer.join()
    assert [(kind, name) for kind, name, _ in events] == [
        ("start", broken),
        ("retry", broken),
        ("start", crashing),
        ("retry", crashing),
        ("start", broken),
        ("failed", broken),
        ("start", crashing),
        ("done", crashing),
    ]
    assert events[0][2] == "attempt 1 of 2, resume from step 100" and events[4][2].startswith("attempt 2 of 2")
    error = events[5][2]
    assert error.startswith(f"DamagedCheckpointError: {broken_dir} has no intact checkpoint to resume from: step-100")
    assert "step-100 (UnpicklingError: " in error and events[1][2] == f"attempt 1 of 2 failed: {error}"
    assert events[3][2].startswith("attempt 1 of 2 failed: the worker process died")
    assert re.fullmatch(r"attempt 2 of 2, resume from step [12]00", events[6][2])
    assert (result.done, result.skipped, result.failed) == ([crashing], [], {broken: error})
    failures = yaml.safe_load((sweep_dir / FAILURES_FILE).read_text())
    assert list(failures) == [broken] and failures[broken]["error"] == error and failures[broken]["attempts"] == 2
    assert "Traceback" in failures[broken]["traceback"] and "RLHFTrainer.resume" in failures[broken]["traceback"]
    rows = read_metrics(sweep_dir / crashing)  # resumed after the crash: no row lost or repeated
    assert [r["agent_steps"] for r in rows] == [100, 200, 300] and [r["iteration"] for r in rows] == [1, 2, 3]

    # without the corrupt checkpoint, the next run starts seed 0 afresh and clears failures.yaml
    (broken_dir / "checkpoints" / "step-100" / "state.pt").unlink()
    events.clear()
    result = run_sweep(spec, tmp_path, "sweep", on_event=recorder(events))
    assert (result.done, result.skipped, result.failed) == ([broken], [crashing], {})
    assert [(kind, name, detail) for kind, name, detail in events[:2]] == [
        ("skipped", crashing, "complete (300 agent steps)"),
        ("start", broken, "attempt 1 of 2, fresh"),
    ]
    assert [r["agent_steps"] for r in read_metrics(broken_dir)] == [100, 200, 300]
    assert not (sweep_dir / FAILURES_FILE).exists()


def test_cli_runs_then_skips_and_rejects_bad_grids(tmp_path, capsys):
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(base().to_dict()))
    argv = ["sweep", str(config), "--algos", "drlhf,sac-true-reward", "--seeds", "1", "--workers", "2"]
    argv += ["--output-dir", str(tmp_path / "runs"), "--name", "grid", "--no-progress"]
    assert main(argv) == 0
    assert "trials   2 run, 0 already complete, 0 failed" in capsys.readouterr().out
    for algo in ("drlhf", "sac-true-reward"):
        assert [
            r["agent_steps"] for r in read_metrics(tmp_path / "runs" / "grid" / f"rlhf-Pendulum-v1-{algo}-seed0")
        ] == [
            100,
            200,
        ]
    assert main(argv) == 0
    assert "trials   0 run, 2 already complete, 0 failed" in capsys.readouterr().out
    bad = ["sweep", str(config), "--algos", "drlhf,parl", "--output-dir", str(tmp_path / "other")]
    with pytest.raises(SystemExit) as exc:
        main(bad)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "'parl'" in err
    assert "drlhf, sobirl, stoc-sobirl, hpgd, pbrl, sac-true-reward" in err and not (tmp_path / "other").exists()


def test_cli_grid_over_a_config_field_runs_every_point_and_reports_a_row_per_point(tmp_path, capsys):
    """The must-hold: ``sobirl sweep configs/pendulum-cpu.yaml --algos drlhf --seeds 2 --grid reward_lr=1e-4,3e-4``
    (shrunk to 200 agent steps by --set) runs 4 trials, and ``sobirl report`` has a row per grid point."""
    config = Path(__file__).resolve().parents[1] / "configs" / "pendulum-cpu.yaml"
    tiny = [f"--set={key}={value}" for key, value in {**TINY, "total_steps": 200}.items()]
    argv = ["sweep", str(config), "--algos", "drlhf", "--seeds", "2", "--grid", "reward_lr=1e-4,3e-4", *tiny]
    argv += ["--output-dir", str(tmp_path), "--name", "lr", "--no-progress"]
    assert main(argv) == 0
    assert "trials   4 run, 0 already complete, 0 failed" in capsys.readouterr().out
    sweep_dir = tmp_path / "lr"
    names = [f"rlhf-Pendulum-v1-drlhf-reward_lr={lr}-seed{seed}" for seed in (0, 1) for lr in ("0.0001", "0.0003")]
    assert sorted(p.name for p in sweep_dir.iterdir()) == sorted([SWEEP_FILE, *names])
    stored = yaml.safe_load((sweep_dir / SWEEP_FILE).read_text())
    assert stored["grid"] == {"reward_lr": [1e-4, 3e-4]} and stored["seeds"] == [0, 1] and stored["algos"] == ["drlhf"]
    for name in names:
        written = RLHFConfig.from_yaml(sweep_dir / name / "config.yaml")
        assert written.reward_lr == float(name.split("=")[1].split("-seed")[0]) and written.total_pairs == 40
        assert [r["agent_steps"] for r in read_metrics(sweep_dir / name)] == [100, 200]
    assert main(argv) == 0  # resume: every trial complete, nothing runs
    assert "trials   0 run, 4 already complete, 0 failed" in capsys.readouterr().out

    assert main(["report", str(sweep_dir)]) == 0
    text = (sweep_dir / "report.md").read_text()
    assert "- algorithms: drlhf\n- reward_lr: 0.0001, 0.0003\n- seeds: 0, 1\n" in text
    results = text.split("## Results\n", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    assert results[0].startswith("| env | algo | reward_lr | seeds | agent steps | final eval return |")
    assert [row.split(" | ")[:4] for row in results[2:]] == [
        ["| Pendulum-v1", "drlhf", "0.0001", "2"],
        ["| Pendulum-v1", "drlhf", "0.0003", "2"],
    ]
    aggregates = text.split("## Aggregates\n", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    assert [row.split(" | ")[:4] for row in aggregates[-2:]] == [
        ["| Pendulum-v1", "drlhf", "0.0001", "2"],
        ["| Pendulum-v1", "drlhf", "0.0003", "2"],
    ]
    assert (sweep_dir / "figures" / "rlhf-profile.png").is_file()
    assert "drlhf reward_lr=0.0001 (2 seeds)" in _legend_texts(sweep_dir)

    bad = ["sweep", str(config), "--algos", "drlhf", "--grid", "reward_lrr=1e-4", "--output-dir", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as exc:
        main(bad)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "unknown config keys reward_lrr; valid: env, algo," in err
    bad[5] = "reward_lr=1e-4,-1"
    with pytest.raises(SystemExit) as exc:
        main(bad)
    err = capsys.readouterr().err
    assert "trial rlhf-Pendulum-v1-drlhf-reward_lr=-1-seed0: reward_lr must be in (0, inf), got -1" in err
    assert not (tmp_path / "x").exists()


def _legend_texts(sweep_dir: Path) -> list[str]:
    """The legend of the return figure of ``sobirl plot SWEEP_DIR`` (the sweep's grid keys split the lines)."""
    from sobirl.experiments.figures import load_runs, rlhf_figure

    fig = rlhf_figure(load_runs([sweep_dir]), "eval_return")
    return [text.get_text() for text in fig.axes[0].get_legend().get_texts()]


def test_a_nan_fails_its_trial_after_its_retries_and_the_sweep_goes_on(tmp_path):
    # AdamW's first step moves every weight by about reward_lr: at 1e30 the reward net's float32 outputs overflow
    spec = SweepSpec(
        base(total_steps=300), algos=("drlhf",), seeds=(0,), max_retries=1, grid={"reward_lr": [1e-3, 1e30]}
    )
    healthy, diverging = (t.name for t in spec.trials())
    result = run_sweep(spec, tmp_path, "sweep")
    assert result.done == [healthy] and list(result.failed) == [diverging]
    error = result.failed[diverging]
    assert error.startswith("NonFiniteError: non-finite reward output (") and " at agent step 100;" in error
    failures = yaml.safe_load((tmp_path / "sweep" / FAILURES_FILE).read_text())
    assert failures[diverging]["attempts"] == 2 and failures[diverging]["error"] == error
    assert read_metrics(tmp_path / "sweep" / diverging) == []  # stopped before its first row: no NaN in any result
    assert [r["agent_steps"] for r in read_metrics(tmp_path / "sweep" / healthy)] == [100, 200, 300]
