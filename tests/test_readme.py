"""The README's quick start runs as written and does what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs():
    quick, model_free = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    scope: dict = {}
    exec(compile(quick, str(README), "exec"), scope)
    from sobirl.tabular import hypergradient, hyperobjective

    prob, res = scope["prob"], scope["res"]
    assert abs(hyperobjective(prob, res.x).item() - 0.375) < 1e-3
    assert hypergradient(prob, res.x).norm().item() < 2e-3

    exec(compile(model_free, str(README), "exec"), scope)
    prob, est, run = scope["prob"], scope["est"], scope["run"]
    x = prob.x0
    assert torch.cosine_similarity(est.grad, hypergradient(prob, x), dim=0).item() > 0.995
    assert abs(run.history["exact_objective"][-1] - 0.624) < 0.005


def test_readme_names_the_ci_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in README.read_text()
