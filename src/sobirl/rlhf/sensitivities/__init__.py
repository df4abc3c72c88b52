"""Deep estimators of the exploration term's ``dQ/dx - dV/dx`` (:class:`Sensitivity`), by name."""

from sobirl.rlhf.sensitivities.base import Sensitivity, taken_and_baseline
from sobirl.rlhf.sensitivities.monte_carlo import MonteCarlo
from sobirl.rlhf.sensitivities.one_step import OneStep
from sobirl.rlhf.sensitivities.successor_features import SuccessorFeaturesSensitivity

__all__ = [
    "SENSITIVITIES",
    "MonteCarlo",
    "OneStep",
    "Sensitivity",
    "SuccessorFeaturesSensitivity",
    "taken_and_baseline",
]

SENSITIVITIES: dict[str, type[Sensitivity]] = {
    "successor-features": SuccessorFeaturesSensitivity,
    "one-step": OneStep,
    "monte-carlo": MonteCarlo,
}
"""The estimators by name (the ``estimator`` setting of ``sobirl``, ``stoc-sobirl`` and ``hpgd``)."""
