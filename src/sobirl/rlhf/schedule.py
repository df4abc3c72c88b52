"""How many preference pairs to have queried after ``t`` agent steps: initial pairs, then a constant or hyperbolic rate.

With ``x = min(t, total_steps) / total_steps`` the fraction of the run done, the cumulative target is

    C(t) = initial_pairs + floor((total_pairs - initial_pairs) F(x)),
    constant:    F(x) = x                                  (rate proportional to 1),
    hyperbolic:  F(x) = log(1 + k x) / log(1 + k)          (rate proportional to 1 / (1 + k x)), k = hyperbolic_rate,

so ``C(0) = initial_pairs``, ``C(total_steps) = total_pairs`` exactly, and ``C`` never decreases. The hyperbolic
rate is the decaying schedule of Christiano et al. 2017 (rate ``c / (c + t)`` with ``c = total_steps / k``): at the
end of the run it is ``1 / (1 + k)`` of its initial value. The seed authors' setting (design math, section 7):
600 initial pairs, hyperbolic, about 3000 pairs over about 4.3M agent steps.

A training loop asks :meth:`QuerySchedule.pairs_to_query` at any steps it likes (e.g. before each reward update):
the answers add up to ``C`` of the last step asked, so to ``total_pairs`` once ``t >= total_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sobirl.validation import check_choice, check_int, check_range

SCHEDULES = ("constant", "hyperbolic")
"""The rates :class:`QuerySchedule` knows (module docstring)."""


@dataclass(frozen=True)
class QuerySchedule:
    """The cumulative number of preference pairs to query against agent steps (module docstring).

    Attributes:
        total_pairs: pairs queried over the whole run (an integer ``>= initial_pairs``, ``>= 1``).
        total_steps: agent steps of the run (an integer ``>= 1``).
        initial_pairs: pairs queried at step 0 (an integer ``>= 0``).
        kind: one of :data:`SCHEDULES`.
        hyperbolic_rate: ``k > 0`` of the hyperbolic rate ``1 / (1 + k x)``; unused by ``"constant"``.
    """

    total_pairs: int
    total_steps: int
    initial_pairs: int = 0
    kind: str = "hyperbolic"
    hyperbolic_rate: float = 1.0

    def __post_init__(self) -> None:
        check_int("total_pairs", self.total_pairs, low=1)
        check_int("total_steps", self.total_steps, low=1)
        check_int("initial_pairs", self.initial_pairs, low=0)
        if self.initial_pairs > self.total_pairs:
            raise ValueError(
                f"initial_pairs must be at most total_pairs = {self.total_pairs}, got {self.initial_pairs}"
            )
        check_choice("kind", self.kind, SCHEDULES)
        check_range("hyperbolic_rate", self.hyperbolic_rate, low=0.0, low_open=True)

    def fraction(self, step: int) -> float:
        """``F(x)``: the fraction of the pairs after the initial ones due by agent step ``step`` (``>= 0``)."""
        x = min(check_int("step", step, low=0), self.total_steps) / self.total_steps
        if self.kind == "constant":
            return x
        k = self.hyperbolic_rate
        return math.log1p(k * x) / math.log1p(k)  # at x = 1 numerator and denominator are the same float: F = 1

    def cumulative(self, step: int) -> int:
        """``C(step)``: the pairs that should have been queried by agent step ``step``."""
        return self.initial_pairs + math.floor((self.total_pairs - self.initial_pairs) * self.fraction(step))

    def pairs_to_query(self, step: int, queried: int) -> int:
        """The new pairs to query at agent step ``step`` when ``queried`` pairs were queried so far (never < 0)."""
        return max(self.cumulative(step) - check_int("queried", queried, low=0), 0)
