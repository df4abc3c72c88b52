"""``solve``: run any registered outer-loop method on a bilevel problem and record its history."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from sobirl.algorithms.base import History, MethodConfig, OuterLoop, SolveResult
from sobirl.algorithms.exact import Exact
from sobirl.algorithms.hpgd import HPGD
from sobirl.algorithms.itd import ITD
from sobirl.algorithms.m_sobirl import MSoBiRL
from sobirl.algorithms.parl import PARL
from sobirl.algorithms.pbrl import PBRL
from sobirl.algorithms.sobirl import SoBiRL
from sobirl.algorithms.sobirl_mf import SoBiRLModelFree
from sobirl.algorithms.stoc_sobirl import StocSoBiRL
from sobirl.algorithms.zero_order import ZeroOrder
from sobirl.tabular.hypergrad import as_parameters, hypergradient_info
from sobirl.tabular.problem import BilevelProblem
from sobirl.validation import NonFiniteError, check_choice, check_int, check_parameters

METHODS: dict[str, type[OuterLoop]] = {
    cls.name: cls
    for cls in (
        Exact,
        MSoBiRL,
        SoBiRL,
        ITD,
        ZeroOrder,
        PARL,
        PBRL,
        HPGD,
        SoBiRLModelFree,
        StocSoBiRL,
    )
}
"""Registered methods by name; ``solve(..., method=name)`` accepts exactly these."""

Callback = Callable[[dict[str, float]], Any]


class DivergenceError(FloatingPointError):
    """The iterate or a recorded metric became NaN or infinite."""


def solve(
    prob: BilevelProblem,
    x0: torch.Tensor,
    method: str = "m-sobirl",
    iterations: int = 1000,
    *,
    evaluate_every: int = 0,
    progress: bool = False,
    callback: Callback | None = None,
    **method_params: Any,
) -> SolveResult:
    """Run ``method`` for ``iterations`` outer iterations from ``x0``.

    Args:
        prob: the bilevel problem.
        x0: starting leader parameters (1-D floating tensor).
        method: one of :data:`METHODS` (``"exact"``, ``"m-sobirl"``, ``"sobirl"``, ...).
        iterations: outer iterations K (>= 1).
        evaluate_every: if > 0, also record the exact ``phi`` and ``|grad phi|`` (columns ``exact_objective``,
            ``exact_grad_norm``) every that many iterations and at the last one; not counted in ``wall_time``.
        progress: show a progress bar.
        callback: called with each iteration's row (a dict); returning True stops the run early.
        **method_params: the method's hyper-parameters (see its ``Config``), e.g. ``beta=8e-3``. Parameters not
            given take the problem's suggestion (``prob.defaults[method]``, then ``prob.defaults["*"]``), then
            the method's own default; ``SolveResult.config`` records what was used.

    Returns:
        :class:`SolveResult` with the final iterate ``x`` and a :class:`History` whose rows hold ``iteration``,
        ``objective`` and ``grad_norm`` (the method's estimates at the iterate before the step), ``wall_time``
        (cumulative seconds spent in the method) and method-specific columns.

    Raises:
        ValueError / TypeError: unknown method or parameter, invalid values, before anything runs.
        DivergenceError: the iterate or a metric became non-finite (e.g. a step size too large).
    """
    cls = METHODS[check_choice("method", method, METHODS)]
    config = resolve_config(prob, method, method_params)
    check_parameters("x0", x0)
    check_int("iterations", iterations, low=1)
    check_int("evaluate_every", evaluate_every, low=0)
    _check_callables_at(prob, x0)

    algo = cls(prob, x0, config)
    history = History()
    elapsed = 0.0
    bar = tqdm(range(iterations), desc=method, disable=not progress, dynamic_ncols=True)
    for k in bar:
        x_k = algo.x
        start = time.perf_counter()
        try:
            metrics = algo.step()
        except NonFiniteError as err:  # r_fn and f_fn were finite at x0: the iteration blew them up
            raise DivergenceError(f"{method} diverged at iteration {k}: {err}; reduce the step size (beta)") from err
        elapsed += time.perf_counter() - start
        row = {"iteration": float(k), **metrics, "wall_time": elapsed}
        if evaluate_every and (k % evaluate_every == 0 or k == iterations - 1):
            exact = hypergradient_info(prob, x_k)
            row["exact_objective"] = exact.objective.item()
            row["exact_grad_norm"] = torch.linalg.vector_norm(exact.grad).item()
        _check_finite_progress(method, k, row, algo.x)
        history.append(row)
        if progress and (k % 10 == 0 or k == iterations - 1):
            bar.set_postfix(f=f"{row['objective']:.6g}", grad=f"{row['grad_norm']:.3g}", refresh=False)
        if callback is not None and callback(row) is True:
            break
    bar.close()
    return SolveResult(x=algo.x.detach(), history=history, method=method, config=config)


def resolve_config(prob: BilevelProblem, method: str, params: dict[str, Any]) -> MethodConfig:
    """The method's validated Config: ``params``, then the problem's suggestions, then the method's defaults.

    Raises ValueError also when the method cannot run on the problem (e.g. hpgd without a leader's value).
    """
    cls = METHODS[check_choice("method", method, METHODS)]
    cls.check_problem(prob)
    suggested = {**prob.defaults.get("*", {}), **prob.defaults.get(method, {})}
    return cls.Config.from_params(method, {**suggested, **params})


def _check_callables_at(prob: BilevelProblem, x0: torch.Tensor) -> None:
    """Evaluate r_fn and f_fn once at x0 (uniform policy) so a faulty problem fails before the run starts."""
    with torch.no_grad():
        x = as_parameters(x0).detach()
        prob.reward(x)
        prob.upper(x, torch.full(prob.mdp.shape, 1.0 / prob.mdp.n_actions, dtype=x.dtype, device=x.device))


def _check_finite_progress(method: str, k: int, row: dict[str, float], x: torch.Tensor) -> None:
    bad = [name for name, value in row.items() if not math.isfinite(value)]
    if not torch.isfinite(x).all():
        bad.append("x")
    if bad:
        raise DivergenceError(
            f"{method} diverged at iteration {k}: {', '.join(bad)} not finite; reduce the step size (beta)"
        )
