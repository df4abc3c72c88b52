"""Fragments of frame stacks kept as their distinct frames, each once.

An Atari observation is a stack of the ``k`` newest frames, ``(k, *frame_shape)``, the newest last
(:func:`sobirl.envs.make_atari`); within an episode the stack at step ``t + 1`` is the one at step ``t`` shifted by one
frame, with the new frame appended. A fragment of ``L`` consecutive stacks (fragments never cross an episode
boundary, :mod:`sobirl.rlhf.fragments`) therefore holds only ``L + k - 1`` distinct frames:

    frames = [s_0[0], ..., s_0[k-1], s_1[k-1], ..., s_{L-1}[k-1]],      s_t = frames[t .. t + k - 1],

the zeros that pad an episode's first stacks being frames like any other. For the paper's BeamRider settings
(``L = 25``, ``k = 4``) that is 28 frames instead of 100 per fragment.

- :func:`frames_of`: a batch of fragment pairs' stacks -> their frames (refused unless the stacks overlap as above);
- :func:`stacks_of`: the inverse, the stacks rebuilt as a new array equal to the original, bit for bit.
"""

from __future__ import annotations

import numpy as np

from sobirl.validation import check_int

_CHECK_PAIRS = 16
"""Pairs compared at a time by :func:`frames_of`: comparing a whole batch at once would allocate a boolean array as
large as its stacks (610 MB for 600 pairs of BeamRider fragments)."""


def frames_of(observations: np.ndarray, n_stack: int) -> np.ndarray:
    """The distinct frames of fragment pairs of frame stacks (module docstring).

    Args:
        observations: ``(N, 2, L, n_stack, *frame_shape)``, as in :class:`~sobirl.rlhf.FragmentPairs`.
        n_stack: ``k``, the frames per stack (``>= 1``).

    Returns:
        ``(N, 2, L + n_stack - 1, *frame_shape)``, a new array of the same dtype.

    Raises:
        ValueError: a shape without the ``n_stack`` axis, or stacks that are not the previous step's shifted by one
            frame.
    """
    k = check_int("n_stack", n_stack, low=1)
    if observations.ndim < 4 or observations.shape[3] != k:
        raise ValueError(
            f"observations must have shape (N, 2, L, n_stack = {k}, *frame_shape), got {observations.shape}"
        )
    for i in range(0, len(observations), _CHECK_PAIRS):
        chunk = observations[i : i + _CHECK_PAIRS]
        if not np.array_equal(chunk[:, :, 1:, :-1], chunk[:, :, :-1, 1:]):
            raise ValueError(
                "observations are not frame stacks: within a fragment, the stack at step t + 1 must be the stack at "
                "step t shifted by one frame, the newest frame last (as sobirl.envs.make_atari stacks them)"
            )
    return np.concatenate([observations[:, :, 0], observations[:, :, 1:, -1]], axis=2)


def stacks_of(frames: np.ndarray, n_stack: int) -> np.ndarray:
    """The stacks :func:`frames_of` took ``frames`` from: ``(N, 2, L + k - 1, *frame_shape)`` ->
    ``(N, 2, L, k, *frame_shape)``, a new contiguous array."""
    k = check_int("n_stack", n_stack, low=1)
    if frames.ndim < 3 or frames.shape[2] < k:
        raise ValueError(
            f"frames must have shape (N, 2, L + n_stack - 1, *frame_shape) with L >= 1, got {frames.shape}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(frames, k, axis=2)  # (N, 2, L, *frame_shape, k): views
    return np.ascontiguousarray(np.moveaxis(windows, -1, 3))
