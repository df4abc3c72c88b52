"""DiscreteSAC: the losses against a hand computation, target updates, save/load, learn with SB3's machinery, errors."""

from __future__ import annotations

import inspect
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.vec_env import DummyVecEnv

from sobirl.agents import discrete_sac as dsac_module
from sobirl.agents.discrete_sac import (
    CnnPolicy,
    DiscreteSAC,
    DiscreteSACPolicy,
    MultiInputPolicy,
    discrete_sac_losses,
    parse_ent_coef,
)

SMALL: dict[str, Any] = dict(
    buffer_size=1000, batch_size=16, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16, 16])
)


def cartpole_model(**kwargs: Any) -> DiscreteSAC:
    return DiscreteSAC("MlpPolicy", "CartPole-v1", **{**SMALL, **kwargs})


def filled_model(**kwargs: Any) -> DiscreteSAC:
    """A CartPole model whose buffer holds 64 random transitions and which has not trained yet."""
    model = cartpole_model(learning_starts=10_000, **kwargs)
    model.learn(64)
    assert model._n_updates == 0 and model.replay_buffer.size() == 64
    return model


def critic_vector(module: torch.nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


# ----------------------------------------------------------------------------------------------------------------------
# Losses against an independent, loop-by-loop computation
# ----------------------------------------------------------------------------------------------------------------------


def hand_losses(q1, q2, q1t, q2t, logits, logits_next, actions, rewards, dones, alpha, gamma, target_entropy):
    """The SAC-Discrete formulas with explicit loops over samples and actions, in plain Python floats."""

    def softmax(row):
        m = max(row)
        e = [math.exp(x - m) for x in row]
        return [x / sum(e) for x in e]

    B, A = len(q1), len(q1[0])
    gammas = gamma if isinstance(gamma, list) else [gamma] * B
    y, critic, actor, temp, entropies = [], 0.0, 0.0, 0.0, []
    for i in range(B):
        pi_next = softmax(logits_next[i])
        v_next = sum(pi_next[a] * (min(q1t[i][a], q2t[i][a]) - alpha * math.log(pi_next[a])) for a in range(A))
        y.append(rewards[i] + gammas[i] * (1 - dones[i]) * v_next)
        critic += 0.5 * ((q1[i][actions[i]] - y[i]) ** 2 + (q2[i][actions[i]] - y[i]) ** 2) / B
        pi = softmax(logits[i])
        actor += sum(pi[a] * (alpha * math.log(pi[a]) - min(q1[i][a], q2[i][a])) for a in range(A)) / B
        entropy = -sum(p * math.log(p) for p in pi)
        entropies.append(entropy)
        temp += -math.log(alpha) * (target_entropy - entropy) / B
    return dict(target_q=y, critic=critic, actor=actor, temperature=temp, entropy=entropies)


def batch(seed: int = 0, B: int = 5, A: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = dict(
        q1=torch.randn(B, A, generator=gen, dtype=torch.float64),
        q2=torch.randn(B, A, generator=gen, dtype=torch.float64),
        q1_targ_next=torch.randn(B, A, generator=gen, dtype=torch.float64),
        q2_targ_next=torch.randn(B, A, generator=gen, dtype=torch.float64),
        logits=2 * torch.randn(B, A, generator=gen, dtype=torch.float64),
        logits_next=2 * torch.randn(B, A, generator=gen, dtype=torch.float64),
        actions=torch.tensor([[0], [2], [1], [2], [0]])[:B],
        rewards=torch.tensor([[1.0], [-0.5], [0.0], [2.0], [0.3]], dtype=torch.float64)[:B],
        dones=torch.tensor([[0.0], [1.0], [0.0], [0.0], [1.0]], dtype=torch.float64)[:B],
    )
    for name in ("q1", "q2", "logits"):
        t[name].requires_grad_(True)
    return t


def as_lists(t: dict[str, torch.Tensor]) -> list:
    order = ("q1", "q2", "q1_targ_next", "q2_targ_next", "logits", "logits_next")
    return [t[k].detach().tolist() for k in order] + [
        t["actions"].reshape(-1).tolist(),
        t["rewards"].reshape(-1).tolist(),
        t["dones"].reshape(-1).tolist(),
    ]


@pytest.mark.parametrize("gamma", [0.9, "per-sample"])
def test_losses_equal_the_formulas_computed_by_hand(gamma):
    t = batch()
    alpha, target_entropy = 0.3, 0.8
    gamma_hand = [0.9, 0.81, 0.729, 0.9, 0.5] if gamma == "per-sample" else gamma  # n-step: gamma ** k per sample
    gamma_arg = torch.tensor(gamma_hand, dtype=torch.float64).reshape(-1, 1) if gamma == "per-sample" else gamma
    log_alpha = torch.tensor([math.log(alpha)], dtype=torch.float64, requires_grad=True)

    out = discrete_sac_losses(
        **t, ent_coef=alpha, gamma=gamma_arg, target_entropy=target_entropy, log_ent_coef=log_alpha
    )
    ref = hand_losses(*as_lists(t), alpha, gamma_hand, target_entropy)

    assert out.target_q.shape == (5, 1)
    np.testing.assert_allclose(out.target_q.reshape(-1).numpy(), ref["target_q"], rtol=1e-12)
    np.testing.assert_allclose(out.critic_loss.item(), ref["critic"], rtol=1e-12)
    np.testing.assert_allclose(out.actor_loss.item(), ref["actor"], rtol=1e-12)
    np.testing.assert_allclose(out.ent_coef_loss.item(), ref["temperature"], rtol=1e-12)
    np.testing.assert_allclose(out.entropy.numpy(), ref["entropy"], rtol=1e-12)
    # terminal transitions do not bootstrap
    assert out.target_q[1].item() == pytest.approx(-0.5) and out.target_q[4].item() == pytest.approx(0.3)


def test_fixed_temperature_gives_no_temperature_loss_and_same_other_losses():
    t = batch(seed=1)
    fixed = discrete_sac_losses(**t, ent_coef=torch.tensor(0.3, dtype=torch.float64), gamma=0.95)
    ref = hand_losses(*as_lists(t), 0.3, 0.95, 0.0)
    assert fixed.ent_coef_loss is None
    np.testing.assert_allclose(fixed.critic_loss.item(), ref["critic"], rtol=1e-12)
    np.testing.assert_allclose(fixed.actor_loss.item(), ref["actor"], rtol=1e-12)
    # alpha = 0: no entropy bonus anywhere, the target is r + gamma (1 - d) E_pi min Q_targ
    zero = discrete_sac_losses(**t, ent_coef=0.0, gamma=0.95)
    pi_next = torch.softmax(t["logits_next"], dim=-1)
    v = (pi_next * torch.min(t["q1_targ_next"], t["q2_targ_next"])).sum(-1, keepdim=True)
    torch.testing.assert_close(zero.target_q, t["rewards"] + 0.95 * (1 - t["dones"]) * v)
    with pytest.raises(ValueError, match="target_entropy must be given"):
        discrete_sac_losses(**t, ent_coef=0.3, gamma=0.9, log_ent_coef=torch.zeros(1, requires_grad=True))


def test_each_loss_reaches_only_its_own_inputs_and_the_temperature_rises_below_target():
    t = batch(seed=2)
    for name in ("q1_targ_next", "q2_targ_next", "logits_next"):
        t[name].requires_grad_(True)
    log_alpha = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    out = discrete_sac_losses(**t, ent_coef=1.0, gamma=0.9, target_entropy=math.log(3), log_ent_coef=log_alpha)

    out.critic_loss.backward()
    assert t["q1"].grad is not None and t["q2"].grad is not None
    assert all(t[k].grad is None for k in ("logits", "logits_next", "q1_targ_next", "q2_targ_next"))
    assert log_alpha.grad is None
    t["q1"].grad = t["q2"].grad = None

    out.actor_loss.backward()
    assert t["logits"].grad is not None and t["q1"].grad is None and t["q2"].grad is None
    assert log_alpha.grad is None

    out.ent_coef_loss.backward()
    # d/dlog_alpha of mean(-log_alpha (target - H)) = -mean(target - H) < 0 since H < log 3 (the maximum):
    # gradient descent raises alpha while the entropy is below its target
    expected = -(math.log(3) - out.entropy).mean().item()
    assert log_alpha.grad.item() == pytest.approx(expected, rel=1e-12) and expected < 0


def test_losses_stay_finite_when_softmax_underflows():
    t = {k: v.detach().float() if v.is_floating_point() else v for k, v in batch(seed=3).items()}
    t["logits"] = torch.tensor([[200.0, -200.0, 0.0]] * 5)  # pi of the middle action is 0 in float32
    t["logits_next"] = t["logits"].clone()
    out = discrete_sac_losses(**t, ent_coef=0.5, gamma=0.9, target_entropy=0.5, log_ent_coef=torch.zeros(1))
    for value in (out.critic_loss, out.actor_loss, out.ent_coef_loss, out.target_q, out.entropy):
        assert torch.isfinite(value).all()
    assert out.entropy.abs().max().item() < 1e-30  # a one-hot policy


def test_train_computes_its_losses_with_discrete_sac_losses(monkeypatch):
    model = filled_model()
    calls: list[Any] = []

    def spy(*args, **kwargs):
        out = discrete_sac_losses(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(dsac_module, "discrete_sac_losses", spy)
    model.train(gradient_steps=3, batch_size=16)
    assert len(calls) == 3 and model._n_updates == 3
    logged = model.logger.name_to_value
    assert logged["train/critic_loss"] == pytest.approx(np.mean([c.critic_loss.item() for c in calls]))
    assert logged["train/actor_loss"] == pytest.approx(np.mean([c.actor_loss.item() for c in calls]))
    assert logged["train/entropy"] == pytest.approx(np.mean([c.entropy.mean().item() for c in calls]))


# ----------------------------------------------------------------------------------------------------------------------
# Construction: defaults, target entropy, policies
# ----------------------------------------------------------------------------------------------------------------------


def test_defaults():
    defaults = {k: p.default for k, p in inspect.signature(DiscreteSAC.__init__).parameters.items()}
    assert {k: defaults[k] for k in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau")} == dict(
        learning_rate=3e-4, buffer_size=1_000_000, learning_starts=100, batch_size=256, tau=0.005
    )
    assert (defaults["gamma"], defaults["train_freq"], defaults["gradient_steps"]) == (0.99, 1, 1)
    assert (defaults["ent_coef"], defaults["target_update_interval"]) == ("auto", 1)
    assert (defaults["target_entropy"], defaults["target_entropy_scale"]) == ("auto", 0.89)
    assert parse_ent_coef("auto") == (True, 1.0) and parse_ent_coef("auto_0.1") == (True, 0.1)
    assert parse_ent_coef(0.2) == (False, 0.2)


def test_target_entropy_auto_scale_and_float():
    assert cartpole_model().target_entropy == pytest.approx(0.89 * math.log(2), rel=1e-12)
    assert cartpole_model(target_entropy_scale=0.5).target_entropy == pytest.approx(0.5 * math.log(2), rel=1e-12)
    assert cartpole_model(target_entropy=0.3, target_entropy_scale=0.5).target_entropy == 0.3  # a float as given
    model = cartpole_model(ent_coef="auto_0.1")
    assert model.log_ent_coef.item() == pytest.approx(math.log(0.1)) and model.ent_coef_optimizer is not None
    fixed = cartpole_model(ent_coef=0.05)
    assert fixed.log_ent_coef is None and fixed.current_ent_coef().item() == pytest.approx(0.05)


def test_policy_structure_and_predict():
    model = cartpole_model()
    assert type(model.policy) is DiscreteSACPolicy
    assert DiscreteSAC.policy_aliases == {
        "MlpPolicy": DiscreteSACPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    extractors = [
        model.actor.features_extractor,
        model.critic.features_extractor,
        model.critic_target.features_extractor,
    ]
    assert all(isinstance(e, FlattenExtractor) for e in extractors)
    assert len({id(e) for e in extractors}) == 3  # actor, critic and target do not share their extractor
    obs = np.stack([model.observation_space.sample() for _ in range(32)])
    q1, q2 = model.critic(torch.as_tensor(obs))
    assert q1.shape == q2.shape == (32, 2) and not torch.equal(q1, q2)  # two independently initialised heads
    with torch.no_grad():
        logits = model.actor(torch.as_tensor(obs))
    assert logits.shape == (32, 2)
    actions, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, logits.argmax(-1).numpy())
    sampled, _ = model.predict(obs, deterministic=False)
    assert sampled.shape == (32,) and set(sampled.tolist()) <= {0, 1}
    single, _ = model.predict(obs[0], deterministic=True)
    assert single.shape == () and int(single) == actions[0]


# ----------------------------------------------------------------------------------------------------------------------
# Target networks
# ----------------------------------------------------------------------------------------------------------------------


def test_hard_update_copies_exactly_every_target_update_interval_gradient_steps():
    model = filled_model(tau=1.0, target_update_interval=3)
    initial = critic_vector(model.critic_target)
    model.train(gradient_steps=2, batch_size=16)
    assert torch.equal(critic_vector(model.critic_target), initial)  # not yet: 2 steps of 3
    assert not torch.equal(critic_vector(model.critic), initial)
    model.train(gradient_steps=1, batch_size=16)  # the interval counts across train() calls
    assert torch.equal(critic_vector(model.critic_target), critic_vector(model.critic))
    model.train(gradient_steps=1, batch_size=16)
    assert not torch.equal(critic_vector(model.critic_target), critic_vector(model.critic))
    with torch.no_grad():
        next(model.critic_target.parameters()).fill_(float("inf"))
    model._update_target_networks()  # a copy, not 0 * target + critic (NaN where the target is inf)
    assert torch.equal(critic_vector(model.critic_target), critic_vector(model.critic))


def test_soft_update_is_the_polyak_average():
    model = filled_model(tau=0.5, learning_rate=0.0)  # lr 0: the critic stays put, only the target moves
    with torch.no_grad():
        for p in model.critic_target.parameters():
            p.add_(torch.randn_like(p))
    critic, target = critic_vector(model.critic), critic_vector(model.critic_target)
    model.train(gradient_steps=1, batch_size=16)
    assert torch.equal(critic_vector(model.critic), critic)
    torch.testing.assert_close(critic_vector(model.critic_target), 0.5 * (critic + target))


# ----------------------------------------------------------------------------------------------------------------------
# learn, logger, callbacks, replay buffers, save/load
# ----------------------------------------------------------------------------------------------------------------------


class CountingReplayBuffer(ReplayBuffer):
    """SB3's ReplayBuffer that counts ``sample`` calls and keeps an extra constructor argument."""

    def __init__(self, *args: Any, tag: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = tag
        self.n_samples = 0

    def sample(self, batch_size: int, env=None):
        self.n_samples += 1
        return super().sample(batch_size, env=env)


class KeyCapture(KVWriter):
    """Logger output that remembers every key it is asked to write."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        self.keys.update(key_values)

    def close(self) -> None:
        pass


class StepCounter(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.started = self.ended = False

    def _on_training_start(self) -> None:
        self.started = True

    def _on_step(self) -> bool:
        self.steps += 1
        return True

    def _on_training_end(self) -> None:
        self.ended = True


def test_learn_on_cartpole_with_callback_logger_and_custom_replay_buffer():
    model = cartpole_model(
        learning_starts=50, replay_buffer_class=CountingReplayBuffer, replay_buffer_kwargs=dict(tag="mine")
    )
    capture = KeyCapture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    callback = StepCounter()
    model.learn(300, callback=callback, log_interval=1)

    assert isinstance(model.replay_buffer, CountingReplayBuffer) and model.replay_buffer.tag == "mine"
    assert model.num_timesteps == 300 and callback.steps == 300 and callback.started and callback.ended
    assert model._n_updates == 250 and model.replay_buffer.n_samples == 250  # one gradient step per step after 50
    for key in ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss", "entropy", "n_updates"):
        assert f"train/{key}" in capture.keys
    assert "rollout/ep_rew_mean" in capture.keys
    assert model.log_ent_coef.item() != 0.0  # the temperature was tuned
    for name, value in model.logger.name_to_value.items():
        assert np.isfinite(value), name


def test_learn_with_two_envs_and_n_step_returns():
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    model = DiscreteSAC("MlpPolicy", env, learning_starts=20, n_steps=3, **SMALL)
    assert isinstance(model.replay_buffer, NStepReplayBuffer)
    model.learn(100)
    assert model.num_timesteps == 100 and model._n_updates > 0


@pytest.mark.filterwarnings("ignore:rich is experimental")  # tqdm's own notice about its rich bar, used by SB3
def test_progress_bar():
    model = cartpole_model(learning_starts=10)
    model.learn(50, progress_bar=True)
    assert model.num_timesteps == 50


def test_save_load_round_trip(tmp_path):
    model = cartpole_model(learning_starts=50)
    model.learn(200)
    path = tmp_path / "dsac.zip"
    model.save(path)
    loaded = DiscreteSAC.load(path, device="cpu")
    data, params, torch_variables = load_from_zip_file(path, device="cpu")
    assert not {"actor", "critic", "critic_target", "log_ent_coef", "ent_coef_optimizer"} & set(data)  # not pickled
    assert {"policy", "actor.optimizer", "critic.optimizer", "ent_coef_optimizer"} <= set(params)
    assert set(torch_variables) == {"log_ent_coef"}

    obs = np.stack([model.observation_space.sample() for _ in range(64)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert torch.equal(loaded.log_ent_coef, model.log_ent_coef) and loaded.log_ent_coef.requires_grad
    saved_state, loaded_state = model.ent_coef_optimizer.state_dict(), loaded.ent_coef_optimizer.state_dict()
    assert loaded_state["state"][0]["step"] == saved_state["state"][0]["step"]
    assert torch.equal(loaded_state["state"][0]["exp_avg"], saved_state["state"][0]["exp_avg"])
    # the loaded optimiser drives the loaded tensor, not a stale one
    assert loaded.ent_coef_optimizer.param_groups[0]["params"][0] is loaded.log_ent_coef
    for module in ("actor", "critic", "critic_target"):
        torch.testing.assert_close(critic_vector(getattr(loaded, module)), critic_vector(getattr(model, module)))
    assert loaded.actor is loaded.policy.actor and loaded.critic_target is loaded.policy.critic_target
    assert loaded.target_entropy == model.target_entropy and loaded._n_updates == model._n_updates

    loaded.set_env(gym.make("CartPole-v1"))
    loaded.learn(20, reset_num_timesteps=False)  # and it trains on
    assert loaded._n_updates == model._n_updates + 20


def test_save_load_fixed_temperature(tmp_path):
    model = cartpole_model(ent_coef=0.05)
    model.save(tmp_path / "fixed.zip")
    loaded = DiscreteSAC.load(tmp_path / "fixed.zip", device="cpu")
    assert loaded.log_ent_coef is None and loaded.ent_coef_optimizer is None
    assert loaded.current_ent_coef().item() == pytest.approx(0.05)


# ----------------------------------------------------------------------------------------------------------------------
# Image and Dict observations
# ----------------------------------------------------------------------------------------------------------------------


class TinyImageEnv(gym.Env):
    """84x84 grey images of noise, Discrete(3) actions, reward 1 for action 0, episodes of 10 steps."""

    def __init__(self, channel_first: bool = False) -> None:
        shape = (1, 84, 84) if channel_first else (84, 84, 1)
        self.observation_space = spaces.Box(0, 255, shape, dtype=np.uint8)
        self.action_space = spaces.Discrete(3)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), float(action == 0), False, self.t >= 10, {}


@pytest.mark.parametrize("channel_first", [False, True])
def test_cnn_policy_smoke(channel_first):
    model = DiscreteSAC(
        "CnnPolicy", TinyImageEnv(channel_first), buffer_size=64, learning_starts=8, batch_size=4, seed=0, device="cpu"
    )
    assert isinstance(model.policy, CnnPolicy) and isinstance(model.actor.features_extractor, NatureCNN)
    assert isinstance(model.critic.features_extractor, NatureCNN)
    assert model.actor.features_extractor is not model.critic.features_extractor
    assert model.target_entropy == pytest.approx(0.89 * math.log(3))
    model.learn(24)
    assert model._n_updates == 16
    obs = np.stack([model.observation_space.sample() for _ in range(5)])  # (after VecTransposeImage) channel first
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1, 2}


class TinyDictEnv(gym.Env):
    """Dict observations of two vectors, Discrete(4) actions, episodes of 8 steps."""

    observation_space = spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Box(-1, 1, (2,))})
    action_space = spaces.Discrete(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), float(action), False, self.t >= 8, {}


def test_multi_input_policy_smoke():
    model = DiscreteSAC("MultiInputPolicy", TinyDictEnv(), learning_starts=10, **SMALL)
    assert isinstance(model.actor.features_extractor, CombinedExtractor)
    model.learn(30)
    assert model._n_updates == 20


# ----------------------------------------------------------------------------------------------------------------------
# One features extractor for the actor and the critics
# ----------------------------------------------------------------------------------------------------------------------


class LinearExtractor(BaseFeaturesExtractor):
    """A features extractor with parameters (CartPole's FlattenExtractor has none to share)."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 8) -> None:
        super().__init__(observation_space, features_dim)
        self.linear = torch.nn.Linear(int(np.prod(observation_space.shape)), features_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(observations.flatten(1)))


def shared_model(**kwargs: Any) -> DiscreteSAC:
    """A filled CartPole model whose actor and critics share a LinearExtractor."""
    policy_kwargs = dict(net_arch=[16], features_extractor_class=LinearExtractor, share_features_extractor=True)
    return filled_model(policy_kwargs=policy_kwargs, **kwargs)


def ids(parameters) -> set[int]:
    return {id(p) for p in parameters}


def test_shared_extractor_structure_and_optimisers():
    model = shared_model()
    policy = model.policy
    assert model.actor.features_extractor is model.critic.features_extractor
    assert policy.actor_target.features_extractor is model.critic_target.features_extractor
    extractor = ids(model.critic.features_extractor.parameters())
    # the critic's optimiser trains the extractor; the actor's only its head
    assert ids(model.actor.optimizer.param_groups[0]["params"]) == ids(model.actor.logits_net.parameters())
    assert extractor <= ids(model.critic.optimizer.param_groups[0]["params"])
    assert critic_vector(policy.actor_target).equal(critic_vector(model.actor))
    assert cartpole_model().policy.actor_target is None  # not shared: no target actor


def test_shared_extractor_outputs_and_gradient_paths():
    model = shared_model()
    policy = model.policy
    with torch.no_grad():  # the target copy differs from the online networks, so the sources below are told apart
        for p in [*model.critic_target.parameters(), *policy.actor_target.logits_net.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
    replay = model.replay_buffer.sample(16)
    out = policy.batch_outputs(replay.observations, replay.next_observations)
    with torch.no_grad():
        q1, q2 = model.critic(replay.observations)
        q1_targ, q2_targ = model.critic_target(replay.next_observations)
        torch.testing.assert_close(out.q1, q1)
        torch.testing.assert_close(out.q2, q2)
        torch.testing.assert_close(out.q1_targ_next, q1_targ)
        torch.testing.assert_close(out.q2_targ_next, q2_targ)
        torch.testing.assert_close(out.logits, model.actor(replay.observations))
        # the next-state policy is the target copy's, not the current actor's
        torch.testing.assert_close(out.logits_next, policy.actor_target(replay.next_observations))
        assert not torch.allclose(out.logits_next, model.actor(replay.next_observations))

    losses = discrete_sac_losses(
        *out, replay.actions, replay.rewards, replay.dones, 0.2, 0.99, model.target_entropy, model.log_ent_coef
    )
    extractor = list(model.critic.features_extractor.parameters())
    losses.actor_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in extractor)  # the actor loss does not move the shared features
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.actor.logits_net.parameters())
    losses.critic_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in extractor)


def test_shared_extractor_target_actor_head_follows_the_actor():
    model = shared_model(tau=1.0, target_update_interval=2)
    model.train(gradient_steps=1, batch_size=16)
    target_head = critic_vector(model.policy.actor_target.logits_net)
    policy_head = critic_vector(model.actor.logits_net)
    assert not torch.equal(target_head, policy_head)
    model.train(gradient_steps=1, batch_size=16)  # the second step copies
    assert torch.equal(critic_vector(model.policy.actor_target.logits_net), critic_vector(model.actor.logits_net))
    assert torch.equal(critic_vector(model.critic_target), critic_vector(model.critic))

    soft = shared_model(tau=0.5, learning_rate=0.0)  # lr 0: only the targets move
    with torch.no_grad():
        for p in soft.policy.actor_target.logits_net.parameters():
            p.add_(torch.randn_like(p))
    head, target = critic_vector(soft.actor.logits_net), critic_vector(soft.policy.actor_target.logits_net)
    soft.train(gradient_steps=1, batch_size=16)
    torch.testing.assert_close(critic_vector(soft.policy.actor_target.logits_net), 0.5 * (head + target))


def test_shared_extractor_save_load_round_trip(tmp_path):
    model = shared_model()
    model.train(gradient_steps=3, batch_size=16)
    model.save(tmp_path / "shared.zip")
    loaded = DiscreteSAC.load(tmp_path / "shared.zip", device="cpu")
    assert loaded.policy.share_features_extractor
    assert loaded.actor.features_extractor is loaded.critic.features_extractor
    assert loaded.policy.actor_target.features_extractor is loaded.critic_target.features_extractor
    for module in ("actor", "critic", "critic_target", "actor_target"):
        saved, restored = getattr(model.policy, module), getattr(loaded.policy, module)
        torch.testing.assert_close(critic_vector(restored), critic_vector(saved))
    obs = np.stack([model.observation_space.sample() for _ in range(32)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


# ----------------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_env",
    [lambda: "Pendulum-v1", lambda: gym.make("Pendulum-v1"), lambda: DummyVecEnv([lambda: gym.make("Pendulum-v1")])],
    ids=["id", "env", "vecenv"],
)
def test_box_action_space_is_rejected(make_env):
    with pytest.raises(
        ValueError, match=r"DiscreteSAC needs a Discrete action space, got Box.*; for Box actions use SAC"
    ):
        DiscreteSAC("MlpPolicy", make_env())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(tau=0.0), r"tau must be in \(0, 1\], got 0.0"),
        (dict(tau=1.5), r"tau must be in \(0, 1\]"),
        (dict(target_entropy_scale=0.0), r"target_entropy_scale must be in \(0, 1\]"),
        (dict(target_entropy_scale=1.2), r"target_entropy_scale must be in \(0, 1\]"),
        (dict(target_entropy="high"), "target_entropy must be 'auto' or a finite float"),
        (dict(target_update_interval=0), "target_update_interval must be an int >= 1"),
        (dict(gamma=1.5), r"gamma must be in \[0, 1\]"),
        (dict(batch_size=0), "batch_size must be an int >= 1"),
        (dict(learning_rate=-1e-3), "learning_rate must be"),
        (dict(ent_coef="auto_-1"), "ent_coef 'auto_<initial value>' needs a positive initial value"),
        (dict(ent_coef="bogus"), "ent_coef must be 'auto'"),
        (dict(ent_coef=-0.1), "ent_coef must be 'auto'"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, message):
    # checked before the environment is looked at: a Box environment still reports the bad field
    with pytest.raises(ValueError, match=message):
        DiscreteSAC("MlpPolicy", "Pendulum-v1", **kwargs)
