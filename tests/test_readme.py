"""The README's quick start runs as written and does what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    from sobirl.tabular import hypergradient, hyperobjective

    prob, res = scope["prob"], scope["res"]
    assert abs(hyperobjective(prob, res.x).item() - 0.375) < 1e-3
    assert hypergradient(prob, res.x).norm().item() < 2e-3


def test_readme_names_the_ci_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in README.read_text()
