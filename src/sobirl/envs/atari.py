"""Atari games as the deep RLHF trainer plays them: one gymnasium environment of stacked 84x84 grayscale frames.

:func:`make_atari` builds the standard preprocessing (Mnih et al. 2015; Machado et al. 2018), from the inside out:

- ``gym.make(env_id, frameskip=1)``: the raw emulator (ALE's own frame skip off; ``ALE/...-v5`` keeps its sticky
  actions, ``repeat_action_probability=0.25``, and its cap of 108,000 frames per game);
- SB3's ``AtariWrapper``: up to ``noop_max`` random no-ops at reset, 4 frames per agent step (the maximum of the last
  two), a life lost ends the episode when ``terminal_on_life_loss`` (the game itself resets at game over only), FIRE
  at reset where the game needs it, 84x84 grayscale frames; rewards are NOT clipped: the synthetic labeller and the
  logged true return need the game score;
- the frame's trailing channel squeezed, then ``gymnasium.wrappers.FrameStackObservation`` with zero padding: uint8
  observations ``(frame_stack, 84, 84)``, channels first, the newest frame last. At reset the stack is
  ``[0, ..., 0, o_0]``, as SB3's ``VecFrameStack`` pads, so :class:`~sobirl.agents.FrameStackReplayBuffer` stores its
  transitions exactly (``tests/test_atari.py``);
- with ``max_episode_steps``, a time limit in AGENT steps (a life with ``terminal_on_life_loss``) whose truncation
  ends the game too, so the next episode starts a new one. Every ``reset`` starts a new game except one after a lost
  life without a ``seed`` (SB3's ``EpisodicLifeEnv`` alone would go on with the same game after a truncation, a
  reset in the middle of an episode, and a reseed, so that ``reset(seed=s)`` would not give the same observation).

The preprocessed game is the registered id :data:`~sobirl.envs.registration.ATARI_ENV_ID` (``sobirl/Atari-v0``,
entry point :func:`atari_env`) and :func:`make_atari` is ``gymnasium.make`` of it, so the time limit is gymnasium's
``TimeLimit`` outside the preprocessing, ``env.spec.max_episode_steps`` is that limit, and ``env.spec`` rebuilds the
same environment (``env.spec.make()``; gymnasium's ``check_env`` passes on it).

The ``ALE/...`` ids (and ale_py's older ``...NoFrameskip-v4`` ones) come with the ``atari`` extra:
``pip install "sobirl[atari]"`` (ale-py ships the ROMs; SB3's ``AtariWrapper`` needs OpenCV).
"""

from __future__ import annotations

import importlib
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FrameStackObservation, ReshapeObservation

from sobirl.envs.registration import ATARI_ENV_ID
from sobirl.validation import check_int

ATARI_EXTRA = 'pip install "sobirl[atari]"'
"""The command that installs what :func:`make_atari` needs."""


def _installed(module: str) -> bool:
    """Import ``module``; whether it is installed (importing ale_py registers its ids with gymnasium)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is an Atari game: an ``ALE/`` id (installed or not), or a registered id whose entry point is
    ale_py's (its ``...NoFrameskip-v4`` ids, registered once ale_py is imported)."""
    if env_id.startswith("ALE/"):
        return True
    if env_id not in gym.registry and not _installed("ale_py"):
        return False
    spec = gym.registry.get(env_id)
    return spec is not None and str(spec.entry_point).startswith("ale_py")


class _NewGameOnReset(gym.Wrapper):
    """Every ``reset`` starts a new game, except one that follows a terminal step (a lost life with
    ``terminal_on_life_loss``) and has no ``seed``: SB3's ``EpisodicLifeEnv`` resets the emulator only after game
    over, and would go on with the same game after a time limit's truncation (in agent steps, outside), a reset in
    the middle of an episode, or a reseed."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._terminated = False  # the last step was terminal: a reset goes on with the game's next life

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._terminated = bool(terminated)
        return observation, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None or not self._terminated:
            self.env.set_wrapper_attr("was_real_done", True, force=False)  # absent without terminal_on_life_loss
        self._terminated = False
        return self.env.reset(seed=seed, options=options)


def _check_installed(env_id: str) -> None:
    """Raise ``gymnasium.error.DependencyNotInstalled``, naming the ``atari`` extra, when ale-py or OpenCV is
    missing."""
    if not (_installed("ale_py") and _installed("cv2")):
        raise gym.error.DependencyNotInstalled(
            f"{env_id} needs ale-py and OpenCV, which are not installed; install them with: {ATARI_EXTRA}"
        )


def atari_env(
    *,
    game: str,
    frame_stack: int = 4,
    terminal_on_life_loss: bool = True,
    noop_max: int = 30,
    render_mode: str | None = None,
) -> gym.Env:
    """The preprocessed game without a time limit: the entry point of :data:`~sobirl.envs.registration.ATARI_ENV_ID`
    (module docstring; use :func:`make_atari`, or ``gymnasium.make("sobirl/Atari-v0", game=..., ...)``).

    Args:
        game: an Atari id, e.g. ``ALE/BeamRider-v5``.
        frame_stack: frames per observation (``>= 1``).
        terminal_on_life_loss: a lost life ends the episode.
        noop_max: the most random no-ops at reset (``>= 0``).
        render_mode: the emulator's render mode (``"rgb_array"``, ``"human"``), or None.

    Raises:
        gymnasium.error.DependencyNotInstalled: ale-py or OpenCV is missing, naming the ``atari`` extra.
        gymnasium.error.Error: ``game`` is not a registered id (gymnasium's message).
        ValueError / TypeError: an invalid argument, naming it.
    """
    check_int("frame_stack", frame_stack, low=1)
    check_int("noop_max", noop_max)
    if not isinstance(terminal_on_life_loss, bool):
        raise TypeError(f"terminal_on_life_loss must be true or false, got {terminal_on_life_loss!r}")
    _check_installed(game)
    from stable_baselines3.common.atari_wrappers import AtariWrapper  # lazily: tabular users of sobirl.envs need no SB3

    env = gym.make(game, frameskip=1, render_mode=render_mode)
    env = AtariWrapper(
        env,
        noop_max=noop_max,
        frame_skip=4,
        screen_size=84,
        terminal_on_life_loss=terminal_on_life_loss,
        clip_reward=False,
    )
    env = ReshapeObservation(env, env.observation_space.shape[:2])
    env = FrameStackObservation(env, frame_stack, padding_type="zero")
    return _NewGameOnReset(env)


def make_atari(
    env_id: str,
    *,
    max_episode_steps: int | None = None,
    frame_stack: int = 4,
    terminal_on_life_loss: bool = True,
    noop_max: int = 30,
) -> gym.Env:
    """One preprocessed Atari environment (module docstring): ``gymnasium.make`` of
    :data:`~sobirl.envs.registration.ATARI_ENV_ID`; wrap it in a VecEnv (SB3's algorithms do).

    Args:
        env_id: an Atari id, e.g. ``ALE/BeamRider-v5``.
        max_episode_steps: agent steps per episode (per life with ``terminal_on_life_loss``); None: no limit but the
            game's own.
        frame_stack: frames per observation (``>= 1``).
        terminal_on_life_loss: a lost life ends the episode (training; the evaluation plays whole games).
        noop_max: the most random no-ops at reset (``>= 0``; 0: none).

    Raises:
        gymnasium.error.DependencyNotInstalled: ale-py or OpenCV is missing, naming the ``atari`` extra.
        gymnasium.error.Error: ``env_id`` is not a registered id (gymnasium's message).
        ValueError: an invalid argument, naming it.
    """
    check_int("frame_stack", frame_stack, low=1)
    check_int("noop_max", noop_max)
    if max_episode_steps is not None:
        check_int("max_episode_steps", max_episode_steps, low=1)
    _check_installed(env_id)
    return gym.make(
        ATARI_ENV_ID,
        max_episode_steps=max_episode_steps,
        game=env_id,
        frame_stack=frame_stack,
        terminal_on_life_loss=terminal_on_life_loss,
        noop_max=noop_max,
    )
