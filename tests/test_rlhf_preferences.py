"""The synthetic Bradley-Terry labeller (frequencies, noise, discount) and the FIFO preference dataset."""

from __future__ import annotations

import numpy as np
import pytest

from sobirl.rlhf import FragmentPairs, PreferenceDataset, PreferenceGatherer, SyntheticLabeller


def pairs_with_rewards(rewards: np.ndarray, obs_dim: int = 3, act_dim: int = 2) -> FragmentPairs:
    """Pairs whose true rewards are ``rewards (N, 2, L)``; observations and actions count the entries."""
    N, _, L = rewards.shape
    count = np.arange(N * 2 * L, dtype=np.float32).reshape(N, 2, L, 1)
    return FragmentPairs(
        np.broadcast_to(count, (N, 2, L, obs_dim)).copy(),
        np.broadcast_to(-count, (N, 2, L, act_dim)).copy(),
        rewards.astype(np.float64),
    )


def pairs_with_differences(diffs: np.ndarray, repeats: int, L: int = 3) -> FragmentPairs:
    """``repeats`` pairs per return difference R_1 - R_2 in ``diffs``, spread over the L steps."""
    d = np.repeat(diffs, repeats)
    rewards = np.zeros((d.size, 2, L))
    rewards[:, 0, :] = d[:, None] / L + 0.3
    rewards[:, 1, :] = 0.3
    return pairs_with_rewards(rewards)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_synthetic_labeller_is_a_gatherer_with_exact_probabilities():
    rng = np.random.default_rng(0)
    pairs = pairs_with_rewards(rng.normal(size=(50, 2, 4)))
    labeller = SyntheticLabeller(temperature=0.7, labels="probability")
    assert isinstance(labeller, PreferenceGatherer)
    R = pairs.true_rewards.sum(axis=-1)
    np.testing.assert_allclose(labeller(pairs), sigmoid((R[:, 0] - R[:, 1]) / 0.7), rtol=0, atol=1e-15)
    extreme = pairs_with_differences(np.array([-1e4, 1e4]), 1)  # no overflow warning (they are errors in tests)
    np.testing.assert_array_equal(labeller(extreme), [0.0, 1.0])


@pytest.mark.parametrize(("temperature", "noise"), [(1.0, 0.0), (2.5, 0.0), (1.0, 0.3), (0.5, 1.0)])
def test_sampled_label_frequencies_match_bradley_terry(temperature, noise):
    """Per return difference, the frequency of y = 1 is (1 - noise) sigmoid(dR / T) + noise / 2 (|z| < 4.5)."""
    diffs = np.array([-3.0, -1.0, -0.2, 0.0, 0.5, 2.0, 4.0])
    repeats = 4000
    labeller = SyntheticLabeller(temperature=temperature, noise=noise, generator=1)
    labels = labeller(pairs_with_differences(diffs, repeats))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    p = (1 - noise) * sigmoid(diffs / temperature) + noise / 2
    freq = labels.reshape(len(diffs), repeats).mean(axis=1)
    z = (freq - p) / np.sqrt(p * (1 - p) / repeats)
    assert np.abs(z).max() < 4.5, z


def test_noise_one_gives_uniform_labels_and_probability_mode_is_the_mixture():
    pairs = pairs_with_differences(np.array([-5.0, 0.0, 5.0]), 1)
    np.testing.assert_allclose(SyntheticLabeller(noise=1.0, labels="probability")(pairs), 0.5, atol=1e-15)
    mix = SyntheticLabeller(noise=0.2, labels="probability")(pairs)
    np.testing.assert_allclose(mix, 0.8 * sigmoid(np.array([-5.0, 0.0, 5.0])) + 0.1, atol=1e-15)


def test_discount_weights_later_steps_less():
    # fragment 1 gets reward 1 at t = 0, fragment 2 gets 1 at t = 2: with discount 0.5, R = (1, 0.25)
    rewards = np.zeros((1, 2, 3))
    rewards[0, 0, 0] = rewards[0, 1, 2] = 1.0
    pairs = pairs_with_rewards(rewards)
    labeller = SyntheticLabeller(discount=0.5, labels="probability")
    np.testing.assert_allclose(labeller.returns(pairs), [[1.0, 0.25]], atol=1e-15)
    np.testing.assert_allclose(labeller(pairs), sigmoid(0.75), atol=1e-15)
    assert SyntheticLabeller(labels="probability")(pairs)[0] == 0.5  # undiscounted: equal returns


def test_sampled_labels_are_reproducible():
    pairs = pairs_with_differences(np.linspace(-2, 2, 9), 20)
    a = SyntheticLabeller(generator=np.random.default_rng(5))(pairs)
    b = SyntheticLabeller(generator=5)(pairs)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------- dataset


def numbered_pairs(start: int, n: int) -> tuple[FragmentPairs, np.ndarray]:
    """Pairs numbered start .. start + n - 1 (the number is in every field), labels number / 100."""
    k = np.arange(start, start + n)
    rewards = np.broadcast_to(k[:, None, None], (n, 2, 4)).astype(np.float64)
    pairs = pairs_with_rewards(rewards)
    pairs.observations[:] = k[:, None, None, None]
    return pairs, k / 100.0


def numbers(dataset: PreferenceDataset) -> list[int]:
    pairs, labels = dataset.contents()
    np.testing.assert_array_equal(pairs.observations[:, 0, 0, 0], pairs.true_rewards[:, 0, 0])
    np.testing.assert_allclose(labels * 100, pairs.true_rewards[:, 0, 0], atol=1e-12)
    return pairs.true_rewards[:, 0, 0].astype(int).tolist()


def test_dataset_is_a_fifo_queue():
    data = PreferenceDataset(5)
    data.push(*numbered_pairs(0, 3))
    assert numbers(data) == [0, 1, 2] and len(data) == 3
    data.push(*numbered_pairs(3, 4))
    assert numbers(data) == [2, 3, 4, 5, 6] and len(data) == 5
    data.push(*numbered_pairs(7, 1))
    assert numbers(data) == [3, 4, 5, 6, 7]
    data.push(*numbered_pairs(8, 12))  # more than the capacity at once: the newest 5
    assert numbers(data) == [15, 16, 17, 18, 19]


def test_dataset_drops_pairs_labelled_nan():
    """NaN: the labeller could not judge the pair (a person's "can't tell"); the pair is not kept."""
    data = PreferenceDataset(5)
    pairs, labels = numbered_pairs(0, 4)
    labels[[0, 2]] = np.nan
    data.push(pairs, labels)
    assert numbers(data) == [1, 3]
    all_nan = numbered_pairs(4, 2)
    data.push(all_nan[0], np.full(2, np.nan))
    assert numbers(data) == [1, 3]
    with pytest.raises(ValueError, match=r"labels must be probabilities in \[0, 1\] \(or NaN"):
        data.push(pairs, np.where(np.isnan(labels), 1.5, labels))


def test_dataset_save_load_round_trip(tmp_path):
    data = PreferenceDataset(6)
    for start, n in ((0, 4), (4, 5)):  # wraps around the ring
        data.push(*numbered_pairs(start, n))
    path = tmp_path / "prefs"  # no suffix: the file is written under exactly this name
    data.save(path)
    loaded = PreferenceDataset.load(path)
    assert loaded.capacity == 6 and len(loaded) == 6
    (pa, la), (pb, lb) = data.contents(), loaded.contents()
    for x, y in ((pa.observations, pb.observations), (pa.actions, pb.actions), (pa.true_rewards, pb.true_rewards)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert la.dtype == lb.dtype == np.float64
    np.testing.assert_array_equal(la, lb)
    for d in (data, loaded):  # and they evict the same pairs afterwards
        d.push(*numbered_pairs(9, 2))
    assert numbers(data) == numbers(loaded) == [5, 6, 7, 8, 9, 10]

    empty = PreferenceDataset(3)
    empty.save(tmp_path / "empty.npz")
    assert len(PreferenceDataset.load(tmp_path / "empty.npz")) == 0


def test_dataset_sample_draws_distinct_pairs_reproducibly():
    data = PreferenceDataset(10)
    data.push(*numbered_pairs(0, 10))
    pairs, labels = data.sample(7, np.random.default_rng(0))
    again, _ = data.sample(7, np.random.default_rng(0))
    k = pairs.true_rewards[:, 0, 0]
    assert len(set(k.tolist())) == 7 and pairs.observations.shape == (7, 2, 4, 3)
    np.testing.assert_allclose(labels * 100, k, atol=1e-12)
    np.testing.assert_array_equal(again.true_rewards, pairs.true_rewards)
    with pytest.raises(ValueError, match=r"batch_size must be at most the number of pairs drawn from \(10\), got 11"):
        data.sample(11, np.random.default_rng(0))
    newest, _ = data.sample(3, np.random.default_rng(1), newest=3)  # pairs 7, 8, 9: the last pushed
    assert sorted((newest.true_rewards[:, 0, 0]).tolist()) == [7.0, 8.0, 9.0]
    assert set(data.sample(4, np.random.default_rng(2), newest=5)[0].true_rewards[:, 0, 0].tolist()) <= {5, 6, 7, 8, 9}
    with pytest.raises(ValueError, match=r"at most the number of pairs drawn from \(3\), got 4"):
        data.sample(4, np.random.default_rng(0), newest=3)
    with pytest.raises(ValueError, match="newest must be an integer >= 1, got 0"):
        data.sample(1, np.random.default_rng(0), newest=0)


def test_dataset_rejects_mismatched_pushes():
    data = PreferenceDataset(4)
    data.push(*numbered_pairs(0, 2))
    pairs, labels = numbered_pairs(0, 2)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(2,\)"):
        data.push(pairs, labels[:1])
    with pytest.raises(ValueError, match=r"labels must be probabilities in \[0, 1\]"):
        data.push(pairs, labels + 2)
    longer = pairs_with_rewards(np.zeros((2, 2, 5)))
    with pytest.raises(ValueError, match="observations must have per-pair shape"):
        data.push(longer, labels)
    with pytest.raises(ValueError, match="empty"):
        PreferenceDataset(2).contents()
