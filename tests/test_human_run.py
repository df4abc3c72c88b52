"""A deep RLHF run labelled through the labelling page's store: the run serves the page, queues clips of its own
episodes, waits for the answers and trains on them; its checkpoint resumes the labelling."""

from __future__ import annotations

import json
import threading
import urllib.request

import numpy as np
import pytest

from smoke import SMOKE
from sobirl.experiments import write_config
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.human import LabelStore, WebLabeller
from sobirl.rlhf.human.session import LABELS_FILE
from sobirl.rlhf.trainer import RLHFTrainer

WEB = {**SMOKE, "labeller": "web", "label_port": 0, "frame_steps": 300, "frame_width": 48, "algo": "drlhf"}


def person(store_path, stop: threading.Event) -> None:
    """Answers every queued pair as someone who prefers the higher true return would (ties: equal)."""
    store = LabelStore(store_path)
    while not stop.is_set():
        pair = store.next_pair("person")
        if pair is None:
            stop.wait(0.02)
            continue
        left, right = pair.metadata["true_returns"]
        store.answer(pair.id, "left" if left > right else "right" if right > left else "equal", client="person")


def test_a_web_labelled_run_trains_on_the_answers_and_resumes(tmp_path, capsys):
    config = RLHFConfig.from_dict({**WEB, "total_steps": 300})  # reward updates at 100 and 200
    write_config(tmp_path, {"experiment": "rlhf", **config.resolved()})
    trainer = RLHFTrainer(config, tmp_path)
    assert isinstance(trainer.labeller, WebLabeller) and trainer.labeller.wait
    stop = threading.Event()
    answering = threading.Thread(target=person, args=(tmp_path / LABELS_FILE, stop))
    answering.start()
    try:
        rows = trainer.run()
    finally:
        stop.set()
        answering.join()
    assert "labelling page: http://127.0.0.1:" in capsys.readouterr().out
    pairs, labels = trainer.dataset.contents()
    returns = pairs.true_rewards.sum(axis=-1)
    preferred = np.where(returns[:, 0] > returns[:, 1], 1.0, np.where(returns[:, 0] < returns[:, 1], 0.0, 0.5))
    np.testing.assert_array_equal(labels, preferred)  # a tie: a fragment drawn twice
    assert len(pairs) == rows[-1]["pairs"] == 40 and len(LabelStore(tmp_path / LABELS_FILE).answers()) == 40
    resumed = RLHFTrainer.resume(tmp_path)
    assert isinstance(resumed.labeller, WebLabeller)
    assert resumed.labeller.collected_round == trainer.labeller.collected_round


def test_the_page_is_served_while_the_run_trains_and_says_training_goes_on(tmp_path, monkeypatch):
    from sobirl.rlhf.human import server

    servers, real = [], server.serve
    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: servers.append(real(*args, **kwargs)) or servers[-1])
    config = RLHFConfig.from_dict({**WEB, "total_steps": 200, "labeller_async": True})  # one update, at step 100
    trainer = RLHFTrainer(config, tmp_path)
    statuses, update = [], trainer._reward_update

    def update_then_look() -> None:
        update()
        with urllib.request.urlopen(f"{servers[0].url}/api/status", timeout=5) as response:
            statuses.append(json.load(response))
        with urllib.request.urlopen(servers[0].page_url, timeout=5) as response:
            assert response.status == 200

    monkeypatch.setattr(trainer, "_reward_update", update_then_look)
    trainer.run()  # asynchronous: it never waits for an answer
    assert trainer.state.queried == 40 and len(trainer.dataset) == 0  # nobody answered
    assert statuses == [{"labelled": 0, "queued": 40, "budget": 40, "mode": "goes on training", "returns": []}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": "ALE/BeamRider-v5", "estimator": "one-step"}, "labeller web needs a reward net and an environment"),
        ({"algo": "sac-true-reward"}, "has no reward net: use labeller: synthetic"),
        ({"label_port": 70000}, "label_port must be an integer in [0, 65535], got 70000"),
        ({"labeller": "mturk"}, "unknown labeller 'mturk'; valid: synthetic, web"),
    ],
)
def test_bad_labelling_settings_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RLHFConfig.from_dict({**WEB, **changes})
