"""The tabular twin of RLHF (docs/math.md, section 5), with the expected preference loss computed exactly.

A seeded random MDP with ``S`` states and ``A`` actions (dense ``P`` and ``rho``, each row a Dirichlet(1) draw, or
over ``successors`` random states per ``(s, a)``)
and a hidden true reward table ``r_true`` (standard normal). The leader's parameters are a learned reward table,
``r_x = x.view(S, A)``, and the follower plays the soft-optimal policy ``pi*(x)`` for it.

A fragment is ``d = (s_0, a_0, ..., s_{H-1}, a_{H-1})`` with ``s_0 ~ rho``, ``a_h ~ pi(.|s_h)`` and
``s_{h+1} ~ P(.|s_h, a_h)``; its return under a reward table ``r`` is ``R(d) = sum_h r(s_h, a_h)``. Two
fragments are drawn independently from the follower and labelled ``y = 1`` (the first is preferred) with
probability ``q(d_1, d_2) = sigmoid((R_true(d_1) - R_true(d_2)) / label_temperature)``. The upper objective is
the expected Bradley-Terry loss

    f(x, pi) = E_{d_1, d_2 ~ pi} E_y [ -y log sigmoid(D) - (1 - y) log sigmoid(-D) ],   D = R_x(d_1) - R_x(d_2)
             = sum_{d_1, d_2} p(d_1) p(d_2) [ softplus(-D) + (1 - q(d_1, d_2)) D ]

computed exactly by enumerating all ``(S A)^H`` fragments, whose probabilities
``p(d) = rho(s_0) prod_h pi(a_h|s_h) prod_{h < H-1} P(s_{h+1}|s_h, a_h)`` are differentiable in ``pi``. The
pairwise loss table is ``(S A)^H x (S A)^H``, hence the cap :data:`MAX_FRAGMENTS`: a longer instance has the sampled
objective only (``prob.sampled``; its ``upper`` raises), and its reference hyper-gradient is a Monte-Carlo average of
the exact per-step sensitivities (:func:`sobirl.experiments.deep_bridge.reference_hypergradient`).

The true reward is ``r_true(s, a) = action_reward * N(0, 1) + state_reward * N(0, 1)``, the second draw per state:
``state_reward`` large against ``action_reward`` makes it mostly a state cost, as in most control tasks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sobirl.estimators.objectives import PreferenceObjective
from sobirl.tabular import BilevelProblem, TabularMDP
from sobirl.tabular.mdp import DTYPE
from sobirl.validation import check_int, check_range

MAX_FRAGMENTS = 4096
"""Largest ``(S A)^H`` accepted: each pairwise table then holds ``MAX_FRAGMENTS^2`` float64 entries (128 MiB),
and evaluating ``f`` with its gradient keeps a few of them."""


def all_fragments(S: int, A: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every fragment of length ``H``, as ``(states, actions)``: two long tensors of shape ``((S A)^H, H)``.

    Fragment ``i`` writes ``i`` in base ``S A`` (most significant digit first); digit ``k`` is the pair
    ``(s, a) = (k // A, k % A)``.
    """
    pairs = torch.arange(S * A)
    digits = torch.cartesian_prod(*[pairs] * H).view(-1, H)  # cartesian_prod of one tensor returns it 1-D
    return torch.div(digits, A, rounding_mode="floor"), digits % A


def fragment_probabilities(
    mdp: TabularMDP, pi: torch.Tensor, states: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """``p(d)`` of each fragment (rows of ``states``/``actions``) under policy ``pi``; differentiable in ``pi``.

    Args:
        mdp: a MDP with dense ``P``; its ``rho`` draws ``s_0``.
        pi: policy ``(S, A)``.
        states, actions: ``(F, H)`` long tensors, as returned by :func:`all_fragments`.
    """
    p = mdp.rho[states[:, 0]] * pi[states, actions].prod(dim=1)
    return p * mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]].prod(dim=1)


def tabular_rlhf(
    S: int = 3,
    A: int = 2,
    H: int = 3,
    *,
    gamma: float = 0.9,
    tau: float = 1.0,
    seed: int = 0,
    label_temperature: float = 1.0,
    action_reward: float = 1.0,
    state_reward: float = 0.0,
    successors: int | None = None,
) -> BilevelProblem:
    """Build the tabular RLHF problem (see the module docstring for the definition).

    Args:
        S: number of states (>= 1).
        A: number of actions (>= 1).
        H: fragment length (>= 1); beyond ``(S A)^H = MAX_FRAGMENTS`` only the sampled objective exists.
        gamma: the follower's discount, in ``[0, 1)``.
        tau: the follower's entropy temperature, ``> 0``.
        seed: seeds ``P``, ``rho`` and ``r_true``.
        label_temperature: temperature of the synthetic labels, ``> 0`` (small: nearly noiseless labels).
        action_reward: scale ``>= 0`` of the true reward's part drawn per ``(s, a)``.
        state_reward: scale ``>= 0`` of the true reward's part drawn per state (module docstring).
        successors: each ``(s, a)`` leads to this many states (``1 .. S``, drawn without replacement; 1:
            deterministic moves, where an action decides the whole future); None: to every state.

    Returns:
        The problem, with ``x0 = zeros(S A)`` and the extra attributes ``r_true`` (the hidden ``(S, A)`` table),
        ``sampled`` (the same objective in sampled form, a
        :class:`~sobirl.estimators.objectives.PreferenceObjective`, for the model-free methods) and ``exact_upper``
        (False where ``(S A)^H`` exceeds :data:`MAX_FRAGMENTS` and only the sampled form exists).

    Raises:
        TypeError, ValueError: naming the field and its allowed range.
    """
    check_int("S", S, low=1)
    check_int("A", A, low=1)
    check_int("H", H, low=1)
    check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)
    check_range("tau", tau, low=0.0, low_open=True)
    check_int("seed", seed, low=0)
    label_temperature = check_range("label_temperature", label_temperature, low=0.0, low_open=True)
    check_range("action_reward", action_reward, low=0.0)
    check_range("state_reward", state_reward, low=0.0)
    if successors is not None:
        check_int("successors", successors, low=1)
        if successors > S:
            raise ValueError(f"successors must be in [1, S = {S}] or None, got {successors}")

    gen = torch.Generator().manual_seed(seed)
    # Normalised exponentials: each row uniform on the simplex (Dirichlet(1)), so every transition is possible.
    P = -torch.rand(S, A, S, generator=gen, dtype=DTYPE).log()
    rho = -torch.rand(S, generator=gen, dtype=DTYPE).log()
    if successors is not None:  # keep the `successors` largest entries of each row (a uniformly random subset)
        P = torch.where(P.topk(successors, dim=2).values[..., -1:] <= P, P, 0.0)
    r_true = action_reward * torch.randn(S, A, generator=gen, dtype=DTYPE)
    if state_reward > 0:  # drawn after the rest, so instances without it keep their numbers
        r_true = r_true + state_reward * torch.randn(S, 1, generator=gen, dtype=DTYPE)
    mdp = TabularMDP(P / P.sum(dim=2, keepdim=True), gamma=gamma, tau=tau, rho=rho / rho.sum())
    name = f"tabular-rlhf-S{S}-A{A}-H{H}" + ("" if successors is None else f"-k{successors}")

    def reward(x: torch.Tensor) -> torch.Tensor:
        return x.view(S, A)

    if (S * A) ** H > MAX_FRAGMENTS:

        def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
            raise ValueError(
                f"{name} has (S*A)^H = {(S * A) ** H} fragments, more than the {MAX_FRAGMENTS} that f is computed "
                "exactly over; use its sampled objective (prob.sampled) and a Monte-Carlo reference"
            )

        return _finish(mdp, reward, upper, S, A, H, name, r_true, label_temperature, exact=False)

    states, actions = all_fragments(S, A, H)
    true_returns = r_true[states, actions].sum(dim=1)
    # The label probabilities and (1 - q) depend on the true reward only: computed once.
    not_preferred = torch.sigmoid(-(true_returns.unsqueeze(1) - true_returns.unsqueeze(0)) / label_temperature)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        p = fragment_probabilities(mdp, pi, states, actions)
        returns = x.view(S, A)[states, actions].sum(dim=1)
        D = returns.unsqueeze(1) - returns.unsqueeze(0)
        # -q logsig(D) - (1-q) logsig(-D) = -logsig(D) + (1-q) D, as logsig(-D) = logsig(D) - D.
        loss = -torch.nn.functional.logsigmoid(D) + not_preferred * D
        return p @ loss @ p

    return _finish(mdp, reward, upper, S, A, H, name, r_true, label_temperature, exact=True)


def _finish(
    mdp: TabularMDP,
    reward: Callable[[torch.Tensor], torch.Tensor],
    upper: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    S: int,
    A: int,
    H: int,
    name: str,
    r_true: torch.Tensor,
    label_temperature: float,
    *,
    exact: bool,
) -> BilevelProblem:
    """The problem with its extra attributes: ``r_true``, ``sampled``, ``exact_upper`` (whether ``upper`` works)."""
    prob = BilevelProblem(
        mdp,
        reward=reward,
        upper=upper,
        x0=torch.zeros(S * A, dtype=DTYPE),
        name=name,
        # PBRL needs a penalty weight large against f ~ log 2: with lambda0 = 1 its iterates drift away.
        defaults={"*": {"beta": 0.3}, "pbrl": {"lambda0": 30.0, "lambda_max": 300.0}},
    )
    prob.r_true = r_true
    prob.sampled = PreferenceObjective(H, r_true, label_temperature)
    prob.exact_upper = exact
    return prob
