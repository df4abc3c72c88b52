"""Pairs of fixed-length fragments cut from the follower's trajectories, drawn as stacked arrays.

For each of the ``2 N`` fragments of ``N`` pairs, independently:

    j ~ P(j) = T_j / sum_{k: T_k >= L} T_k   over the trajectories with T_j >= L (shorter ones are skipped),
    start ~ U{0, ..., T_j - L},   fragment = steps start .. start + L - 1 of trajectory j,

so a fragment never crosses an episode boundary, and longer trajectories give proportionally more fragments (the
rule of Christiano et al. 2017 and of ``imitation``'s ``RandomFragmenter``). The two fragments of a pair are drawn
independently (they may come from the same trajectory).

The draw is vectorised: one draw of all the trajectories and one of all the starts, then one fancy index per distinct
trajectory drawn gathers all its fragments' steps (no loop over pairs or fragments, and no trajectory copied whole: a
frame-stack trajectory's observations are a view of its frames, :class:`~sobirl.rlhf.Trajectory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sobirl.rlhf.trajectories import Trajectory
from sobirl.validation import check_int


@dataclass(frozen=True, eq=False)
class FragmentPairs:
    """``N`` pairs of fragments of ``L`` steps; index 1 is the pair's first or second fragment.

    Attributes:
        observations: ``(N, 2, L, *obs_shape)``.
        actions: ``(N, 2, L, *act_shape)`` (``(N, 2, L)`` for Discrete actions).
        true_rewards: float64 ``(N, 2, L)``: the environment's rewards, for the synthetic labeller.
        frames: what a person is shown, uint8 ``(N, 2, L, H, W, 3)`` (one ``render_mode="rgb_array"`` image per
            step), or None (the default: no labeller needs it but :class:`sobirl.rlhf.human.WebLabeller`; the
            preference dataset does not keep it).
    """

    observations: np.ndarray
    actions: np.ndarray
    true_rewards: np.ndarray
    frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        lead = self.true_rewards.shape
        if len(lead) != 3 or lead[1] != 2:
            raise ValueError(f"true_rewards must have shape (N, 2, L), got {lead}")
        for name in ("observations", "actions"):
            if getattr(self, name).shape[:3] != lead:
                raise ValueError(f"{name} must start with (N, 2, L) = {lead}, got {getattr(self, name).shape}")
        frames = self.frames
        if frames is not None and (
            frames.dtype != np.uint8 or frames.ndim != 6 or frames.shape[:3] != lead or frames.shape[-1] != 3
        ):
            raise ValueError(
                f"frames must be uint8 (N, 2, L, H, W, 3) with (N, 2, L) = {lead}, got {frames.dtype} {frames.shape}"
            )

    def __len__(self) -> int:
        """The number of pairs ``N``."""
        return self.true_rewards.shape[0]

    def __getitem__(self, index: slice | np.ndarray) -> FragmentPairs:
        """The pairs ``index`` selects (a slice, a boolean mask or an integer array over the ``N`` pairs)."""
        if isinstance(index, (int, np.integer)):
            raise TypeError("index FragmentPairs with a slice, a boolean mask or an integer array, not an integer")
        frames = None if self.frames is None else self.frames[index]
        return FragmentPairs(self.observations[index], self.actions[index], self.true_rewards[index], frames)

    @property
    def fragment_length(self) -> int:
        """``L``, the steps per fragment."""
        return self.true_rewards.shape[2]


def sample_fragment_pairs(
    trajectories: Sequence[Trajectory],
    n_pairs: int,
    fragment_length: int,
    generator: np.random.Generator,
    *,
    frames: bool = False,
) -> FragmentPairs:
    """Draw ``n_pairs`` pairs of ``fragment_length``-step fragments (module docstring).

    Args:
        trajectories: the finished episodes to cut from (e.g. ``EpisodeRecorder.trajectories``); those shorter
            than ``fragment_length`` are skipped.
        n_pairs: ``N >= 1``.
        fragment_length: ``L >= 1``.
        generator: the numpy generator every draw comes from (same state, same pairs).
        frames: cut only from the trajectories that hold :attr:`Trajectory.frames`, and return the fragments'
            frames (for a person to judge).

    Raises:
        ValueError: naming the argument, also when no trajectory has ``fragment_length`` steps.
    """
    check_int("n_pairs", n_pairs, low=1)
    L = check_int("fragment_length", fragment_length, low=1)
    if frames:
        trajectories = [t for t in trajectories if t.frames is not None]
    lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
    eligible = np.flatnonzero(lengths >= L)
    if eligible.size == 0:
        longest = int(lengths.max()) if lengths.size else 0
        raise ValueError(
            f"fragment_length = {L} is longer than every trajectory ({len(trajectories)} trajectories, longest "
            f"{longest} steps); collect longer episodes or lower fragment_length to at most {longest}"
        )
    weights = lengths[eligible].astype(np.float64)
    picks = eligible[generator.choice(eligible.size, size=2 * n_pairs, p=weights / weights.sum())]

    steps = generator.integers(0, lengths[picks] - L + 1)[:, None] + np.arange(L)  # (2N, L) steps of each trajectory
    chosen, which = np.unique(picks, return_inverse=True)
    rows_of = np.split(np.argsort(which, kind="stable"), np.cumsum(np.bincount(which))[:-1])  # fragments per chosen

    def gather(field: str) -> np.ndarray:
        first = getattr(trajectories[chosen[0]], field)
        out = np.empty((2 * n_pairs, L, *first.shape[1:]), dtype=first.dtype)
        for j, rows in zip(chosen, rows_of, strict=True):
            out[rows] = getattr(trajectories[j], field)[steps[rows]]
        return out.reshape(n_pairs, 2, L, *out.shape[2:])

    images = gather("frames") if frames else None
    return FragmentPairs(gather("observations"), gather("actions"), gather("true_rewards"), images)
