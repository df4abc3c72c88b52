"""Fault injection on tiny deep RLHF runs: damaged checkpoints, failed writes, an unwritable run directory and
non-finite values stop or resume a run as docs/reliability.md says."""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
from pathlib import Path

import pytest
import torch

from smoke import SMOKE
from sobirl.cli import main
from sobirl.experiments import write_config
from sobirl.rlhf.checkpoints import CheckpointWriteError, DamagedCheckpointError, checkpoint_problem, checkpoints
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.preferences import PreferenceDataset
from sobirl.rlhf.run_logger import NonFiniteError
from sobirl.rlhf.trainer import RLHFTrainer
from sobirl.rundir import read_metrics
from test_rlhf_trainer import smoke_args


def new_run(run_dir: Path, **changes: object) -> RLHFTrainer:
    """A fresh drlhf trainer of SMOKE settings in ``run_dir`` with its ``config.yaml`` (so it can be resumed)."""
    config = RLHFConfig.from_dict({**SMOKE, "algo": "drlhf", "total_steps": 300, **changes})
    run_dir.mkdir()
    write_config(run_dir, {"experiment": "rlhf", **config.resolved()})
    return RLHFTrainer(config, run_dir)


def names(run_dir: Path) -> list[str]:
    """Every entry of ``run_dir/checkpoints``, sorted (partial and hidden ones included)."""
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def steps(run_dir: Path) -> list[int]:
    return [int(r["agent_steps"]) for r in read_metrics(run_dir)]


# ---- checkpoints that survive faults ------------------------------------------------------------------------------


def test_only_the_newest_checkpoints_are_kept_each_with_its_manifest(tmp_path):
    run_dir = tmp_path / "run"
    new_run(run_dir, checkpoint_interval=100).run()
    assert RLHFConfig().keep_checkpoints == 2 and names(run_dir) == ["step-200", "step-300"]
    assert [p.name for p in checkpoints(run_dir)] == ["step-300", "step-200"]
    assert sorted(p.name for p in (run_dir / "checkpoints" / "step-300").iterdir()) == [
        "dataset.npz",
        "env.pkl",
        "manifest.json",
        "replay_buffer.pkl",
        "sac.zip",
        "state.pt",
    ]
    assert checkpoint_problem(run_dir / "checkpoints" / "step-300") is None


def test_keep_checkpoints_sets_how_many_are_kept(tmp_path):
    new_run(tmp_path / "run", checkpoint_interval=100, keep_checkpoints=3).run()
    assert names(tmp_path / "run") == ["step-100", "step-200", "step-300"]
    with pytest.raises(ValueError, match="keep_checkpoints must be an integer >= 1, got 0"):
        RLHFConfig(keep_checkpoints=0)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _legacy_garbage(path: Path) -> None:  # a checkpoint without manifest (older version) whose state.pt is garbage
    (path.parent / "manifest.json").unlink()
    path.write_bytes(b"not a checkpoint")


@pytest.mark.parametrize(
    ("file", "damage", "problem"),
    [
        ("sac.zip", _flip_a_byte, "sac.zip differs from the file written (SHA-256)"),
        ("state.pt", _truncate, "state.pt has 100 bytes, "),
        ("state.pt", _legacy_garbage, "UnpicklingError: "),
    ],
)
def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one_and_finishes(
    file, damage, problem, tmp_path, caplog
):
    run_dir = tmp_path / "run"
    new_run(run_dir, checkpoint_interval=100).run()
    expected = read_metrics(run_dir)
    damage(run_dir / "checkpoints" / "step-300" / file)

    with caplog.at_level(logging.WARNING, logger="sobirl.rlhf.trainer"):
        trainer = RLHFTrainer.resume(run_dir)
    (warning,) = caplog.records
    message = warning.getMessage()
    assert "\n" not in message and message.startswith(f"checkpoint {run_dir / 'checkpoints' / 'step-300'} is damaged")
    assert problem in message and message.endswith("; trying an older one")
    assert trainer.steps == 200 and trainer.state.rows == 2
    trainer.run()
    assert steps(run_dir) == [100, 200, 300] and [r["iteration"] for r in read_metrics(run_dir)] == [1, 2, 3]
    assert read_metrics(run_dir)[:2] == expected[:2]
    assert names(run_dir) == ["step-200", "step-300"]  # the damaged step-300 replaced by an intact one
    assert checkpoint_problem(run_dir / "checkpoints" / "step-300") is None


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    new_run(run_dir, checkpoint_interval=100).run()
    for name in ("step-200", "step-300"):
        _truncate(run_dir / "checkpoints" / name / "state.pt")
    with pytest.raises(DamagedCheckpointError) as exc:
        RLHFTrainer.resume(run_dir)
    message = str(exc.value)
    assert message.startswith(f"{run_dir} has no intact checkpoint to resume from: step-300 (state.pt has 100 bytes")
    assert "; step-200 (state.pt has 100 bytes" in message and message.endswith("to start the run afresh")
    with pytest.raises(SystemExit) as exit_:  # the command line: one line, status 2
        main(["rlhf", "--resume", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "has no intact checkpoint to resume from" in err


def test_a_failed_checkpoint_write_stops_the_run_and_keeps_the_previous_one(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    trainer = new_run(run_dir, total_steps=400, checkpoint_interval=200)
    original = PreferenceDataset.save
    calls = []

    def full_disk(self, path):  # the second checkpoint's write meets a full disk
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        original(self, path)

    monkeypatch.setattr(PreferenceDataset, "save", full_disk)
    with pytest.raises(CheckpointWriteError) as exc:
        trainer.run()
    assert exc.value.errno == errno.ENOSPC and isinstance(exc.value, OSError)
    assert str(exc.value) == (
        f"could not write checkpoint {run_dir / 'checkpoints' / 'step-400'} (No space left on device); the run "
        f"stopped at agent step 400 and the previous checkpoint {run_dir / 'checkpoints' / 'step-200'} is intact; "
        f"free space or fix permissions, then continue with: sobirl rlhf --resume {run_dir}"
    )
    assert names(run_dir) == ["step-200"]  # no partial directory left
    assert checkpoint_problem(run_dir / "checkpoints" / "step-200") is None

    monkeypatch.setattr(PreferenceDataset, "save", original)  # space freed
    resumed = RLHFTrainer.resume(run_dir)
    assert resumed.steps == 200
    resumed.run()
    assert steps(run_dir) == [100, 200, 300, 400] and names(run_dir) == ["step-200", "step-400"]


def test_an_unwritable_run_directory_fails_before_any_step(tmp_path, monkeypatch):
    trainer = new_run(tmp_path / "run")

    def denied(self, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(CheckpointWriteError) as exc:
        trainer.run()
    assert str(exc.value) == f"run directory {tmp_path / 'run'} is not writable (Permission denied)"
    assert exc.value.errno == errno.EACCES
    assert trainer.steps == 0 and not (tmp_path / "run" / "metrics.csv").exists()


# ---- non-finite values ------------------------------------------------------------------------------------------


def _nan_weight(trainer: RLHFTrainer) -> None:
    with torch.no_grad():
        next(trainer.reward_net.parameters()).view(-1)[0] = math.nan


def test_a_nan_in_the_reward_net_stops_the_run_at_that_reward_update(tmp_path):
    run_dir = tmp_path / "run"
    trainer = new_run(run_dir, total_steps=400, checkpoint_interval=200)
    update = trainer._reward_update

    def poisoned() -> None:
        if trainer.steps == 300:
            _nan_weight(trainer)
        update()

    trainer._reward_update = poisoned
    with pytest.raises(NonFiniteError) as exc:
        trainer.run()
    err = exc.value
    assert (err.quantity, err.agent_steps, err.checkpoint) == (
        "reward output",
        300,
        run_dir / "checkpoints" / "step-200",
    )
    assert str(err) == (
        f"non-finite reward output (nan) at agent step 300; the run stopped and the last good checkpoint is "
        f"{run_dir / 'checkpoints' / 'step-200'} (lower the learning rates or set grad_clip, then start again or "
        "resume from it)"
    )
    assert names(run_dir) == ["step-200"] and checkpoint_problem(run_dir / "checkpoints" / "step-200") is None
    assert steps(run_dir) == [100, 200]  # no row after the fault
    resumed = RLHFTrainer.resume(run_dir)  # the last good state, finite
    assert resumed.steps == 200
    assert all(torch.isfinite(p).all() for p in resumed.reward_net.parameters())


@pytest.mark.parametrize(
    ("field", "quantity"), [("cross_entropy", "preference loss"), ("second_term", "exploration term")]
)
def test_a_non_finite_loss_or_second_term_names_it(field, quantity, tmp_path):
    run_dir = tmp_path / "run"
    trainer = new_run(run_dir, algo="sobirl", estimator="one-step")
    step = trainer.rule.step

    def bad_step(*args, **kwargs):
        out = step(*args, **kwargs)
        return dataclasses.replace(out, **{field: math.inf}) if trainer.steps == 200 else out

    trainer.rule.step = bad_step
    with pytest.raises(NonFiniteError) as exc:
        trainer.run()
    assert (exc.value.quantity, exc.value.value, exc.value.agent_steps) == (quantity, math.inf, 200)
    assert str(exc.value).startswith(f"non-finite {quantity} (inf) at agent step 200; ")
    assert exc.value.checkpoint is None
    assert names(run_dir) == []  # the fault came before the first checkpoint (200 steps): none was written


def test_a_nan_in_sac_stops_the_run_at_the_next_gradient_step(tmp_path):
    run_dir = tmp_path / "run"
    trainer = new_run(run_dir, checkpoint_interval=100)

    def poison_critic(_: int) -> None:
        if trainer.steps == 200:
            with torch.no_grad():
                next(trainer.model.critic.parameters()).view(-1)[0] = math.nan

    with pytest.raises(NonFiniteError) as exc:
        trainer.run(on_steps=poison_critic)
    assert (exc.value.quantity, exc.value.agent_steps) == ("SAC actor_loss", 201)
    assert names(run_dir) == ["step-100", "step-200"] and exc.value.checkpoint == run_dir / "checkpoints" / "step-200"


def test_the_cli_exits_non_zero_naming_the_non_finite_quantity(tmp_path, capsys, monkeypatch):
    update = RLHFTrainer._reward_update

    def poisoned(self: RLHFTrainer) -> None:
        if self.steps == 300:
            _nan_weight(self)
        update(self)

    monkeypatch.setattr(RLHFTrainer, "_reward_update", poisoned)
    argv = ["rlhf", "--algo", "drlhf", "--total-steps", "400", "--output-dir", str(tmp_path), "--no-progress"]
    assert main([*argv, *smoke_args()]) == 1
    err = capsys.readouterr().err
    (run_dir,) = tmp_path.iterdir()
    assert err == (
        f"sobirl rlhf: error: non-finite reward output (nan) at agent step 300; the run stopped and the last good "
        f"checkpoint is {run_dir / 'checkpoints' / 'step-200'} (lower the learning rates or set grad_clip, then "
        "start again or resume from it)\n"
    )
    assert names(run_dir) == ["step-200"] and steps(run_dir) == [100, 200]
