"""A run labelled by people: its :class:`WebLabeller` over the run directory's store, and the labelling page served
while the run trains."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sobirl.rlhf.human.gatherer import WebLabeller
from sobirl.rlhf.human.store import LabelStore
from sobirl.rlhf.preferences import PreferenceGatherer

LABELS_FILE = "labels.sqlite"
"""A run directory's store of queued pairs and answers."""

MISSING_WEB = 'labeller web needs the web extra: pip install "sobirl[web]"'


def run_labeller(run_dir: str | Path, *, wait: bool) -> WebLabeller:
    """The :class:`WebLabeller` of the run in ``run_dir``, over its :data:`LABELS_FILE` (created if missing)."""
    return WebLabeller(LabelStore(Path(run_dir) / LABELS_FILE), wait=wait)


@contextmanager
def labelling_page(
    labeller: PreferenceGatherer,
    *,
    host: str,
    port: int,
    token: str | None,
    budget: int,
    returns: Callable[[], Sequence[tuple[float, float]]],
) -> Iterator[None]:
    """Serve the labelling page of ``labeller``'s store while the block runs, if it is a :class:`WebLabeller`
    (otherwise do nothing). The page shows ``budget`` (the pairs the run will query), whether training waits for the
    answers (``labeller.wait``), and the ``returns()`` curve, ``(agent step, evaluation return)`` points.

    Raises:
        ImportError: the ``web`` extra is missing (:data:`MISSING_WEB`).
        RuntimeError: the server could not start (e.g. the port is taken).
    """
    if not isinstance(labeller, WebLabeller):
        yield
        return
    try:
        from sobirl.rlhf.human.server import TRAINING_MODES, serve  # the web extra
    except ImportError as err:
        raise ImportError(MISSING_WEB) from err
    mode = TRAINING_MODES[0 if labeller.wait else 1]

    def status() -> dict:
        return {"budget": budget, "mode": mode, "returns": [list(point) for point in returns()]}

    server = serve(labeller.store, host=host, port=port, token=token, status=status)
    try:
        yield
    finally:
        server.stop()
