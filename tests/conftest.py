"""Shared builders for tests: small random MDPs and bilevel problems with nonlinear parameterisations."""

from __future__ import annotations

import torch
from hypothesis import settings

from sobirl.tabular import BilevelProblem, TabularMDP

# Property-based tests: 60 examples by default, the same on every run (derandomized), so the suite does not flake on a
# newly drawn case; `pytest --hypothesis-profile=stress` searches 2000 random examples.
settings.register_profile("default", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("stress", max_examples=2000, deadline=None)

torch.set_num_threads(1)  # tests run in parallel workers; one thread each keeps them from competing

F64 = torch.float64


def random_transitions(S: int, A: int, gen: torch.Generator, *, sparsity: float = 0.5) -> torch.Tensor:
    """A dense (S, A, S) transition tensor with roughly ``sparsity`` zeros per row (never an empty row)."""
    weights = torch.rand(S, A, S, generator=gen, dtype=F64)
    keep = torch.rand(S, A, S, generator=gen) >= sparsity
    keep[..., 0] |= ~keep.any(dim=-1)
    weights = weights * keep
    return weights / weights.sum(dim=-1, keepdim=True)


def to_sparse(P: torch.Tensor, layout: str = "coo") -> torch.Tensor:
    """The (S*A, S) sparse form of a dense (S, A, S) transition tensor."""
    S, A, _ = P.shape
    flat = P.reshape(S * A, S)
    return flat.to_sparse_csr() if layout == "csr" else flat.to_sparse()


def nonlinear_problem(
    P: torch.Tensor,
    *,
    gamma: float,
    tau: float,
    n: int,
    gen: torch.Generator,
    reward_scale: float = 1.0,
    upper_kind: str = "mixed",
) -> BilevelProblem:
    """A problem whose reward is nonlinear in x and whose upper objective depends on x and pi.

    ``P`` may be dense or sparse; ``upper_kind="policy"`` makes ``f`` depend on ``pi`` only.
    """
    S, A = (P.shape[0], P.shape[1]) if P.layout == torch.strided else (P.shape[1], P.shape[0] // P.shape[1])
    F1 = torch.randn(S, A, n, generator=gen, dtype=F64)
    F2 = torch.randn(S, A, n, generator=gen, dtype=F64) / n
    C = torch.randn(S, A, generator=gen, dtype=F64)
    D = torch.rand(S, A, generator=gen, dtype=F64)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return reward_scale * (torch.tanh(F1 @ x) + 0.5 * (F2 @ x) ** 2)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        f = (C * pi).sum() + (D * pi * pi).sum()
        if upper_kind == "mixed":
            f = f + torch.sin(x).sum() + 0.5 * (x * x).sum() * pi[0, 0]
        return f

    return BilevelProblem(TabularMDP(P, gamma=gamma, tau=tau), reward=reward, upper=upper)


def central_difference(fn, x: torch.Tensor, h: float) -> torch.Tensor:
    """Fourth-order central finite differences (five-point stencil) of a scalar function, per coordinate.

    Truncation error O(h^4) lets ``h`` be large enough (~1e-4) for float64 rounding to stay near 1e-12.
    """
    grads = []
    for i in range(x.numel()):
        e = torch.zeros_like(x)
        e[i] = h
        near = fn(x + e) - fn(x - e)
        far = fn(x + 2 * e) - fn(x - 2 * e)
        grads.append((8 * near - far) / (12 * h))
    return torch.stack(grads)
