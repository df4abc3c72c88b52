"""Every figure sobirl writes, in one package with one style (:mod:`~sobirl.experiments.figures.style`) and one
mean +/- s.e. (:func:`sobirl.experiments.aggregate.mean_and_se`):

- :mod:`~sobirl.experiments.figures.history`: one run's figures: ``plot.png`` of ``sobirl synthetic``
  (:func:`plot_convergence`), ``return.png`` of ``sobirl rlhf`` and of each sweep trial (:func:`plot_returns`), the
  learned against true reward of ``sobirl evaluate`` (:func:`plot_reward_vs_true`);
- :mod:`~sobirl.experiments.figures.comparisons`: methods side by side: ``objective.png`` of ``sobirl compare``
  (:func:`plot_comparison`), ``bias.png``, ``std.png`` and ``cosine.png`` of ``sobirl estimators``
  (:func:`plot_study`);
- :mod:`~sobirl.experiments.figures.paper`: ``sobirl plot``'s paper-style figures of run, sweep and compare
  directories, mean over seeds +/- s.e. (:func:`write_figures`), and ``sobirl report``'s performance profile
  (:func:`plot_performance_profile`), from the directories read by :mod:`~sobirl.experiments.figures.runs`.

Every public name of those modules is importable from this package, e.g. ``from sobirl.experiments.figures import
write_figures``. A name loads its module on first use: importing the package loads neither matplotlib nor the sweep
and comparison modules that the paper figures read, so those modules can import a figure of their own without an
import cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "comparisons": ("plot_comparison", "plot_study"),
    "history": ("plot_convergence", "plot_returns", "plot_reward_vs_true"),
    "paper": (
        "FORMATS",
        "PROFILE_THRESHOLDS",
        "Curve",
        "aggregate",
        "performance_profile_figure",
        "plot_performance_profile",
        "plot_rlhf_accuracy",
        "plot_rlhf_returns",
        "plot_tabular",
        "profile_thresholds",
        "rlhf_figure",
        "tabular_figure",
        "write_figures",
    ),
    "runs": (
        "EXPERIMENTS",
        "Run",
        "expand_run_dirs",
        "is_compare_dir",
        "load_runs",
        "read_compare",
        "read_config",
        "read_run",
        "read_sweep",
        "sweep_grid_keys",
    ),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Load the module of a public name on first use (module docstring)."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
