"""Consecutive frame stacks kept as their distinct frames, each once.

An Atari observation is a stack of the ``k`` newest frames, ``(k, *frame_shape)``, the newest last
(:func:`sobirl.envs.make_atari`); within an episode the stack at step ``t + 1`` is the one at step ``t`` shifted by one
frame, with the new frame appended. ``T`` consecutive stacks of one episode (a trajectory, or a fragment, which never
crosses an episode boundary, :mod:`sobirl.rlhf.fragments`) therefore hold only ``T + k - 1`` distinct frames:

    frames = [s_0[0], ..., s_0[k-1], s_1[k-1], ..., s_{T-1}[k-1]],      s_t = frames[t .. t + k - 1],

the zeros that pad an episode's first stacks being frames like any other. For the paper's BeamRider fragments
(``T = L = 25``, ``k = 4``) that is 28 frames instead of 100.

Every function takes the time axis ``axis`` (0 for a trajectory's ``(T, k, *frame_shape)``, 2 for fragment pairs'
``(N, 2, L, k, *frame_shape)``); the stack axis follows it.

- :func:`frames_of`: stacks -> their frames (refused unless consecutive stacks overlap as above);
- :func:`stack_view`: the stacks as a read-only view of the frames (no copy);
- :func:`stacks_of`: the stacks as a new contiguous array, equal to the original bit for bit.
"""

from __future__ import annotations

import numpy as np

from sobirl.validation import check_int

_CHECK_ROWS = 16
"""Rows of the leading axis compared at a time by :func:`frames_of`: comparing a whole batch at once would allocate a
boolean array as large as its stacks (610 MB for 600 pairs of BeamRider fragments)."""


def frames_of(stacks: np.ndarray, n_stack: int, *, axis: int) -> np.ndarray:
    """The distinct frames of consecutive frame stacks (module docstring).

    Args:
        stacks: ``(*lead, T, n_stack, *frame_shape)`` with ``T`` at ``axis``.
        n_stack: ``k``, the frames per stack (``>= 1``).
        axis: the time axis (``>= 0``).

    Returns:
        ``(*lead, T + n_stack - 1, *frame_shape)``, a new array of the same dtype.

    Raises:
        ValueError: a shape without the ``n_stack`` axis after ``axis``, or stacks that are not the previous step's
            shifted by one frame.
    """
    k = check_int("n_stack", n_stack, low=1)
    if stacks.ndim < axis + 2 or stacks.shape[axis + 1] != k or stacks.shape[axis] < 1:
        raise ValueError(
            f"observations must have the time axis at {axis} (at least one step) and n_stack = {k} frames after it, "
            f"got shape {stacks.shape}"
        )
    lead = (slice(None),) * axis
    later, earlier = stacks[(*lead, slice(1, None), slice(None, -1))], stacks[(*lead, slice(None, -1), slice(1, None))]
    for i in range(0, len(later), _CHECK_ROWS):
        if not np.array_equal(later[i : i + _CHECK_ROWS], earlier[i : i + _CHECK_ROWS]):
            raise ValueError(
                "observations are not frame stacks: the stack at step t + 1 must be the stack at step t shifted by "
                "one frame, the newest frame last (as sobirl.envs.make_atari stacks them)"
            )
    return np.concatenate([stacks[(*lead, 0)], stacks[(*lead, slice(1, None), -1)]], axis=axis)


def stack_view(frames: np.ndarray, n_stack: int, *, axis: int) -> np.ndarray:
    """The stacks :func:`frames_of` took ``frames`` from, as a read-only view of ``frames``: ``(*lead, T + k - 1,
    *frame_shape)`` -> ``(*lead, T, k, *frame_shape)``."""
    k = check_int("n_stack", n_stack, low=1)
    if frames.ndim < axis + 1 or frames.shape[axis] < k:
        raise ValueError(
            f"frames must have the time axis at {axis} with T + n_stack - 1 >= {k} frames (T >= 1), got shape "
            f"{frames.shape}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(frames, k, axis=axis)  # the window axis last
    return np.moveaxis(windows, -1, axis + 1)


def stacks_of(frames: np.ndarray, n_stack: int, *, axis: int) -> np.ndarray:
    """:func:`stack_view` copied into a new contiguous array."""
    return np.ascontiguousarray(stack_view(frames, n_stack, axis=axis))
