"""SB3 SAC learning from a fixed reward net through the relabelling buffer, its episodes recorded by the callback."""

from __future__ import annotations

import tempfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sobirl.agents import (
    DiscreteSAC,
    RelabelingReplayBuffer,
    actor_probabilities,
    actor_sampler,
    make_sac,
    sac_temperature,
)
from sobirl.rlhf import EpisodeRecorder, MlpActionRewardNet, RecordingCallback, RewardNet, Trajectory

SMALL = dict(buffer_size=1000, batch_size=32, policy_kwargs=dict(net_arch=[32, 32]))


def pendulum(max_steps: int) -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=max_steps)


def reward_net(env: gym.Env | DummyVecEnv) -> RewardNet:
    return RewardNet.from_spaces(env.observation_space, env.action_space, hidden=(16,), seed=0)


def check_pendulum_steps(traj: Trajectory) -> None:
    """Every recorded (s_t, a_t, r_t) is a Pendulum step: s_t the state acted in, a_t scaled to [-1, 1]."""
    assert np.abs(traj.actions).max() <= 1.0
    cos, sin, thdot = traj.observations.astype(np.float64).T
    u = 2.0 * traj.actions[:, 0].astype(np.float64)  # the environment's action: [-1, 1] rescaled to [-2, 2]
    # Pendulum-v1: r = -(theta^2 + 0.1 thetadot^2 + 0.001 u^2), theta in [-pi, pi), of the state acted in
    expected = -(np.arctan2(sin, cos) ** 2 + 0.1 * thdot**2 + 0.001 * u**2)
    np.testing.assert_allclose(traj.true_rewards, expected, atol=1e-4)


def test_sac_learns_from_the_reward_net_and_records_its_episodes(tmp_path):
    env = pendulum(50)
    net = reward_net(env)
    model = make_sac(env, net, seed=0, device="cpu", log_dir=tmp_path / "sb3", learning_starts=100, **SMALL)
    assert isinstance(model.replay_buffer, RelabelingReplayBuffer)
    recorder = EpisodeRecorder(1)
    model.learn(300, callback=RecordingCallback(recorder), log_interval=2)

    assert model._n_updates == 200  # one gradient step per agent step after learning_starts
    assert recorder.episodes_finished == 6 and [len(t) for t in recorder.trajectories] == [50] * 6
    for traj in recorder.trajectories:
        assert traj.truncated and not traj.terminated
        check_pendulum_steps(traj)
    # the recorder and the replay buffer hold the same (s_t, a_t), step for step
    buffer = model.replay_buffer
    recorded_obs = np.concatenate([t.observations for t in recorder.trajectories])
    recorded_act = np.concatenate([t.actions for t in recorder.trajectories])
    np.testing.assert_array_equal(buffer.observations[:300, 0], recorded_obs)
    np.testing.assert_array_equal(buffer.actions[:300, 0], recorded_act)
    # the buffer keeps the true rewards, but SAC's batches carry the net's
    np.testing.assert_allclose(buffer.rewards[:300, 0], np.concatenate([t.true_rewards for t in recorder.trajectories]))
    batch = buffer.sample(64)
    with torch.no_grad():
        expected = net(batch.observations, batch.actions).reshape(-1, 1)
    torch.testing.assert_close(batch.rewards, expected, rtol=0, atol=0)

    alpha = sac_temperature(model)
    assert 0.0 < alpha < 1.0 and alpha == pytest.approx(torch.exp(model.log_ent_coef).item())
    actions = actor_sampler(model)(torch.as_tensor(recorded_obs[:10]))
    assert actions.shape == (10, 1) and actions.abs().max() <= 1.0 and not actions.requires_grad
    written = {p.name for p in (tmp_path / "sb3").iterdir()}
    assert "progress.csv" in written and any(name.startswith("events.out.tfevents") for name in written)


def test_no_log_folder_and_the_reset_guard(monkeypatch, tmp_path):
    """Without log_dir nothing is written (SB3's default logger makes a folder in the temp dir); a learn() that
    resets the environment mid-episode is refused."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = make_sac(pendulum(20), lambda obs, act: obs[:, 0], seed=0, device="cpu", learning_starts=1000, **SMALL)
    callback = RecordingCallback(EpisodeRecorder(1))
    model.learn(30, callback=callback)
    model.learn(15, callback=callback, reset_num_timesteps=False)  # continues the running episode
    assert [len(t) for t in callback.recorder.trajectories] == [20, 20]  # the second spans both learn() calls
    assert model.logger.dir is None and model.logger.output_formats == []
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="reset_num_timesteps=False"):
        model.learn(10, callback=callback)
    verbose = make_sac(pendulum(20), lambda obs, act: obs[:, 0], verbose=1, **SMALL)
    assert verbose.logger.dir is None and [type(f).__name__ for f in verbose.logger.output_formats] == [
        "HumanOutputFormat"
    ]


def test_callback_with_two_envs_and_observation_normalisation():
    """Two environments under VecNormalize: the recorder gets the raw observations and the true rewards."""
    venv = VecNormalize(DummyVecEnv([lambda: pendulum(15)] * 2), gamma=0.99)
    model = make_sac(venv, reward_net(venv), seed=1, device="cpu", learning_starts=1000, **SMALL)
    with pytest.raises(ValueError, match=r"recorder\.n_envs must equal the training VecEnv's num_envs = 2"):
        model.learn(2, callback=RecordingCallback(EpisodeRecorder(1)))
    recorder = EpisodeRecorder(2)
    model.learn(40, callback=RecordingCallback(recorder), reset_num_timesteps=False)
    assert [len(t) for t in recorder.trajectories] == [15] * 2
    for traj in recorder.trajectories:
        check_pendulum_steps(traj)
    np.testing.assert_array_equal(model.replay_buffer.observations[:15, 0], recorder.trajectories[0].observations)


def test_make_sac_rejects_what_it_cannot_run():
    multi = gym.make("CartPole-v1")
    multi.action_space = gym.spaces.MultiDiscrete([2, 2])
    with pytest.raises(TypeError, match=r"action_space must be a gymnasium.spaces.Box \(SAC\) or Discrete \(Disc"):
        make_sac(multi, lambda o, a: o[:, 0])
    with pytest.raises(ValueError, match="replay_buffer_class cannot be given"):
        make_sac(pendulum(5), lambda o, a: o[:, 0], replay_buffer_class=RelabelingReplayBuffer)
    with pytest.raises(ValueError, match="tensorboard_log cannot be given to make_sac; log_dir"):
        make_sac(pendulum(5), lambda o, a: o[:, 0], tensorboard_log="tb")
    dict_env = gym.wrappers.TransformObservation(
        pendulum(5), lambda o: {"x": o}, gym.spaces.Dict({"x": pendulum(5).observation_space})
    )
    with pytest.raises(TypeError, match="FlattenObservation"):
        make_sac(dict_env, lambda o, a: o[:, 0])


def test_discrete_actions_make_a_discrete_sac_that_learns_from_a_per_action_net(tmp_path):
    env = gym.make("CartPole-v1")
    net = MlpActionRewardNet(4, 2, hidden=(8,), seed=0)
    kwargs = {**SMALL, "policy_kwargs": dict(net_arch=[32, 32])}  # SB3 adds use_sde to the SAC tests' dict
    model = make_sac(env, net, seed=0, device="cpu", learning_starts=50, **kwargs)
    assert isinstance(model, DiscreteSAC) and isinstance(model.replay_buffer, RelabelingReplayBuffer)
    recorder = EpisodeRecorder(1)
    model.learn(120, callback=RecordingCallback(recorder))
    samples = model.replay_buffer.sample(16)
    with torch.no_grad():
        expected = net.eval()(samples.observations, samples.actions)
    torch.testing.assert_close(samples.rewards.squeeze(-1), expected)  # relabelled, not CartPole's +1
    episode = recorder.trajectories[0]
    assert set(np.unique(episode.actions)) <= {0, 1} and np.all(episode.true_rewards == 1.0)
    obs = torch.as_tensor(np.stack([episode.observations[0], episode.observations[-1]]))
    probs = actor_probabilities(model)(obs)
    with torch.no_grad():
        expected = torch.softmax(model.actor(obs), dim=-1)
    assert probs.shape == (2, 2) and not probs.requires_grad
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert sac_temperature(model) == pytest.approx(model.current_ent_coef().item())
