"""EpisodeRecorder: episodes from batched VecEnv-style steps (SB3 and gymnasium conventions), FIFO storage."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from sobirl.rlhf import EpisodeRecorder, Trajectory

# Per environment, the episodes it plays: (length, how it ends) with ends "term", "trunc" (time limit) or "both".
PLANS = (
    [(2, "term"), (3, "trunc"), (1, "term"), (4, "both")],
    [(4, "trunc"), (5, "term")],
    [(9, "term")],  # ends exactly at the last step
    [(3, "both"), (70, "trunc")],  # outgrows the initial buffer of 64 steps
)
N_STEPS = 75  # every planned episode ends, also with a reset step after each end


def obs_of(env: int, episode: int, t: int) -> np.ndarray:
    """The observation of step t of an episode: it names the episode and the step."""
    return np.array([env, episode, t], dtype=np.float32)


def reward_of(env: int, episode: int, t: int) -> float:
    return 1000.0 * env + 10.0 * episode + t


def scripted_steps(autoreset: str):
    """The step data of ``PLANS`` played together, and the trajectories each env should produce (in end order).

    Yields per step ``(obs, actions, rewards, terminated, truncated, finals)``; after an episode ends the env plays
    its next planned episode (an env whose plan is over keeps playing one unfinished episode). With
    ``"next-step"`` each end is followed by a reset step (reward 0, action ignored) that the recorder must skip.
    """
    n = len(PLANS)
    episode = [0] * n
    t = [0] * n
    resetting = [False] * n
    steps, expected = [], []
    for _ in range(N_STEPS):
        obs = np.zeros((n, 3), dtype=np.float32)
        act = np.zeros((n, 2), dtype=np.float32)
        rew = np.zeros(n)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        finals: list[np.ndarray | None] = [None] * n
        for i in range(n):
            if resetting[i]:  # gymnasium NEXT_STEP: this step only resets env i
                obs[i] = obs_of(i, episode[i] - 1, -1)
                act[i] = -7.0
                resetting[i] = False
                continue
            obs[i] = obs_of(i, episode[i], t[i])
            act[i] = (t[i], -t[i])
            rew[i] = reward_of(i, episode[i], t[i])
            t[i] += 1
            plan = PLANS[i]
            if episode[i] < len(plan) and t[i] == plan[episode[i]][0]:
                end = plan[episode[i]][1]
                term[i] = end in ("term", "both")
                trunc[i] = end in ("trunc", "both")
                finals[i] = obs_of(i, episode[i], t[i])
                expected.append((i, episode[i], t[i], bool(term[i]), bool(trunc[i])))
                episode[i] += 1
                t[i] = 0
                resetting[i] = autoreset == "next-step"
        steps.append((obs, act, rew, term, trunc, finals))
    return steps, expected


def check_trajectory(traj: Trajectory, env: int, episode: int, length: int, terminated: bool, truncated: bool) -> None:
    ts = np.arange(length)
    assert len(traj) == length
    np.testing.assert_array_equal(traj.observations, np.stack([obs_of(env, episode, s) for s in ts]))
    np.testing.assert_array_equal(traj.actions, np.stack([ts, -ts], axis=1))
    np.testing.assert_array_equal(traj.true_rewards, [reward_of(env, episode, s) for s in ts])
    assert traj.observations.dtype == np.float32 and traj.true_rewards.dtype == np.float64
    assert (traj.terminated, traj.truncated) == (terminated, truncated)


@pytest.mark.parametrize(
    ("convention", "autoreset"), [("sb3", "same-step"), ("gymnasium", "same-step"), ("gymnasium", "next-step")]
)
def test_recorder_scripted_episodes(convention, autoreset):
    steps, expected = scripted_steps(autoreset)
    rec = EpisodeRecorder(len(PLANS), autoreset=autoreset)
    got = []
    for obs, act, rew, term, trunc, finals in steps:
        if convention == "sb3":
            # SB3: done = terminated or truncated; TimeLimit.truncated = truncated and not terminated
            infos = [
                {"TimeLimit.truncated": bool(tr and not te)} | ({} if f is None else {"terminal_observation": f})
                for te, tr, f in zip(term, trunc, finals, strict=True)
            ]
            out = rec.add(obs, act, rew, dones=term | trunc, infos=infos)
        else:
            ended = term | trunc
            infos = {"final_obs": np.array(finals, dtype=object), "_final_obs": ended} if ended.any() else {}
            out = rec.add(obs, act, rew, terminated=term, truncated=trunc, infos=infos)
        got.extend(out)

    assert len(got) == len(expected) == 9 and rec.episodes_finished == 9
    for traj, (env, episode, length, te, tr) in zip(got, expected, strict=True):
        if convention == "sb3" and te and tr:
            tr = False  # SB3 reports an episode that terminated at the time limit as a termination only
        check_trajectory(traj, env, episode, length, te, tr)
        np.testing.assert_array_equal(traj.final_observation, obs_of(env, episode, length))
    assert [len(t) for t in rec.trajectories] == [len(t) for t in got]
    assert rec.stored_steps == sum(len(t) for t in got) == 2 + 3 + 1 + 4 + 4 + 5 + 9 + 3 + 70


def test_recorder_without_infos_counts_dones_as_terminations():
    rec = EpisodeRecorder(2)
    obs, act = np.zeros((2, 1)), np.zeros(2, dtype=np.int64)  # Discrete actions: scalars
    rec.add(obs, act, [1.0, 2.0], dones=[False, True])
    (traj,) = rec.add(obs, act, [3.0, 4.0], dones=[True, False])
    assert traj.terminated and not traj.truncated and traj.final_observation is None
    np.testing.assert_array_equal(traj.true_rewards, [1.0, 3.0])
    assert traj.actions.shape == (2,)


def test_drop_running_forgets_only_the_unfinished_steps():
    rec = EpisodeRecorder(2)
    obs, act = np.zeros((2, 1)), np.zeros(2, dtype=np.int64)
    rec.add(obs, act, [1.0, 2.0], dones=[False, True])  # env 1 finishes a 1-step episode
    rec.drop_running()  # env 0's first step is forgotten
    (traj,) = rec.add(obs, act, [3.0, 4.0], dones=[True, False])
    np.testing.assert_array_equal(traj.true_rewards, [3.0])
    assert [t.true_rewards.tolist() for t in rec.trajectories] == [[2.0], [3.0]]


def test_recorder_fifo_eviction():
    rec = EpisodeRecorder(1, max_steps=10)
    ones = np.ones((1, 1))
    lengths = [4, 3, 5, 2, 12, 1]
    kept_after = [[4], [4, 3], [3, 5], [3, 5, 2], [], [1]]  # oldest first; 12 > max_steps is never kept
    for length, kept in zip(lengths, kept_after, strict=True):
        for t in range(length):
            out = rec.add(ones, ones, [float(length)], dones=[t == length - 1])
        assert [len(traj) for traj in out] == [length]  # returned even when not kept
        assert [len(traj) for traj in rec.trajectories] == kept
        assert rec.stored_steps == sum(kept) <= 10
        assert len(rec) == len(kept)
    assert rec.episodes_finished == len(lengths)


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.NEXT_STEP])
def test_recorder_on_gymnasium_pendulum(mode):
    """A real vector env with two time limits: every recorded (s_t, a_t, r_t) is a consistent Pendulum step."""
    limits = (7, 11)
    envs = gym.vector.SyncVectorEnv(
        [lambda n=n: gym.make("Pendulum-v1", max_episode_steps=n) for n in limits], autoreset_mode=mode
    )
    autoreset = "same-step" if mode == gym.vector.AutoresetMode.SAME_STEP else "next-step"
    rec = EpisodeRecorder(2, autoreset=autoreset)
    envs.action_space.seed(0)
    obs, _ = envs.reset(seed=0)
    for _ in range(40):
        actions = envs.action_space.sample()
        next_obs, rewards, term, trunc, infos = envs.step(actions)
        rec.add(obs, actions, rewards, terminated=term, truncated=trunc, infos=infos)
        obs = next_obs
    envs.close()

    trajs = rec.trajectories
    assert sorted(len(t) for t in trajs) == [7] * 5 + [11] * 3
    for traj in trajs:
        assert traj.truncated and not traj.terminated
        assert (traj.final_observation is not None) == (autoreset == "same-step")
        cos, sin, thdot = traj.observations.astype(np.float64).T
        u = np.clip(traj.actions[:, 0].astype(np.float64), -2.0, 2.0)
        # Pendulum-v1: r = -(theta^2 + 0.1 thetadot^2 + 0.001 u^2), theta in [-pi, pi), of the state acted in
        expected = -(np.arctan2(sin, cos) ** 2 + 0.1 * thdot**2 + 0.001 * u**2)
        np.testing.assert_allclose(traj.true_rewards, expected, atol=1e-4)
        assert math.isclose(traj.true_return(), expected.sum(), abs_tol=1e-3)
