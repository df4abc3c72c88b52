"""Frame stacks kept as their distinct frames: exact round trips, the preference dataset and the episode recorder
that keep Atari fragments and episodes that way (same pairs, same draws, a quarter of the memory), and refusals of
what is not a stack."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sobirl.rlhf import EpisodeRecorder, FragmentPairs, PreferenceDataset, Trajectory, sample_fragment_pairs
from sobirl.rlhf.frame_stacks import frames_of, stacks_of

K, L, FRAME = 4, 5, (3, 2)


def stacked_episode(rng: np.random.Generator, T: int, k: int = K) -> Trajectory:
    """An episode of ``T`` stacks as ``make_atari`` gives them: the ``k`` newest uint8 frames, zeros before the first
    (one frame in five all-zero too, so zero frames also occur inside an episode)."""
    frames = rng.integers(1, 256, size=(T, *FRAME), dtype=np.uint8)
    frames[rng.random(T) < 0.2] = 0
    padded = np.concatenate([np.zeros((k - 1, *FRAME), dtype=np.uint8), frames])
    stacks = np.stack([padded[t : t + k] for t in range(T)])
    return Trajectory(stacks, rng.integers(0, 9, size=T), rng.normal(size=T), terminated=True, truncated=False)


def stacked_pairs(n: int, seed: int, k: int = K) -> tuple[FragmentPairs, np.ndarray]:
    rng = np.random.default_rng(seed)
    episodes = [stacked_episode(rng, T, k) for T in (L, 9, 30)]  # one exactly L steps: its fragment starts at reset
    return sample_fragment_pairs(episodes, n, L, rng), rng.random(n)


@pytest.mark.parametrize("k", [1, 2, K])
def test_frames_of_keeps_each_frame_once_and_stacks_of_rebuilds_the_stacks_exactly(k):
    pairs, _ = stacked_pairs(40, seed=k, k=k)
    frames = frames_of(pairs.observations, k, axis=2)
    assert frames.shape == (40, 2, L + k - 1, *FRAME) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[:, :, :k], pairs.observations[:, :, 0])  # the first stack, whole
    np.testing.assert_array_equal(frames[:, :, k:], pairs.observations[:, :, 1:, -1])  # then the newest frames
    stacks = stacks_of(frames, k, axis=2)
    assert stacks.dtype == np.uint8 and stacks.flags.c_contiguous
    np.testing.assert_array_equal(stacks, pairs.observations)
    assert frames.nbytes * L * k == pairs.observations.nbytes * (L + k - 1)


def test_what_is_not_a_frame_stack_is_refused():
    pairs, _ = stacked_pairs(6, seed=0)
    broken = pairs.observations.copy()
    broken[3, 1, 2, 0] += 1  # an older frame of one stack no longer matches the previous stack
    with pytest.raises(
        ValueError, match=r"not frame stacks: the stack at step t \+ 1 must be the stack at step t shifted"
    ):
        frames_of(broken, K, axis=2)
    with pytest.raises(
        ValueError,
        match=r"observations must have the time axis at 2 \(at least one step\) and n_stack = 3 frames after it",
    ):
        frames_of(pairs.observations, 3, axis=2)
    with pytest.raises(
        ValueError, match=r"frames must have the time axis at 2 with T \+ n_stack - 1 >= 4 frames \(T >= 1\)"
    ):
        stacks_of(np.zeros((2, 2, 3, 4), dtype=np.uint8), 4, axis=2)
    with pytest.raises(ValueError, match="n_stack must be an integer >= 1, got 0"):
        frames_of(pairs.observations, 0, axis=2)
    dataset = PreferenceDataset(8, frame_stack=K)
    with pytest.raises(ValueError, match="not frame stacks"):
        dataset.push(FragmentPairs(broken, pairs.actions, pairs.true_rewards), np.full(6, 0.5))
    assert len(dataset) == 0
    with pytest.raises(ValueError, match="frame_stack must be an integer >= 1, got 0"):
        PreferenceDataset(8, frame_stack=0)


def test_a_frame_stack_dataset_gives_the_pairs_and_draws_of_a_plain_one():
    """The same pushes (wrapping the FIFO) into both: the same contents, the same seeded samples, bit for bit."""
    plain, stacked = PreferenceDataset(50), PreferenceDataset(50, frame_stack=K)
    for seed, n in enumerate((30, 15, 20, 70)):  # the last push alone is larger than the queue
        for dataset in (plain, stacked):
            dataset.push(*stacked_pairs(n, seed))
    for a, b in (
        (plain.contents(), stacked.contents()),
        (plain.sample(16, np.random.default_rng(3)), stacked.sample(16, np.random.default_rng(3))),
        (plain.sample(8, np.random.default_rng(4), newest=10), stacked.sample(8, np.random.default_rng(4), newest=10)),
    ):
        (pa, la), (pb, lb) = a, b
        for x, y in ((pa.observations, pb.observations), (pa.actions, pb.actions), (pa.true_rewards, pb.true_rewards)):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(la, lb)
    with pytest.raises(ValueError, match=r"observations must have per-pair shape \(2, 5, 4, 3, 2\)"):
        stacked.push(*stacked_pairs(2, seed=9, k=3))


def test_a_frame_stack_dataset_saves_frames_and_loads_back_what_it_held(tmp_path):
    data = PreferenceDataset(20, frame_stack=K)
    data.push(*stacked_pairs(12, seed=0))
    data.push(*stacked_pairs(12, seed=1))  # wraps around the ring
    data.save(tmp_path / "dataset.npz")
    with np.load(tmp_path / "dataset.npz") as f:
        assert int(f["frame_stack"]) == K and "observations" not in f
        assert f["frames"].shape == (20, 2, L + K - 1, *FRAME)
    loaded = PreferenceDataset.load(tmp_path / "dataset.npz")
    assert loaded.frame_stack == K and loaded.capacity == 20 and len(loaded) == 20
    (pa, la), (pb, lb) = data.contents(), loaded.contents()
    np.testing.assert_array_equal(pa.observations, pb.observations)
    np.testing.assert_array_equal(la, lb)
    for d in (data, loaded):  # and they go on alike: same evictions, same shape checks
        d.push(*stacked_pairs(5, seed=2))
    np.testing.assert_array_equal(data.contents()[0].observations, loaded.contents()[0].observations)
    with pytest.raises(ValueError, match=r"observations must have per-pair shape \(2, 5, 4, 3, 2\)"):
        loaded.push(*stacked_pairs(2, seed=9, k=3))

    empty = PreferenceDataset(3, frame_stack=K)
    empty.save(tmp_path / "empty.npz")
    assert PreferenceDataset.load(tmp_path / "empty.npz").frame_stack == K


def test_a_dataset_saved_with_every_stack_whole_loads_as_it_was(tmp_path):
    """A file with an ``observations`` array and no ``frame_stack`` (how the dataset kept Atari pairs before)."""
    pairs, labels = stacked_pairs(6, seed=0)
    np.savez(
        tmp_path / "old.npz",
        capacity=np.array(10),
        observations=pairs.observations,
        actions=pairs.actions,
        true_rewards=pairs.true_rewards,
        labels=labels,
    )
    loaded = PreferenceDataset.load(tmp_path / "old.npz")
    assert loaded.frame_stack is None and len(loaded) == 6
    np.testing.assert_array_equal(loaded.contents()[0].observations, pairs.observations)


# ------------------------------------------------------------------------------------ recorded episodes, fragments


def recorded(frame_stack: int | None, *, seed: int = 0, steps: int = 120) -> EpisodeRecorder:
    """Two environments stepping frame stacks as ``make_atari`` gives them (zero-padded at each reset), episodes of
    random lengths 6-30, into a recorder."""
    rng = np.random.default_rng(seed)
    recorder = EpisodeRecorder(2, frame_stack=frame_stack)
    stacks = np.zeros((2, K, *FRAME), dtype=np.uint8)
    left = rng.integers(6, 31, size=2)
    for _ in range(steps):
        new = rng.integers(0, 256, size=(2, *FRAME), dtype=np.uint8)
        stacks = np.concatenate([stacks[:, 1:], new[:, None]], axis=1)
        left -= 1
        dones = left == 0
        recorder.add(stacks, rng.integers(0, 9, size=2), rng.normal(size=2), dones=dones)
        stacks[dones] = 0  # the next episode's first stack: zeros, then its first frame
        left[dones] = rng.integers(6, 31, size=int(dones.sum()))
    return recorder


def test_a_frame_stack_recorder_keeps_the_same_episodes_as_views_of_their_frames():
    whole, stacked = recorded(None), recorded(K)
    assert len(whole) == len(stacked) >= 6 and whole.stored_steps == stacked.stored_steps
    for a, b in zip(whole.trajectories, stacked.trajectories, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.true_rewards, b.true_rewards)
        assert (a.terminated, a.truncated) == (b.terminated, b.truncated)
        assert not b.observations.flags.writeable and b.observations.base is not None  # a view, not a copy
    frames = sum(t._frames[0].nbytes for t in stacked.trajectories)
    assert frames == sum(len(t) + K - 1 for t in stacked.trajectories) * np.prod(FRAME)

    # a pickle (the trainer's checkpoint) keeps the frames only, and the loaded recorder gives the same episodes
    saved = len(pickle.dumps(whole)) - len(pickle.dumps(stacked))
    stacks = sum(t.observations.nbytes for t in stacked.trajectories)
    assert stacks - frames - 100 * len(stacked) < saved <= stacks - frames  # the frames' share, up to pickle framing
    loaded = pickle.loads(pickle.dumps(stacked))
    assert loaded.frame_stack == K
    for a, b in zip(stacked.trajectories, loaded.trajectories, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        assert not b.observations.flags.writeable


def test_fragments_of_frame_stack_episodes_are_those_of_whole_ones():
    """Same generator, same fragments, from a frame-stack recorder and a whole one; and both the rows that gathering
    from the concatenated episodes gives (sample_fragment_pairs's former way, the same draws)."""
    whole, stacked = recorded(None, seed=1, steps=300), recorded(K, seed=1, steps=300)
    a = sample_fragment_pairs(whole.trajectories, 64, L, np.random.default_rng(5))
    b = sample_fragment_pairs(stacked.trajectories, 64, L, np.random.default_rng(5))
    for x, y in ((a.observations, b.observations), (a.actions, b.actions), (a.true_rewards, b.true_rewards)):
        np.testing.assert_array_equal(x, y)

    trajs, rng = whole.trajectories, np.random.default_rng(5)  # the reference: concatenate, then one fancy index
    lengths = np.array([len(t) for t in trajs])
    eligible = np.flatnonzero(lengths >= L)
    weights = lengths[eligible].astype(np.float64)
    picks = eligible[rng.choice(eligible.size, size=128, p=weights / weights.sum())]
    chosen, which = np.unique(picks, return_inverse=True)
    offsets = np.concatenate([[0], np.cumsum(lengths[chosen])[:-1]])
    index = (offsets[which] + rng.integers(0, lengths[picks] - L + 1))[:, None] + np.arange(L)
    flat = np.concatenate([trajs[j].observations for j in chosen])
    np.testing.assert_array_equal(flat[index].reshape(64, 2, L, K, *FRAME), b.observations)


def test_a_frame_stack_recorder_refuses_observations_that_are_not_stacks():
    recorder = EpisodeRecorder(1, frame_stack=K)
    rng = np.random.default_rng(0)
    for done in (False, False, True):
        obs = rng.integers(0, 256, size=(1, K, *FRAME), dtype=np.uint8)  # unrelated stacks
        if done:
            with pytest.raises(ValueError, match="observations are not frame stacks"):
                recorder.add(obs, [0], [0.0], dones=[True])
        else:
            recorder.add(obs, [0], [0.0], dones=[False])
    with pytest.raises(ValueError, match="frame_stack must be an integer >= 1, got 0"):
        EpisodeRecorder(1, frame_stack=0)


def test_a_recorder_pickled_without_frame_stack_loads_as_a_whole_one():
    old = recorded(None)
    del old.frame_stack  # as a recorder from before the option pickles
    loaded = pickle.loads(pickle.dumps(old))
    assert "frame_stack" not in vars(loaded) and loaded.frame_stack is None
    assert loaded.trajectories[0].observations.flags.writeable
