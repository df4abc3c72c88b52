"""TabularEnv (sobirl.envs.tabular_env): gymnasium's API checker, its registered id (gymnasium.make, make_vec, spec
rebuild), and its samples against the exact MDP."""

from __future__ import annotations

import copy
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from conftest import F64, random_transitions, to_sparse
from sobirl.envs import TABULAR_ENV_ID, TabularEnv, make_tabular_env, register_envs
from sobirl.problems.gridworld import gridworld_mdp
from sobirl.tabular import TabularMDP, policy_value

LAYOUTS = ["dense", "coo", "csr"]


def _mdp(
    layout: str, *, S: int = 6, A: int = 3, seed: int = 0, terminal: list[int] | None = None, **kwargs
) -> tuple[TabularMDP, torch.Tensor]:
    """A random MDP (about half of each row of P zero) and its dense P; ``terminal`` lists terminal states."""
    gen = torch.Generator().manual_seed(seed)
    P = random_transitions(S, A, gen)
    mask = None
    if terminal is not None:
        mask = torch.zeros(S, dtype=torch.bool)
        mask[terminal] = True
    return TabularMDP(P if layout == "dense" else to_sparse(P, layout), terminal=mask, **kwargs), P


def _reward(S: int, A: int, seed: int = 2) -> torch.Tensor:
    return torch.rand(S, A, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _policy(S: int, A: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(S, A, generator=gen, dtype=F64), dim=1)


def _z_scores(counts: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    """|empirical - p| in binomial standard errors (the floor keeps p = 0 entries finite)."""
    se = np.maximum(np.sqrt(p * (1 - p) / n), 1e-12)
    return np.abs(counts / n - p) / se


# ---------------------------------------------------------------------------------------------- gymnasium API


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("terminal", [None, [2, 4]])
@pytest.mark.parametrize("max_episode_steps", [None, 5])
def test_check_env_passes_without_warnings(layout, terminal, max_episode_steps):
    mdp, _ = _mdp(layout, terminal=terminal)
    reward = _reward(6, 3)

    def make() -> TabularEnv:
        return TabularEnv(mdp, reward, max_episode_steps=max_episode_steps)

    env = make()
    # A spec (what gymnasium.make would attach) lets check_env also run its determinism checks for a
    # deterministic spec, the render-mode loop (none declared) and the close check on a fresh instance.
    env.spec = EnvSpec(id="SobirlTabular-v0", entry_point=make)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning of the checker (or of the environment) fails the test
        check_env(env)


def _trajectory(env: gym.Env, seed: int, actions: list[int]) -> list[tuple]:
    """``reset(seed=seed)``, then ``actions``: every observation, reward and flag."""
    obs, _ = env.reset(seed=seed)
    out: list[tuple] = [(obs,)]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            break
    return out


def test_registered_id_passes_check_env_and_its_spec_rebuilds_it():
    assert TABULAR_ENV_ID == "sobirl/Tabular-v0" and TABULAR_ENV_ID in gym.registry
    register_envs()  # again (a re-import): nothing changes, nothing is overridden
    env = gym.make(TABULAR_ENV_ID)
    assert isinstance(env.unwrapped, TabularEnv) and (env.unwrapped.n_states, env.unwrapped.n_actions) == (10, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")  # gym.make's wrappers
        check_env(env)  # the spec rebuild (its close check) included
    # the default MDP and reward come from seed 0: the same tables in every process
    mdp, reward = env.unwrapped, env.unwrapped._arrays["reward"]
    again = make_tabular_env(seed=0)
    np.testing.assert_array_equal(again._arrays["reward"], reward)
    np.testing.assert_array_equal(again._arrays["cdf"], mdp._arrays["cdf"])
    assert not np.array_equal(make_tabular_env(seed=1)._arrays["reward"], reward)
    actions = [0, 4, 2, 1, 3, 0, 2]
    assert _trajectory(env.spec.make(), 7, actions) == _trajectory(env, 7, actions)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_make_and_make_vec_build_it_from_keyword_arguments(layout):
    mdp, _ = _mdp(layout, terminal=[2, 4])
    reward = _reward(6, 3)
    env = gym.make(TABULAR_ENV_ID, mdp=mdp, reward=reward, max_episode_steps=5)
    direct = TabularEnv(mdp, reward, max_episode_steps=5)
    assert env.spec.max_episode_steps == 5 and sorted(env.spec.kwargs) == ["mdp", "reward"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(env)
    for seed in range(5):  # gymnasium's TimeLimit truncates at the same step as TabularEnv's own limit
        actions = [seed % 3, 1, 2, 0, 1, 2, 0]
        assert _trajectory(env, seed, actions) == _trajectory(direct, seed, actions)
        assert _trajectory(env.spec.make(), seed, actions) == _trajectory(direct, seed, actions)
    vec = gym.make_vec(TABULAR_ENV_ID, num_envs=3, mdp=mdp, reward=reward, max_episode_steps=5)
    obs, _ = vec.reset(seed=11)
    assert vec.num_envs == 3 and obs.shape == (3,)
    obs, rewards, *_ = vec.step(np.array([0, 1, 2]))
    starts = [TabularEnv(mdp, reward).reset(seed=11 + i)[0] for i in range(3)]  # SyncVectorEnv seeds seed + i
    np.testing.assert_allclose(rewards, [reward[s, a].item() for s, a in zip(starts, [0, 1, 2], strict=True)])
    vec.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_states": 0}, ValueError, "n_states must be an integer >= 1, got 0"),
        ({"n_actions": 2.5}, TypeError, "n_actions must be an integer, got float"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"mdp": "P"}, TypeError, "mdp must be a sobirl.tabular.TabularMDP, got str"),
        ({"reward": [[1.0, 2.0]]}, ValueError, "reward must have shape (S, A) = (10, 5), got (1, 2)"),
        ({"reward": [["a"]]}, TypeError, "reward must be a table of floats of shape (S, A) = (10, 5)"),
    ],
)
def test_bad_keyword_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error) as exc:
        gym.make(TABULAR_ENV_ID, **kwargs)
    assert message in str(exc.value)
    mdp, _ = _mdp("dense")
    with pytest.raises(ValueError, match="n_states and n_actions size the random MDP; leave them out"):
        make_tabular_env(mdp=mdp, n_states=6)
    small = make_tabular_env(n_states=3, n_actions=2, reward=[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])  # a list: floats
    small.reset(seed=0, options={"state": 1})
    assert small.step(1)[1] == 3.0 and small.observation_space.n == 3 and small.action_space.n == 2


def test_observations_and_rewards_have_plain_types():
    mdp, _ = _mdp("coo")
    env = TabularEnv(mdp, _reward(6, 3))
    obs, info = env.reset(seed=0)
    assert type(obs) is int and info == {}
    obs, reward, terminated, truncated, info = env.step(np.int64(1))
    assert type(obs) is int and type(reward) is float
    assert terminated is False and truncated is False and info == {}
    assert env.observation_space.n == 6 and env.action_space.n == 3


# ---------------------------------------------------------------------------------------------- distributions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_next_state_frequencies_match_P(layout):
    S, A, n = 8, 3, 40_000
    mdp, P = _mdp(layout, S=S, A=A)
    reward = _reward(S, A)
    env = TabularEnv(mdp, reward)
    env.reset(seed=0)
    for s, a in [(0, 0), (5, 2), (7, 1)]:
        counts = np.zeros(S)
        for _ in range(n):
            env.reset(options={"state": s})
            s_next, r, *_ = env.step(a)
            counts[s_next] += 1
            assert r == reward[s, a].item()
        p = P[s, a].numpy()
        assert (counts[p == 0] == 0).all(), "a zero-probability successor was drawn"
        assert _z_scores(counts, p, n).max() < 5


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_reset_follows_rho(layout):
    S, n = 6, 40_000
    rho = torch.tensor([0.1, 0.0, 0.4, 0.2, 0.05, 0.25], dtype=F64)
    mdp, _ = _mdp(layout, S=S, rho=rho)
    env = TabularEnv(mdp, _reward(S, 3))
    env.reset(seed=1)
    counts = np.bincount([env.reset()[0] for _ in range(n)], minlength=S)
    assert counts[1] == 0, "a state with rho = 0 was drawn"
    assert _z_scores(counts, rho.numpy(), n).max() < 5


@pytest.mark.parametrize("layout", ["dense", "coo"])
@pytest.mark.parametrize("terminal", [None, [1, 3]])
def test_discounted_return_matches_policy_value(layout, terminal):
    """The mean discounted return from s_0 ~ rho is rho . V^pi (gamma 0.8; 0.8^80 ~ 2e-8 of the tail is cut)."""
    S, A, gamma, horizon, episodes = 6, 3, 0.8, 80, 4000
    mdp, _ = _mdp(layout, S=S, A=A, seed=3, terminal=terminal, gamma=gamma)
    reward, pi = _reward(S, A, seed=4), _policy(S, A, seed=5)
    expected = float(mdp.rho @ policy_value(mdp, pi, reward))

    env = TabularEnv(mdp, reward, max_episode_steps=horizon)
    rng = np.random.default_rng(6)
    pi_cdf = np.cumsum(pi.numpy(), axis=1)
    env.reset(seed=7)
    returns = np.empty(episodes)
    for i in range(episodes):
        s, _ = env.reset()
        total, discount, done = 0.0, 1.0, False
        while not done:
            a = min(int(np.searchsorted(pi_cdf[s], rng.random(), side="right")), A - 1)
            s_prev = s
            s, r, terminated, truncated, _ = env.step(a)
            total += discount * r
            discount *= gamma
            done = terminated or truncated
            assert terminated == (terminal is not None and s_prev in terminal)
        returns[i] = total
    bias = gamma**horizon * reward.abs().max().item() / (1 - gamma)  # the cut tail
    se = returns.std(ddof=1) / np.sqrt(episodes)
    assert abs(returns.mean() - expected) < 5 * se + bias


def test_sparse_P_is_sampled_as_stored():
    """A 90,000-state grid world (dense P would take 259 GB) steps to grid neighbours only."""
    side = 300
    mdp = gridworld_mdp(side)
    env = TabularEnv(mdp, torch.zeros(mdp.shape, dtype=F64), max_episode_steps=50)
    s, _ = env.reset(seed=0)
    for t in range(50):
        s_next, _, _, truncated, _ = env.step(t % 4)
        (r0, c0), (r1, c1) = divmod(s, side), divmod(s_next, side)
        assert abs(r0 - r1) + abs(c0 - c1) <= 1
        s = s_next
    assert truncated


# ---------------------------------------------------------------------------------------------- episodes


def test_reset_state_option_is_respected_and_validated():
    mdp, _ = _mdp("dense", S=6)
    reward = _reward(6, 3)
    env = TabularEnv(mdp, reward)
    for s in range(6):
        assert env.reset(options={"state": s}) == (s, {})
        assert env.step(2)[1] == reward[s, 2].item()
    assert env.reset(options={"state": np.int64(4)})[0] == 4
    assert isinstance(env.reset(options={})[0], int)  # no option: s_0 ~ rho
    for bad in (6, -1):
        with pytest.raises(ValueError, match=r"reset option 'state' must be an integer in \[0, 5\], got"):
            env.reset(options={"state": bad})
    for bad in (1.0, True, "3", None):
        with pytest.raises(TypeError, match=r"reset option 'state' must be an integer in \[0, 5\]"):
            env.reset(options={"state": bad})
    with pytest.raises(ValueError, match=r"unknown reset option.*start.*valid: state"):
        env.reset(options={"start": 1})
    with pytest.raises(TypeError, match="reset options must be a dict"):
        env.reset(options=[("state", 1)])


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_terminal_state_terminates(layout):
    mdp, _ = _mdp(layout, terminal=[2])
    reward = _reward(6, 3)
    env = TabularEnv(mdp, reward, max_episode_steps=10)
    assert env.reset(seed=0, options={"state": 2}) == (2, {})
    obs, r, terminated, truncated, info = env.step(1)
    assert (obs, r, terminated, truncated, info) == (2, reward[2, 1].item(), True, False, {})
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(0)
    env.reset(options={"state": 0})  # a new episode steps again
    assert env.step(0)[2] is False


def test_max_episode_steps_truncates():
    mdp, _ = _mdp("coo")
    env = TabularEnv(mdp, _reward(6, 3), max_episode_steps=3)
    for _ in range(2):  # the step count starts again at every reset
        env.reset(seed=0)
        flags = [env.step(0)[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
        with pytest.raises(RuntimeError, match="after the episode ended"):
            env.step(0)
    for bad, error in ((0, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="max_episode_steps"):
            TabularEnv(mdp, _reward(6, 3), max_episode_steps=bad)


def test_step_before_reset_and_bad_actions_fail_clearly():
    mdp, _ = _mdp("dense")
    env = TabularEnv(mdp, _reward(6, 3))
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(0)
    env.reset(seed=0)
    for bad in (3, -1):
        with pytest.raises(ValueError, match=r"action must be an integer in \[0, 2\]"):
            env.step(bad)
    with pytest.raises(TypeError, match=r"action must be an integer in \[0, 2\]"):
        env.step(1.0)
    env.step(np.int32(2))  # a failed call leaves the episode usable


def test_bad_construction_fails_clearly():
    mdp, _ = _mdp("dense")
    with pytest.raises(ValueError, match=r"reward must have shape \(S, A\) = \(6, 3\)"):
        TabularEnv(mdp, torch.zeros(6, 4, dtype=F64))
    with pytest.raises(TypeError, match=r"reward must be a floating torch\.Tensor"):
        TabularEnv(mdp, np.zeros((6, 3)))
    with pytest.raises(TypeError, match=r"mdp must be a sobirl\.tabular\.TabularMDP"):
        TabularEnv(None, torch.zeros(6, 3, dtype=F64))


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_same_seed_same_trajectory(layout):
    mdp, _ = _mdp(layout, terminal=[5])
    actions = np.random.default_rng(0).integers(0, 3, size=40)

    def rollout(seed: int) -> list[tuple[int, float]]:
        env = TabularEnv(mdp, _reward(6, 3))
        out = [(env.reset(seed=seed)[0], 0.0)]
        for a in actions:
            s, r, terminated, _, _ = env.step(a)
            out.append((s, r))
            if terminated:
                out.append((env.reset()[0], 0.0))
        return out

    assert rollout(11) == rollout(11)
    assert rollout(11) != rollout(12)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_pickled_or_copied_env_continues_the_same_episode(layout):
    mdp, _ = _mdp(layout)
    env = TabularEnv(mdp, _reward(6, 3), max_episode_steps=20)
    env.reset(seed=3)
    env.step(0)
    twins = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    actions = (1, 2, 0, 1, 2, 2, 0)
    expected = [env.step(a) for a in actions]
    for twin in twins:
        assert [twin.step(a) for a in actions] == expected
