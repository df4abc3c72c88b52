"""``evaluate_run`` on a tiny Pendulum run directory: true returns, mp4 videos, the learned-vs-true reward plot, and
clear errors for what is missing."""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from sobirl.experiments import write_config
from sobirl.experiments.evaluate import REWARD_PLOT, EvaluationResult, evaluate_run, format_result
from sobirl.rlhf import POLICY_FILE, REWARD_NET_FILE, save_policy, save_reward_net
from sobirl.rlhf.config import RLHFConfig
from test_artifacts import tiny_run

PENDULUM_FRAME = (500, 500, 3)
"""Pendulum-v1's rgb_array frames."""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny Pendulum run with its policy and reward net."""
    run_dir = tmp_path_factory.mktemp("evaluate") / "pendulum"
    trainer = tiny_run(run_dir, "Pendulum-v1")
    save_policy(trainer.model, run_dir / POLICY_FILE)
    save_reward_net(trainer.reward_net, run_dir / REWARD_NET_FILE)
    return run_dir


def test_videos_and_the_reward_plot_are_written_with_the_returns(run_dir, tmp_path):
    video_dir = tmp_path / "videos"
    result = evaluate_run(run_dir, episodes=2, video_dir=video_dir)
    assert result.videos == (video_dir / "eval-episode-0.mp4", video_dir / "eval-episode-1.mp4")
    for video in result.videos:
        with imageio.get_reader(video, "ffmpeg") as reader:
            frames = list(reader.iter_data())  # list(reader) would size itself by its unknown length
        assert len(frames) > 0 and frames[0].shape == PENDULUM_FRAME
    assert result.plot == video_dir / REWARD_PLOT and result.plot.stat().st_size > 0
    assert not (run_dir / REWARD_PLOT).exists()
    assert len(result.returns) == 2 and all(-50 * 16.3 <= r <= 0 for r in result.returns)  # 50 steps of [-16.3, 0]
    assert math.isfinite(result.mean) and math.isfinite(result.std) and result.deterministic
    assert result.mean == pytest.approx(np.mean(result.returns)) and result.std == pytest.approx(np.std(result.returns))
    line = format_result(result)
    assert line.startswith(f"true return {result.mean:.2f} +/- {result.std:.2f} over 2 episodes (deterministic policy)")
    assert str(video_dir) in line and str(result.plot) in line and "\n" not in line


def test_without_a_video_the_plot_goes_to_the_run_directory_and_a_seed_repeats_an_evaluation(run_dir):
    first = evaluate_run(run_dir, episodes=3, deterministic=False, seed=5)
    assert first.videos == () and first.plot == run_dir / REWARD_PLOT and first.plot.is_file()
    assert first == evaluate_run(run_dir, episodes=3, deterministic=False, seed=5)
    assert first.returns != evaluate_run(run_dir, episodes=3, deterministic=False, seed=6).returns
    assert "stochastic policy" in format_result(first)


def test_a_run_without_a_reward_net_is_evaluated_without_the_plot(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(REWARD_NET_FILE, REWARD_PLOT))
    result = evaluate_run(copy, episodes=1)
    assert isinstance(result, EvaluationResult) and result.plot is None and result.std == 0
    assert not (copy / REWARD_PLOT).exists()
    assert evaluate_run(run_dir, episodes=1, plot=False).plot is None


def test_a_run_without_a_policy_has_not_finished_a_checkpoint(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(POLICY_FILE))
    with pytest.raises(FileNotFoundError, match=f"{POLICY_FILE} does not exist: the run has not finished a checkpoint"):
        evaluate_run(copy)
    with pytest.raises(FileNotFoundError, match=re.escape("is not an rlhf run directory (no config.yaml)")):
        evaluate_run(tmp_path)


def test_without_the_video_extra_the_error_names_it(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # as if not installed
    message = 'recording videos needs moviepy; install it with: pip install "sobirl[video]"'
    with pytest.raises(ImportError, match=f"^{re.escape(message)}$"):
        evaluate_run(run_dir, episodes=1, video_dir=tmp_path / "videos")
    assert not (tmp_path / "videos").exists()


def test_atari_games_are_not_recorded(tmp_path):
    write_config(tmp_path, {"experiment": "rlhf", **RLHFConfig.from_dict({"env": "ALE/Pong-v5"}).resolved()})
    (tmp_path / POLICY_FILE).touch()
    with pytest.raises(ValueError, match=re.escape("videos of Atari games (ALE/Pong-v5) are not supported")):
        evaluate_run(tmp_path, video_dir=tmp_path / "videos")


@pytest.mark.parametrize(("kwargs", "error"), [({"episodes": 0}, ValueError), ({"seed": 1.5}, TypeError)])
def test_bad_arguments_are_refused(run_dir, kwargs, error):
    with pytest.raises(error):
        evaluate_run(run_dir, **kwargs)


def test_sobirl_evaluate_films_a_finished_run_and_plots_its_reward(tmp_path, capsys):
    from sobirl.cli import main
    from test_rlhf_trainer import only_run_dir, smoke_args

    out = tmp_path / "runs"
    main(["rlhf", "--algo", "drlhf", "--total-steps", "200", "--output-dir", str(out), "--no-progress", *smoke_args()])
    run_dir = only_run_dir(out)
    assert f"policy       {run_dir / POLICY_FILE}" in capsys.readouterr().out
    assert main(["evaluate", str(run_dir), "--episodes", "2", "--video", str(tmp_path / "videos")]) == 0
    line = capsys.readouterr().out
    assert re.match(r"true return -?\d+\.\d\d \+/- \d+\.\d\d over 2 episodes \(deterministic policy\)", line)
    for video in sorted((tmp_path / "videos").glob("*.mp4")):
        with imageio.get_reader(video, "ffmpeg") as reader:
            assert next(reader.iter_data()).shape == PENDULUM_FRAME  # decodes
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 2 and (tmp_path / "videos" / REWARD_PLOT).is_file()
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(tmp_path)])
    assert exc.value.code == 2 and "config.yaml" in capsys.readouterr().err
