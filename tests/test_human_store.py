"""The label store: durable answers, leases that keep two pages off the same pair, errors that change nothing."""

from __future__ import annotations

import threading
import time

import pytest

from sobirl.rlhf.human import AlreadyAnsweredError, LabelStore, NewPair, UnknownPairError


def queue(store: LabelStore, n: int) -> list[int]:
    """Queue ``n`` pairs whose clips and data name their position."""
    return store.enqueue(
        NewPair(f"L{i}".encode(), f"R{i}".encode(), "image/webp", data=f"D{i}".encode(), metadata={"i": i})
        for i in range(n)
    )


def snapshot(store: LabelStore) -> tuple:
    """Everything a request could change: answers, counts, leases, collection marks."""
    db = store._db()
    leases = db.execute("SELECT id, lease_client, lease_until FROM pairs ORDER BY id").fetchall()
    marks = db.execute("SELECT pair_id, collected FROM answers ORDER BY seq").fetchall()
    return store.answers(), store.counts(), leases, marks


def test_answers_and_the_pending_queue_survive_a_reopen(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path) as store:
        ids = queue(store, 4)
        assert ids == [1, 2, 3, 4]
        assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.answer(ids[1], "left", client="a")
        store.answer(ids[3], "cant_tell")
        assert store.next_pair("a").id == ids[0]  # leased, not answered
        before = store.answers()
    with LabelStore(path) as store:  # a new process would see the same: every write was committed
        assert store.answers() == before
        assert [(a.pair_id, a.choice, a.client) for a in before] == [(2, "left", "a"), (4, "cant_tell", None)]
        assert store.counts() == {"labelled": 2, "queued": 2}
        assert store.unanswered(ids) == [1, 3]
        assert store.next_pair("a").id == 1  # the lease survived too
        assert store.next_pair("b").id == 3
        pair = store.pair(3)
        assert (pair.left, pair.right, pair.media_type, pair.metadata) == (b"L2", b"R2", "image/webp", {"i": 2})
        assert queue(store, 1) == [5]  # ids are never reused


def test_unknown_pair_double_answer_and_bad_choice_raise_and_change_nothing(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        queue(store, 2)
        store.next_pair("a")
        store.answer(1, "equal", client="a")
        before = snapshot(store)
        with pytest.raises(UnknownPairError):
            store.answer(99, "left")
        with pytest.raises(AlreadyAnsweredError, match="answered already"):
            store.answer(1, "right", client="b")
        with pytest.raises(ValueError, match="unknown choice 'up'"):
            store.answer(2, "up")
        with pytest.raises(UnknownPairError):
            store.pair(99)
        assert snapshot(store) == before


def test_two_clients_never_get_the_same_pair_and_a_client_gets_its_own_back(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        queue(store, 2)
        assert store.next_pair("a").id == 1
        assert store.next_pair("b").id == 2
        assert store.next_pair("c") is None  # both leased
        assert store.next_pair("a").id == 1  # a reloaded tab gets its pair again
        store.answer(2, "left", client="a")  # any client may answer; the lease ends
        assert store.next_pair("c") is None  # pair 1 is still a's


def test_concurrent_clients_in_threads_and_stores_get_distinct_pairs(tmp_path):
    path = tmp_path / "labels.sqlite"
    stores = [LabelStore(path), LabelStore(path)]  # two stores: separate connections, as two processes have
    queue(stores[0], 40)
    got: dict[str, list[int]] = {}

    def take(store: LabelStore, client: str) -> None:
        got[client] = [p.id for k in range(5) if (p := store.next_pair(f"{client}-{k}")) is not None]

    threads = [threading.Thread(target=take, args=(stores[k % 2], f"c{k}")) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handed = [i for ids in got.values() for i in ids]
    assert sorted(handed) == list(range(1, 41))  # every pair handed out exactly once
    for store in stores:
        store.close()


def test_concurrent_answers_to_one_pair_record_exactly_one(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path) as first, LabelStore(path) as second:
        queue(first, 1)
        outcomes: list[str] = []

        def answer(store: LabelStore, choice: str) -> None:
            try:
                store.answer(1, choice)
                outcomes.append("ok")
            except AlreadyAnsweredError:
                outcomes.append("conflict")

        threads = [threading.Thread(target=answer, args=((first, second)[k % 2], "left")) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 5 + ["ok"]
        assert len(first.answers()) == 1


def test_an_expired_lease_returns_the_pair_to_the_queue(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", lease_s=0.05) as store:
        queue(store, 1)
        assert store.next_pair("a").id == 1
        assert store.next_pair("b") is None
        time.sleep(0.1)
        assert store.next_pair("b").id == 1
        assert store.next_pair("a") is None


def test_collect_hands_each_answer_on_once_and_uncollect_replays_later_rounds(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        queue(store, 4)
        assert store.collect() == (0, [])
        store.answer(3, "right")
        store.answer(1, "left")
        round_, found = store.collect()
        assert round_ == 1
        assert [(c.pair_id, c.choice, c.data) for c in found] == [(3, "right", b"D2"), (1, "left", b"D0")]
        store.answer(2, "equal")
        store.answer(4, "cant_tell")
        assert [c.pair_id for c in store.collect([4])[1]] == [4]  # round 2: only the pairs asked for
        round_, found = store.collect()
        assert round_ == 3 and [c.pair_id for c in found] == [2]
        assert store.collect() == (3, [])
        assert store.uncollect_after(1) == 2  # rounds 2 and 3 (pairs 4 and 2) are collectable again
        round_, found = store.collect()
        assert round_ == 2 and [c.pair_id for c in found] == [2, 4]  # in answer order
        with pytest.raises(ValueError, match="last_round"):
            store.uncollect_after(-1)
