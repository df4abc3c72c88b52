"""``sobirl rlhf``'s settings: the generated ``--help``, the shipped configs by environment, and the pass-through
settings ``env_kwargs``, ``wrappers`` and ``sac_kwargs``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from smoke import SMOKE
from sobirl.cli import build_parser, main
from sobirl.experiments import write_config
from sobirl.rlhf import settings as settings_module
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.environments import make_env
from sobirl.rlhf.rules import RULES
from sobirl.rlhf.settings import ENV_CONFIGS, GROUPS, attribute_docs, settings, shipped_config
from sobirl.rlhf.successor import CriticConfig
from sobirl.rlhf.trainer import RLHFTrainer


def smoke_args(**changes: object) -> list[str]:
    return [arg for key, value in {**SMOKE, **changes}.items() for arg in ("--set", f"{key}={value}")]


def rlhf_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["rlhf", "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_help_lists_every_setting_with_its_default_and_description(capsys):
    text = rlhf_help(capsys)
    keys = [f.name for f in dataclasses.fields(RLHFConfig) if f.name not in ("rule", "critic")]
    keys += [f.name for rule in RULES.values() for f in dataclasses.fields(rule.Config)]
    keys += [f.name for f in dataclasses.fields(CriticConfig)]
    listed = {s.name: s for s in settings()}
    assert set(listed) == set(keys)
    for name in keys:
        setting = listed[name]
        flag = "--" + name.replace("_", "-")
        entry = text[text.index(f" {flag} ", text.index("settings: ")) :]
        assert f"(default: {setting.default})" in entry[:1500], name
        assert setting.doc, f"{name} has no description in an Attributes: section"
        assert " ".join(setting.doc.rstrip(".").split()[:4]) in entry[:200], name
    for value in ("(default: 30000)", "(default: [256, 256])", "(default: Pendulum-v1)", "(default: {})"):
        assert value in text
    # rule settings name the rules that use them; defaults come from the rules' Configs
    assert "(default: successor-features)" in text and "[sobirl, stoc-sobirl]" in text
    groups = [f"settings: {group}:" for group in GROUPS]
    assert [text.index(g) for g in groups] == sorted(text.index(g) for g in groups)


def test_groups_place_every_field_once_and_flags_do_not_clash():
    placed = [name for names in GROUPS.values() for name in names]
    fields = [f.name for f in dataclasses.fields(RLHFConfig) if f.name not in ("rule", "critic")]
    assert sorted(placed) == sorted(fields)
    sub = build_parser()._subparsers._group_actions[0].choices["rlhf"]
    own = {a.dest for a in sub._actions if a.dest not in {s.name for s in settings()}}
    assert own == {
        "help",
        "config",
        "overrides",
        "resume",
        "output_dir",
        "name",
        "no_progress",
        "track",
        "wandb_project",
    }


def test_attribute_docs_read_both_docstring_styles():
    docs = attribute_docs(RULES["stoc-sobirl"].Config)  # "Attributes (besides ...):" over three classes
    assert docs["storm_lr"].startswith("``beta > 0``") and docs["estimator"].startswith("the estimator of")
    assert docs["exploration_warmup"].startswith("agent steps")
    assert attribute_docs(CriticConfig)["critic_lr"] == "Adam's learning rate."
    wrapped = attribute_docs(RLHFConfig)["absorbing_steps"]  # continuation lines joined
    assert wrapped.startswith("with absorbing_termination") and wrapped.endswith("until the time limit.")


def test_the_shipped_configs_are_those_of_their_environments():
    assert shipped_config("ALE/BeamRider-v5") == settings_module.CONFIG_DIR / "beamrider-cpu.yaml"
    assert shipped_config("Acrobot-v1") is None
    for env, name in ENV_CONFIGS.items():
        path = shipped_config(env)
        assert path is not None and path.name == name
        assert yaml.safe_load(path.read_text())["env"] == env
        RLHFConfig.from_yaml(path)  # valid


def test_env_starts_from_its_shipped_config_and_set_overrides_it(tmp_path, capsys):
    argv = ["rlhf", "--env", "Pendulum-v1", "--total-steps", "100", "--output-dir", str(tmp_path), "--no-progress"]
    assert main([*argv, *smoke_args(), "--sac-buffer-size", "1500"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("starting from ") and "pendulum-cpu.yaml, the shipped config for Pendulum-v1" in out
    (run_dir,) = tmp_path.iterdir()
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["exploration_warmup"] == 5000  # pendulum-cpu.yaml's; the default is 0
    assert written["sac_buffer_size"] == 1500 and written["total_pairs"] == SMOKE["total_pairs"]  # options, --set


def test_explicit_config_wins_over_the_shipped_one(tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({**SMOKE, "env": "Pendulum-v1", "exploration_warmup": 7}))
    out = tmp_path / "runs"
    assert main(["rlhf", "--config", str(config), "--env", "Pendulum-v1", "--total-steps", "100", "--output-dir",
                 str(out), "--no-progress"]) == 0  # fmt: skip
    assert "starting from" not in capsys.readouterr().out
    (run_dir,) = out.iterdir()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["exploration_warmup"] == 7


def test_beamrider_starts_from_the_shipped_beamrider_settings(tmp_path, capsys):
    pytest.importorskip("ale_py")
    tiny = dict(  # the shipped settings' shape at a few seconds' scale
        max_episode_steps=60,
        fragment_length=10,
        total_pairs=4,
        initial_pairs=2,
        initial_reward_epochs=1,
        reward_update_interval=60,
        eval_interval=60,
        eval_episodes=1,
        held_out_pairs=4,
        checkpoint_interval=60,
        sac_buffer_size=500,
        recorder_steps=500,
        threads=1,
    )
    args = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value}")]
    argv = ["rlhf", "--env", "ALE/BeamRider-v5", "--algo", "sobirl", "--total-steps", "60"]
    assert main([*argv, "--output-dir", str(tmp_path), "--no-progress", *args]) == 0
    out = capsys.readouterr().out
    assert "starting from " in out and "beamrider-cpu.yaml, the shipped config for ALE/BeamRider-v5" in out
    (run_dir,) = tmp_path.iterdir()
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    shipped = yaml.safe_load((settings_module.CONFIG_DIR / "beamrider-cpu.yaml").read_text())
    for key in ("estimator", "sac_train_freq", "sac_tau", "sac_target_update_interval", "eval_deterministic",
                "sac_learning_rate", "sac_net_arch", "exploration_warmup", "device"):  # fmt: skip
        assert written[key] == shipped[key], key
    assert written["total_steps"] == 60 and written["total_pairs"] == 4


def test_env_kwargs_and_wrappers_shape_the_environments():
    config = RLHFConfig.from_dict(
        {
            **SMOKE,
            "env_kwargs": {"g": 5.0},
            "wrappers": [
                {"gymnasium.wrappers:RescaleAction": {"min_action": -0.5, "max_action": 0.5}},
                "gymnasium.wrappers:ClipAction",
            ],
        }
    )
    for evaluation in (False, True):  # in order: the last one outermost
        env = make_env(config, evaluation=evaluation)
        assert env.unwrapped.g == 5.0 and (type(env).__name__, type(env.env).__name__) == (
            "ClipAction",
            "RescaleAction",
        )
        np.testing.assert_array_equal(env.env.action_space.high, [0.5])
        env.close()
    assert RLHFConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


def test_sac_kwargs_reach_sac_after_the_configs_own(tmp_path):
    config = RLHFConfig.from_dict({**SMOKE, "sac_kwargs": {"gradient_steps": 3, "stats_window_size": 7}})
    write_config(tmp_path, {"experiment": "rlhf", **config.resolved()})
    model = RLHFTrainer(config, tmp_path).model
    assert (model.gradient_steps, model._stats_window_size, model.batch_size) == (3, 7, SMOKE["sac_batch_size"])


def test_sac_kwargs_as_an_option(tmp_path, capsys):
    argv = ["rlhf", "--total-steps", "100", "--output-dir", str(tmp_path), "--no-progress", *smoke_args()]
    assert (
        main(
            [*argv, "--sac-kwargs", "{gradient_steps: 2}", "--wrappers", "[gymnasium.wrappers:RecordEpisodeStatistics]"]
        )
        == 0
    )
    (run_dir,) = tmp_path.iterdir()
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["sac_kwargs"] == {"gradient_steps": 2} and written["wrappers"] == [
        "gymnasium.wrappers:RecordEpisodeStatistics"
    ]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"sac_kwargs": {"learning_rate": 1.0, "tau": 0.1}}, ValueError, "sac_kwargs may not set what the config"),
        ({"sac_kwargs": {"learning_rate": 1.0}}, ValueError, "learning_rate (set by sac_learning_rate)"),
        (
            {"sac_kwargs": {"gradient_step": 2}},
            ValueError,
            "sac_kwargs has unknown SAC arguments gradient_step; valid:",
        ),
        ({"sac_kwargs": [1]}, TypeError, "sac_kwargs must be a mapping of keyword arguments"),
        ({"env_kwargs": "g=5"}, TypeError, "env_kwargs must be a mapping of keyword arguments"),
        ({"env_kwargs": {"max_episode_steps": 5}}, ValueError, "env_kwargs may not set max_episode_steps"),
        ({"env": "ALE/BeamRider-v5", "env_kwargs": {"mode": 1}}, ValueError, "built by sobirl.envs.make_atari"),
        ({"wrappers": "gymnasium.wrappers:ClipAction"}, TypeError, "wrappers must be a list of import paths"),
        ({"wrappers": ["ClipAction"]}, ValueError, "wrappers[0] must be an import path 'module:Class'"),
        (
            {"wrappers": ["gymnasium.wrappers:ClipAction", "no_such_module:W"]},
            ValueError,
            "wrappers[1] 'no_such_module:W': cannot import module 'no_such_module': No module named",
        ),
        ({"wrappers": ["gymnasium.wrappers:NoSuchWrapper"]}, ValueError, "has no attribute 'NoSuchWrapper'"),
        ({"wrappers": ["gymnasium:__version__"]}, TypeError, "wrappers[0] 'gymnasium:__version__' is not callable"),
        ({"wrappers": [{"a:B": {}, "c:D": {}}]}, ValueError, "wrappers[0] must be 'module:Class' or a one-key"),
    ],
)
def test_pass_through_settings_are_validated_naming_the_field(changes, error, message):
    with pytest.raises(error) as exc:
        RLHFConfig.from_dict({**SMOKE, **changes})
    assert message in str(exc.value)


def test_environment_rejections_name_the_setting(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"env_kwargs \{'gee': 1\} were rejected by Pendulum-v1"):
        make_env(RLHFConfig.from_dict({**SMOKE, "env_kwargs": {"gee": 1}}))
    bad = RLHFConfig.from_dict({**SMOKE, "wrappers": [{"gymnasium.wrappers:RescaleAction": {"min_action": 1}}]})
    with pytest.raises(ValueError, match=r"wrappers\[0\] .* failed on Pendulum-v1: TypeError"):
        make_env(bad)
    with pytest.raises(SystemExit) as exc:
        main(["rlhf", "--output-dir", str(tmp_path / "runs"), "--sac-kwargs", "{gamma: 0.5}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "gamma (set by sac_gamma)" in err
    assert not Path(tmp_path / "runs").exists()
