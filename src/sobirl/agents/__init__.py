"""Followers for deep RLHF: soft actor-critics learning from the reward network through a relabelling buffer.

- :class:`RelabelingReplayBuffer` (``relabel``): rewards recomputed by the current reward net at every sample.
- :func:`make_sac` (``sac``): SB3 SAC (Box actions) or :class:`DiscreteSAC` (Discrete actions, :func:`follower_class`)
  with that buffer and a logger that writes where told; :func:`sac_temperature`, :func:`actor_sampler` and
  :func:`actor_probabilities` give the upper level the temperature ``alpha``, the actor's actions (Box) and its
  probabilities (Discrete).
- :class:`DiscreteSAC` (``discrete_sac``): soft actor-critic for Discrete action spaces as an SB3 algorithm, with
  exact expectations over the actions.
- :class:`FrameStackReplayBuffer` (``frame_buffer``): replay buffer for ``VecFrameStack`` images (Atari) storing each
  uint8 frame once, no ``next_obs`` copy; :class:`RelabelingFrameStackReplayBuffer` relabels its rewards as
  :class:`RelabelingReplayBuffer` does; :func:`frame_buffer_bytes` is its memory, computed without allocating it.
- :data:`StepRewardFn`, :data:`ActionSampler`, :data:`ActionProbabilities` (``types``): the reward net the follower
  learns from and its policy as callables; :mod:`sobirl.rlhf`, the layer above, takes them from here.
"""

from sobirl.agents.discrete_sac import DiscreteSAC
from sobirl.agents.frame_buffer import FrameStackReplayBuffer, RelabelingFrameStackReplayBuffer, frame_buffer_bytes
from sobirl.agents.relabel import RelabelingReplayBuffer
from sobirl.agents.sac import (
    LOG_FORMATS,
    actor_probabilities,
    actor_sampler,
    follower_class,
    make_sac,
    sac_temperature,
)
from sobirl.agents.types import ActionProbabilities, ActionSampler, StepRewardFn

__all__ = [
    "LOG_FORMATS",
    "ActionProbabilities",
    "ActionSampler",
    "DiscreteSAC",
    "FrameStackReplayBuffer",
    "RelabelingFrameStackReplayBuffer",
    "RelabelingReplayBuffer",
    "StepRewardFn",
    "actor_probabilities",
    "actor_sampler",
    "follower_class",
    "frame_buffer_bytes",
    "make_sac",
    "sac_temperature",
]
