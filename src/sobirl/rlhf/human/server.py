"""The labelling page and its JSON API over a :class:`LabelStore` (FastAPI; served by uvicorn). Needs the ``web`` extra.

Routes (``/api/...`` need ``Authorization: Bearer <token>`` when the app has a token: 401 without it, 403 with another):

- ``GET /``: the page (``static/``: two clips side by side, answer buttons and keys, progress, the return curve).
- ``GET /api/status``: :class:`Status`.
- ``GET /api/next?client=ID``: ``{"pair": {"id": ..., "media_type": ...}}``, the pair leased to the page's client id
  (:meth:`LabelStore.next_pair`), or ``{"pair": null}`` when none is free.
- ``GET /api/pairs/{id}/left`` and ``.../right``: a clip's bytes; 404 for an unknown pair.
- ``POST /api/pairs/{id}/answer`` with :class:`AnswerIn`: 201 and the answer, committed; 404 for an unknown pair, 409
  for one answered already, 422 for a body that is not JSON or not an :class:`AnswerIn`. A rejected request records
  nothing.

Serving on a host other than a loopback address needs a token; :func:`serve` generates one when none is given
(``secrets.token_urlsafe``); it prints the page's address, token included. The page takes the token from the address's
fragment (``/#token=...``), which browsers never send to the server, and keeps it for the tab.

Run it on a store with ``python -m sobirl.rlhf.human.server --store RUN_DIR/labels.sqlite`` (``--help``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParameter
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from sobirl.rlhf.human.store import CHOICES, AlreadyAnsweredError, LabelStore, UnknownPairError

TRAINING_MODES = ("waits for labels", "goes on training")
"""What training does while pairs wait for answers (:class:`Status`'s ``mode``)."""

_STATIC = Path(str(files("sobirl.rlhf.human") / "static"))
_CLIENT_ID = r"^[A-Za-z0-9_-]{1,64}$"
_PairId = Annotated[int, PathParameter(ge=1, lt=2**63)]  # SQLite's integers


class AnswerIn(BaseModel):
    """The body of an answer: the choice and the answering page's client id."""

    model_config = ConfigDict(extra="forbid")
    choice: Literal[CHOICES]
    client: str = Field(pattern=_CLIENT_ID)


class Status(BaseModel):
    """The run's progress: pairs answered and waiting (the store's counts unless the status callable gives them), the
    budget of pairs the run will query, what training does meanwhile, and its ``[agent step, evaluation return]``
    points."""

    model_config = ConfigDict(extra="forbid")
    labelled: int
    queued: int
    budget: int | None = None
    mode: Literal[TRAINING_MODES] | None = None
    returns: list[tuple[float, float]] = Field(default_factory=list)


def create_app(
    store: LabelStore, *, token: str | None = None, status: Callable[[], Mapping[str, Any]] | None = None
) -> FastAPI:
    """The labelling app over ``store`` (module docstring).

    Args:
        store: the pairs and answers.
        token: the bearer token every ``/api`` request must carry; None: none needed.
        status: returns the run's :class:`Status` fields (any of them; ``labelled`` and ``queued`` default to the
            store's counts), called at each ``GET /api/status``; None: the store's counts only.
    """
    app = FastAPI(title="sobirl labelling", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    @app.middleware("http")
    async def require_token(request: Request, call_next: Callable[[Request], Any]) -> Response:
        """401 without the token, 403 with another, before anything else reads the request."""
        if token is not None and request.url.path.startswith("/api/"):
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given:
                return JSONResponse({"detail": "token needed"}, 401, {"WWW-Authenticate": "Bearer"})
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "wrong token"}, 403)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(_STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/status")
    def get_status() -> Status:
        fields = {**store.counts(), **(status() if status is not None else {})}
        return Status(**fields)

    @app.get("/api/next")
    def next_pair(client: str = Query(pattern=_CLIENT_ID)) -> dict[str, Any]:
        pair = store.next_pair(client)
        return {"pair": None if pair is None else {"id": pair.id, "media_type": pair.media_type}}

    @app.get("/api/pairs/{pair_id}/{side}")
    def clip(pair_id: _PairId, side: Literal["left", "right"]) -> Response:
        try:
            pair = store.pair(pair_id)
        except UnknownPairError:
            raise HTTPException(404, f"no pair {pair_id}") from None
        return Response(getattr(pair, side), media_type=pair.media_type, headers={"Cache-Control": "private"})

    @app.post("/api/pairs/{pair_id}/answer", status_code=201)
    def answer(pair_id: _PairId, body: AnswerIn) -> dict[str, Any]:
        try:
            recorded = store.answer(pair_id, body.choice, client=body.client)
        except UnknownPairError:
            raise HTTPException(404, f"no pair {pair_id}") from None
        except AlreadyAnsweredError as err:
            raise HTTPException(409, str(err)) from None
        return {"pair_id": recorded.pair_id, "choice": recorded.choice}

    return app


def status_file(path: str | os.PathLike[str]) -> Callable[[], dict[str, Any]]:
    """A ``status`` for :func:`create_app` that reads the JSON object in ``path`` at each call (``{}`` while the file
    does not exist); whoever writes it should replace it atomically (``os.replace``)."""

    def read() -> dict[str, Any]:
        try:
            return json.loads(Path(path).read_text())
        except FileNotFoundError:
            return {}

    return read


@dataclass(frozen=True)
class RunningServer:
    """A labelling server running in a background thread: its base ``url``, its ``token`` (None: none needed)."""

    url: str
    token: str | None
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def page_url(self) -> str:
        """The page's address, with the token in its fragment where one is needed."""
        return f"{self.url}/" if self.token is None else f"{self.url}/#token={self.token}"

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join()


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    store: LabelStore,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    status: Callable[[], Mapping[str, Any]] | None = None,
) -> RunningServer:
    """Serve :func:`create_app` on ``host:port`` (0: a free port) from a background thread; returns once it accepts
    connections, having printed the page's address (``labelling page: URL``). A non-loopback ``host`` without a
    ``token`` gets a generated one (in the printed address).

    Raises:
        RuntimeError: the server could not start (e.g. the port is taken).
    """
    generated = token is None and not _is_loopback(host)
    if generated:
        token = secrets.token_urlsafe(24)
    app = create_app(store, token=token, status=status)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="sobirl-labelling", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the labelling server could not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    running = RunningServer(f"http://{f'[{host}]' if ':' in host else host}:{bound}", token, server, thread)
    print(f"labelling page: {running.page_url}" + (" (token generated)" if generated else ""), flush=True)
    return running


def main(argv: list[str] | None = None) -> None:
    """``python -m sobirl.rlhf.human.server``: serve a store until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sobirl.rlhf.human.server", description=__doc__.split("\n")[0])
    parser.add_argument("--store", required=True, help="the SQLite file of the pairs and answers (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="the port; 0: a free one (default: %(default)s)")
    parser.add_argument("--token", help="the token the page needs (generated for a non-loopback host when missing)")
    parser.add_argument("--status", help="a JSON file of the run's status fields, read at each request")
    args = parser.parse_args(argv)
    with LabelStore(args.store) as store:
        running = serve(
            store,
            host=args.host,
            port=args.port,
            token=args.token,
            status=None if args.status is None else status_file(args.status),
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            running.stop()


if __name__ == "__main__":
    main()
