"""Feeding an :class:`~sobirl.rlhf.EpisodeRecorder` from an SB3 off-policy algorithm's own training steps.

:class:`RecordingCallback` is an SB3 callback. ``OffPolicyAlgorithm.collect_rollouts`` (Stable-Baselines3 2.9) runs,
per vectorised step: ``_sample_action`` (returning the environment's ``actions`` and the replay buffer's
``buffer_actions``), ``env.step``, the callbacks' ``on_step``, then ``_store_transition``, which only then overwrites
``model._last_obs`` with the new observation. So at ``on_step`` the callback records

- ``s_t``: ``model._last_obs``, or under ``VecNormalize`` the un-normalised ``model._last_original_obs`` (without
  ``VecNormalize`` that attribute still holds the previous step's observation);
- ``a_t``: ``buffer_actions``, for SAC the action scaled to ``[-1, 1]``, exactly what the replay buffer stores, so the
  fragments the reward net learns from and the relabelled transitions it rewards share their inputs;
- ``r_t``: the environment's TRUE reward, ``rewards`` as returned by ``env.step`` (``VecNormalize``: its original
  reward). It is kept for the synthetic labeller only; the follower learns from the relabelling buffer
  (:class:`sobirl.agents.RelabelingReplayBuffer`), never from it;
- ``dones`` and ``infos`` (``"TimeLimit.truncated"``, ``"terminal_observation"``) as the VecEnv returned them (under
  ``VecNormalize`` the terminal observation is the normalised one).

SB3 resets the environment at ``learn(reset_num_timesteps=True)`` (the default) without ending the running episodes;
that would splice two episodes into one trajectory, so after the first ``learn`` call with this callback the next ones
must pass ``reset_num_timesteps=False``, which :class:`RecordingCallback` checks.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sobirl.rlhf.trajectories import EpisodeRecorder


class RecordingCallback(BaseCallback):
    """Records every step of an SB3 off-policy algorithm's training into ``recorder`` (module docstring).

    Args:
        recorder: an :class:`EpisodeRecorder` with ``n_envs`` equal to the training VecEnv's and
            ``autoreset="same-step"`` (SB3's VecEnvs reset in the step that ends an episode).

    Raises (when training starts):
        TypeError: the algorithm is not an ``OffPolicyAlgorithm`` (SAC, TD3, DQN).
        ValueError: the recorder does not match the environment.
        RuntimeError: ``learn`` reset the environment while episodes were running.
    """

    def __init__(self, recorder: EpisodeRecorder) -> None:
        super().__init__()
        if recorder.autoreset != "same-step":
            raise ValueError(f"recorder.autoreset must be 'same-step' for SB3 VecEnvs, got {recorder.autoreset!r}")
        self.recorder = recorder
        self._next_obs: object | None = None  # the observation SB3 moves on to, when an episode is running

    def _init_callback(self) -> None:
        if not isinstance(self.model, OffPolicyAlgorithm):
            raise TypeError(f"RecordingCallback needs an off-policy algorithm (SAC, TD3, DQN), got {type(self.model)}")
        if self.training_env.num_envs != self.recorder.n_envs:
            raise ValueError(
                f"recorder.n_envs must equal the training VecEnv's num_envs = {self.training_env.num_envs}, "
                f"got {self.recorder.n_envs}"
            )

    def _on_training_start(self) -> None:
        if self._next_obs is not None and self.model._last_obs is not self._next_obs:
            raise RuntimeError(
                "learn() reset the environment in the middle of recorded episodes; "
                "call learn(..., reset_num_timesteps=False) after the first call"
            )

    def _on_step(self) -> bool:
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is None:
            observations, rewards = self.model._last_obs, self.locals["rewards"]
        else:
            observations, rewards = self.model._last_original_obs, vec_normalize.get_original_reward()
        dones = self.locals["dones"]
        self.recorder.add(observations, self.locals["buffer_actions"], rewards, dones=dones, infos=self.locals["infos"])
        self._next_obs = None if np.all(dones) else self.locals["new_obs"]
        return True
