"""A run's trained artifacts: ``policy.zip`` loads with a bare ``SAC.load`` / ``DiscreteSAC.load``, ``reward_net.pt``
with ``torch.load(weights_only=True)`` and :func:`load_reward_net`, and both give what the live objects give."""

from __future__ import annotations

import base64
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer

from smoke import SMOKE
from sobirl.agents import (
    DiscreteSAC,
    FrameStackReplayBuffer,
    RelabelingFrameStackReplayBuffer,
    RelabelingReplayBuffer,
    make_sac,
)
from sobirl.experiments import write_config
from sobirl.rlhf import (
    POLICY_FILE,
    REWARD_NET_FILE,
    CnnActionRewardNet,
    MlpActionRewardNet,
    RewardNet,
    load_reward_net,
    save_policy,
    save_reward_net,
)
from sobirl.rlhf import artifacts as artifacts_module
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.trainer import RLHFTrainer
from test_frame_buffer import stacked_env


def tiny_run(run_dir: Path, env: str, **changes: object) -> RLHFTrainer:
    """A finished 200-step drlhf run of SMOKE settings on ``env`` in ``run_dir``, with its ``config.yaml``."""
    config = RLHFConfig.from_dict({**SMOKE, "algo": "drlhf", "env": env, "total_steps": 200, **changes})
    run_dir.mkdir()
    write_config(run_dir, {"experiment": "rlhf", **config.resolved()})
    trainer = RLHFTrainer(config, run_dir)
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory) -> RLHFTrainer:
    return tiny_run(tmp_path_factory.mktemp("artifacts") / "pendulum", "Pendulum-v1")


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory) -> RLHFTrainer:  # random CartPole episodes last ~20 steps
    return tiny_run(tmp_path_factory.mktemp("artifacts") / "cartpole", "CartPole-v1", fragment_length=8)


def observations(trainer: RLHFTrainer, n: int = 64) -> np.ndarray:
    space = trainer.eval_env.observation_space
    space.seed(0)
    return np.stack([space.sample() for _ in range(n)])


def pickled_entries(policy: Path) -> list[bytes]:
    """The cloudpickled values of an SB3 zip's ``data`` (classes, schedules, ...)."""
    with zipfile.ZipFile(policy) as archive:
        data = json.loads(archive.read("data"))
    return [base64.b64decode(v[":serialized:"]) for v in data.values() if isinstance(v, dict) and ":serialized:" in v]


# ---- policy.zip ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("run", "algorithm"), [("pendulum", SAC), ("cartpole", DiscreteSAC)])
def test_a_saved_policy_loads_with_no_arguments_and_acts_as_the_live_one(run, algorithm, request, tmp_path):
    trainer: RLHFTrainer = request.getfixturevalue(run)
    path = save_policy(trainer.model, tmp_path / POLICY_FILE)
    assert path == tmp_path / POLICY_FILE and sorted(p.name for p in tmp_path.iterdir()) == [POLICY_FILE]
    # the live model still trains on its relabelling buffer
    assert trainer.model.replay_buffer_class is RelabelingReplayBuffer
    assert trainer.model.replay_buffer_kwargs["reward_fn"] is trainer.reward_net

    loaded = algorithm.load(path)
    assert type(loaded) is algorithm and loaded.replay_buffer_class is ReplayBuffer
    assert loaded.replay_buffer_kwargs == {} and loaded.replay_buffer.size() == 0
    obs = observations(trainer)
    live, _ = trainer.model.predict(obs, deterministic=True)
    again, _ = loaded.predict(obs, deterministic=True)
    torch.testing.assert_close(torch.as_tensor(again), torch.as_tensor(live), rtol=0, atol=0)


def test_a_box_policy_file_needs_no_sobirl_to_load(pendulum, tmp_path):
    blobs = pickled_entries(save_policy(pendulum.model, tmp_path / POLICY_FILE))
    assert blobs and not any(b"sobirl" in blob for blob in blobs)


def test_a_frame_stack_policy_names_the_plain_frame_stack_buffer(tmp_path):
    env = stacked_env("last", 4, n_envs=1, shape=(36, 36))  # NatureCNN needs 36x36 frames
    net = CnnActionRewardNet((4, 36, 36), 3, features_dim=8)
    kwargs = {"features_extractor_kwargs": {"features_dim": 8}, "net_arch": [8]}
    model = make_sac(env, net, frame_stack=4, policy="CnnPolicy", buffer_size=100, policy_kwargs=kwargs)
    assert model.replay_buffer_class is RelabelingFrameStackReplayBuffer
    loaded = DiscreteSAC.load(save_policy(model, tmp_path / POLICY_FILE))
    assert loaded.replay_buffer_class is FrameStackReplayBuffer and loaded.replay_buffer_kwargs == {"n_stack": 4}
    assert model.replay_buffer_class is RelabelingFrameStackReplayBuffer and model.replay_buffer_kwargs["n_stack"] == 4
    obs = np.random.default_rng(0).integers(0, 256, (8, 4, 36, 36), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_a_failed_policy_write_keeps_the_previous_file_and_the_live_buffer(pendulum, tmp_path, monkeypatch):
    path = save_policy(pendulum.model, tmp_path / POLICY_FILE)
    before = path.read_bytes()

    def full_disk(target, *args, **kwargs):
        target.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pendulum.model, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_policy(pendulum.model, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [POLICY_FILE]
    assert pendulum.model.replay_buffer_class is RelabelingReplayBuffer
    assert pendulum.model.replay_buffer_kwargs["reward_fn"] is pendulum.reward_net


# ---- reward_net.pt ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("run", "cls"), [("pendulum", RewardNet), ("cartpole", MlpActionRewardNet)])
def test_a_saved_reward_net_loads_as_plain_values_and_rewards_as_the_live_one(run, cls, request, tmp_path):
    trainer: RLHFTrainer = request.getfixturevalue(run)
    live = trainer.reward_net
    path = save_reward_net(live, tmp_path / REWARD_NET_FILE)

    payload = torch.load(path, weights_only=True)
    assert payload["class"] == cls.__name__ and payload["kwargs"]["dtype"] == "float32"
    assert payload["kwargs"]["hidden"] == (32, 32) and payload["kwargs"]["normalize_output"] is True
    assert payload["state_dict"]["reward_count"] > 0  # trained: the normalisation's statistics are saved

    net = load_reward_net(path)
    assert type(net) is cls and not net.training
    for name, value in live.state_dict().items():
        torch.testing.assert_close(net.state_dict()[name], value, rtol=0, atol=0)
    obs = torch.as_tensor(observations(trainer))
    space = trainer.eval_env.action_space
    space.seed(1)
    actions = torch.as_tensor(np.stack([space.sample() for _ in range(len(obs))]), dtype=torch.float32)
    live.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(obs, actions), live(obs, actions), rtol=0, atol=0)
        if cls is MlpActionRewardNet:
            torch.testing.assert_close(net.action_rewards(obs), live.action_rewards(obs), rtol=0, atol=0)


def test_a_cnn_reward_net_round_trips(tmp_path):
    net = CnnActionRewardNet((4, 36, 36), 3, features_dim=8, state_only=True, seed=3, dtype=torch.float64)
    loaded = load_reward_net(save_reward_net(net, tmp_path / REWARD_NET_FILE))
    assert type(loaded) is CnnActionRewardNet and loaded.init_kwargs == net.init_kwargs
    frames = torch.randint(0, 256, (5, 4, 36, 36), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.action_rewards(frames), net.action_rewards(frames), rtol=0, atol=0)


def test_only_the_reward_nets_can_be_saved(tmp_path):
    with pytest.raises(TypeError, match="net must be one of RewardNet, MlpActionRewardNet, CnnActionRewardNet"):
        save_reward_net(torch.nn.Linear(2, 1), tmp_path / REWARD_NET_FILE)
    assert not list(tmp_path.iterdir())


def test_a_failed_reward_net_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_reward_net(RewardNet(3, 1, hidden=(4,)), tmp_path / REWARD_NET_FILE)
    before = path.read_bytes()

    def full_disk(obj, target):
        target.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts_module.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_reward_net(RewardNet(3, 1, hidden=(4,), seed=1), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [REWARD_NET_FILE]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file", "not a torch file of plain values"),
        ([1, 2], "expected a dict with keys class, kwargs, state_dict, got list"),
        ({"class": "Linear"}, "unknown reward net class 'Linear' (known: RewardNet, MlpActionRewardNet"),
        ({"kwargs": {"obs_dim": 3, "act_dim": 1, "dtype": "float99"}}, "unknown dtype 'float99'"),
        ({"kwargs": {"obs_dim": 3, "dtype": "float32"}}, "arguments or state do not fit RewardNet (TypeError"),
        ({"state_dict": {}}, "arguments or state do not fit RewardNet (RuntimeError: Error(s) in loading"),
    ],
)
def test_a_file_that_is_not_a_saved_reward_net_is_one_clear_error(content, message, tmp_path):
    path = save_reward_net(RewardNet(3, 1, hidden=(4,)), tmp_path / REWARD_NET_FILE)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):  # changes to the saved payload
        torch.save({**torch.load(path, weights_only=True), **content}, path)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=f"^{re.escape(f'{path} is not a reward net written by')}") as info:
        load_reward_net(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_reward_net_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_reward_net(tmp_path / REWARD_NET_FILE)


# ---- written by the trainer ----------------------------------------------------------------------------------------


def test_a_run_writes_its_artifacts_and_they_act_as_the_live_objects(pendulum):
    run_dir = pendulum.run_dir
    loaded = SAC.load(run_dir / POLICY_FILE)  # bare: no custom_objects, no env
    obs = observations(pendulum)
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], pendulum.model.predict(obs, deterministic=True)[0]
    )
    payload = torch.load(run_dir / REWARD_NET_FILE, weights_only=True)
    assert payload["class"] == "RewardNet"
    net, live = load_reward_net(run_dir / REWARD_NET_FILE), pendulum.reward_net
    live.eval()
    actions = np.stack([pendulum.eval_env.action_space.sample() for _ in range(len(obs))])
    o, a = torch.as_tensor(obs), torch.as_tensor(actions)
    torch.testing.assert_close(net(o, a), live(o, a))
