"""``sobirl-mf``: deterministic model-free SoBiRL (docs/math.md, section 5).

Per outer iteration: bring the follower to ``pi_k ~ pi*(x_k)`` (sample-based soft Q-learning warm-started from the
previous iteration, or the exact soft optimum; :mod:`sobirl.algorithms.model_free`), estimate

    g_k = mean_j grad_x l(data_j; x_k) + (1/tau) J^T W_k         (exploitation + exploration, one backward pass)

from a large batch of the follower's trajectories, and step ``x_{k+1} = x_k - beta g_k``.
"""

from __future__ import annotations

from sobirl.algorithms.model_free import ModelFreeConfig, ModelFreeLoop


class SoBiRLModelFree(ModelFreeLoop):
    """Model-free SoBiRL with large batches. Metrics: ``objective`` (the mean sampled loss, an estimate of ``f``),
    ``grad_norm`` (of the estimate, before clipping), ``samples`` and ``samples_total`` (transitions sampled)."""

    name = "sobirl-mf"
    Config = ModelFreeConfig

    def step(self) -> dict[str, float]:
        pi, lower_samples = self.follow(self.x)
        estimate = self.estimate(self.x, pi, self.generator)
        grad_norm = self.descend(estimate.grad)
        return {
            "objective": estimate.loss,
            "grad_norm": grad_norm,
            **self.count(lower_samples + estimate.transitions),
        }
