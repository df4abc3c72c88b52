"""``sobirl label RUN_DIR``: the labelling page of a stopped run's store, served until Ctrl-C; a run directory without a
store, and a missing web extra, fail at once with one error line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sobirl.cli import main
from sobirl.rlhf.human import LabelStore


def test_a_run_without_labels_sqlite_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["label", str(tmp_path)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        f"sobirl label: error: {tmp_path} has no labels.sqlite: the run did not use the web labeller\n"
    )
    assert list(tmp_path.iterdir()) == []  # no store created


def test_a_missing_web_extra_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    LabelStore(tmp_path / "labels.sqlite").close()
    monkeypatch.setitem(sys.modules, "sobirl.rlhf.human.server", None)  # its import fails, as without fastapi
    with pytest.raises(SystemExit) as exc:
        main(["label", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith("sobirl label: error: ") and err.endswith('pip install "sobirl[web]"\n')


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_label_serves_the_page_until_interrupted(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    LabelStore(tmp_path / "labels.sqlite").close()
    cmd = [sys.executable, "-m", "sobirl", "label", str(tmp_path), "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def default_sigint() -> None:  # a shell's background job ignores SIGINT, and so would its children
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    with subprocess.Popen(cmd, preexec_fn=default_sigint, **popen) as proc:
        try:
            line = proc.stdout.readline()  # printed once the server accepts connections
            assert line.startswith("labelling page: http://127.0.0.1:"), (line, proc.stderr.read())
            url = line.removeprefix("labelling page: ").strip()
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.status == 200
                assert b"<html" in response.read().lower()
            with urllib.request.urlopen(url.rstrip("/") + "/api/status", timeout=30) as response:
                assert response.status == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
