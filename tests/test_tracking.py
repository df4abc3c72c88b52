"""``sobirl rlhf --track``: the run goes to Weights & Biases with its config and TensorBoard synced, or the command
fails at once naming the extra."""

from __future__ import annotations

import sys
import types

import pytest

from sobirl.cli import main
from test_rlhf_trainer import only_run_dir, smoke_args


def test_track_starts_a_synced_wandb_run_named_after_the_run_directory(tmp_path, monkeypatch):
    calls: list[tuple[str, dict]] = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs))
    fake.finish = lambda: calls.append(("finish", {}))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object() if name == "wandb" else None)
    out = tmp_path / "runs"
    argv = ["rlhf", "--total-steps", "100", "--output-dir", str(out), "--no-progress", "--track", *smoke_args()]
    assert main([*argv, "--wandb-project", "demo"]) == 0
    run_dir = only_run_dir(out)
    (kind, kwargs), finish = calls
    assert kind == "init" and finish == ("finish", {})
    assert kwargs["project"] == "demo" and kwargs["name"] == run_dir.name and kwargs["sync_tensorboard"] is True
    assert kwargs["dir"] == str(run_dir) and kwargs["config"]["total_steps"] == 100 and kwargs["resume"] == "allow"


def test_track_without_wandb_fails_at_once_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        main(["rlhf", "--output-dir", str(tmp_path / "runs"), "--track"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.endswith('--track needs it: pip install "sobirl[track]"\n') and not (tmp_path / "runs").exists()
