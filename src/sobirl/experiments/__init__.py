"""Running experiments: self-describing run directories, metric logging (CSV + TensorBoard) and plots."""

from sobirl.experiments.plots import plot_convergence
from sobirl.rundir import MetricsLogger, create_run_dir, write_config

__all__ = ["MetricsLogger", "create_run_dir", "plot_convergence", "write_config"]
