"""The environments of a deep RLHF run: :func:`make_env` builds the training or the evaluation environment a
:class:`~sobirl.rlhf.config.RLHFConfig` describes (a gymnasium id with ``env_kwargs``, the absorbing state, or an
Atari game; then the config's ``wrappers``) and checks that SAC and the reward net can use it, every error naming
the fix. MuJoCo's warnings go to this module's logger instead of a file in the working directory.
"""

from __future__ import annotations

import logging

import gymnasium as gym
from gymnasium import spaces

from sobirl.envs.absorbing import absorbing_env
from sobirl.envs.atari import is_atari, make_atari
from sobirl.rlhf.config import RLHFConfig, resolve_wrapper
from sobirl.rlhf.human.frames import RenderFrames

_LOG = logging.getLogger(__name__)


def make_env(config: RLHFConfig, *, evaluation: bool = False) -> gym.Env:
    """The environment of ``config``, with its time limit override (and, for training, its absorbing termination, or
    an Atari game's end at a lost life); checks the spaces SAC and the reward net need. ``evaluation``: the
    environment the policy is evaluated on, whose episodes end at termination (Atari: at game over).

    Raises:
        gymnasium.error.DependencyNotInstalled: the environment needs an uninstalled extra, its message naming the
            command that installs it (``sobirl[mujoco]``, ``sobirl[atari]``).
        ValueError: unknown environment id (gymnasium's message, with its suggestion), an observation space that is
            neither a 1-D Box nor an Atari game's frames, an action space neither a 1-D Box nor Discrete, a
            fragment_length beyond the environment's time limit, absorbing termination without a time limit or on an
            Atari game, sac_target_entropy_scale with Box actions, naming the fix; env_kwargs the environment
            rejects, or a wrapper that fails on it (naming ``wrappers[i]``).
        TypeError: a wrapper that returns no ``gymnasium.Env``.

    ``config.env_kwargs`` go to ``gymnasium.make``; ``config.wrappers`` are applied in order to the environment built,
    before its spaces are checked (so e.g. ``gymnasium.wrappers:FlattenObservation`` can make them fit). With
    ``labeller: web`` the training environment renders ``rgb_array`` images, each step's in its ``info["frame"]``
    (:class:`~sobirl.rlhf.human.RenderFrames`, outermost).
    """
    atari = is_atari(config.env)
    if atari and config.absorbing_termination:
        raise ValueError(
            f"absorbing_termination needs 1-D Box observations (e.g. CartPole-v1), and the Atari game {config.env!r} "
            "gives frames; set absorbing_termination: false"
        )
    mujoco = False
    shown = config.labeller == "web" and not evaluation  # a person sees the training episodes
    kwargs = {**config.env_kwargs, **({"render_mode": "rgb_array"} if shown else {})}
    try:
        if atari:
            env = make_atari(
                config.env,
                max_episode_steps=config.max_episode_steps,
                frame_stack=config.frame_stack,
                terminal_on_life_loss=config.terminal_on_life_loss and not evaluation,
            )
        else:
            mujoco = "mujoco" in str(gym.spec(config.env).entry_point)
            if mujoco:
                _route_mujoco_warnings()
            if config.absorbing_termination:  # the evaluation env has the indicator too, and ends at termination
                env = absorbing_env(
                    config.env,
                    max_episode_steps=config.max_episode_steps,
                    absorb=not evaluation,
                    absorbing_steps=None if evaluation else config.absorbing_steps,
                    **kwargs,
                )
            else:
                env = gym.make(config.env, max_episode_steps=config.max_episode_steps, **kwargs)
    except gym.error.DependencyNotInstalled as err:  # a subclass of gym.error.Error
        if mujoco:  # gymnasium's message names gymnasium's extra, not ours
            raise gym.error.DependencyNotInstalled(
                f'{config.env} needs MuJoCo, which is not installed; install it with: pip install "sobirl[mujoco]"'
            ) from err
        raise
    except TypeError as err:  # an environment constructor's unexpected keyword
        if not config.env_kwargs:
            raise
        raise ValueError(f"env_kwargs {config.env_kwargs} were rejected by {config.env}: {err}") from err
    except gym.error.Error as err:
        raise ValueError(
            f"unknown env {config.env!r}: {err} (registered ids: gymnasium.pprint_registry(); e.g. Pendulum-v1, "
            "HalfCheetah-v5)"
        ) from err
    for i, entry in enumerate(config.wrappers):
        wrap = resolve_wrapper(entry, f"wrappers[{i}]")
        try:
            wrapped = wrap(env)
        except Exception as err:
            env.close()
            raise ValueError(f"wrappers[{i}] {entry!r} failed on {config.env}: {type(err).__name__}: {err}") from err
        if not isinstance(wrapped, gym.Env):
            env.close()
            raise TypeError(f"wrappers[{i}] {entry!r} returned {type(wrapped).__name__}, not a gymnasium.Env")
        env = wrapped
    if shown:
        env = RenderFrames(env, max_width=config.frame_width)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    if limit is not None and config.fragment_length > limit:
        env.close()
        raise ValueError(
            f"fragment_length ({config.fragment_length}) is longer than the episodes of {config.env} allow (time "
            f"limit {limit} steps); use a fragment_length <= {limit} or a larger max_episode_steps"
        )
    obs_space, act_space = env.observation_space, env.action_space
    # an Atari game's observations are make_atari's uint8 (frame_stack, 84, 84) stacks
    if not atari and (not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1):
        env.close()
        raise ValueError(
            f"env {config.env!r} has observation_space {obs_space}; deep RLHF needs 1-D Box observations (e.g. "
            "Pendulum-v1, HalfCheetah-v5, CartPole-v1) or an Atari game (e.g. ALE/BeamRider-v5); wrap others in "
            "gymnasium.wrappers.FlattenObservation"
        )
    if not (
        isinstance(act_space, spaces.Discrete) or (isinstance(act_space, spaces.Box) and len(act_space.shape) == 1)
    ):
        env.close()
        raise ValueError(
            f"env {config.env!r} has action_space {act_space}; deep RLHF needs 1-D Box actions (SAC, e.g. "
            "Pendulum-v1) or Discrete actions (DiscreteSAC, e.g. CartPole-v1)"
        )
    if config.sac_target_entropy_scale is not None and not isinstance(act_space, spaces.Discrete):
        env.close()
        raise ValueError(
            f"sac_target_entropy_scale is DiscreteSAC's (Discrete actions), and {config.env!r} has action_space "
            f"{act_space}; leave it unset (SAC's target entropy is -dim(A))"
        )
    if config.reward_state_only and not isinstance(act_space, spaces.Discrete):
        env.close()
        raise ValueError(
            f"reward_state_only is for the per-action reward net (Discrete actions), and {config.env!r} has "
            f"action_space {act_space}; leave it false"
        )
    return env


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings (e.g. deprecated attributes in gymnasium's model files) to this module's logger:
    without a handler MuJoCo appends them to ``MUJOCO_LOG.TXT`` in the working directory. Logging never raises
    (an exception inside MuJoCo's C callback would abort the process). A handler the user set is kept; without
    MuJoCo, ``gym.make`` raises the missing-dependency error."""
    try:
        import mujoco
    except ImportError:
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(lambda message: _LOG.warning("MuJoCo: %s", message.strip()))
