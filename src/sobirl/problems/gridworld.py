"""Slippery grid worlds: large sparse MDPs for scaling the exact tabular engine.

A ``side x side`` grid with four actions (up, right, down, left). State ``row * side + col``. The intended
move happens with probability ``1 - slip`` and each of the three other moves with probability ``slip / 3``;
a move that would leave the grid stays put. Every ``(s, a)`` therefore has at most four successors, so ``P``
is stored sparse (``nnz <= 4 S A``) and built with index arithmetic only (no loop over states).

:func:`gridworld_problem` turns the grid into a reward-shaping benchmark (docs/math.md, section 1): the leader
adds a bounded bonus ``tanh(x[s])`` to every action of state ``s`` and wants the follower's policy to score
well on a fixed random table ``c``, with a small quadratic cost on ``x``.
"""

from __future__ import annotations

import torch

from sobirl.tabular import BilevelProblem, TabularMDP
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_int, check_range

N_ACTIONS = 4
"""Actions in order: up, right, down, left."""

MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""``(d_row, d_col)`` of each action, in action order (up, right, down, left)."""

X_COST = 1e-2
"""Weight of the leader's quadratic cost ``0.5 * X_COST * |x|^2`` in :func:`gridworld_problem`."""

X0_STD = 0.1
"""Standard deviation of the seeded initial leader parameters returned by :func:`gridworld_problem`."""


def gridworld_mdp(
    side: int,
    *,
    slip: float = 0.1,
    gamma: float = 0.9,
    tau: float = 0.1,
) -> TabularMDP:
    """A slippery ``side x side`` grid world as a sparse :class:`~sobirl.tabular.TabularMDP`.

    Args:
        side: grid side length, an integer ``>= 1``; ``S = side**2`` states, state index ``row * side + col``.
        slip: probability mass moved from the intended action to the three others (``slip / 3`` each),
            in ``[0, 1]``.
        gamma: discount factor in ``[0, 1)``.
        tau: entropy temperature, ``> 0``.

    Returns:
        The MDP, with ``P`` a coalesced torch sparse COO tensor of shape ``(S*4, S)`` whose row ``s*4 + a``
        is ``P(.|s, a)``. Duplicate successors (moves into a wall) are merged by summation, and zero
        probabilities (``slip`` of 0 or 1) are not stored.

    Raises:
        TypeError: when ``side`` is not an integer.
        ValueError: naming the field and its allowed range, when ``side < 1``, ``slip`` is outside ``[0, 1]``,
            ``gamma`` outside ``[0, 1)`` or ``tau <= 0``.
    """
    side = check_int("side", side, low=1)
    slip = check_range("slip", slip, low=0.0, high=1.0)
    check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)  # fail before building P
    check_range("tau", tau, low=0.0, low_open=True)
    S, A = side * side, N_ACTIONS

    # Each (s, a) can only reach the five cells s - side, s - 1, s, s + 1, s + side ("slots", in column order).
    # Map every actual move to its slot (an off-grid move stays put: slot 2), add up the probabilities that
    # land in the same slot, and drop the zero ones: rows in order, columns sorted and unique per row, so the
    # entries come out already coalesced and no sort over the ~4*S*A entries is needed.
    state = torch.arange(S)
    row, col = torch.div(state, side, rounding_mode="floor"), state % side
    stay = torch.tensor(2)
    slot = torch.stack(
        [
            torch.where(row > 0, torch.tensor(0), stay),  # up
            torch.where(col < side - 1, torch.tensor(3), stay),  # right
            torch.where(row < side - 1, torch.tensor(4), stay),  # down
            torch.where(col > 0, torch.tensor(1), stay),  # left
        ],
        dim=1,
    )  # (S, 4): slot reached by each actual move
    offset = torch.tensor([-side, -1, 0, 1, side])

    # Probability of actual move m given intended action a, (A, 4).
    move_prob = torch.full((A, N_ACTIONS), slip / (N_ACTIONS - 1), dtype=DTYPE)
    move_prob.fill_diagonal_(1.0 - slip)
    lands = torch.nn.functional.one_hot(slot, num_classes=5).to(DTYPE)  # (S, 4 moves, 5 slots)
    prob = torch.einsum("am,smk->sak", move_prob, lands)  # (S, A, 5 slots)

    keep = prob > 0
    rows = (state.view(S, 1, 1) * A + torch.arange(A).view(1, A, 1)).expand(S, A, 5)[keep]
    cols = (state.view(S, 1, 1) + offset.view(1, 1, 5)).expand(S, A, 5)[keep]
    P = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), prob[keep], (S * A, S), check_invariants=False, is_coalesced=True
    )
    return TabularMDP(P, gamma=gamma, tau=tau)


def gridworld_problem(
    side: int,
    *,
    slip: float = 0.1,
    gamma: float = 0.9,
    tau: float = 0.1,
    seed: int = 0,
) -> BilevelProblem:
    """A reward-shaping benchmark on :func:`gridworld_mdp`, with one leader parameter per state.

    With ``S = side**2`` and ``x in R^S``:

    - follower reward ``r_x(s, a) = base(s, a) + tanh(x[s])``;
    - leader objective ``f(x, pi) = 0.5 * 1e-2 * |x|^2 - sum_{s,a} c(s, a) pi(a|s)``;

    where ``base`` and ``c`` are fixed tables with entries uniform in ``[0, 1)``, drawn from a
    ``torch.Generator`` seeded with ``seed`` (so the problem is reproducible and independent of the global
    RNG). Everything is float64.

    Args:
        side: grid side length, an integer ``>= 1``.
        slip: slip probability in ``[0, 1]`` (see :func:`gridworld_mdp`).
        gamma: discount factor in ``[0, 1)``.
        tau: entropy temperature, ``> 0``.
        seed: seed of the random tables and of ``x0``.

    Returns:
        The problem, with ``prob.x0 ~ N(0, 0.1^2 I)`` of shape ``(S,)`` drawn from the same seeded generator.

    Raises:
        TypeError, ValueError: as :func:`gridworld_mdp`; ``seed`` must be an integer ``>= 0``.
    """
    check_int("seed", seed, low=0)
    mdp = gridworld_mdp(side, slip=slip, gamma=gamma, tau=tau)
    S, A = mdp.shape
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(S, A, generator=gen, dtype=DTYPE)
    c = torch.rand(S, A, generator=gen, dtype=DTYPE)
    x0 = X0_STD * torch.randn(S, generator=gen, dtype=DTYPE)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return base + torch.tanh(x).unsqueeze(1)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return 0.5 * X_COST * x.pow(2).sum() - (c * pi).sum()

    return BilevelProblem(mdp, reward=reward, upper=upper, x0=x0, name=f"gridworld-{side}x{side}-seed{seed}")
