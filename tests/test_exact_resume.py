"""A run SIGKILLed anywhere and resumed with ``sobirl rlhf --resume`` writes the uninterrupted run's metrics, value
for value (the timing columns aside): before, during and after a checkpoint write, and inside a chunk of SAC steps
with an episode running (docs/reliability.md)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from smoke import SMOKE
from sobirl.cli import main
from sobirl.rlhf.checkpoints import checkpoints
from sobirl.rundir import read_metrics
from test_rlhf_trainer import only_run_dir

TIMING = {"steps_per_s", "wall_time"}

# Runs the CLI with argv[3:] and SIGKILLs itself at agent step argv[2], at the point argv[1] names.
KILLER = """
import os, signal, sys
from sobirl.rlhf import recording, trainer
mode, at = sys.argv[1], int(sys.argv[2])
def die():
    os.kill(os.getpid(), signal.SIGKILL)
save, write, on_step = trainer.RLHFTrainer.save_checkpoint, trainer.RLHFTrainer._write_checkpoint_files, None
def save_and_die(self):
    if mode == "before" and self.steps == at:
        die()
    path = save(self)
    if mode == "after" and self.steps == at:
        die()
    return path
def write_and_die(self, directory):
    write(self, directory)  # every file but the manifest, under .tmp-step-N
    if mode == "during" and self.steps == at:
        die()
trainer.RLHFTrainer.save_checkpoint = save_and_die
trainer.RLHFTrainer._write_checkpoint_files = write_and_die
if mode == "inside":
    on_step = recording.RecordingCallback._on_step
    def step_and_die(self):
        if self.model.num_timesteps == at:
            die()
        return on_step(self)
    recording.RecordingCallback._on_step = step_and_die
from sobirl.cli import main
sys.exit(main(sys.argv[3:]))
"""

# Pendulum episodes of 70 steps: every checkpoint (each 100 steps) falls inside an episode.
PENDULUM = {**SMOKE, "max_episode_steps": 70, "checkpoint_interval": 100}
# CartPole's episodes end where the pole falls, absorbing as the shipped config has it.
CARTPOLE = {**PENDULUM, "env": "CartPole-v1", "fragment_length": 8, "absorbing_termination": True}


def comparable(run_dir: Path) -> list[dict[str, float | None]]:
    """The metrics rows without the timing columns, NaN as None (NaN != NaN)."""
    return [
        {k: None if math.isnan(v) else v for k, v in row.items() if k not in TIMING} for row in read_metrics(run_dir)
    ]


def argv(out: Path, settings: dict[str, object], algo: str, total: int, *extra: str) -> list[str]:
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    return [
        "rlhf",
        "--algo",
        algo,
        "--total-steps",
        str(total),
        "--output-dir",
        str(out),
        "--no-progress",
        *extra,
        *sets,
    ]


def killed_and_resumed(out: Path, command: list[str], mode: str, at: int) -> Path:
    """The run of ``command`` (CLI argv) SIGKILLed at agent step ``at`` where ``mode`` says, then resumed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", KILLER, mode, str(at), *command]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = only_run_dir(out)
    assert main(["rlhf", "--resume", str(run_dir), "--no-progress"]) == 0
    return run_dir


def check_exact_resume(tmp_path: Path, settings: dict[str, object], algo: str, total: int, kills: dict) -> None:
    main(argv(tmp_path / "whole", settings, algo, total))
    expected = comparable(only_run_dir(tmp_path / "whole"))
    assert [row["agent_steps"] for row in expected] == list(range(100, total + 1, 100))
    for mode, at in kills.items():
        run_dir = killed_and_resumed(tmp_path / mode, argv(tmp_path / mode, settings, algo, total), mode, at)
        assert comparable(run_dir) == expected, mode
        assert checkpoints(run_dir)[0].name == f"step-{total}"


@pytest.mark.parametrize(
    ("settings", "algo"), [(PENDULUM, "sobirl"), (CARTPOLE, "sobirl")], ids=["pendulum", "cartpole"]
)
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_metrics(settings, algo, tmp_path):
    kills = {"before": 200, "during": 200, "after": 200, "inside": 250}
    check_exact_resume(tmp_path, settings, algo, 300, kills)


@pytest.mark.slow
@pytest.mark.parametrize(("env", "algo"), [("Pendulum-v1", "sobirl"), ("CartPole-v1", "sobirl")])
def test_a_4000_step_run_killed_anywhere_resumes_to_the_uninterrupted_metrics(env, algo, tmp_path):
    """The shipped configs' settings, 4000 agent steps, a checkpoint every 1000 (the fast twin: SMOKE settings)."""
    name = {"Pendulum-v1": "pendulum-cpu", "CartPole-v1": "cartpole-cpu"}[env]
    settings = {"checkpoint_interval": 1000, "eval_interval": 500, "threads": 1, "device": "cpu"}
    config = str(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    main(argv(tmp_path / "whole", settings, algo, 4000, "--config", config))
    expected = comparable(only_run_dir(tmp_path / "whole"))
    for mode, at in {"before": 2000, "during": 2000, "after": 2000, "inside": 2500}.items():
        command = argv(tmp_path / mode, settings, algo, 4000, "--config", config)
        run_dir = killed_and_resumed(tmp_path / mode, command, mode, at)
        assert comparable(run_dir) == expected, mode
