"""Followers for deep RLHF: Stable-Baselines3 SAC learning from the reward network through a relabelling buffer.

- :class:`RelabelingReplayBuffer` (``relabel``): rewards recomputed by the current reward net at every sample.
- :func:`make_sac` (``sac``): SB3 SAC with that buffer, a Box action space and a logger that writes where told;
  :func:`sac_temperature` and :func:`actor_sampler` give the upper level SAC's ``alpha`` and its actor's actions.
- :class:`DiscreteSAC` (``discrete_sac``): soft actor-critic for Discrete action spaces as an SB3 algorithm, with
  exact expectations over the actions.
"""

from sobirl.agents.discrete_sac import DiscreteSAC
from sobirl.agents.relabel import RelabelingReplayBuffer
from sobirl.agents.sac import LOG_FORMATS, actor_sampler, make_sac, sac_temperature

__all__ = ["LOG_FORMATS", "DiscreteSAC", "RelabelingReplayBuffer", "actor_sampler", "make_sac", "sac_temperature"]
