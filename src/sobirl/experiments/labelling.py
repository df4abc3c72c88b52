"""``sobirl label RUN_DIR``: the labelling page of a stopped run's pending pairs (docs/labelling.md), served from the
run directory's ``labels.sqlite`` by :func:`sobirl.rlhf.human.server.main` until Ctrl-C; the answers are in the store
for the run to collect when it resumes. Needs the ``web`` extra."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from sobirl.rlhf.human.session import LABELS_FILE

MISSING_WEB = 'the labelling page needs the web extra (FastAPI, uvicorn): pip install "sobirl[web]"'


def label_store(run_dir: str | os.PathLike[str]) -> Path:
    """The path of ``run_dir``'s store of pairs and answers.

    Raises:
        ValueError: ``run_dir`` has no ``labels.sqlite``.
    """
    path = Path(run_dir) / LABELS_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir} has no {LABELS_FILE}: the run did not use the web labeller")
    return path


def serve_labels(
    run_dir: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None
) -> None:
    """Serve the labelling page of the pairs in ``run_dir``'s store on ``host:port`` (0: a free port) until
    interrupted; prints the page's address (``labelling page: URL``, the token in its fragment where there is one; a
    non-loopback ``host`` without a ``token`` gets a generated one).

    Raises:
        ValueError: ``run_dir`` has no ``labels.sqlite``.
        ImportError: the ``web`` extra is missing (:data:`MISSING_WEB`).
        RuntimeError: the server could not start (e.g. the port is taken).
    """
    store = label_store(run_dir)
    try:
        server = importlib.import_module("sobirl.rlhf.human.server")  # the web extra
    except ImportError as err:
        raise ImportError(MISSING_WEB) from err
    argv = [f"--store={store}", f"--host={host}", f"--port={port}"]
    server.main(argv if token is None else [*argv, f"--token={token}"])
