"""Problems with a distribution over contexts: several MDPs sharing the leader's parameters ``x``.

    phi(x) = sum_c w_c f_c(x, pi*_c(x)),   grad phi(x) = sum_c w_c grad phi_c(x)

The contexts are joined into ONE block-diagonal MDP (no transition crosses a block), so the follower's soft
optimum on the joint MDP is the per-context optimum on each block, and everything built for a single
:class:`~sobirl.tabular.BilevelProblem` (``hyperobjective``, ``hypergradient``, every method of ``solve``)
handles contexts unchanged, at the cost of one linear solve over all of them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sobirl.tabular.mdp import DTYPE, TabularMDP
from sobirl.tabular.problem import BilevelProblem, RewardFn, UpperFn
from sobirl.validation import check_range


@dataclass(frozen=True)
class Context:
    """One context: its MDP, the follower's reward ``r_c(x)``, the leader's objective ``f_c(x, pi_c)`` and its
    probability ``weight``."""

    mdp: TabularMDP
    reward: RewardFn
    upper: UpperFn
    weight: float


class ContextualProblem(BilevelProblem):
    """A :class:`BilevelProblem` over the joint MDP of several contexts.

    Attributes:
        contexts: the contexts, in order.
        context_slices: the joint-state slice owned by each context (``pi[problem.context_slices[c]]`` is the
            follower's policy in context ``c``).
    """

    def __init__(
        self,
        mdp: TabularMDP,
        reward: RewardFn,
        upper: UpperFn,
        contexts: Sequence[Context],
        context_slices: list[slice],
        *,
        x0: torch.Tensor | None = None,
        name: str = "contextual",
        defaults: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(mdp, reward, upper, x0=x0, name=name, defaults=defaults)
        self.contexts = list(contexts)
        self.context_slices = context_slices


def contextual_problem(
    contexts: Sequence[Context],
    *,
    x0: torch.Tensor | None = None,
    name: str = "contextual",
    defaults: dict[str, dict[str, Any]] | None = None,
) -> ContextualProblem:
    """Join contexts into one problem whose objective is the weighted sum over contexts.

    The joint MDP stacks the contexts' states in order (context ``c`` owns ``problem.context_slices[c]``); its
    ``rho`` is the mixture ``w_c rho_c`` and its ``terminal`` mask the concatenation. All contexts must share
    ``A``, ``gamma`` and ``tau``, and the weights must form a distribution.

    Raises:
        ValueError: naming the context and the mismatched field, or invalid weights.
    """
    if not contexts:
        raise ValueError("contexts must be a non-empty sequence of Context")
    first = contexts[0].mdp
    for i, ctx in enumerate(contexts):
        for field in ("n_actions", "gamma", "tau"):
            if getattr(ctx.mdp, field) != getattr(first, field):
                raise ValueError(
                    f"context {i}: {field} = {getattr(ctx.mdp, field)} differs from context 0's {getattr(first, field)}"
                )
        check_range(f"context {i} weight", ctx.weight, low=0.0)
    weights = torch.tensor([ctx.weight for ctx in contexts], dtype=DTYPE)
    weights = TabularMDP.check_distribution("context weights", weights, len(contexts))

    sizes = [ctx.mdp.n_states for ctx in contexts]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    slices = [slice(o, o + n) for o, n in zip(offsets, sizes, strict=True)]
    mdp = TabularMDP(
        _block_diagonal(contexts, offsets, sum(sizes)),
        gamma=first.gamma,
        tau=first.tau,
        rho=torch.cat([w * ctx.mdp.rho for w, ctx in zip(weights, contexts, strict=True)]),
        terminal=torch.cat([ctx.mdp.terminal for ctx in contexts]),
    )

    def reward(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([ctx.reward(x) for ctx in contexts])

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return sum(w * ctx.upper(x, pi[sl]) for w, ctx, sl in zip(weights, contexts, slices, strict=True))

    return ContextualProblem(mdp, reward, upper, contexts, slices, x0=x0, name=name, defaults=defaults)


def _block_diagonal(contexts: Sequence[Context], offsets: list[int], S: int) -> torch.Tensor:
    """The joint ``P``: dense ``(S, A, S)`` when every context's ``P`` is dense (so that methods needing a dense
    ``P``, such as PARL, still apply), otherwise a sparse ``(S*A, S)`` COO matrix."""
    A = contexts[0].mdp.n_actions
    if not any(ctx.mdp.is_sparse for ctx in contexts):
        joint = torch.zeros(S, A, S, dtype=DTYPE)
        for ctx, offset in zip(contexts, offsets, strict=True):
            block = slice(offset, offset + ctx.mdp.n_states)
            joint[block, :, block] = ctx.mdp.P
        return joint
    indices, values = [], []
    for ctx, offset in zip(contexts, offsets, strict=True):
        P = ctx.mdp.P if ctx.mdp.is_sparse else ctx.mdp.P.reshape(-1, ctx.mdp.n_states)
        P = P.to_sparse_coo().coalesce()
        rows, cols = P.indices()
        indices.append(torch.stack([rows + offset * A, cols + offset]))
        values.append(P.values())
    joint = torch.sparse_coo_tensor(torch.cat(indices, dim=1), torch.cat(values), (S * A, S), check_invariants=False)
    return joint.coalesce()
