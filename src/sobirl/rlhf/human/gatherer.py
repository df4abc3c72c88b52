"""A :class:`~sobirl.rlhf.PreferenceGatherer` whose labels come from people answering on the labelling page.

:class:`WebLabeller` queues each pair in a :class:`LabelStore` (its two clips, encoded from ``pairs.frames`` by a
:class:`ClipFormat`; its arrays as an npz blob; its true returns as metadata) and reads the answers back:

    left -> 1.0,   right -> 0.0,   equal -> 0.5,   cant_tell -> NaN (the pair is dropped by the dataset).

Two modes:

- ``wait=True`` (default): :meth:`WebLabeller.gather` blocks until every pair it queued is answered; training waits.
- ``wait=False``: :meth:`WebLabeller.gather` returns at once with whatever answers are in; training goes on.

Either way :meth:`WebLabeller.gather` returns every answered pair not handed on before, in the order the answers came
in, which may include pairs queued at earlier calls or before a restart (the store keeps their arrays).
:meth:`WebLabeller.__call__` always blocks, for exactly the pairs it is given.

A pair with the same arrays as one queued before is not queued again (its content is its store key): a run resumed from
a checkpoint asks again, with the same generators, what it asked after the checkpoint, and gets those answers.

Each hand-on is a numbered round in the store; :meth:`WebLabeller.state_dict` is the latest round, and
:meth:`WebLabeller.load_state_dict` makes the answers of later rounds collectable again, so a run resumed from a
checkpoint receives every answer its checkpointed dataset lacks.
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

import numpy as np

from sobirl.rlhf.fragments import FragmentPairs
from sobirl.rlhf.human.clips import CLIP_MEDIA_TYPE, ClipFormat
from sobirl.rlhf.human.store import Collected, LabelStore, NewPair
from sobirl.rlhf.preferences import PreferenceGatherer
from sobirl.validation import check_range

LABELS = {"left": 1.0, "right": 0.0, "equal": 0.5, "cant_tell": float("nan")}
"""The label of each answer: the probability that the pair's first (left) fragment is preferred."""

_ARRAYS = ("observations", "actions", "true_rewards")
"""The :class:`FragmentPairs` fields kept in the store to give the pair back later."""


class WebLabeller(PreferenceGatherer):
    """Labels from the labelling page, through ``store`` (module docstring).

    Args:
        store: the store the page serves.
        wait: block until the queued pairs are answered (True), or return the answers so far (False).
        poll_s: how often a blocked call reads the store (seconds, ``> 0``).
        timeout_s: how long a blocked call waits before ``TimeoutError`` (its pairs stay queued); None: forever.
        clips: how the frames become clips.
    """

    needs_frames = True

    def __init__(
        self,
        store: LabelStore,
        *,
        wait: bool = True,
        poll_s: float = 0.25,
        timeout_s: float | None = None,
        clips: ClipFormat | None = None,
    ) -> None:
        self.store = store
        self.wait = wait
        self.poll_s = check_range("poll_s", poll_s, low=0.0, low_open=True)
        self.timeout_s = None if timeout_s is None else check_range("timeout_s", timeout_s, low=0.0)
        self.clips = ClipFormat() if clips is None else clips
        self.collected_round = 0
        """The latest round of answers handed on (the store's numbering)."""

    def __call__(self, pairs: FragmentPairs) -> np.ndarray:
        """Queue ``pairs``, wait until each is answered (whatever ``wait`` says) and return their labels, in order."""
        ids = self._enqueue(pairs)
        self._wait_for(ids)
        found = self._collect(ids)
        by_id = {c.pair_id: LABELS[c.choice] for c in found}
        return np.array([by_id[i] for i in ids], dtype=np.float64)

    def gather(self, pairs: FragmentPairs) -> tuple[FragmentPairs, np.ndarray]:
        """Queue ``pairs`` (with ``wait``, wait until each is answered) and return every answered pair not handed on
        before, and its label, in the order the answers came in."""
        ids = self._enqueue(pairs)
        if self.wait:
            self._wait_for(ids)
        found = self._collect(None)
        if not found:
            return pairs[:0], np.empty(0, dtype=np.float64)
        kept = [_arrays_of(c.data) for c in found]
        arrays = {name: np.stack([pair[name] for pair in kept]) for name in _ARRAYS}
        return FragmentPairs(**arrays), np.array([LABELS[c.choice] for c in found], dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """``{"collected_round": the latest round handed on}``."""
        return {"collected_round": self.collected_round}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume after round ``state["collected_round"]``: later rounds' answers are collectable again."""
        self.collected_round = int(state["collected_round"])
        self.store.uncollect_after(self.collected_round)

    def _enqueue(self, pairs: FragmentPairs) -> list[int]:
        """Queue each pair's clips, arrays and true returns; their ids."""
        if pairs.frames is None:
            raise ValueError("WebLabeller needs the fragments' frames: FragmentPairs(..., frames=(N, 2, L, H, W, 3))")
        returns = pairs.true_rewards.sum(axis=-1)
        new = []
        for i in range(len(pairs)):
            arrays = {name: getattr(pairs, name)[i] for name in _ARRAYS}
            data = io.BytesIO()
            np.savez_compressed(data, **arrays)
            key = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())).hexdigest()
            left, right = (self.clips.encode(clip) for clip in pairs.frames[i])
            metadata = {"true_returns": returns[i].tolist()}
            new.append(NewPair(left, right, CLIP_MEDIA_TYPE, data=data.getvalue(), metadata=metadata, key=key))
        return self.store.enqueue(new)

    def _wait_for(self, ids: list[int]) -> None:
        """Return once every pair of ``ids`` is answered; ``TimeoutError`` after ``timeout_s``."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while waiting := self.store.unanswered(ids):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(waiting)} of {len(ids)} pairs are still unanswered after {self.timeout_s} s")
            time.sleep(self.poll_s)

    def _collect(self, ids: list[int] | None) -> list[Collected]:
        """The store's uncollected answers (of ``ids`` only, unless None), recording the round."""
        round_, found = self.store.collect(ids)
        self.collected_round = round_
        return found


def _arrays_of(data: bytes | None) -> dict[str, np.ndarray]:
    """The arrays of a pair that :meth:`WebLabeller._enqueue` kept as ``data``."""
    if data is None:
        raise ValueError("a collected pair has no arrays: it was not queued by a WebLabeller")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in _ARRAYS}
