"""Preference labels between fragment pairs: who gives them (a :class:`PreferenceGatherer`) and where they are kept.

A label ``y`` in ``[0, 1]`` is the probability that the pair's first fragment is preferred (1: the first, 0: the
second, 0.5: indifferent), or NaN where the labeller could not judge the pair (a person's "can't tell"; the dataset
drops it). The synthetic labeller is the Bradley-Terry model of the design's math, section 5, on the environment's
true rewards:

    R_k = sum_{t=0}^{L-1} discount^t r_true(s_t^k, a_t^k),    p = sigmoid((R_1 - R_2) / temperature),

and with probability ``noise`` the label is replaced by a uniformly random one, so

    P(y = 1) = (1 - noise) p + noise / 2.

:class:`PreferenceDataset` keeps labelled pairs in a bounded FIFO queue (the seed authors keep 3000), Atari frame
stacks as their distinct frames (:mod:`sobirl.rlhf.frame_stacks`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from sobirl.rlhf.fragments import FragmentPairs
from sobirl.rlhf.frame_stacks import frames_of, stacks_of
from sobirl.validation import check_choice, check_int, check_range

LABEL_MODES = ("sampled", "probability")
"""``"sampled"``: 0/1 labels drawn from ``P(y = 1)``; ``"probability"``: ``P(y = 1)`` itself."""


class PreferenceGatherer(ABC):
    """Labels fragment pairs. Subclass it for a human labeller (it may block until the answers are in; a human
    labeller: :class:`sobirl.rlhf.human.WebLabeller`)."""

    needs_frames: bool = False
    """Whether the pairs it labels must carry :attr:`FragmentPairs.frames` (a person judges what they see)."""

    @abstractmethod
    def __call__(self, pairs: FragmentPairs) -> np.ndarray:
        """float64 ``(N,)`` labels in ``[0, 1]``: the probability that each pair's first fragment is preferred, or
        NaN for a pair the labeller could not judge (:meth:`PreferenceDataset.push` drops it)."""

    def gather(self, pairs: FragmentPairs) -> tuple[FragmentPairs, np.ndarray]:
        """Ask for labels of ``pairs`` and return the pairs that have labels now with their labels, as
        :meth:`__call__`'s. Here: ``(pairs, self(pairs))``; a labeller that answers later (a person) may return fewer
        pairs, or pairs asked for at earlier calls."""
        return pairs, self(pairs)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must record to resume labelling where it was (plain Python values and numpy arrays)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s ``state`` (here: none; anything else is an error)."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")


class SyntheticLabeller(PreferenceGatherer):
    """Bradley-Terry labels from the true rewards (module docstring).

    Args:
        temperature: ``> 0``; the return difference that moves the log-odds by one.
        noise: in ``[0, 1]``; the probability that a label is replaced by a uniformly random one.
        discount: in ``[0, 1]``; the discount of the fragment returns (1: plain sums, as the seed authors).
        labels: one of :data:`LABEL_MODES`; ``"sampled"`` (default) draws ``y ~ Bernoulli(P(y = 1))`` as the
            seed authors do, ``"probability"`` returns ``P(y = 1)`` (no randomness).
        generator: a numpy Generator or a seed for the draws of ``"sampled"``.
    """

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        noise: float = 0.0,
        discount: float = 1.0,
        labels: str = "sampled",
        generator: np.random.Generator | int | None = None,
    ) -> None:
        self.temperature = check_range("temperature", temperature, low=0.0, low_open=True)
        self.noise = check_range("noise", noise, low=0.0, high=1.0)
        self.discount = check_range("discount", discount, low=0.0, high=1.0)
        self.labels = check_choice("labels", labels, LABEL_MODES)
        self.generator = np.random.default_rng(generator)

    def returns(self, pairs: FragmentPairs) -> np.ndarray:
        """float64 ``(N, 2)``: each fragment's discounted true return ``R_k``."""
        weights = self.discount ** np.arange(pairs.fragment_length, dtype=np.float64)
        return pairs.true_rewards @ weights

    def probabilities(self, pairs: FragmentPairs) -> np.ndarray:
        """float64 ``(N,)``: ``P(y = 1) = (1 - noise) sigmoid((R_1 - R_2) / temperature) + noise / 2``."""
        R = self.returns(pairs)
        z = (R[:, 0] - R[:, 1]) / self.temperature
        p = np.exp(-np.logaddexp(0.0, -z))  # sigmoid(z) without overflow for large |z|
        return (1.0 - self.noise) * p + 0.5 * self.noise

    def __call__(self, pairs: FragmentPairs) -> np.ndarray:
        """The labels: ``P(y = 1)``, or 0/1 draws from it (``labels``)."""
        p = self.probabilities(pairs)
        if self.labels == "probability":
            return p
        return (self.generator.random(p.shape) < p).astype(np.float64)

    def state_dict(self) -> dict[str, Any]:
        """The state of ``generator``."""
        return {"generator": self.generator.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``generator``'s state."""
        self.generator.bit_generator.state = state["generator"]


class PreferenceDataset:
    """Labelled fragment pairs in a FIFO queue of at most ``capacity`` pairs (the oldest are evicted first).

    The arrays are allocated at the first :meth:`push`; every later push must have the same fragment length and
    observation/action shapes. ``save``/``load`` round-trip exactly (values, dtypes, order, capacity, frame_stack).

    With ``frame_stack = k`` the observations are stacks of ``k`` frames, ``(k, *frame_shape)`` (Atari,
    :func:`sobirl.envs.make_atari`), and each fragment is kept as its ``L + k - 1`` distinct frames
    (:mod:`sobirl.rlhf.frame_stacks`): 28 frames instead of 100 for ``L = 25``, ``k = 4``, i.e. 1.2 GB instead of
    4.2 GB for 3000 pairs of 84x84 frames. Pairs come back out of :meth:`sample` and :meth:`contents` as the stacks
    that went in, bit for bit.

    Args:
        capacity: the most pairs kept (an integer ``>= 1``).
        frame_stack: ``k`` (an integer ``>= 1``) for observations that are frame stacks, else None.
    """

    def __init__(self, capacity: int, *, frame_stack: int | None = None) -> None:
        self.capacity = check_int("capacity", capacity, low=1)
        self.frame_stack = None if frame_stack is None else check_int("frame_stack", frame_stack, low=1)
        # observations (or frames), actions, true_rewards, labels; leading axis capacity
        self._data: dict[str, np.ndarray] = {}
        self._next = 0  # the slot the next pair goes to
        self._size = 0

    def __len__(self) -> int:
        """The number of pairs kept."""
        return self._size

    def push(self, pairs: FragmentPairs, labels: np.ndarray) -> None:
        """Append ``pairs`` with their labels (float ``(N,)`` in ``[0, 1]``), evicting the oldest beyond capacity.
        A pair whose label is NaN (the labeller could not judge it) is dropped; ``pairs.frames`` is not kept.

        Raises:
            ValueError: labels of another shape or outside ``[0, 1]`` (NaN aside), pairs of other per-pair shapes
                than the first push's, or (with ``frame_stack``) observations that are not frame stacks.
        """
        labels = np.asarray(labels, dtype=np.float64)
        if labels.shape != (len(pairs),):
            raise ValueError(f"labels must have shape (N,) = ({len(pairs)},), got {labels.shape}")
        judged = ~np.isnan(labels)
        if not judged.all():
            pairs, labels = pairs[judged], labels[judged]
        if not np.all((labels >= 0.0) & (labels <= 1.0)):
            raise ValueError("labels must be probabilities in [0, 1] (or NaN: pair dropped)")
        new = {
            "observations": pairs.observations,
            "actions": pairs.actions,
            "true_rewards": pairs.true_rewards,
            "labels": labels,
        }
        for key, value in new.items():
            if self._data and value.shape[1:] != self._pair_shape(key):
                raise ValueError(f"{key} must have per-pair shape {self._pair_shape(key)}, got {value.shape[1:]}")
        n = min(len(pairs), self.capacity)  # of a push larger than the queue only the newest pairs survive
        new = {k: v[len(pairs) - n :] for k, v in new.items()}
        if self.frame_stack is not None:
            new["frames"] = frames_of(new.pop("observations"), self.frame_stack, axis=2)
        if not self._data:
            self._allocate(new)
        slots = (self._next + np.arange(n)) % self.capacity
        for key, value in new.items():
            self._data[key][slots] = value
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def _allocate(self, like: dict[str, np.ndarray]) -> None:
        """The arrays of ``capacity`` pairs, each field shaped and typed as in ``like`` (stored form: frames)."""
        self._data = {k: np.empty((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in like.items()}

    def _pair_shape(self, key: str) -> tuple[int, ...]:
        """The per-pair shape a pushed field must have: the stored one, or the stacks of the stored frames."""
        if key == "observations" and self.frame_stack is not None:
            two, n_frames, *frame_shape = self._data["frames"].shape[1:]
            return (two, n_frames - self.frame_stack + 1, self.frame_stack, *frame_shape)
        return self._data[key].shape[1:]

    def _order(self) -> np.ndarray:
        """The slots of the kept pairs, oldest first."""
        return (self._next - self._size + np.arange(self._size)) % self.capacity

    def _take(self, slots: np.ndarray) -> tuple[FragmentPairs, np.ndarray]:
        """The pairs and labels in ``slots`` (fancy indexing: copies)."""
        d = self._data
        if self.frame_stack is None:
            obs = d["observations"][slots]
        else:
            obs = stacks_of(d["frames"][slots], self.frame_stack, axis=2)
        return FragmentPairs(obs, d["actions"][slots], d["true_rewards"][slots]), d["labels"][slots]

    def contents(self) -> tuple[FragmentPairs, np.ndarray]:
        """Every kept pair and its label, oldest first (copies)."""
        if not self._size:
            raise ValueError("the dataset is empty; push pairs first")
        return self._take(self._order())

    def sample(
        self, batch_size: int, generator: np.random.Generator, *, newest: int | None = None
    ) -> tuple[FragmentPairs, np.ndarray]:
        """``batch_size`` distinct pairs drawn uniformly (without replacement) with ``generator``, and their labels;
        from the ``newest`` most recently pushed pairs only (all of them if fewer are kept), or from every kept pair
        when ``newest`` is None."""
        check_int("batch_size", batch_size, low=1)
        pool = self._size if newest is None else min(check_int("newest", newest, low=1), self._size)
        if batch_size > pool:
            raise ValueError(f"batch_size must be at most the number of pairs drawn from ({pool}), got {batch_size}")
        return self._take(self._order()[self._size - pool + generator.choice(pool, size=batch_size, replace=False)])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the capacity, ``frame_stack`` and the kept pairs, oldest first (with ``frame_stack``, as frames), to
        ``path`` (npz, the name used as given)."""
        arrays: dict[str, np.ndarray] = {"capacity": np.array(self.capacity)}
        if self.frame_stack is not None:
            arrays["frame_stack"] = np.array(self.frame_stack)
        if self._size:
            order = self._order()
            arrays.update({k: v[order] for k, v in self._data.items()})
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PreferenceDataset:
        """The dataset :meth:`save` wrote to ``path`` (a file without ``frame_stack``, every stack whole, loads as a
        dataset without it)."""
        with np.load(path, allow_pickle=False) as f:
            frame_stack = int(f["frame_stack"]) if "frame_stack" in f else None
            dataset = cls(int(f["capacity"]), frame_stack=frame_stack)
            if "labels" not in f:
                return dataset
            obs_key = "observations" if frame_stack is None else "frames"
            stored = {k: f[k] for k in (obs_key, "actions", "true_rewards", "labels")}
        n = len(stored["labels"])
        dataset._allocate(stored)
        for key, value in stored.items():
            dataset._data[key][:n] = value
        dataset._next, dataset._size = n % dataset.capacity, n
        return dataset
