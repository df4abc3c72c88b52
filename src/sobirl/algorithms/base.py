"""The interface every outer-loop method shares: a config, a ``step()``, and the history ``solve`` records."""

from __future__ import annotations

import csv
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from sobirl.tabular.hypergrad import as_parameters
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_range


@dataclass(frozen=True)
class MethodConfig:
    """Base of each method's hyper-parameters: the leader's step, shared by every method.

    Subclasses add their own fields (all with defaults) and validate them in ``__post_init__`` after calling
    ``super().__post_init__()``.

    Attributes:
        beta: leader step size (> 0): ``x <- x - beta g``.
        clip: gradient-norm clipping (> 0), or None: the step is along ``g * min(1, clip / |g|)``.
    """

    beta: float = 8e-3
    clip: float | None = None

    def __post_init__(self) -> None:
        check_range("beta", self.beta, low=0.0, low_open=True)
        if self.clip is not None:
            check_range("clip", self.clip, low=0.0, low_open=True)

    @classmethod
    def from_params(cls, method: str, params: dict[str, Any]) -> MethodConfig:
        """Build the config from keyword arguments, rejecting unknown names with the valid ones listed."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise TypeError(
                f"method {method!r} got unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid) or 'none'}"
            )
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters as a plain dict (for configs and ``solve(**params)``)."""
        return dataclasses.asdict(self)


class OuterLoop(ABC):
    """One bilevel method: holds its iterate ``x`` and whatever it warm-starts, advances by :meth:`step`.

    Subclasses set ``name`` and ``Config`` and implement :meth:`step`, which updates ``self.x`` and returns
    at least ``objective`` (the method's own estimate of ``f`` at the iterate before the step) and
    ``grad_norm`` (the norm of the hyper-gradient estimate it stepped along).
    """

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]]

    def __init__(self, prob: BilevelProblem, x0: torch.Tensor, config: MethodConfig) -> None:
        self.prob = prob
        self.mdp = prob.mdp
        self.config = config
        self.x = as_parameters(x0).detach()

    def descend(self, grad: torch.Tensor, beta: float | None = None) -> float:
        """``x <- x - beta g``, with ``g`` clipped to norm ``clip`` when set; returns ``|g|`` before clipping.

        ``beta`` overrides the configured step (for methods with a step-size schedule).
        """
        norm = torch.linalg.vector_norm(grad).item()
        clip = self.config.clip
        if clip is not None and norm > clip:
            grad = grad * (clip / norm)
        step = self.config.beta if beta is None else beta
        self.x = (self.x.detach() - step * grad).detach()
        return norm

    @classmethod
    def check_problem(cls, prob: BilevelProblem) -> None:
        """Raise ValueError, saying why, when this method cannot run on ``prob`` (every problem is fine here)."""
        return None

    @abstractmethod
    def step(self) -> dict[str, float]:
        """One outer iteration: move ``self.x`` and return its metrics."""


@dataclass
class History:
    """Per-iteration metrics of a run: one dict per iteration, columns in first-seen order.

    ``history["objective"]`` gives a column as a list (rows lacking the key are skipped, e.g. exact
    evaluations recorded only every few iterations; ``history.iterations(name)`` gives their indices).
    """

    rows: list[dict[str, float]] = field(default_factory=list)

    def append(self, row: dict[str, float]) -> None:
        """Add one iteration's row."""
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> list[float]:
        if not any(name in row for row in self.rows):
            raise KeyError(f"no column {name!r}; columns: {', '.join(self.columns)}")
        return [row[name] for row in self.rows if name in row]

    def iterations(self, name: str) -> list[int]:
        """The iteration indices at which column ``name`` was recorded."""
        return [int(row["iteration"]) for row in self.rows if name in row]

    @property
    def columns(self) -> list[str]:
        """Every column name, in the order first seen."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def to_csv(self, path: str | Path) -> None:
        """Write all rows as CSV (missing cells empty)."""
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


@dataclass(frozen=True)
class SolveResult:
    """What :func:`sobirl.algorithms.solve` returns: the final iterate and the history of the run."""

    x: torch.Tensor
    history: History
    method: str
    config: MethodConfig
