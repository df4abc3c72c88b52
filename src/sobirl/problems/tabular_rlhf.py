"""The tabular twin of RLHF (docs/math.md, section 5), with the expected preference loss computed exactly.

A seeded random MDP with ``S`` states and ``A`` actions (dense ``P`` and ``rho``, each row a Dirichlet(1) draw)
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
pairwise loss table is ``(S A)^H x (S A)^H``, hence the cap :data:`MAX_FRAGMENTS`.
"""

from __future__ import annotations

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
) -> BilevelProblem:
    """Build the tabular RLHF problem (see the module docstring for the definition).

    Args:
        S: number of states (>= 1).
        A: number of actions (>= 1).
        H: fragment length (>= 1); ``(S A)^H`` may not exceed :data:`MAX_FRAGMENTS`.
        gamma: the follower's discount, in ``[0, 1)``.
        tau: the follower's entropy temperature, ``> 0``.
        seed: seeds ``P``, ``rho`` and ``r_true``.
        label_temperature: temperature of the synthetic labels, ``> 0`` (small: nearly noiseless labels).

    Returns:
        The problem, with ``x0 = zeros(S A)`` and the extra attributes ``r_true`` (the hidden ``(S, A)`` table) and
        ``sampled`` (the same objective in sampled form, a
        :class:`~sobirl.estimators.objectives.PreferenceObjective`, for the model-free methods).

    Raises:
        TypeError, ValueError: naming the field and its allowed range, or S, A and H when there are too many
            fragments.
    """
    check_int("S", S, low=1)
    check_int("A", A, low=1)
    check_int("H", H, low=1)
    check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)
    check_range("tau", tau, low=0.0, low_open=True)
    check_int("seed", seed, low=0)
    label_temperature = check_range("label_temperature", label_temperature, low=0.0, low_open=True)
    if (S * A) ** H > MAX_FRAGMENTS:
        raise ValueError(
            f"(S*A)^H = ({S}*{A})^{H} = {(S * A) ** H} fragments exceeds {MAX_FRAGMENTS}; reduce S, A or H"
        )

    gen = torch.Generator().manual_seed(seed)
    # Normalised exponentials: each row uniform on the simplex (Dirichlet(1)), so every transition is possible.
    P = -torch.rand(S, A, S, generator=gen, dtype=DTYPE).log()
    rho = -torch.rand(S, generator=gen, dtype=DTYPE).log()
    r_true = torch.randn(S, A, generator=gen, dtype=DTYPE)
    mdp = TabularMDP(P / P.sum(dim=2, keepdim=True), gamma=gamma, tau=tau, rho=rho / rho.sum())

    states, actions = all_fragments(S, A, H)
    true_returns = r_true[states, actions].sum(dim=1)
    # The label probabilities and (1 - q) depend on the true reward only: computed once.
    not_preferred = torch.sigmoid(-(true_returns.unsqueeze(1) - true_returns.unsqueeze(0)) / label_temperature)

    def reward(x: torch.Tensor) -> torch.Tensor:
        return x.view(S, A)

    def upper(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        p = fragment_probabilities(mdp, pi, states, actions)
        returns = x.view(S, A)[states, actions].sum(dim=1)
        D = returns.unsqueeze(1) - returns.unsqueeze(0)
        # -q logsig(D) - (1-q) logsig(-D) = -logsig(D) + (1-q) D, as logsig(-D) = logsig(D) - D.
        loss = -torch.nn.functional.logsigmoid(D) + not_preferred * D
        return p @ loss @ p

    prob = BilevelProblem(
        mdp,
        reward=reward,
        upper=upper,
        x0=torch.zeros(S * A, dtype=DTYPE),
        name=f"tabular-rlhf-S{S}-A{A}-H{H}",
        # PBRL needs a penalty weight large against f ~ log 2: with lambda0 = 1 its iterates drift away.
        defaults={"*": {"beta": 0.3}, "pbrl": {"lambda0": 30.0, "lambda_max": 300.0}},
    )
    prob.r_true = r_true
    prob.sampled = PreferenceObjective(H, r_true, label_temperature)
    return prob
