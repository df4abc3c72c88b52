"""Deep RLHF from preferences: episodes, fragments, labels, reward net, loss and update rules (the loop that joins
them with the follower: :mod:`sobirl.rlhf.trainer`).

The pipeline, each step one module:

1. :class:`EpisodeRecorder` (``trajectories``) captures the follower's own training episodes from vectorised steps
   (SB3 VecEnv or gymnasium conventions), with the environment's true reward, as :class:`Trajectory` objects.
2. :func:`sample_fragment_pairs` (``fragments``) cuts pairs of fixed-length fragments, trajectories chosen in
   proportion to their length, as stacked arrays (:class:`FragmentPairs`).
3. A :class:`PreferenceGatherer` labels them (``preferences``): :class:`SyntheticLabeller` by Bradley-Terry on the
   true returns; a human labeller implements the same interface. :class:`PreferenceDataset` keeps them (FIFO;
   frame stacks as their distinct frames, ``frame_stacks``).
4. :class:`QuerySchedule` (``schedule``) says how many pairs to query as the agent trains.
5. :class:`RewardNet` (``reward_net``) is the learned reward ``r_x(s, a)``, and :func:`preference_logits` /
   :func:`preference_loss` (``preference_model``) its Bradley-Terry loss on a mini-batch in one forward pass. For
   Discrete actions, :func:`action_reward_net` (``action_reward_net``) gives one output per action (an MLP or the
   Nature CNN on stacked frames).
6. An :class:`UpdateRule` (``rules``, by name in :data:`RULES`) turns labelled pairs into the reward net's update; its
   second term reads the follower through a :class:`Follower` and :class:`Visits` (``visits``), with an estimator of
   ``dQ/dx - dV/dx`` from :data:`SENSITIVITIES` (``sensitivities``), the successor-feature critic among them
   (``successor``).

Arrays are numpy up to the dataset (what environments and SB3 produce); the preference model takes torch tensors.
A run's trained follower and reward net are saved in files that plain SB3 and torch load (``artifacts``:
:func:`save_policy`, :func:`save_reward_net`, :func:`load_reward_net`).
"""

from sobirl.rlhf.action_reward_net import (
    ActionRewardNet,
    CnnActionRewardNet,
    MlpActionRewardNet,
    action_reward_net,
)
from sobirl.rlhf.artifacts import POLICY_FILE, REWARD_NET_FILE, load_reward_net, save_policy, save_reward_net
from sobirl.rlhf.fragments import FragmentPairs, sample_fragment_pairs
from sobirl.rlhf.preference_model import fragment_returns, preference_accuracy, preference_logits, preference_loss
from sobirl.rlhf.preferences import LABEL_MODES, PreferenceDataset, PreferenceGatherer, SyntheticLabeller
from sobirl.rlhf.recording import RecordingCallback
from sobirl.rlhf.reward_net import ACTIVATIONS, RewardNet
from sobirl.rlhf.rules import RULES, RuleConfig, UpdateLoss, UpdateRule
from sobirl.rlhf.schedule import SCHEDULES, QuerySchedule
from sobirl.rlhf.sensitivities import SENSITIVITIES, Sensitivity
from sobirl.rlhf.successor import CriticConfig, SuccessorFeatures
from sobirl.rlhf.trajectories import AUTORESET_MODES, EpisodeRecorder, Trajectory
from sobirl.rlhf.visits import Follower, Visits

__all__ = [
    "ACTIVATIONS",
    "AUTORESET_MODES",
    "LABEL_MODES",
    "POLICY_FILE",
    "REWARD_NET_FILE",
    "RULES",
    "SCHEDULES",
    "SENSITIVITIES",
    "ActionRewardNet",
    "CnnActionRewardNet",
    "CriticConfig",
    "EpisodeRecorder",
    "Follower",
    "FragmentPairs",
    "MlpActionRewardNet",
    "PreferenceDataset",
    "PreferenceGatherer",
    "QuerySchedule",
    "RecordingCallback",
    "RewardNet",
    "RuleConfig",
    "Sensitivity",
    "SuccessorFeatures",
    "SyntheticLabeller",
    "Trajectory",
    "UpdateLoss",
    "UpdateRule",
    "Visits",
    "action_reward_net",
    "fragment_returns",
    "load_reward_net",
    "preference_accuracy",
    "preference_logits",
    "preference_loss",
    "sample_fragment_pairs",
    "save_policy",
    "save_reward_net",
]
