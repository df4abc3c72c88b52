"""sobirl's import contract: every module imports only its own top-level package or a lower layer, and the top-level
packages import each other without a cycle (docs/architecture.md). Imports inside functions and ``TYPE_CHECKING``
blocks count: the check reads every ``import`` statement of the source, not what runs."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sobirl"

LAYERS = {
    # the shared base
    "__init__": 0,  # `import sobirl` (the version)
    "validation": 0,
    "profiling": 0,
    "rundir": 0,
    # the tabular wing, exact and sampled
    "tabular": 1,
    "envs": 2,
    "estimators": 3,
    "algorithms": 4,
    "problems": 4,
    # the deep RLHF wing
    "agents": 5,
    "rlhf": 6,
    # what runs both wings, and the command line
    "experiments": 7,
    "cli": 8,
    "__main__": 9,
}
"""Each top-level package or module of ``sobirl`` and its layer: a module may import its own unit or a lower layer."""


def check_layers(root: Path, layers: dict[str, int]) -> tuple[list[str], list[str]]:
    """The layer violations and the import cycles between the top-level units of the package at ``root``.

    A unit is a subpackage (``root/X/``) or a module (``root/X.py``; ``__init__`` for ``root/__init__.py``).
    ``import P``, ``from P import X`` and relative imports all resolve to the unit they name. A violation reads
    ``FILE imports UNIT (layer i > j of U)``, or names a unit that ``layers`` lacks; a cycle reads ``a -> b -> a``.
    """
    package = root.name
    units = {p.stem for p in root.glob("*.py")} | {p.parent.name for p in root.glob("*/__init__.py")}
    violations: list[str] = []
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        unit = rel.stem if len(rel.parts) == 1 else rel.parts[0]
        here = [package, *rel.parts[:-1]]  # the package a relative import starts from
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                names = [f"{module}.{alias.name}" if module == package else module for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != package:
                    continue
                target = parts[1] if len(parts) > 1 and parts[1] in units else "__init__"  # else a name of it
                if target == unit:
                    continue
                edges[unit].add(target)
                if unit not in layers or target not in layers:
                    missing = unit if unit not in layers else target
                    violations.append(f"{rel} imports {target}: {missing} has no layer")
                elif layers[target] > layers[unit]:
                    violations.append(f"{rel} imports {target} (layer {layers[target]} > {layers[unit]} of {unit})")
    return sorted(set(violations)), _cycles(edges)


def _cycles(edges: dict[str, set[str]]) -> list[str]:
    """One cycle ``a -> ... -> a`` per unit that can reach itself, written from its smallest name."""
    found = set()
    for start in edges:
        paths = [[start]]
        seen = set()
        while paths:
            path = paths.pop()
            for nxt in sorted(edges.get(path[-1], ())):
                if nxt == start:
                    cycle = path[path.index(min(path)) :] + path[: path.index(min(path))]
                    found.add(" -> ".join([*cycle, cycle[0]]))
                elif nxt not in seen:
                    seen.add(nxt)
                    paths.append([*path, nxt])
    return sorted(found)


def test_sobirl_imports_point_down_and_never_cycle():
    violations, cycles = check_layers(SRC, LAYERS)
    assert violations == []
    assert cycles == []


def test_every_unit_has_a_layer():
    units = {p.stem for p in SRC.glob("*.py")} | {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert units == set(LAYERS)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_checker_reports_an_upward_import(tmp_path):
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/mod.py": "def f():\n    from pkg.up.mod import g\n    return g\n",  # inside a function: counts
            "up/__init__.py": "",
            "up/mod.py": "from pkg.low import mod\n\ndef g():\n    return mod\n",
        },
    )
    violations, cycles = check_layers(root, {"__init__": 0, "low": 1, "up": 2})
    assert violations == ["low/mod.py imports up (layer 2 > 1 of low)"]
    assert cycles == ["low -> up -> low"]


def test_checker_reports_relative_and_type_checking_imports_and_unknown_units(tmp_path):
    root = _write(
        tmp_path / "pkg",
        {
            "low/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..up import thing\n",
            "up/__init__.py": "from pkg import __version__, base, extra\n",
            "__init__.py": "__version__ = '0'\n",
            "base.py": "",
            "extra.py": "",
        },
    )
    violations, cycles = check_layers(root, {"__init__": 0, "base": 0, "low": 1, "up": 2})
    assert violations == [
        "low/__init__.py imports up (layer 2 > 1 of low)",
        "up/__init__.py imports extra: extra has no layer",
    ]
    assert cycles == []
