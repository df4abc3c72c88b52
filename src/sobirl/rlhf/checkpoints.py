"""A deep RLHF run's directory and its checkpoints: written atomically, checked, listed and read back.

Run directory (:data:`CHECKPOINT_DIR`, the files of :mod:`sobirl.rundir` and the artifacts of
:mod:`sobirl.rlhf.artifacts`, rewritten at every checkpoint: the policy and the learned reward)::

    config.yaml  metrics.csv  tensorboard/  return.png  policy.zip  reward_net.pt
    checkpoints/step-<N>/  sac.zip  replay_buffer.pkl  dataset.npz  state.pt  env.pkl  manifest.json

A checkpoint is written under a temporary name, flushed to disk and renamed when complete, so a kill never leaves a
partial one (:func:`write_checkpoint`); ``manifest.json`` holds its files' sizes and SHA-256, so that a damaged one is
recognised (:func:`checkpoint_problem`) and a resume falls back to an older one; the newest ``keep_checkpoints`` are
kept. A failed write stops the run (:class:`CheckpointWriteError`); a run directory whose checkpoints are all damaged
cannot be resumed (:class:`DamagedCheckpointError`). ``state.pt`` holds what the trainer gives it
(:meth:`sobirl.rlhf.trainer.RLHFTrainer.save_checkpoint`): the reward net, its optimiser, the update rule (with its
state: STORM's recursion) and the successor-feature critic, the episode recorder, the generators (global and own,
the action space's: SAC's warm-up actions), the counters and the number of metrics rows logged. ``env.pkl`` holds the
training environment itself, its episode running (and SAC's last observation with it): on CPU a resumed run
reproduces the uninterrupted run's metrics exactly. An environment whose state does not pickle (MuJoCo's, Atari's)
has no ``env.pkl``: the resumed run starts a new episode from a seed of ``seed`` and the step, and the recorder drops
the unfinished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import cloudpickle
import gymnasium as gym
import torch
from gymnasium.utils import EzPickle
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from sobirl.agents import follower_class
from sobirl.rlhf.preferences import PreferenceDataset

CHECKPOINT_DIR = "checkpoints"
RETURN_PLOT = "return.png"
_STATE = "state.pt"
_SAC = "sac.zip"
_REPLAY = "replay_buffer.pkl"
_DATASET = "dataset.npz"
_MANIFEST = "manifest.json"
"""A checkpoint's last file: each other file's size and SHA-256, so that a damaged checkpoint is recognised."""
_ENV = "env.pkl"
"""The training env with its running episode, where the env pickles."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (no space, no permission, an I/O error): the run stopped, and the previous
    checkpoint is untouched. ``errno`` is the underlying error's."""


class DamagedCheckpointError(ValueError):
    """Every checkpoint of a run directory is damaged: nothing to resume from."""


def check_writable(run_dir: str | os.PathLike[str]) -> None:
    """Check that checkpoints can be written in ``run_dir`` (creating ``checkpoints/`` and a probe file in it).

    Raises:
        CheckpointWriteError: naming the directory and the reason (e.g. permission denied, read-only file system).
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    probe = root / f".probe-{os.getpid()}"
    try:
        root.mkdir(exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise _write_error(f"run directory {run_dir} is not writable ({err.strerror or err})", err) from err


def _write_error(message: str, err: OSError) -> CheckpointWriteError:
    """A :class:`CheckpointWriteError` with ``message`` and ``err``'s errno."""
    error = CheckpointWriteError(message)
    error.errno = getattr(err, "errno", None)
    return error


def write_checkpoint(
    run_dir: Path, steps: int, write_files: Callable[[Path], None], *, keep: int, publish: Callable[[], None]
) -> Path:
    """Write ``checkpoints/step-<steps>`` of ``run_dir`` atomically, then ``publish()`` (the run's artifacts), and keep
    the newest ``keep`` checkpoints.

    ``write_files(directory)`` writes the checkpoint's files (:func:`write_checkpoint_files`) under
    ``.tmp-step-<N>``; they are flushed to disk, listed with their sizes and SHA-256 in ``manifest.json``, then the
    directory is renamed: a kill or a power cut leaves either no ``step-<N>`` or a complete one, and
    :func:`checkpoint_problem` recognises one damaged later (a file changed or cut short).

    Raises:
        CheckpointWriteError: a write failed (no space, no permission, an I/O error); the partial files are removed
            and the previous checkpoints are untouched.
    """
    root = run_dir / CHECKPOINT_DIR
    final = root / f"step-{steps}"
    tmp = root / f".tmp-step-{steps}"
    try:
        root.mkdir(exist_ok=True)
        for stale in root.glob(".tmp-step-*"):  # a killed run's partial checkpoint
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        write_files(tmp)
        manifest = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        (tmp / _MANIFEST).write_text(json.dumps({"files": manifest}, indent=1))
        for path in tmp.iterdir():
            _fsync(path)
        _fsync(tmp)
        if final.exists():  # a damaged checkpoint a resume fell back from: this one replaces it
            old = root / f".tmp-old-step-{steps}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)  # atomic: a checkpoint directory exists only once complete
        _fsync(root)
        publish()
    except (OSError, RuntimeError) as err:  # torch.save reports a failed write as a RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(run_dir)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise _write_error(
            f"could not write checkpoint {final} ({reason}); the run stopped at agent step {steps} and "
            f"{kept}; free space or fix permissions, then continue with: sobirl rlhf --resume {run_dir}",
            err if isinstance(err, OSError) else OSError(),
        ) from err
    for old in checkpoints(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_checkpoint_files(
    directory: Path, model: OffPolicyAlgorithm, dataset: PreferenceDataset, state: Mapping[str, Any]
) -> None:
    """A checkpoint's files in ``directory``: SAC and its replay buffer, the training env with its running episode
    where it pickles, the preference dataset, and ``state.pt``: ``state``, the rest of the run in one pickle (which
    keeps each optimiser's references to its parameters)."""
    # the reward net pickles inside the replay buffer kwargs; it is saved (once) in state.pt instead
    model.save(directory / _SAC, exclude=["replay_buffer_kwargs"])
    model.save_replay_buffer(directory / _REPLAY)
    env = _pickled_env(model.get_env())
    if env is not None:
        (directory / _ENV).write_bytes(env)
    dataset.save(directory / _DATASET)
    torch.save(dict(state), directory / _STATE)


class Checkpoint(NamedTuple):
    """A checkpoint's files, read (:func:`read_checkpoint`)."""

    state: dict[str, Any]
    """``state.pt``: what the trainer saved."""
    model: OffPolicyAlgorithm
    """SAC (DiscreteSAC) with its replay buffer, relabelling with ``state["reward_net"]``."""
    dataset: PreferenceDataset
    running: VecEnv | None
    """The training env with its episode running; None where it did not pickle (SAC's env is then the one given,
    reset: a new episode)."""


def read_checkpoint(
    checkpoint: Path,
    env: gym.Env,
    *,
    device: str | torch.device,
    map_location: torch.device,
    clip: float | None,
    frame_stack: int | None,
) -> Checkpoint:
    """Every file of ``checkpoint``, read before the caller replaces anything: ``state.pt`` (its tensors on
    ``map_location``), SAC on ``device`` (its replay buffer relabelling with the saved reward net clamped at ``clip``,
    storing frames once where ``frame_stack``), on the pickled training env or else on ``env``, and the preference
    dataset. A damaged file raises whatever loading it raises."""
    state = torch.load(checkpoint / _STATE, map_location=map_location, weights_only=False)
    net = state["reward_net"]
    # what the model was saved without (write_checkpoint_files), for the buffer that load builds before it is replaced
    buffer_kwargs: dict[str, Any] = {} if net is None else {"reward_fn": net, "clip": clip}
    if frame_stack is not None:
        buffer_kwargs["n_stack"] = frame_stack
    algorithm = follower_class(env.action_space)
    env_file = checkpoint / _ENV
    # the training env as it was, its episode running (absent where the env cannot be pickled: a new episode)
    running = cloudpickle.loads(env_file.read_bytes()) if env_file.exists() else None
    model = algorithm.load(
        checkpoint / _SAC,
        env=env if running is None else running,
        device=device,
        force_reset=running is None,
        replay_buffer_kwargs=buffer_kwargs,
    )
    model.load_replay_buffer(checkpoint / _REPLAY)
    dataset = PreferenceDataset.load(checkpoint / _DATASET)
    if net is not None:
        model.replay_buffer.reward_fn = net  # the pickled buffer carries a copy
    return Checkpoint(state, model, dataset, running)


def _pickled_env(env: VecEnv) -> bytes | None:
    """The training env with its running episode, pickled; None where its state does not pickle: a resumed run then
    starts a new episode. gymnasium's ``EzPickle`` environments (MuJoCo's, Atari's) pickle their constructor's
    arguments only, and would come back as new environments behind wrappers that believe the episode goes on."""
    envs = getattr(env.unwrapped, "envs", None)  # a DummyVecEnv's; others run their envs elsewhere
    if envs is None or any(isinstance(e.unwrapped, EzPickle) for e in envs):
        return None
    try:
        return cloudpickle.dumps(env)
    except Exception:  # each environment fails in its own way (TypeError, PicklingError, RuntimeError)
        return None


def checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoints of ``run_dir`` (``checkpoints/step-<N>`` directories holding ``state.pt``), newest
    (most agent steps) first; complete does not mean intact (:func:`checkpoint_problem`)."""
    found = [
        p
        for p in (Path(run_dir) / CHECKPOINT_DIR).glob("step-*")
        if p.is_dir() and p.name.removeprefix("step-").isdigit() and (p / _STATE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step-")), reverse=True)


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint of ``run_dir`` with the most agent steps, or None."""
    found = checkpoints(run_dir)
    return found[0] if found else None


def checkpoint_problem(checkpoint: str | os.PathLike[str]) -> str | None:
    """What is wrong with a checkpoint's files by its ``manifest.json`` (a file missing, of another size or
    SHA-256; the manifest unreadable), on one line; None when they match. A checkpoint written before manifests
    existed has none and passes (loading it is the only check)."""
    checkpoint = Path(checkpoint)
    path = checkpoint / _MANIFEST
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        for name, expected in files.items():
            file = checkpoint / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != expected["size"]:
                return f"{name} has {file.stat().st_size} bytes, {expected['size']} written"
            if _sha256(file) != expected["sha256"]:
                return f"{name} differs from the file written (SHA-256)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{_MANIFEST} is unreadable ({type(err).__name__}: {err})"
    return None


def _sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or a directory (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
