"""Time and peak memory of ONE hyper-gradient for every method, against ``S``, at matched accuracy.

Usage::

    python benchmarks/methods.py [--quick] [--markdown PATH]

Problems (``A = 4``, ``gamma = 0.9``, ``tau = 0.1``, float64, one leader parameter per state, ``n = S``): slippery
grid worlds (:func:`sobirl.problems.gridworld.gridworld_problem`, slip 0.1, sparse ``P``) with side 3, 10, 32, 100,
316 (``S`` = 9 ... 99,856), at their seeded ``x0``. Three variants of each:

- ``grid``: the problem itself, ``r_x(s, a) = base(s, a) + tanh(x[s])``, ``f = 0.5e-2 |x|^2 - sum c pi``;
- ``grid, dense P``: the same problem with ``P`` copied into a dense ``(S, A, S)`` tensor, for PARL (its
  Hessian-vector products need second derivatives of policy evaluation, which only the dense path has). Built
  only for ``S <= 1,024`` (dense ``P`` of 32 MiB there; 3 GiB at ``S = 10^4``, 300 GiB at ``S = 99,856``);
- ``leader value``: the same MDP and ``r_x`` with a :class:`~sobirl.tabular.LeaderValue` objective,
  ``f(x, pi) = -rho . V_L^pi`` (``rho`` uniform, leader reward ``r_L`` a seeded uniform ``(S, A)`` table), for
  HPGD, which accepts only LeaderValue objectives. Neither ``gridworld_problem`` nor ``gridworld_shaping`` has one
  (``gridworld_shaping``'s upper objective is a closure, task value plus a cost on ``x``, which hpgd rejects).

On each variant the reference is ``hypergradient(prob, x, solution=sol)`` with ``sol`` the follower's solution by
soft policy iteration to a scaled Bellman residual of ``1e-12``; every method's "relative error" is
``|g - g_ref| / |g_ref|`` against the reference of its variant. The baseline row of each variant times that same
call given ``sol`` (one backward pass through ``f``, one adjoint solve, one VJP: ratio 1.0). Time and memory ratios
are to the baseline of the method's variant. The follower's solve is never counted, for any method that is given
the solution (all but M-SoBiRL and PBRL, whose step includes their own lower-level work).

"Matched accuracy" (relative error ``<= 1e-4``) per method:

- ``itd`` (:func:`~sobirl.algorithms.itd.itd_gradient`): autograd through ``N`` soft Bellman steps from the
  CONVERGED ``Q*`` (the most favourable warm start; only the ``gamma^N`` truncation remains). ``N`` is the smallest
  that reaches ``1e-4``: a doubling search from a guess (the previous size's ``N``), then bisection. Autograd keeps
  every step's tensors, so memory grows like ``N S A``; a call projected over 60 s or 4 GiB is not made.
- ``parl`` (:func:`~sobirl.algorithms.parl.parl_gradient`, dense ``P`` only) at the follower's logits
  ``Q*/tau``: conjugate gradient (relative residual ``1e-6``) on ``(H + mu I) v = d_theta f``. Its error is linear in
  the damping ``mu`` (module docstring of ``parl``), so ``mu`` starts at ``1e-2``, drops 100x while the error is
  above 0.1, then jumps to ``mu * 0.5e-4 / error``, until the error is ``<= 1e-4``; the search stops when the next
  run is projected (time ``~ 1/sqrt(mu)``) past the search budget, and the row then shows the best error reached.
  Notes give ``mu`` and the Hessian-vector products (HVPs, the solver's plus the one mixed product).
- ``zero-order`` (:func:`~sobirl.algorithms.zero_order.zero_order_gradient`, ``delta = 1e-4``, exact ``phi`` values
  by warm-started policy iteration to ``1e-10``): its error is ``~ sqrt(n / m)`` with ``m`` directions, so ``1e-4``
  would need ``m ~ 1e8 n`` (``2m`` lower-level solves). Instead it is run with ``m = n`` directions where the
  ``2n`` solves are projected under 60 s, and the row shows the error that reached; notes estimate the ``m``
  that ``1e-4`` would need, ``m (error / 1e-4)^2``.
- ``hpgd-exact`` (:func:`~sobirl.algorithms.hpgd.hpgd_exact_gradient`): HPGD's formula with exact expectations,
  two adjoint solves; matched by construction (the error is shown).
- ``hpgd`` (:func:`~sobirl.algorithms.hpgd.hpgd_gradient`, Monte Carlo): one estimate from ``B = 64`` trajectories,
  horizon ``H = 100`` (truncation bias ``~ H gamma^H = 3e-3``), seed 0; the error of that draw is shown, and notes
  estimate the batch ``1e-4`` would need, ``B (error / 1e-4)^2``.
- ``m-sobirl`` (``MSoBiRL.step``) and ``pbrl`` (``PBRL.step``) are iterative: their unit of cost is one outer
  iteration, timed after warm-up. Their error is measured cleanly at a FIXED ``x``: the runs use a step size
  ``beta = 1e-300`` (``x - beta g == x`` in float64), and the gradient an iteration would step along is read off
  one probe step with ``beta = 1`` (``g = x_before - x_after``) after which the method's state is restored. The
  warm-up runs until the error is ``<= 1e-4`` or its budget is spent; the row shows the error reached and after
  how many iterations. M-SoBiRL runs with ``N = 10`` Bellman steps and ``zeta = 1 / ((1 + gamma)(1 + gamma c))``
  (``c`` the largest column sum of ``P_pi`` at the follower's solution): M-SoBiRL's default safe step ``1 / L_k``
  frozen at that policy (a fixed ``zeta = 0.5`` diverges on these grids, whose column sums reach 3.6). PBRL runs
  with its cap ``lambda = 100`` from the start (its gradient is that of the penalised objective, biased by
  ``O(1/lambda)``); its warm-up also stops when the error improves by less than 1% between checks.

Memory: peak resident memory of one call above the resident size before it (:class:`sobirl.profiling.PeakMemory`),
"n/a" where ``/proc`` does not allow it; memory ratios only where the baseline's peak is at least 1 MiB.
Timing: the median of batched calls (``measure`` of ``benchmarks/hypergradient.py``: batches of at least 0.1 s,
about 1 s in all), a single call for ``S = 99,856`` and for calls longer than 2 s.

Limits: a method is skipped at a size where one call is projected over 60 s or 4 GiB, with the reason printed.
``--quick`` keeps ``S <= 1,024`` and cuts the budgets (PARL's damping search 15 s instead of 60 s, the warm-ups
5 s instead of 30 s); ``--markdown PATH`` also writes the command line, the machine line and the table to PATH.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import torch

from sobirl.algorithms.base import OuterLoop
from sobirl.algorithms.hpgd import hpgd_exact_gradient, hpgd_gradient
from sobirl.algorithms.itd import itd_gradient
from sobirl.algorithms.m_sobirl import MSoBiRL, MSoBiRLConfig
from sobirl.algorithms.parl import parl_gradient
from sobirl.algorithms.pbrl import PBRL, PBRLConfig
from sobirl.algorithms.zero_order import zero_order_gradient
from sobirl.problems.gridworld import gridworld_problem
from sobirl.profiling import command_line, machine_line, write_report
from sobirl.tabular import BilevelProblem, LeaderValue, SoftSolution, TabularMDP, hypergradient, lower_level
from sobirl.tabular.mdp import DTYPE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hypergradient import ONCE_ABOVE_STATES, Phase, measure, warm_up

GRID_SIDES = (3, 10, 32, 100, 316)
QUICK_MAX_STATES = 1024
GAMMA = 0.9
TAU = 0.1
SLIP = 0.1
SEED = 0
TARGET = 1e-4
"""Matched accuracy: relative error to the exact hyper-gradient."""
REFERENCE_TOL = 1e-12
"""Scaled Bellman residual of the reference follower solution."""
MAX_SECONDS = 60.0
MAX_MIB = 4096.0
ONCE_ABOVE_SECONDS = 2.0
"""Calls longer than this are timed once (their memory run is the timing)."""

ITD_FIRST_GUESS = 8
ITD_MAX_STEPS = 8192
DENSE_MAX_STATES = 1024
"""PARL runs on a dense copy of ``P`` only up to this many states."""
PARL_DAMPING0 = 1e-2
PARL_CG_TOL = 1e-6
PARL_MAX_HVP = 100_000
ZO_DELTA = 1e-4
ZO_TOL = 1e-10
HPGD_BATCH = 64
HPGD_HORIZON = 100
M_SOBIRL_INNER = 10
PBRL_LAMBDA = 100.0
FROZEN_BETA = 1e-300
"""Step size that leaves ``x`` unchanged in float64: the iterative methods warm up at a fixed ``x``."""
PROBE_BETA = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class Budgets:
    """Wall-clock budgets (s) of the searches and warm-ups that are not single calls."""

    parl: float
    warm_up: float


FULL_BUDGETS = Budgets(parl=60.0, warm_up=30.0)
QUICK_BUDGETS = Budgets(parl=15.0, warm_up=5.0)


# ---------------------------------------------------------------------------------------------- problems


def dense_copy(prob: BilevelProblem) -> BilevelProblem:
    """The same problem with ``P`` stored dense ``(S, A, S)`` (PARL needs it)."""
    mdp = prob.mdp
    S, A = mdp.shape
    P = mdp.P.to_dense().view(S, A, S)
    dense = TabularMDP(P, gamma=mdp.gamma, tau=mdp.tau, rho=mdp.rho)
    return BilevelProblem(dense, reward=prob.reward_fn, upper=prob.upper_fn, x0=prob.x0, name=f"{prob.name}-dense")


def leader_value_problem(prob: BilevelProblem, seed: int = SEED + 1) -> BilevelProblem:
    """The same MDP and ``r_x`` with the LeaderValue objective ``-rho . V_L^pi``, ``r_L`` uniform in ``[0, 1)``."""
    mdp = prob.mdp
    r_L = torch.rand(*mdp.shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    leader = LeaderValue(mdp, lambda x: r_L)
    return BilevelProblem(mdp, reward=prob.reward_fn, upper=leader, x0=prob.x0, name=f"{prob.name}-leader-value")


@dataclass(frozen=True)
class Reference:
    """One problem variant at one size: its exact hyper-gradient and the timed baseline call."""

    label: str
    prob: BilevelProblem
    x: torch.Tensor
    solution: SoftSolution
    solve_seconds: float
    grad: torch.Tensor
    baseline: Phase


def reference(label: str, prob: BilevelProblem, *, once: bool) -> Reference:
    """Solve the follower (policy iteration to :data:`REFERENCE_TOL`) and time ``hypergradient()`` given it."""
    assert prob.x0 is not None
    x = prob.x0
    solve = measure(lambda: lower_level(prob, x, tol=REFERENCE_TOL), once=True)
    sol = cast(SoftSolution, solve.result)
    baseline = measure(lambda: hypergradient(prob, x, solution=sol), once=once)
    return Reference(label, prob, x, sol, solve.seconds, cast(torch.Tensor, baseline.result), baseline)


def rel_error(g: torch.Tensor, ref: torch.Tensor) -> float:
    """``|g - ref| / |ref|``."""
    return (torch.linalg.vector_norm(g - ref) / torch.linalg.vector_norm(ref)).item()


# ---------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One line of the table; ``seconds`` None for a skipped method."""

    n_states: int
    problem: str
    nnz: int
    method: str
    error: float | None
    seconds: float | None
    peak_mib: float | None
    base_seconds: float
    base_mib: float | None
    notes: str


def make_row(ref: Reference, method: str, error: float | None, phase: Phase | None, notes: str) -> Row:
    """A row of ``method`` on the variant ``ref`` (ratios are to ``ref.baseline``)."""
    mdp = ref.prob.mdp
    row = Row(
        n_states=mdp.n_states,
        problem=ref.label,
        nnz=mdp.nnz,
        method=method,
        error=error,
        seconds=None if phase is None else phase.seconds,
        peak_mib=None if phase is None else phase.peak_mib,
        base_seconds=ref.baseline.seconds,
        base_mib=ref.baseline.peak_mib,
        notes=notes,
    )
    print(f"  {format_row(row)}", file=sys.stderr, flush=True)
    return row


def final_phase(fn: Callable[[], T], first: Phase, *, once: bool) -> Phase:
    """The row's measurement of ``fn``: ``first`` (one call) when timing once, else batched :func:`measure`."""
    if once or first.seconds > ONCE_ABOVE_SECONDS:
        return first
    return measure(fn, once=False)


class OverBudgetError(Exception):
    """A search step was projected past its time or memory limit."""


# ---------------------------------------------------------------------------------------------- methods


def baseline_row(ref: Reference) -> Row:
    """The exact hyper-gradient itself (ratio 1)."""
    notes = (
        f"given the follower's solution (PI to {REFERENCE_TOL:g}: {ref.solution.iterations} Newton steps, "
        f"{ref.solve_seconds:.3g} s, not counted); {ref.baseline.repeats} timed calls"
    )
    return make_row(ref, "hypergradient()", 0.0, ref.baseline, notes)


def smallest_passing(passes: Callable[[int], bool], guess: int, limit: int) -> int | None:
    """The smallest ``n`` in ``[1, limit]`` with ``passes(n)`` (monotone), or None if ``limit`` fails.

    Doubling away from ``guess`` until the answer is bracketed, then bisection.
    """
    guess = min(max(1, guess), limit)
    if passes(guess):
        hi, step = guess, 1
        lo = hi - step
        while lo >= 1 and passes(lo):
            hi, step = lo, 2 * step
            lo = hi - step
        lo = max(lo, 0)  # 0: "n = 1 passes" sentinel, never evaluated
    else:
        lo = guess
        while True:
            hi = min(2 * lo, limit)
            if passes(hi):
                break
            if hi == limit:
                return None
            lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def itd_row(ref: Reference, guess: int, *, once: bool) -> tuple[Row, int]:
    """ITD from the converged Q with the smallest N reaching :data:`TARGET`; returns the row and N (next guess)."""
    prob, x, Q_star = ref.prob, ref.x, ref.solution.Q
    runs: dict[int, Phase] = {}
    errors: dict[int, float] = {}
    per_step_s = per_step_mib = 0.0

    def run(N: int) -> Phase:
        return measure(lambda: itd_gradient(prob, x, Q_star, N), once=True)

    def passes(N: int) -> bool:
        nonlocal per_step_s, per_step_mib
        if N not in errors:
            if per_step_s * N > MAX_SECONDS or per_step_mib * N > MAX_MIB:
                raise OverBudgetError(
                    f"N = {N} projected at {per_step_s * N:.0f} s, {per_step_mib * N:.0f} MiB "
                    f"({per_step_mib:.2f} MiB per unrolled step)"
                )
            phase = run(N)
            runs[N], errors[N] = phase, rel_error(cast(tuple[torch.Tensor, ...], phase.result)[0], ref.grad)
            per_step_s = max(per_step_s, phase.seconds / N)
            per_step_mib = max(per_step_mib, (phase.peak_mib or 0.0) / N)
        return errors[N] <= TARGET

    try:
        N = smallest_passing(passes, guess, ITD_MAX_STEPS)
    except OverBudgetError as exc:
        best = min(errors, key=lambda n: errors[n])
        row = make_row(ref, "itd", errors[best], runs[best], f"1e-4 not reached: {exc}; shown: N = {best}")
        return row, best
    if N is None:
        row = make_row(ref, "itd", errors[ITD_MAX_STEPS], runs[ITD_MAX_STEPS], f"N = {ITD_MAX_STEPS} short of 1e-4")
        return row, ITD_MAX_STEPS
    phase = final_phase(lambda: itd_gradient(prob, x, Q_star, N), runs[N], once=once)
    below = f"; N = {N - 1}: {errors[N - 1]:.1e}" if N - 1 in errors else ""
    mib = f"; {phase.peak_mib / N:.3f} MiB per unrolled step" if phase.peak_mib else ""
    notes = f"N = {N} steps from Q*{below}{mib}; {len(errors)} N tried"
    return make_row(ref, "itd", errors[N], phase, notes), N


def parl_row(ref: Reference, *, budget: float, once: bool) -> Row:
    """PARL at the follower's logits, damping searched down to :data:`TARGET` within ``budget`` seconds."""
    prob, x, theta = ref.prob, ref.x, ref.solution.Q / ref.prob.mdp.tau

    def call(mu: float) -> Callable[[], tuple[torch.Tensor, torch.Tensor, int]]:
        return lambda: parl_gradient(prob, x, theta, damping=mu, solver="cg", iterations=PARL_MAX_HVP, tol=PARL_CG_TOL)

    start = time.perf_counter()
    mu = PARL_DAMPING0
    tried: list[tuple[float, float, Phase]] = []
    stop = ""
    while True:
        phase = measure(call(mu), once=True)
        err = rel_error(cast(tuple[torch.Tensor, ...], phase.result)[0], ref.grad)
        tried.append((mu, err, phase))
        if err <= TARGET:
            break
        next_mu = mu / 100.0 if err > 0.1 else mu * 0.5 * TARGET / err
        projected = phase.seconds * math.sqrt(mu / next_mu)
        spent = time.perf_counter() - start
        if spent + projected > budget or projected > MAX_SECONDS:
            stop = (
                f"1e-4 not reached: next mu = {next_mu:.1e} projected at {projected:.0f} s "
                f"(search budget {budget:.0f} s, {spent:.0f} s spent); "
            )
            break
        mu = next_mu
    mu, err, phase = min(tried, key=lambda t: t[1])
    hvp = cast(tuple[torch.Tensor, torch.Tensor, int], phase.result)[2]
    if not stop:
        phase = final_phase(call(mu), phase, once=once)
    notes = f"{stop}mu = {mu:.1e}, CG to {PARL_CG_TOL:g}: {hvp} HVPs; {len(tried)} mu tried"
    return make_row(ref, "parl", err, phase, notes)


def parl_skipped(ref: Reference) -> Row:
    """PARL needs a dense P; past :data:`DENSE_MAX_STATES` it is not built."""
    S, A = ref.prob.mdp.shape
    gib = S * A * S * 8 / 2**30
    notes = (
        f"skipped: needs dense P, {S:,} x {A} x {S:,} float64 = {gib:,.1f} GiB, and a dense {S:,}^2 LU "
        f"per HVP (dense copies only for S <= {DENSE_MAX_STATES:,})"
    )
    return make_row(ref, "parl", None, None, notes)


def zero_order_row(ref: Reference, *, once: bool) -> Row:
    """Gaussian smoothing with ``m = n`` directions, where the ``2n`` solves fit :data:`MAX_SECONDS`."""
    prob, x, sol = ref.prob, ref.x, ref.solution
    n = x.numel()
    u = torch.randn(n, generator=torch.Generator().manual_seed(SEED), dtype=DTYPE)
    probe = measure(lambda: lower_level(prob, x + ZO_DELTA * u, tol=ZO_TOL, V0=sol.V), once=True)
    projected = 2 * n * probe.seconds
    if projected > MAX_SECONDS:
        notes = (
            f"skipped: m = n = {n:,} directions need {2 * n:,} solves, projected {projected:,.0f} s "
            f"({probe.seconds * 1e3:.1f} ms each)"
        )
        return make_row(ref, "zero-order", None, None, notes)

    def call() -> tuple[torch.Tensor, torch.Tensor, int]:
        gen = torch.Generator().manual_seed(SEED)
        return zero_order_gradient(prob, x, samples=n, delta=ZO_DELTA, generator=gen, tol=ZO_TOL, solution=sol)

    first = measure(call, once=True)
    err = rel_error(cast(tuple[torch.Tensor, ...], first.result)[0], ref.grad)
    phase = final_phase(call, first, once=once)
    notes = f"m = n = {n:,} directions, {2 * n:,} solves; 1e-4 would need m ~ {n * (err / TARGET) ** 2:.1e}"
    return make_row(ref, "zero-order", err, phase, notes)


def hpgd_rows(ref: Reference, *, once: bool) -> list[Row]:
    """HPGD's exact-expectation form and one Monte-Carlo estimate (B = 64, H = 100)."""
    prob, x, sol = ref.prob, ref.x, ref.solution
    exact = measure(lambda: hpgd_exact_gradient(prob, x, sol), once=True)
    err = rel_error(cast(torch.Tensor, exact.result), ref.grad)
    exact = final_phase(lambda: hpgd_exact_gradient(prob, x, sol), exact, once=once)
    rows = [make_row(ref, "hpgd-exact", err, exact, "exact expectations: two adjoint solves, one VJP")]

    def call() -> tuple[torch.Tensor, int]:
        gen = torch.Generator().manual_seed(SEED)
        return hpgd_gradient(prob, x, sol, batch=HPGD_BATCH, horizon=HPGD_HORIZON, generator=gen)

    first = measure(call, once=True)
    g, samples = cast(tuple[torch.Tensor, int], first.result)
    err = rel_error(g, ref.grad)
    phase = final_phase(call, first, once=once)
    notes = (
        f"B = {HPGD_BATCH}, H = {HPGD_HORIZON}, {samples:,} transitions, one draw; "
        f"1e-4 would need B ~ {HPGD_BATCH * (err / TARGET) ** 2:.1e}"
    )
    rows.append(make_row(ref, "hpgd", err, phase, notes))
    return rows


def probe_gradient(alg: OuterLoop, state: tuple[str, ...]) -> torch.Tensor:
    """The gradient ``alg.step()`` would step along now: one step with ``beta = 1``, then ``alg`` restored."""
    saved = {name: getattr(alg, name) for name in state}
    config = alg.config
    x = alg.x.detach().clone()
    alg.config = dataclasses.replace(config, beta=PROBE_BETA)
    alg.step()
    g = (x - alg.x.detach()) / PROBE_BETA
    alg.config = config
    for name, value in saved.items():
        setattr(alg, name, value)
    if isinstance(alg, MSoBiRL):
        alg._reward_at_x()  # the probe's backward pass freed the graph of r_x; rebuild it at the restored x
    return g


def warm_up_at_fixed_x(
    alg: OuterLoop, state: tuple[str, ...], ref: torch.Tensor, *, budget: float, stall: bool
) -> tuple[int, float, str]:
    """Step at a fixed ``x`` until the probed error is <= :data:`TARGET`, the budget is spent or (``stall``) the
    error improves by less than 1% between checks (at iterations growing by 25%).

    Returns:
        ``(iterations, error, why it stopped)``.
    """
    start = time.perf_counter()
    k, check, previous = 0, 1, math.inf
    while True:
        while k < check and time.perf_counter() - start < budget:
            alg.step()
            k += 1
        err = rel_error(probe_gradient(alg, state), ref)
        if err <= TARGET:
            return k, err, "reached 1e-4"
        if time.perf_counter() - start >= budget:
            return k, err, f"{budget:.0f} s warm-up budget spent"
        if stall and k >= 20 and err > 0.99 * previous:
            return k, err, "error stalled"
        previous, check = err, max(k + 1, math.ceil(1.25 * k))


def m_sobirl_row(ref: Reference, *, budget: float, once: bool) -> Row:
    """One M-SoBiRL iteration after warm-up at a fixed x, and the error its gradient reached."""
    mdp, sol = ref.prob.mdp, ref.solution
    col_max = mdp.pushforward(sol.pi).max().item()
    zeta = 1.0 / ((1.0 + mdp.gamma) * (1.0 + mdp.gamma * col_max))
    alg = MSoBiRL(ref.prob, ref.x, MSoBiRLConfig(beta=FROZEN_BETA, zeta=zeta, inner_steps=M_SOBIRL_INNER))
    k, err, why = warm_up_at_fixed_x(alg, ("x", "Q", "w"), ref.grad, budget=budget, stall=False)
    assert torch.equal(alg.x.detach(), ref.x), "x moved during the warm-up"
    phase = measure(alg.step, once=once)
    notes = f"per iteration; error after {k:,} iterations at fixed x ({why}); N = {M_SOBIRL_INNER}, zeta = {zeta:.3f}"
    return make_row(ref, "m-sobirl step", err, phase, notes)


def pbrl_row(ref: Reference, *, budget: float, once: bool) -> Row:
    """One PBRL iteration after warm-up at a fixed x (lambda = 100), and the error its x-gradient reached."""
    config = PBRLConfig(beta=FROZEN_BETA, lambda0=PBRL_LAMBDA, lambda_max=PBRL_LAMBDA, growth=1.0)
    alg = PBRL(ref.prob, ref.x, config)
    k, err, why = warm_up_at_fixed_x(alg, ("x", "theta", "V_star", "lam"), ref.grad, budget=budget, stall=True)
    assert torch.equal(alg.x.detach(), ref.x), "x moved during the warm-up"
    phase = measure(alg.step, once=once)
    notes = (
        f"per iteration ({config.inner_steps} theta steps + a PI solve); error after {k:,} iterations at fixed x, "
        f"lambda = {PBRL_LAMBDA:g} ({why})"
    )
    return make_row(ref, "pbrl step", err, phase, notes)


# ---------------------------------------------------------------------------------------------- driver


def run_size(side: int, itd_guess: int, budgets: Budgets) -> tuple[list[Row], int]:
    """Every method at one grid size; returns the rows and ITD's N (the next size's guess)."""
    t0 = time.perf_counter()
    grid = gridworld_problem(side, slip=SLIP, gamma=GAMMA, tau=TAU, seed=SEED)
    S = grid.mdp.n_states
    once = S > ONCE_ABOVE_STATES
    print(f"S = {S:,} (side {side}), built in {time.perf_counter() - t0:.2g} s", file=sys.stderr, flush=True)

    ref = reference("grid", grid, once=once)
    rows = [baseline_row(ref)]
    row, itd_guess = itd_row(ref, itd_guess, once=once)
    rows.append(row)
    rows.append(zero_order_row(ref, once=once))
    rows.append(m_sobirl_row(ref, budget=budgets.warm_up, once=once))
    rows.append(pbrl_row(ref, budget=budgets.warm_up, once=once))

    if S <= DENSE_MAX_STATES:
        dense = reference("grid, dense P", dense_copy(grid), once=once)
        # the dense copy's baseline and errors against the sparse problem's reference (the same hyper-gradient)
        dense = dataclasses.replace(dense, grad=ref.grad)
        rows.append(
            make_row(
                dense,
                "hypergradient()",
                rel_error(cast(torch.Tensor, dense.baseline.result), ref.grad),
                dense.baseline,
                "dense LU adjoint solve",
            )
        )
        rows.append(parl_row(dense, budget=budgets.parl, once=once))
    else:
        rows.append(parl_skipped(ref))

    leader = reference("leader value", leader_value_problem(grid), once=once)
    rows.append(baseline_row(leader))
    rows.extend(hpgd_rows(leader, once=once))
    print(f"  ({time.perf_counter() - t0:.0f} s for S = {S:,})", file=sys.stderr, flush=True)
    return rows, itd_guess


def warm_up_methods() -> None:
    """One untimed call of every method on a tiny grid, so one-time set-up is not in the first rows."""
    warm_up()
    grid = gridworld_problem(2, slip=SLIP, gamma=GAMMA, tau=TAU, seed=SEED)
    x = cast(torch.Tensor, grid.x0)
    sol = lower_level(grid, x)
    gen = torch.Generator().manual_seed(SEED)
    itd_gradient(grid, x, sol.Q, 4)
    parl_gradient(dense_copy(grid), x, sol.Q / TAU, damping=1e-2, tol=PARL_CG_TOL)
    zero_order_gradient(grid, x, samples=2, delta=ZO_DELTA, generator=gen, tol=ZO_TOL, solution=sol)
    leader = leader_value_problem(grid)
    hpgd_exact_gradient(leader, x, sol)
    hpgd_gradient(leader, x, sol, batch=4, horizon=10, generator=gen)
    for alg in (MSoBiRL(grid, x, MSoBiRLConfig(beta=FROZEN_BETA)), PBRL(grid, x, PBRLConfig(beta=FROZEN_BETA))):
        alg.step()


# ---------------------------------------------------------------------------------------------- report

COLUMNS = (
    "S",
    "problem",
    "nnz(P)",
    "method",
    "rel. error",
    "time (s)",
    "time ratio",
    "peak MiB",
    "memory ratio",
    "notes",
)
TEXT_COLUMNS = ("problem", "method", "notes")


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _cells(r: Row) -> tuple[str, ...]:
    dash = "-"
    time_ratio = dash if r.seconds is None else _num(r.seconds / r.base_seconds)
    if r.peak_mib is None:
        mem, mem_ratio = ("n/a" if r.seconds is not None else dash), dash
    else:
        mem = f"{r.peak_mib:,.1f}"
        mem_ratio = _num(r.peak_mib / r.base_mib) if r.base_mib is not None and r.base_mib >= 1.0 else "n/a"
    return (
        f"{r.n_states:,}",
        r.problem,
        f"{r.nnz:,}",
        r.method,
        dash if r.error is None else ("0 (reference)" if r.error == 0.0 else f"{r.error:.1e}"),
        dash if r.seconds is None else f"{r.seconds:.3g}",
        time_ratio,
        mem if r.seconds is not None else dash,
        mem_ratio,
        r.notes,
    )


def format_row(r: Row) -> str:
    """One markdown table line."""
    return "| " + " | ".join(_cells(r)) + " |"


def table(rows: list[Row]) -> str:
    """The results as a markdown table."""
    head = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in COLUMNS) + "|",
    ]
    return "\n".join(head + [format_row(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, optionally write it to ``--markdown``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only S <= {QUICK_MAX_STATES:,}, shorter budgets")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    command = command_line(argv)
    budgets = QUICK_BUDGETS if args.quick else FULL_BUDGETS

    machine = machine_line()
    print(f"Command: {command}\n{machine}", flush=True)
    start = time.perf_counter()
    warm_up_methods()
    rows: list[Row] = []
    guess = ITD_FIRST_GUESS
    for side in GRID_SIDES:
        if args.quick and side * side > QUICK_MAX_STATES:
            continue
        size_rows, guess = run_size(side, guess, budgets)
        rows.extend(size_rows)
    elapsed = time.perf_counter() - start
    text = table(rows)
    print()
    print(text)
    print(f"\nTotal {elapsed:.0f} s.")
    if args.markdown is not None:
        write_report(args.markdown, command, [machine, text], elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
