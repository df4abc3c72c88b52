"""The labelling app: every request validated, the right 4xx for each mistake, and a rejected request records
nothing; the page and its API drive a WebLabeller end to end."""

from __future__ import annotations

import json
import threading

import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sobirl.rlhf.human import LabelStore, WebLabeller
from sobirl.rlhf.human.server import create_app, serve, status_file
from test_human_gatherer import FAST, pairs_with_frames
from test_human_store import queue, snapshot

TOKEN = "s3cret-token"
JSON = {"content-type": "application/json"}


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        yield store


def test_the_page_and_its_assets_are_served(store):
    client = TestClient(create_app(store, token=TOKEN))
    page = client.get("/")  # the page itself needs no token: it reads it from the address's fragment
    assert page.status_code == 200 and 'data-choice="cant_tell"' in page.text and "page.js" in page.text
    script = client.get("/static/page.js")
    assert script.status_code == 200 and "ArrowLeft" in script.text
    assert "http" not in client.get("/static/page.css").text  # nothing from another host (no CDN)


def test_a_page_leases_a_pair_gets_its_clips_and_answers(store):
    queue(store, 2)
    client = TestClient(create_app(store))
    assert client.get("/api/next", params={"client": "tab1"}).json() == {"pair": {"id": 1, "media_type": "image/webp"}}
    assert client.get("/api/next", params={"client": "tab2"}).json()["pair"]["id"] == 2  # never the same pair
    assert client.get("/api/next", params={"client": "tab3"}).json() == {"pair": None}
    clip = client.get("/api/pairs/1/right")
    assert clip.content == b"R0" and clip.headers["content-type"] == "image/webp"
    answered = client.post("/api/pairs/1/answer", json={"choice": "equal", "client": "tab1"})
    assert answered.status_code == 201 and answered.json() == {"pair_id": 1, "choice": "equal"}
    assert [(a.pair_id, a.choice, a.client) for a in store.answers()] == [(1, "equal", "tab1")]
    assert client.get("/api/status").json() == {
        "labelled": 1,
        "queued": 1,
        "budget": None,
        "mode": None,
        "returns": [],
    }


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"url": "/api/pairs/99/answer", "json": {"choice": "left", "client": "t"}}, 404),  # unknown pair
        ({"url": "/api/pairs/1/answer", "json": {"choice": "right", "client": "t"}}, 409),  # answered already
        ({"url": "/api/pairs/2/answer", "json": {"choice": "up", "client": "t"}}, 422),  # bad choice
        ({"url": "/api/pairs/2/answer", "json": {"choice": "left"}}, 422),  # no client id
        ({"url": "/api/pairs/2/answer", "json": {"choice": "left", "client": "t", "x": 1}}, 422),  # unknown field
        ({"url": "/api/pairs/2/answer", "json": {"choice": "left", "client": "a b"}}, 422),  # bad client id
        ({"url": "/api/pairs/2/answer", "json": ["left"]}, 422),  # not an object
        ({"url": "/api/pairs/x/answer", "json": {"choice": "left", "client": "t"}}, 422),  # bad pair id
        ({"url": f"/api/pairs/{2**63}/answer", "json": {"choice": "left", "client": "t"}}, 422),  # beyond SQLite
        ({"url": "/api/pairs/2/answer", "content": b'{"choice": "left", "cli', "headers": JSON}, 422),  # malformed
    ],
)
def test_bad_answers_get_the_right_status_and_change_nothing(store, request_args, status):
    queue(store, 2)
    store.answer(1, "left", client="t")
    client = TestClient(create_app(store))
    before = snapshot(store)
    response = client.post(**request_args)
    assert response.status_code == status, response.text
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/pairs/99/left", None), ("/api/next", {"client": "a b"}), ("/api/next", None), ("/api/pairs/1/up", None)],
)
def test_bad_reads_are_rejected_without_leasing(store, path, params):
    queue(store, 1)
    client = TestClient(create_app(store))
    before = snapshot(store)
    assert client.get(path, params=params).status_code == (404 if path.endswith("99/left") else 422)
    assert snapshot(store) == before


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer nope"}, 403)])
def test_a_missing_or_wrong_token_is_refused_before_anything_happens(store, headers, status):
    queue(store, 1)
    client = TestClient(create_app(store, token=TOKEN))
    before = snapshot(store)
    for method, path, body in [
        ("GET", "/api/next?client=t", None),
        ("GET", "/api/pairs/1/left", None),
        ("GET", "/api/status", None),
        ("POST", "/api/pairs/1/answer", {"choice": "left", "client": "t"}),
        ("POST", "/api/pairs/1/answer", None),  # malformed: still the token's status, not 422
    ]:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (method, path)
    assert snapshot(store) == before
    good = client.post(
        "/api/pairs/1/answer", json={"choice": "left", "client": "t"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert good.status_code == 201


def test_status_merges_the_runs_fields_and_reads_a_status_file(store, tmp_path):
    queue(store, 3)
    store.answer(2, "left")
    run = {"budget": 10, "mode": "goes on training", "returns": [[0, -1200.5], [1000, -800.0]]}
    client = TestClient(create_app(store, status=lambda: run))
    assert client.get("/api/status").json() == {"labelled": 1, "queued": 2, **run}

    path = tmp_path / "status.json"
    client = TestClient(create_app(store, status=status_file(path)))
    assert client.get("/api/status").json()["budget"] is None  # no file yet: the store's counts only
    path.write_text(json.dumps({"budget": 5, "mode": "waits for labels"}))
    assert client.get("/api/status").json() == {
        "labelled": 1,
        "queued": 2,
        "budget": 5,
        "mode": "waits for labels",
        "returns": [],
    }


def test_serve_answers_over_http_and_a_network_host_gets_a_generated_token(store, capsys):
    queue(store, 1)
    running = serve(store)  # loopback: no token needed
    try:
        assert running.token is None and running.page_url == running.url + "/"
        assert httpx2.get(f"{running.url}/api/next", params={"client": "t"}).json()["pair"]["id"] == 1
        assert f"labelling page: {running.url}/" in capsys.readouterr().out
    finally:
        running.stop()
    running = serve(store, host="0.0.0.0")
    try:
        assert running.token and len(running.token) >= 32
        assert f"#token={running.token} (token generated)" in capsys.readouterr().out
        assert httpx2.get(f"http://127.0.0.1:{running.url.rsplit(':', 1)[1]}/api/status").status_code == 401
    finally:
        running.stop()


def test_a_blocking_web_labeller_gets_its_labels_from_the_page_api(store):
    """The trainer's side blocks in WebLabeller while a person answers through the API."""
    pairs = pairs_with_frames(3)
    client = TestClient(create_app(store, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    labeller = WebLabeller(store, poll_s=0.01, timeout_s=30, clips=FAST)
    labels: list[np.ndarray] = []
    trainer = threading.Thread(target=lambda: labels.append(labeller(pairs)))
    trainer.start()
    choices = iter(["right", "cant_tell", "left"])
    answered = 0
    while answered < 3:
        pair = client.get("/api/next", params={"client": "tab"}).json()["pair"]
        if pair is None:
            continue
        assert client.get(f"/api/pairs/{pair['id']}/left").content[:4] == b"RIFF"  # a WebP clip
        body = {"choice": next(choices), "client": "tab"}
        assert client.post(f"/api/pairs/{pair['id']}/answer", json=body).status_code == 201
        answered += 1
    trainer.join()
    np.testing.assert_array_equal(labels[0], [0.0, np.nan, 1.0])
