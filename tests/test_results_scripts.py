"""The scripts that regenerate docs/results/ reject an unknown section before they start anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize(
    ("script", "valid"),
    [
        ("make_tabular.sh", "synthetic four-rooms estimators"),
        ("make_rlhf.sh", "pendulum cartpole halfcheetah pendulum-150"),
        ("make_applications.sh", "apprenticeship contract-design navigation"),
    ],
)
def test_unknown_section_is_rejected_with_the_valid_ones(script, valid, tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run(
        ["bash", str(RESULTS / script), "bogus"],
        env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "RUNS": str(runs)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"unknown section 'bogus'; valid: {valid}"
    assert not runs.exists() and not (tmp_path / "out").exists()
