"""Preference labels between fragment pairs: who gives them (a :class:`PreferenceGatherer`) and where they are kept.

A label ``y`` in ``[0, 1]`` is the probability that the pair's first fragment is preferred (1: the first, 0: the
second, 0.5: indifferent). The synthetic labeller is the Bradley-Terry model of the design's math, section 5, on
the environment's true rewards:

    R_k = sum_{t=0}^{L-1} discount^t r_true(s_t^k, a_t^k),    p = sigmoid((R_1 - R_2) / temperature),

and with probability ``noise`` the label is replaced by a uniformly random one, so

    P(y = 1) = (1 - noise) p + noise / 2.

:class:`PreferenceDataset` keeps labelled pairs in a bounded FIFO queue (the seed authors keep 3000).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np

from sobirl.rlhf.fragments import FragmentPairs
from sobirl.validation import check_choice, check_int, check_range

LABEL_MODES = ("sampled", "probability")
"""``"sampled"``: 0/1 labels drawn from ``P(y = 1)``; ``"probability"``: ``P(y = 1)`` itself."""


class PreferenceGatherer(ABC):
    """Labels fragment pairs. Subclass it for a human labeller (it may block until the answers are in)."""

    @abstractmethod
    def __call__(self, pairs: FragmentPairs) -> np.ndarray:
        """float64 ``(N,)`` labels in ``[0, 1]``: the probability that each pair's first fragment is preferred."""


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


class PreferenceDataset:
    """Labelled fragment pairs in a FIFO queue of at most ``capacity`` pairs (the oldest are evicted first).

    The arrays are allocated at the first :meth:`push`; every later push must have the same fragment length and
    observation/action shapes. ``save``/``load`` round-trip exactly (values, dtypes, order, capacity).

    Args:
        capacity: the most pairs kept (an integer ``>= 1``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = check_int("capacity", capacity, low=1)
        self._data: dict[str, np.ndarray] = {}  # observations, actions, true_rewards, labels; leading axis capacity
        self._next = 0  # the slot the next pair goes to
        self._size = 0

    def __len__(self) -> int:
        """The number of pairs kept."""
        return self._size

    def push(self, pairs: FragmentPairs, labels: np.ndarray) -> None:
        """Append ``pairs`` with their labels (float ``(N,)`` in ``[0, 1]``), evicting the oldest beyond capacity."""
        labels = np.asarray(labels, dtype=np.float64)
        if labels.shape != (len(pairs),):
            raise ValueError(f"labels must have shape (N,) = ({len(pairs)},), got {labels.shape}")
        if not np.all((labels >= 0.0) & (labels <= 1.0)):
            raise ValueError("labels must be probabilities in [0, 1]")
        new = {
            "observations": pairs.observations,
            "actions": pairs.actions,
            "true_rewards": pairs.true_rewards,
            "labels": labels,
        }
        if not self._data:
            self._data = {k: np.empty((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in new.items()}
        for key, value in new.items():
            if value.shape[1:] != self._data[key].shape[1:]:
                raise ValueError(f"{key} must have per-pair shape {self._data[key].shape[1:]}, got {value.shape[1:]}")
        n = min(len(pairs), self.capacity)  # of a push larger than the queue only the newest pairs survive
        slots = (self._next + np.arange(n)) % self.capacity
        for key, value in new.items():
            self._data[key][slots] = value[len(pairs) - n :]
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def _order(self) -> np.ndarray:
        """The slots of the kept pairs, oldest first."""
        return (self._next - self._size + np.arange(self._size)) % self.capacity

    def _take(self, slots: np.ndarray) -> tuple[FragmentPairs, np.ndarray]:
        """The pairs and labels in ``slots`` (fancy indexing: copies)."""
        d = self._data
        pairs = FragmentPairs(d["observations"][slots], d["actions"][slots], d["true_rewards"][slots])
        return pairs, d["labels"][slots]

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
        """Write the capacity and the kept pairs, oldest first, to ``path`` (npz, the name used as given)."""
        arrays: dict[str, np.ndarray] = {"capacity": np.array(self.capacity)}
        if self._size:
            order = self._order()
            arrays.update({k: v[order] for k, v in self._data.items()})
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PreferenceDataset:
        """The dataset :meth:`save` wrote to ``path``."""
        with np.load(path, allow_pickle=False) as f:
            dataset = cls(int(f["capacity"]))
            if "labels" in f:
                dataset.push(FragmentPairs(f["observations"], f["actions"], f["true_rewards"]), f["labels"])
        return dataset
