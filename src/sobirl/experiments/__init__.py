"""Running experiments: self-describing run directories, metric logging (CSV + TensorBoard) and figures
(:mod:`sobirl.experiments.figures`)."""

from sobirl.experiments.figures import plot_convergence
from sobirl.rundir import MetricsLogger, create_run_dir, write_config

__all__ = ["MetricsLogger", "create_run_dir", "plot_convergence", "write_config"]
