"""The paper's synthetic problem "RandMDP" (docs/math.md, section 4).

For each (s, a), ``k ~ U{1..S-1}`` successors are drawn without replacement with random normalised
probabilities; the reward is ``r_x(s, a) = c(s, a) * x^T M x`` with ``c = U1 * U2`` and ``M`` an ``n x n``
standard normal matrix; the leader minimises ``f(x, pi) = 1/2 |x|^2 + 1/2 sum pi^2``. Since
``sum_a pi(a|s)^2 >= 1/A``, the global minimum is ``f = S / (2A)`` (1.0 at the paper's S=10, A=5), reached at
``x = 0`` where the policy is uniform. ``x0 ~ N(0, I)``.
"""

from __future__ import annotations

import torch

from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import check_int, check_range


def random_mdp(
    S: int = 10, A: int = 5, n: int = 100, gamma: float = 0.5, tau: float = 1.0, seed: int = 0
) -> BilevelProblem:
    """Build the synthetic RandMDP bilevel problem; ``prob.x0`` holds the seeded starting point.

    Args:
        S: number of states (>= 2).
        A: number of actions (>= 1).
        n: dimension of the leader's parameters x (>= 1).
        gamma: discount in [0, 1).
        tau: entropy temperature (> 0).
        seed: seeds transitions, reward coefficients, M and x0.
    """
    check_int("S", S, low=2)
    check_int("A", A, low=1)
    check_int("n", n, low=1)
    check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)
    check_range("tau", tau, low=0.0, low_open=True)
    check_int("seed", seed, low=0)
    gen = torch.Generator().manual_seed(seed)

    # k successors per (s, a): the first k of a random permutation of the states.
    k = torch.randint(1, S, (S * A, 1), generator=gen)
    order = torch.rand(S * A, S, generator=gen).argsort(dim=1)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(S).expand(S * A, S))
    weights = torch.rand(S * A, S, generator=gen, dtype=DTYPE) * (rank < k)
    P = (weights / weights.sum(dim=1, keepdim=True)).view(S, A, S)

    c = torch.rand(S, A, generator=gen, dtype=DTYPE) * torch.rand(S, A, generator=gen, dtype=DTYPE)
    M = torch.randn(n, n, generator=gen, dtype=DTYPE)
    x0 = torch.randn(n, generator=gen, dtype=DTYPE)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return c * (x @ M @ x)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).sum() + 0.5 * (pi * pi).sum()

    mdp = TabularMDP(P, gamma=gamma, tau=tau)
    name = f"random-mdp-S{S}-A{A}-n{n}-seed{seed}"
    # The seed authors' synthetic run: beta = 8e-3 (every method's default) and M-SoBiRL's zeta = 0.5.
    return BilevelProblem(mdp, reward=reward, upper=upper, x0=x0, name=name, defaults={"m-sobirl": {"zeta": 0.5}})
