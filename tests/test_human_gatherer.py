"""WebLabeller: answers become labels (equal 0.5, can't tell dropped), blocking and asynchronous, across restarts."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sobirl.rlhf import FragmentPairs, PreferenceDataset, PreferenceGatherer, SyntheticLabeller
from sobirl.rlhf.human import ClipFormat, LabelStore, WebLabeller

FAST = ClipFormat(max_width=None)


def pairs_with_frames(n: int, *, length: int = 4, seed: int = 0) -> FragmentPairs:
    """``n`` pairs of ``length``-step fragments with random rewards and small random frames."""
    rng = np.random.default_rng(seed)
    return FragmentPairs(
        rng.normal(size=(n, 2, length, 3)).astype(np.float32),
        rng.integers(0, 2, size=(n, 2, length)),
        rng.normal(size=(n, 2, length)),
        rng.integers(0, 256, size=(n, 2, length, 8, 12, 3), dtype=np.uint8),
    )


def person(store: LabelStore, choices: dict[int, str]) -> threading.Thread:
    """A started thread that answers pairs as a page does (lease, then answer) until it has answered each pair of
    ``choices`` (pair id -> choice)."""

    def run() -> None:
        left = set(choices)
        while left:
            pair = store.next_pair("person")
            if pair is None:
                time.sleep(0.01)
                continue
            store.answer(pair.id, choices[pair.id], client="person")
            left.discard(pair.id)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def assert_same_pairs(got: FragmentPairs, want: FragmentPairs) -> None:
    for name in ("observations", "actions", "true_rewards"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
    assert got.frames is None


def test_blocking_call_waits_for_a_person_and_maps_the_answers(tmp_path):
    pairs = pairs_with_frames(4)
    with LabelStore(tmp_path / "labels.sqlite") as store:
        labeller = WebLabeller(store, poll_s=0.01, clips=FAST)
        assert isinstance(labeller, PreferenceGatherer)
        answering = person(store, {1: "left", 2: "right", 3: "equal", 4: "cant_tell"})
        labels = labeller(pairs)
        answering.join()
        np.testing.assert_array_equal(labels, [1.0, 0.0, 0.5, np.nan])
        np.testing.assert_allclose(store.pair(2).metadata["true_returns"], pairs.true_rewards[1].sum(axis=-1))
        assert len(labeller.gather(pairs[:0])[0]) == 0  # __call__ handed its answers on: nothing left

    dataset = PreferenceDataset(10)
    dataset.push(pairs, labels)  # "can't tell" is dropped
    kept, kept_labels = dataset.contents()
    np.testing.assert_array_equal(kept_labels, [1.0, 0.0, 0.5])
    assert_same_pairs(kept, pairs[:3])


def test_blocking_gather_returns_the_queued_pairs_in_answer_order(tmp_path):
    pairs = pairs_with_frames(3)
    with LabelStore(tmp_path / "labels.sqlite") as store:
        labeller = WebLabeller(store, poll_s=0.01, clips=FAST)
        answering = person(store, {1: "right", 2: "equal", 3: "left"})
        got, labels = labeller.gather(pairs)
        answering.join()
        np.testing.assert_array_equal(labels, [0.0, 0.5, 1.0])
        assert_same_pairs(got, pairs)
        assert labeller.state_dict() == {"collected_round": 1}


def test_async_gather_returns_what_is_answered_so_far_including_earlier_calls(tmp_path):
    first, second = pairs_with_frames(3, seed=1), pairs_with_frames(2, seed=2)
    with LabelStore(tmp_path / "labels.sqlite") as store:
        labeller = WebLabeller(store, wait=False, clips=FAST)
        got, labels = labeller.gather(first)  # nobody has answered yet
        assert len(got) == 0 and labels.shape == (0,) and got.observations.shape[1:] == first.observations.shape[1:]
        store.answer(3, "left")
        store.answer(1, "cant_tell")
        got, labels = labeller.gather(second)  # the answers to the first call's pairs, in answer order
        np.testing.assert_array_equal(labels, [1.0, np.nan])
        assert_same_pairs(got, first[np.array([2, 0])])
        store.answer(5, "right")
        got, labels = labeller.gather(first[:0])
        np.testing.assert_array_equal(labels, [0.0])
        assert_same_pairs(got, second[1:])
        assert store.counts() == {"labelled": 3, "queued": 2}


def test_a_resumed_labeller_gets_back_the_answers_its_checkpoint_lacks(tmp_path):
    path = tmp_path / "labels.sqlite"
    pairs = pairs_with_frames(3)
    with LabelStore(path) as store:
        labeller = WebLabeller(store, wait=False, clips=FAST)
        labeller.gather(pairs)
        store.answer(1, "left")
        labeller.gather(pairs[:0])
        checkpoint = labeller.state_dict()  # the run checkpoints here, with pair 1's label in its dataset
        store.answer(2, "right")
        assert len(labeller.gather(pairs[:0])[0]) == 1  # handed on, then the run is killed before a checkpoint
    with LabelStore(path) as store:  # the resumed run
        labeller = WebLabeller(store, wait=False, clips=FAST)
        labeller.load_state_dict(checkpoint)
        store.answer(3, "equal")
        got, labels = labeller.gather(pairs[:0])
        np.testing.assert_array_equal(labels, [0.0, 0.5])  # pair 2 again, and pair 3
        assert_same_pairs(got, pairs[1:])


def test_a_blocked_call_times_out_and_leaves_its_pairs_queued(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        labeller = WebLabeller(store, poll_s=0.01, timeout_s=0.05, clips=FAST)
        with pytest.raises(TimeoutError, match="2 of 2 pairs are still unanswered"):
            labeller(pairs_with_frames(2))
        assert store.counts() == {"labelled": 0, "queued": 2}


def test_pairs_without_frames_are_refused(tmp_path):
    pairs = pairs_with_frames(1)
    with LabelStore(tmp_path / "labels.sqlite") as store:
        with pytest.raises(ValueError, match="needs the fragments' frames"):
            WebLabeller(store).gather(FragmentPairs(pairs.observations, pairs.actions, pairs.true_rewards))
        assert store.counts() == {"labelled": 0, "queued": 0}


def test_every_gatherer_gathers_and_keeps_its_state():
    pairs = pairs_with_frames(50)
    labeller = SyntheticLabeller(generator=3)
    got, labels = labeller.gather(pairs)
    assert got is pairs and labels.shape == (50,)
    state = labeller.state_dict()
    again = labeller(pairs)
    labeller.load_state_dict(state)
    np.testing.assert_array_equal(labeller(pairs), again)


def test_fragment_pairs_frames_are_checked_and_indexed():
    pairs = pairs_with_frames(3)
    assert pairs[np.array([True, False, True])].frames.shape == (2, 2, 4, 8, 12, 3)
    with pytest.raises(ValueError, match="frames must be uint8"):
        FragmentPairs(pairs.observations, pairs.actions, pairs.true_rewards, pairs.frames[:, :, :3])
    with pytest.raises(ValueError, match="frames must be uint8"):
        FragmentPairs(pairs.observations, pairs.actions, pairs.true_rewards, pairs.frames.astype(np.float32))
    with pytest.raises(TypeError, match="slice"):
        pairs[0]


def test_a_pair_asked_again_is_the_pair_asked_before(tmp_path):
    pairs = pairs_with_frames(3)
    with LabelStore(tmp_path / "labels.sqlite") as store:
        labeller = WebLabeller(store, wait=False, clips=FAST)
        labeller.gather(pairs[:2])
        store.answer(1, "left")
        labeller.gather(pairs[1:])  # pair 2 again (a resumed run asking what it asked before its checkpoint)
        assert store.counts() == {"labelled": 1, "queued": 2}  # pairs 2 and 3, each once
        store.answer(2, "right")
        got, labels = labeller.gather(pairs[1:2])
        np.testing.assert_array_equal(labels, [0.0])
        assert_same_pairs(got, pairs[1:2])
