"""The deep RLHF trainer and ``sobirl rlhf`` at smoke scale: run directories, configs, determinism, resume, errors."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from smoke import SMOKE
from sobirl.agents import DiscreteSAC, FrameStackReplayBuffer, RelabelingFrameStackReplayBuffer
from sobirl.cli import main
from sobirl.experiments import write_config
from sobirl.rlhf import CnnActionRewardNet, MlpActionRewardNet, environments
from sobirl.rlhf.checkpoints import latest_checkpoint
from sobirl.rlhf.config import ALGOS, RLHFConfig
from sobirl.rlhf.fragments import FragmentPairs
from sobirl.rlhf.preferences import PreferenceGatherer
from sobirl.rlhf.run_logger import METRIC_COLUMNS
from sobirl.rlhf.trainer import RLHFTrainer
from sobirl.rundir import read_metrics

REPO = Path(__file__).resolve().parents[1]


class MultiBinaryActions(gym.Env):
    """1-D Box observations, MultiBinary actions: an action space deep RLHF does not take."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,))
    action_space = gym.spaces.MultiBinary(2)


gym.register("sobirl-test/MultiBinaryActions-v0", entry_point=MultiBinaryActions, max_episode_steps=50)


def smoke_args(**changes: object) -> list[str]:
    return [arg for key, value in {**SMOKE, **changes}.items() for arg in ("--set", f"{key}={value}")]


def only_run_dir(root: Path) -> Path:
    (run_dir,) = root.iterdir()
    return run_dir


@pytest.mark.parametrize("algo", ALGOS)
def test_cli_writes_a_complete_run_directory(algo, tmp_path, capsys):
    status = main(
        ["rlhf", "--algo", algo, "--total-steps", "300", "--output-dir", str(tmp_path), "--no-progress", *smoke_args()]
    )
    assert status == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith(f"rlhf-Pendulum-v1-{algo}-seed0-")
    for name in ("config.yaml", "metrics.csv", "return.png", "tensorboard"):
        assert (run_dir / name).exists(), name
    assert latest_checkpoint(run_dir).name == "step-300"
    written = RLHFConfig.from_yaml(run_dir / "config.yaml")
    assert written.resolved() == RLHFConfig.from_dict({**SMOKE, "algo": algo, "total_steps": 300}).resolved()

    rows = read_metrics(run_dir)
    assert list(rows[0]) == list(METRIC_COLUMNS)
    assert [r["agent_steps"] for r in rows] == [100, 200, 300] and [r["iteration"] for r in rows] == [1, 2, 3]
    for row in rows:  # 50-step Pendulum episodes return between -16.3 * 50 and 0
        assert -16.3 * 50 <= row["train_return"] <= 0 and -16.3 * 50 <= row["eval_return"] <= 0
        assert 0 < row["alpha"] <= 1 and row["steps_per_s"] > 0 and row["wall_time"] > 0
    assert rows[0]["alpha"] == 1.0 and rows[-1]["alpha"] < 1.0  # SAC trains after 100 steps
    learned = ["preference_accuracy", "accuracy_pairs", "reward_loss", "exploration_norm"]
    if algo == "sac-true-reward":
        assert all(math.isnan(r[k]) for r in rows for k in learned) and [r["pairs"] for r in rows] == [0, 0, 0]
        return
    # the hyperbolic schedule: 10 initial pairs + floor(30 log(1 + x) / log 2) at x = 1/2, 1 of the last reward update
    # (step 200: none at the last step)
    assert [r["pairs"] for r in rows] == [27, 40, 40]
    for row in rows:
        assert 0 <= row["preference_accuracy"] <= 1 and 0 < row["reward_loss"] < 10
        # real-valued rewards: only a pair that draws the same fragment twice (the draws are independent) ties
        assert SMOKE["held_out_pairs"] - 3 <= row["accuracy_pairs"] <= SMOKE["held_out_pairs"]
        assert (row["exploration_norm"] == 0) == (algo == "drlhf")


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_runs_on_a_tiny_halfcheetah(algo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = RLHFConfig.from_dict({**SMOKE, "env": "HalfCheetah-v5", "algo": algo, "total_steps": 200})
    trainer = RLHFTrainer(config, tmp_path)
    rows = trainer.run()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's warnings go to Python's warnings
    assert trainer.steps == 200 and [r["agent_steps"] for r in rows] == [100, 200]
    assert all(math.isfinite(r["eval_return"]) and math.isfinite(r["train_return"]) for r in rows)
    if algo != "sac-true-reward":
        assert trainer.dataset.contents()[0].observations.shape[2:] == (25, 17)  # HalfCheetah's 17-D observations
        assert 0 <= rows[-1]["preference_accuracy"] <= 1


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_runs_on_discrete_cartpole(algo, tmp_path):
    changes = {"env": "CartPole-v1", "algo": algo, "total_steps": 200, "checkpoint_interval": 100, "fragment_length": 8}
    config = RLHFConfig.from_dict({**SMOKE, **changes})  # random CartPole episodes last ~20 steps
    write_config(tmp_path, {"experiment": "rlhf", **config.to_dict()})
    trainer = RLHFTrainer(config, tmp_path)
    rows = trainer.run()
    assert isinstance(trainer.model, DiscreteSAC) and trainer.steps == 200
    assert [r["agent_steps"] for r in rows] == [100, 200]
    assert all(1 <= r["eval_return"] <= 50 and 0 < r["alpha"] <= 1 for r in rows)  # CartPole: +1 per step, 50 steps
    if algo == "sac-true-reward":
        assert trainer.reward_net is None
    else:
        assert isinstance(trainer.reward_net, MlpActionRewardNet) and trainer.reward_net.n_actions == 2
        pairs = trainer.dataset.contents()[0]
        assert pairs.observations.shape[2:] == (8, 4) and set(np.unique(pairs.actions)) <= {0, 1}
        assert all(math.isfinite(r["reward_loss"]) for r in rows)
        assert (rows[-1]["exploration_norm"] > 0) == (algo != "drlhf")
        # CartPole pays +1 per step: fragments inside episodes all return their length, every pair is a tie (its
        # labels are coin flips) and the held-out accuracy, over decided pairs only, is undefined
        assert np.all(trainer.labeller.probabilities(pairs) == 0.5)
        assert all(math.isnan(r["preference_accuracy"]) and r["accuracy_pairs"] == 0 for r in rows)
    resumed = RLHFTrainer.resume(tmp_path)
    assert isinstance(resumed.model, DiscreteSAC) and resumed.steps == 200


ATARI_SMOKE = {
    **SMOKE,
    "env": "ALE/BeamRider-v5",
    "total_steps": 200,
    "reward_update_interval": 40,  # updates at 80, 120 and 160 (at 40 no episode has ended)
    "max_episode_steps": 60,  # agent steps: three episodes, the first finished before the reward update at 100
    "fragment_length": 10,
    "total_pairs": 16,
    "initial_pairs": 8,
    "initial_reward_epochs": 1,
    "reward_batch_size": 4,
    "exploration_warmup": 0,
    "estimator": "one-step",  # the successor-feature critic needs 1-D observations
    "sac_learning_starts": 100,
    "sac_buffer_size": 500,
    "sac_batch_size": 8,
    "sac_train_freq": 4,  # Nature CNN updates are the cost here: 25 of them
    "sac_tau": 1.0,
    "sac_target_update_interval": 10,
    "eval_interval": 200,
    "held_out_pairs": 8,
    "checkpoint_interval": 200,
}
"""The smallest Atari run with three reward updates (the exploration term on), SAC updates and an evaluation."""


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_runs_on_atari_frames(algo, tmp_path):
    config = RLHFConfig.from_dict({**ATARI_SMOKE, "algo": algo})
    write_config(tmp_path, {"experiment": "rlhf", **config.to_dict()})
    trainer = RLHFTrainer(config, tmp_path)
    (row,) = trainer.run()
    assert isinstance(trainer.model, DiscreteSAC) and trainer.steps == row["agent_steps"] == 200
    model = trainer.model
    assert (model.train_freq.frequency, model.tau, model.target_update_interval, model._n_updates) == (4, 1.0, 10, 25)
    buffer_class = FrameStackReplayBuffer if algo == "sac-true-reward" else RelabelingFrameStackReplayBuffer
    assert type(trainer.model.replay_buffer) is buffer_class and trainer.model.replay_buffer.n_stack == 4
    assert 0 < row["alpha"] < 1 and row["eval_return"] >= 0 and row["train_return"] >= 0  # game scores
    assert [len(t) for t in trainer.recorder.trajectories] == [60, 60, 60]
    assert trainer.recorder.trajectories[0].observations.dtype == np.uint8
    if algo == "sac-true-reward":
        assert trainer.reward_net is None and row["pairs"] == 0
    else:
        assert isinstance(trainer.reward_net, CnnActionRewardNet) and trainer.reward_net.n_actions == 9
        assert trainer.model.replay_buffer.reward_fn is trainer.reward_net
        pairs = trainer.dataset.contents()[0]
        assert pairs.observations.shape == (16, 2, 10, 4, 84, 84) and pairs.observations.dtype == np.uint8
        assert trainer.dataset.frame_stack == 4  # the game's stacks passed the overlap check: 13 frames a fragment
        assert row["pairs"] == 16 and trainer.state.reward_updates == 3
        assert math.isfinite(row["reward_loss"]) and (row["exploration_norm"] > 0) == (algo != "drlhf")
        # no enemy is hit in the first 60 steps of a game: every fragment scores 0, so every pair ties
        assert np.all(trainer.labeller.probabilities(pairs) == 0.5) and math.isnan(row["preference_accuracy"])
        assert row["accuracy_pairs"] == 0
    resumed = RLHFTrainer.resume(tmp_path)
    assert type(resumed.model.replay_buffer) is buffer_class and resumed.model.replay_buffer.size() == 200
    if algo != "sac-true-reward":
        assert resumed.model.replay_buffer.reward_fn is resumed.reward_net
        np.testing.assert_array_equal(resumed.dataset.contents()[0].observations, pairs.observations)


def test_target_entropy_scale_reaches_discrete_sac_and_only_discrete_actions(tmp_path):
    changes = {"env": "CartPole-v1", "total_steps": 100, "fragment_length": 8, "sac_target_entropy_scale": 0.5}
    trainer = RLHFTrainer(RLHFConfig.from_dict({**SMOKE, **changes}), tmp_path)
    assert trainer.model.target_entropy == pytest.approx(0.5 * math.log(2))
    assert RLHFTrainer(
        RLHFConfig.from_dict({**SMOKE, "env": "CartPole-v1", "fragment_length": 8}), tmp_path / "d"
    ).model.target_entropy == pytest.approx(0.89 * math.log(2))
    with pytest.raises(
        ValueError, match=r"sac_target_entropy_scale is DiscreteSAC's \(Discrete actions\), and 'Pendulum-v1'"
    ):
        environments.make_env(RLHFConfig.from_dict({**SMOKE, "sac_target_entropy_scale": 0.5}))
    with pytest.raises(ValueError, match=r"sac_target_entropy_scale must be in \(0, 1\], got 1.5"):
        RLHFConfig(sac_target_entropy_scale=1.5)


def test_state_only_reward_reaches_the_per_action_net_and_only_discrete_actions(tmp_path):
    changes = {"env": "CartPole-v1", "total_steps": 100, "fragment_length": 8, "reward_state_only": True}
    trainer = RLHFTrainer(RLHFConfig.from_dict({**SMOKE, **changes}), tmp_path)
    assert trainer.reward_net.state_only and trainer.reward_net.body[-1].out_features == 1
    with pytest.raises(
        ValueError, match=r"reward_state_only is for the per-action reward net \(Discrete actions\), and "
    ):
        environments.make_env(RLHFConfig.from_dict({**SMOKE, "reward_state_only": True}))
    with pytest.raises(TypeError, match="reward_state_only must be true or false, got 1"):
        RLHFConfig(reward_state_only=1)


def test_stochastic_evaluation_is_seeded_and_leaves_training_randomness_alone(tmp_path):
    """eval_deterministic false: actions sampled under a forked generator seeded by the evaluation, so the same
    evaluation gives the same return and torch's global stream is where it was."""
    changes = {"env": "CartPole-v1", "fragment_length": 8, "eval_episodes": 4}
    stochastic = RLHFTrainer(RLHFConfig.from_dict({**SMOKE, **changes, "eval_deterministic": False}), tmp_path / "s")
    deterministic = RLHFTrainer(RLHFConfig.from_dict({**SMOKE, **changes}), tmp_path / "d")
    state = torch.get_rng_state()
    returns = [stochastic._eval_return(np.random.SeedSequence([0, 1])) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert returns[0] == returns[1] != stochastic._eval_return(np.random.SeedSequence([0, 2]))
    argmax = deterministic._eval_return(np.random.SeedSequence([0, 1]))  # an untrained argmax pushes one way
    assert argmax <= 12 < returns[0]
    with pytest.raises(TypeError, match="eval_deterministic must be true or false, got 'no'"):
        RLHFConfig(eval_deterministic="no")


def test_shared_features_extractor_on_atari_frames(tmp_path):
    config = RLHFConfig.from_dict(
        {**ATARI_SMOKE, "algo": "sobirl", "total_steps": 120, "sac_share_features_extractor": True}
    )
    write_config(tmp_path, {"experiment": "rlhf", **config.to_dict()})
    trainer = RLHFTrainer(config, tmp_path)
    trainer.run()
    policy = trainer.model.policy
    assert policy.share_features_extractor and policy.actor.features_extractor is policy.critic.features_extractor
    assert trainer.model._n_updates == 5
    resumed = RLHFTrainer.resume(tmp_path).model.policy
    assert resumed.share_features_extractor and resumed.actor.features_extractor is resumed.critic.features_extractor
    with pytest.raises(TypeError, match="sac_share_features_extractor must be true or false, got 'yes'"):
        RLHFConfig(sac_share_features_extractor="yes")


@pytest.mark.parametrize("algo", ["sobirl", "hpgd", "pbrl"])
def test_second_term_on_the_newest_pairs(algo, tmp_path):
    """exploration_pairs: the second term is on, on a batch of the newest pairs; it differs from the same-batch run."""
    nets = []
    for exploration_pairs in (None, 12):
        changes = {"algo": algo, "total_steps": 200, "exploration_pairs": exploration_pairs, "grad_clip": 5.0}
        run_dir = tmp_path / str(exploration_pairs)
        run_dir.mkdir()
        trainer = RLHFTrainer(RLHFConfig.from_dict({**SMOKE, **changes}), run_dir)
        rows = trainer.run()
        assert all(r["exploration_norm"] > 0 and math.isfinite(r["reward_loss"]) for r in rows)
        nets.append(torch.cat([p.detach().reshape(-1) for p in trainer.reward_net.parameters()]))
    assert not torch.equal(nets[0], nets[1])


def test_config_file_with_overrides_and_yaml_round_trip(tmp_path, capsys):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({**SMOKE, "algo": "drlhf", "seed": 5, "total_pairs": 30}))
    out = tmp_path / "runs"
    argv = ["rlhf", "--config", str(config_file), "--seed", "2", "--total-steps", "100", "--output-dir", str(out)]
    assert main([*argv, "--set", "label_noise=0.1", "--set", "seed=9", "--no-progress"]) == 0  # --seed wins
    run_dir = only_run_dir(out)
    expected = RLHFConfig.from_dict(
        {**SMOKE, "algo": "drlhf", "total_pairs": 30, "seed": 2, "total_steps": 100, "label_noise": 0.1}
    )
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["experiment"] == "rlhf" and "rlhf --config" in written["command_line"]
    assert RLHFConfig.from_yaml(run_dir / "config.yaml").resolved() == expected.resolved()
    assert RLHFConfig.from_dict(expected.to_dict()) == expected
    assert [r["agent_steps"] for r in read_metrics(run_dir)] == [100]


@pytest.mark.parametrize(
    "name",
    ["pendulum-cpu", "halfcheetah-cpu", "halfcheetah-paper", "cartpole-cpu", "beamrider-cpu", "beamrider-paper"],
)
def test_shipped_configs_load(name):
    config = RLHFConfig.from_yaml(REPO / "configs" / f"{name}.yaml")
    steps = {"pendulum-cpu": 30_000, "halfcheetah-cpu": 100_000, "cartpole-cpu": 50_000}
    steps |= {"beamrider-cpu": 100_000, "beamrider-paper": 4_300_000}
    assert config.total_steps == steps.get(name, 1_000_000)
    assert config.absorbing_termination == (name == "cartpole-cpu")
    if name.startswith("beamrider"):  # DiscreteSAC as in DQN-style Atari training: a hard target copy every 8000 steps
        assert (config.sac_net_arch, config.sac_train_freq, config.sac_tau) == ((), 4, 1.0)
        assert config.sac_train_freq * config.sac_target_update_interval == 8000
        env = environments.make_env(config)
        assert env.observation_space.shape == (4, 84, 84) and env.action_space.n == 9
        env.close()


def test_tensorboard_has_sac_losses_and_the_metrics_against_agent_steps(tmp_path):
    config = RLHFConfig.from_dict({**SMOKE, "algo": "sobirl", "total_steps": 300, "checkpoint_interval": 1000})
    RLHFTrainer(config, tmp_path).run()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/actor_loss", "train/critic_loss", "train/ent_coef", "train/ent_coef_loss"} <= tags
    assert set(METRIC_COLUMNS) - {"iteration"} <= tags
    rows = read_metrics(tmp_path)
    np.testing.assert_allclose(
        [(e.step, e.value) for e in events.Scalars("eval_return")],
        [(r["agent_steps"], r["eval_return"]) for r in rows],
        rtol=1e-6,  # TensorBoard keeps float32
    )
    losses = [e.step for e in events.Scalars("train/critic_loss")]  # SAC trains from its step 100 (learning_starts)
    assert len(losses) >= 2 and all(100 < step <= 300 for step in losses)


def collect_dataset(tmp_path: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    run_dir = tmp_path / f"seed{seed}-{len(list(tmp_path.iterdir()))}"
    run_dir.mkdir()
    config = RLHFConfig.from_dict(
        {**SMOKE, "total_steps": 200, "checkpoint_interval": 1000, "algo": "sobirl", "seed": seed}
    )
    trainer = RLHFTrainer(config, run_dir)
    trainer.run()
    pairs, labels = trainer.dataset.contents()
    return pairs.observations, labels


def test_same_seed_same_metrics(tmp_path):
    rows = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = RLHFConfig.from_dict({**SMOKE, "algo": "stoc-sobirl", "total_steps": 200, "checkpoint_interval": 1000})
        rows.append(RLHFTrainer(config, tmp_path / name).run())
    timing = {"steps_per_s", "wall_time"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows[0]] == [
        {k: v for k, v in r.items() if k not in timing} for r in rows[1]
    ]


def test_preference_pipeline_is_determined_by_the_seed(tmp_path):
    obs, labels = collect_dataset(tmp_path, seed=0)
    assert obs.shape == (40, 2, 25, 3) and labels.shape == (40,)  # total_pairs by the last step
    again_obs, again_labels = collect_dataset(tmp_path, seed=0)
    np.testing.assert_array_equal(obs, again_obs)
    np.testing.assert_array_equal(labels, again_labels)
    other_obs, _ = collect_dataset(tmp_path, seed=1)
    assert not np.array_equal(obs, other_obs)


def test_resume_after_sigkill_neither_loses_nor_duplicates_rows(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["rlhf", "--algo", "stoc-sobirl", "--total-steps", "600", "--output-dir", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sobirl", *argv, *smoke_args()], env=env, stderr=subprocess.PIPE)
    try:
        # kill after the checkpoint at 200 and the row at 300, before the checkpoint at 400
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = list(out.glob("*/metrics.csv"))
            if dirs and len(dirs[0].read_text().splitlines()) >= 4:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    run_dir = only_run_dir(out)
    assert latest_checkpoint(run_dir).name == "step-200"
    assert [r["agent_steps"] for r in read_metrics(run_dir)][:3] == [100, 200, 300]
    # the killed run's metrics.csv as a version before the accuracy_pairs column wrote it
    with open(run_dir / "metrics.csv", newline="") as fh:
        table = list(csv.reader(fh))
    drop = table[0].index("accuracy_pairs")
    with open(run_dir / "metrics.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(row[:drop] + row[drop + 1 :] for row in table)

    assert main(["rlhf", "--resume", str(run_dir), "--no-progress"]) == 0
    rows = read_metrics(run_dir)
    assert [r["agent_steps"] for r in rows] == [100, 200, 300, 400, 500, 600]
    assert list(rows[0]) == list(METRIC_COLUMNS)  # the kept rows lack only the newer column
    assert [math.isnan(r["accuracy_pairs"]) for r in rows] == [True, True, False, False, False, False]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["pairs"] for r in rows] == sorted(r["pairs"] for r in rows) and rows[-1]["pairs"] == 40
    assert latest_checkpoint(run_dir).name == "step-600" and (run_dir / "return.png").exists()
    events = EventAccumulator(str(run_dir / "tensorboard"))  # the killed run's points after its checkpoint purged
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("agent_steps")] == [(100 * k, 100.0 * k) for k in range(1, 7)]
    # resuming a finished run changes nothing
    assert main(["rlhf", "--resume", str(run_dir), "--no-progress"]) == 0
    np.testing.assert_equal(read_metrics(run_dir), rows)  # NaN equal to NaN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "pbrl-x"], "unknown algo 'pbrl-x'; valid: drlhf, sobirl, stoc-sobirl, hpgd, pbrl, sac-true-reward"),
        (["--env", "Pendulm-v1"], "Did you mean: `Pendulum`?"),
        (["--env", "FrozenLake-v1"], "has observation_space Discrete(16); deep RLHF needs 1-D Box observations"),
        (["--env", "sobirl-test/MultiBinaryActions-v0"], "needs 1-D Box actions (SAC, e.g. Pendulum-v1) or Discrete"),
        (["--total-steps", "0"], "total_steps must be an integer >= 1, got 0"),
        (["--set", "rewrd_lr=0.1"], "unknown config keys rewrd_lr; valid: env, algo"),
        (["--set", "fragment_length=201"], "fragment_length (201) is longer than the episodes of Pendulum-v1 allow"),
        (["--set", "exploration_pairs=0"], "exploration_pairs must be an integer >= 1, got 0"),
        (["--set", "frame_stack=0"], "frame_stack must be an integer >= 1, got 0"),
        (
            ["--set", "sac_train_freq=4", "--set", "eval_interval=1001"],
            "eval_interval (1001) must be a multiple of sac_train_freq (4): SAC collects that many agent steps at a",
        ),
        (
            ["--env", "ALE/BeamRider-v5", "--set", "absorbing_termination=true"],
            "absorbing_termination needs 1-D Box observations (e.g. CartPole-v1), and the Atari game",
        ),
        (["--set", "estimator=two-step"], "unknown estimator 'two-step'; valid: successor-features, one-step"),
        (["--set", "critic_lr=0"], "critic_lr must be in (0, inf)"),
        (["--algo", "pbrl", "--set", "penalty=-1"], "penalty must be in (0, inf), got -1"),
        (["--set", "grad_clip=0"], "grad_clip must be in (0, inf), got 0"),
        (["--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda"),
        pytest.param(
            ["--device", "cuda"],
            "torch sees no CUDA device; set device to auto or cpu (--device, or --set device=... in a sweep)",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        ),
    ],
)
def test_bad_input_fails_with_one_line_and_no_run_directory(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["rlhf", "--output-dir", str(tmp_path / "runs"), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sobirl rlhf: error: ") and message in err
    assert not (tmp_path / "runs").exists()


def test_missing_mujoco_names_the_extra(tmp_path, capsys, monkeypatch):
    def make_without_mujoco(*args, **kwargs):  # what gymnasium raises when the mujoco package is absent
        raise gym.error.DependencyNotInstalled("No module named 'mujoco'")

    monkeypatch.setattr(environments.gym, "make", make_without_mujoco)
    with pytest.raises(SystemExit) as exc:
        main(["rlhf", "--env", "HalfCheetah-v5", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and 'pip install "sobirl[mujoco]"' in err


@pytest.mark.parametrize("command", ["rlhf", "sweep"])
def test_missing_atari_extra_names_it(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # import ale_py fails, as where it is not installed
    config = tmp_path / "atari.yaml"
    config.write_text(yaml.safe_dump({"env": "ALE/BeamRider-v5"}))
    argv = ["rlhf", "--config", str(config)] if command == "rlhf" else ["sweep", str(config), "--algos", "sobirl"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--output-dir", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith(f"sobirl {command}: error: ")
    assert err.endswith('install them with: pip install "sobirl[atari]"\n') and not (tmp_path / "runs").exists()


def test_resume_needs_a_checkpoint_and_its_own_config(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(RLHFConfig.from_dict(SMOKE).to_dict()))
    for argv, message in (
        (["--resume", str(run_dir)], f"{run_dir} has no complete checkpoint in checkpoints/"),
        (["--resume", str(tmp_path)], f"{tmp_path} is not an rlhf run directory (no config.yaml)"),
        (["--resume", str(run_dir), "--seed", "1"], "--resume continues the run's own config; drop --seed"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["rlhf", *argv])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and message in err


class LateLabeller(PreferenceGatherer):
    """Labels each reward update's pairs at the next one (a person answering in the background), preferring the first
    fragment."""

    def __init__(self) -> None:
        self.waiting: FragmentPairs | None = None
        self.answered = 0

    def __call__(self, pairs: FragmentPairs) -> np.ndarray:
        return np.ones(len(pairs))

    def gather(self, pairs: FragmentPairs) -> tuple[FragmentPairs, np.ndarray]:
        answered, self.waiting = (pairs[:0] if self.waiting is None else self.waiting), pairs
        self.answered += len(answered)
        return answered, self(answered)

    def state_dict(self) -> dict:
        return {"answered": self.answered}

    def load_state_dict(self, state: dict) -> None:
        self.answered = state["answered"]


def test_any_gatherer_labels_the_pairs_and_its_state_is_checkpointed(tmp_path):
    config = RLHFConfig.from_dict({**SMOKE, "algo": "drlhf", "total_steps": 300})  # reward updates at 100 and 200
    write_config(tmp_path, {"experiment": "rlhf", **config.resolved()})
    trainer = RLHFTrainer(config, tmp_path, labeller=LateLabeller())
    rows = trainer.run()
    pairs, labels = trainer.dataset.contents()
    assert len(pairs) == trainer.labeller.answered == 27 and np.all(labels == 1.0)  # the pairs asked at step 100
    assert [r["pairs"] for r in rows] == [27, 40, 40] and trainer.state.reward_updates == 1
    resumed = RLHFTrainer.resume(tmp_path, labeller=LateLabeller())
    assert resumed.labeller.answered == 27
