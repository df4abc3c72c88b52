"""The trained artifacts of a deep RLHF run, in files that plain Stable-Baselines3 and torch code loads.

- :data:`POLICY_FILE` (``policy.zip``, :func:`save_policy`): the follower, loadable with ``SAC.load(path)`` (Box
  actions) or ``DiscreteSAC.load(path)`` (Discrete actions) and no other argument. A trainer's model names a
  relabelling replay buffer whose arguments hold the reward net, which a bare ``load`` cannot rebuild; this file names
  the plain buffer instead (SB3's ``ReplayBuffer``, or :class:`~sobirl.agents.FrameStackReplayBuffer` for stacked
  frames) and holds no replay buffer contents. The training checkpoints (``sac.zip``) are for resuming, not this.
- :data:`REWARD_NET_FILE` (``reward_net.pt``, :func:`save_reward_net`, :func:`load_reward_net`): the learned reward as
  a dict of plain values, readable with ``torch.load(path, weights_only=True)``: ``class`` (the reward net's class
  name), ``kwargs`` (its constructor arguments, :attr:`~sobirl.rlhf.reward_net.OutputNormalization.init_kwargs`, the
  dtype as its name, e.g. ``"float32"``) and ``state_dict`` (the parameters and the output normalisation's running
  statistics, on the CPU).

Both are written to a temporary file in the same directory, flushed to disk and renamed over ``path``: a kill leaves
the previous file or the new one, never part of one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer

from sobirl.agents.discrete_sac import DiscreteSAC
from sobirl.agents.frame_buffer import FrameStackReplayBuffer
from sobirl.rlhf.action_reward_net import ActionRewardNet, CnnActionRewardNet, MlpActionRewardNet
from sobirl.rlhf.reward_net import RewardNet

POLICY_FILE = "policy.zip"
"""The follower of a run directory (:func:`save_policy`)."""
REWARD_NET_FILE = "reward_net.pt"
"""The learned reward of a run directory (:func:`save_reward_net`)."""

_REWARD_NETS: dict[str, type[RewardNet | ActionRewardNet]] = {
    cls.__name__: cls for cls in (RewardNet, MlpActionRewardNet, CnnActionRewardNet)
}
_KEYS = ("class", "kwargs", "state_dict")


def save_policy(model: SAC | DiscreteSAC, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (a trainer's follower, or any SAC / DiscreteSAC) to ``path`` so that ``type(model).load(path)``
    works with no other argument (module docstring); ``model`` is left as it was. Returns ``path``."""
    buffer_class, buffer_kwargs = model.replay_buffer_class, model.replay_buffer_kwargs
    frames = issubclass(buffer_class, FrameStackReplayBuffer)
    model.replay_buffer_class = FrameStackReplayBuffer if frames else ReplayBuffer
    model.replay_buffer_kwargs = {"n_stack": buffer_kwargs["n_stack"]} if frames else {}
    try:
        return _write_atomically(path, model.save)  # SB3 never saves the replay buffer's contents with the model
    finally:
        model.replay_buffer_class, model.replay_buffer_kwargs = buffer_class, buffer_kwargs


def save_reward_net(net: RewardNet | ActionRewardNet, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` (a :class:`~sobirl.rlhf.RewardNet`, :class:`~sobirl.rlhf.MlpActionRewardNet` or
    :class:`~sobirl.rlhf.CnnActionRewardNet`) to ``path`` in the format of the module docstring. Returns ``path``.

    Raises:
        TypeError: ``net`` is not one of those classes.
    """
    name = type(net).__name__
    if _REWARD_NETS.get(name) is not type(net):
        raise TypeError(f"net must be one of {', '.join(_REWARD_NETS)}, got {type(net).__qualname__}")
    kwargs = {**net.init_kwargs, "dtype": str(net.init_kwargs["dtype"]).removeprefix("torch.")}
    state = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    payload = {"class": name, "kwargs": kwargs, "state_dict": state}
    return _write_atomically(path, lambda fh: torch.save(payload, fh))


def load_reward_net(path: str | os.PathLike[str]) -> RewardNet | ActionRewardNet:
    """The reward net of a :func:`save_reward_net` file, on the CPU, in eval mode (frozen output statistics).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not such a reward net (not a torch file, a missing key, an unknown class or dtype,
            arguments the class rejects, a state dict that does not fit it), naming the file and the problem.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch reports a damaged or foreign file by several exception types
        raise _bad_file(path, f"not a torch file of plain values ({_one_line(err)})") from err
    if not isinstance(payload, dict) or any(key not in payload for key in _KEYS):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise _bad_file(path, f"expected a dict with keys {', '.join(_KEYS)}, got {found}")
    cls = _REWARD_NETS.get(payload["class"])
    if cls is None:
        raise _bad_file(path, f"unknown reward net class {payload['class']!r} (known: {', '.join(_REWARD_NETS)})")
    kwargs = dict(payload["kwargs"])
    dtype = getattr(torch, str(kwargs.get("dtype")), None)
    if not isinstance(dtype, torch.dtype):
        raise _bad_file(path, f"unknown dtype {kwargs.get('dtype')!r}")
    try:
        net = cls(**{**kwargs, "dtype": dtype})
        net.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise _bad_file(path, f"the saved arguments or state do not fit {cls.__name__} ({_one_line(err)})") from err
    return net.eval()


def _write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> Path:
    """``write`` into a temporary file beside ``path``, flushed to disk, then renamed to ``path``; the temporary file is
    removed if anything fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _bad_file(path: str | os.PathLike[str], problem: str) -> ValueError:
    return ValueError(f"{path} is not a reward net written by sobirl.rlhf.save_reward_net: {problem}")


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())
