"""``sobirl rlhf``, ``evaluate``, ``sweep`` and ``label``: deep RLHF runs, each command parsing and checking its
arguments (bad input exits with status 2 before anything is written), then calling the experiments layer:
:mod:`~sobirl.experiments.rlhf_run` (one run, also each trial of a sweep), :mod:`~sobirl.experiments.evaluate`,
:mod:`~sobirl.experiments.sweep`, :mod:`~sobirl.experiments.labelling`."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from pathlib import Path

from tqdm.auto import tqdm

from sobirl.cli.common import (
    PROG,
    RUN_EXPECTED,
    CommandError,
    add_output_options,
    grid_values,
    joined_lines,
    key_values,
    parse_value,
    reported,
    squeezed,
)
from sobirl.experiments import labelling, sweep, sweep_backends, tracking
from sobirl.experiments.evaluate import evaluate_run, format_result
from sobirl.experiments.rlhf_run import new_rlhf_run, resume_rlhf, run_rlhf
from sobirl.rlhf import settings as rlhf_settings
from sobirl.rlhf.checkpoints import CheckpointWriteError
from sobirl.rlhf.config import ALGOS, RLHFConfig
from sobirl.rlhf.run_logger import NonFiniteError
from sobirl.validation import check_int


def add_rlhf(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "rlhf",
        help="deep RLHF: soft actor-critic learning from a reward net trained on synthetic preferences",
        description=(
            "Train a soft actor-critic (SAC for Box actions, DiscreteSAC for Discrete actions) on a gymnasium "
            "environment with 1-D observations from a reward network learned from synthetic preferences between "
            "fragments of its own episodes (drlhf, sobirl, stoc-sobirl, hpgd, pbrl), or on the true reward "
            "(sac-true-reward). Settings: defaults < --config FILE (without it: the shipped config for --env, where "
            "there is one, and the run says so) < --set KEY=VALUE < the options below, every one listed below by group "
            "with its default (the fields of sobirl.rlhf.config.RLHFConfig, the update rules' and the critic's "
            "settings). Writes config.yaml, metrics.csv, tensorboard/, "
            "return.png and checkpoints/ to a new run directory OUTPUT_DIR/NAME-<timestamp>; --resume RUN_DIR "
            "continues a killed run from its latest checkpoint."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML file of config fields (e.g. configs/*.yaml); without it, --env ID starts from the shipped config "
        f"for ID where there is one ({', '.join(f'{e}: {f}' for e, f in rlhf_settings.ENV_CONFIGS.items())})",
    )
    sub.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config field (repeatable), e.g. --set reward_update_interval=2000; numbers, else YAML values",
    )
    sub.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR", help="continue this run's latest checkpoint"
    )
    add_output_options(sub, name_help="run name (default: rlhf-<env>-<algo>-seed<seed>)", progress=True)
    sub.add_argument(
        "--track",
        action="store_true",
        help='send the run to Weights & Biases (config and TensorBoard scalars; pip install "sobirl[track]")',
    )
    sub.add_argument("--wandb-project", default="sobirl", help="the W&B project of --track")
    _add_rlhf_settings(sub)
    sub.set_defaults(handler=functools.partial(_run_rlhf, sub))


def _add_rlhf_settings(sub: argparse.ArgumentParser) -> None:
    """One option per setting (:func:`sobirl.rlhf.settings.settings`), in its group, with its default and description;
    given ones override the config and ``--set`` (argparse default SUPPRESS: only given options reach the namespace)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in rlhf_settings.settings():
        if setting.group not in groups:
            groups[setting.group] = sub.add_argument_group(f"settings: {setting.group}")
        text = f"{setting.doc.rstrip('.')} (default: {setting.default})".replace("%", "%%")
        groups[setting.group].add_argument(
            setting.flag,
            dest=setting.name,
            default=argparse.SUPPRESS,
            type=str if setting.default and _is_plain_string(setting) else parse_value,
            metavar=_metavar(setting.default),
            help=text,
        )


def _is_plain_string(setting: rlhf_settings.Setting) -> bool:
    """Whether the setting's default is a string (its option then takes the text as given, never YAML)."""
    return isinstance(parse_value(setting.default), str) and ";" not in setting.default


def _metavar(default: str) -> str:
    value = parse_value(default) if ";" not in default else None
    if isinstance(value, bool):
        return "BOOL"
    for kind, name in ((int, "INT"), (float, "FLOAT"), (str, "STR"), (list, "LIST"), (dict, "MAP")):
        if isinstance(value, kind):
            return name
    return "VALUE"


def _run_rlhf(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    flags = {s.name: getattr(args, s.name) for s in rlhf_settings.settings() if hasattr(args, s.name)}
    with reported(parser, RUN_EXPECTED, text=joined_lines):
        if args.track and importlib.util.find_spec("wandb") is None:
            raise CommandError(tracking.MISSING)
        if args.resume is not None:
            given = [f"--{k.replace('_', '-')}" for k in flags] + ["--config"] * (args.config is not None)
            if given or args.overrides:
                raise CommandError(f"--resume continues the run's own config; drop {', '.join(given) or '--set'}")
            trainer = resume_rlhf(args.resume)
        else:
            changes = {**key_values(args.overrides, "--set"), **flags}
            base = args.config
            if base is None and "env" in changes:  # the shipped config for the environment, if there is one
                base = rlhf_settings.shipped_config(changes["env"])
                if base is not None:
                    print(
                        f"starting from {rlhf_settings.display_path(base)}, the shipped config for {changes['env']} "
                        "(--config FILE starts from another; --set and the options override it)"
                    )
            config = RLHFConfig() if base is None else RLHFConfig.from_yaml(base)
            config = config.replace(**changes)
            name = args.name or sweep.trial_name(config.env, config.algo, config.seed)
            trainer = new_rlhf_run(config, args.output_dir, name, command=command)

    try:
        result = run_rlhf(
            trainer, progress=not args.no_progress, wandb_project=args.wandb_project if args.track else None
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: {PROG} rlhf --resume {trainer.run_dir}", file=sys.stderr)
        return 130
    except (NonFiniteError, CheckpointWriteError) as err:  # the last good checkpoint is kept
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    width = max(map(len, result.paths))
    for key, path in result.paths.items():
        print(f"{key:<{width}}  {path}")
    last = result.last
    print(
        f"{last['agent_steps']} agent steps: eval return {last['eval_return']:.4g}, "
        f"train return {last['train_return']:.4g}, preference accuracy {last['preference_accuracy']:.3g}"
    )
    return 0


def add_evaluate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "evaluate",
        help="the true return of a trained rlhf run's policy, with videos and the learned reward against the true one",
        description=(
            "Load RUN_DIR/policy.zip (written at every checkpoint of `sobirl rlhf`), run it for EPISODES episodes of "
            "the run's evaluation environment and print the mean +/- std of the true return; with --video DIR, "
            "write an mp4 of each episode (gymnasium's RecordVideo); with reward_net.pt, plot the learned reward "
            "along the first episode against the true reward (reward_vs_true.png, in DIR or else RUN_DIR)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="an rlhf run directory")
    sub.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    sub.add_argument(
        "--video", type=Path, default=None, metavar="DIR", help='write mp4s here (pip install "sobirl[video]")'
    )
    sub.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the policy's mean (or most likely) action; --no-deterministic samples",
    )
    sub.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts (and of sampled actions)")
    sub.set_defaults(handler=functools.partial(_run_evaluate, sub))


def _run_evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    with reported(parser, (ValueError, TypeError, OSError, ImportError), text=squeezed):
        result = evaluate_run(
            args.run_dir, episodes=args.episodes, deterministic=args.deterministic, video_dir=args.video, seed=args.seed
        )
    print(format_result(result))
    return 0


def add_sweep(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "sweep",
        help="a grid of rlhf trials (algorithms x seeds x environments x any config fields) on local processes or "
        "Ray, resumable",
        description=(
            "Run every (env, algo, grid point, seed) trial of a grid of `sobirl rlhf` runs from one base config, "
            "WORKERS at a time, into OUTPUT_DIR/NAME/<trial>; each --grid KEY=V1,V2 adds a config field as an axis "
            "(trials named rlhf-<env>-<algo>-KEY=V-seed<seed>). Running the same command again skips complete "
            "trials, resumes interrupted ones from their checkpoints and starts the missing ones; failed trials are "
            "retried up to --max-retries times, then listed (with their errors) in NAME/failures.yaml. Unknown "
            "algorithms, environments, grid keys and bad grid values are rejected before anything starts."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("config", type=Path, metavar="CONFIG", help="base config YAML (e.g. configs/pendulum-cpu.yaml)")
    sub.add_argument("--algos", required=True, help=f"comma-separated, from: {', '.join(ALGOS)}")
    sub.add_argument("--seeds", type=int, default=3, help="seeds 0 .. SEEDS-1")
    sub.add_argument("--envs", default=None, help="comma-separated environment ids (default: the config's env)")
    sub.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    sub.add_argument(
        "--grid",
        dest="grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config field and its values, one trial each (repeatable: every combination); values parsed as by "
        "--set, e.g. --grid reward_lr=1e-4,3e-4 --grid reward_hidden=[64,64],[32]",
    )
    sub.add_argument("--workers", type=int, default=1, help="trials run side by side (one process each)")
    sub.add_argument("--max-retries", type=int, default=1, help="extra attempts of a failed trial")
    sub.add_argument(
        "--backend",
        choices=sweep_backends.BACKENDS,
        default="local",
        help='where trials run: local worker processes, or tasks on a Ray cluster (pip install "sobirl[ray]")',
    )
    sub.add_argument(
        "--address",
        default=None,
        help="with --backend ray: the cluster to join (auto, ray://head:10001); default: a local Ray instance",
    )
    add_output_options(
        sub,
        name_help="sweep directory name (default: sweep-<config file stem>)",
        root_help="root of the sweep directory",
        progress=True,
    )
    sub.set_defaults(handler=functools.partial(_run_sweep, sub))


def _run_sweep(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    try:
        with reported(parser, (ImportError, *RUN_EXPECTED), text=joined_lines):
            check_int("--seeds", args.seeds, low=1)
            base = RLHFConfig.from_yaml(args.config).replace(**key_values(args.overrides, "--set"))
            spec = sweep.SweepSpec(
                base=base,
                algos=tuple(a.strip() for a in args.algos.split(",")),
                seeds=tuple(range(args.seeds)),
                envs=None if args.envs is None else tuple(e.strip() for e in args.envs.split(",")),
                workers=args.workers,
                max_retries=args.max_retries,
                grid=grid_values(args.grid, "--grid"),
            )
            trials = spec.trials()
            counts = {"done": 0, "running": 0, "failed": 0}
            running: set[str] = set()
            bar = tqdm(total=len(trials), desc="trials", unit="trial", disable=args.no_progress)

            def on_event(kind: str, trial: str, detail: str) -> None:
                (running.add if kind == "start" else running.discard)(trial)  # any other event ends an attempt
                counts["running"] = len(running)
                if kind in ("done", "skipped"):
                    counts["done"] += 1
                    bar.update(1)
                elif kind == "failed":
                    counts["failed"] += 1
                    bar.update(1)
                bar.set_postfix(counts, refresh=True)
                if kind in ("failed", "retry", "busy"):
                    bar.write(f"{trial}: {kind}: {detail}")

            with bar:
                result = sweep.run_sweep(
                    spec,
                    args.output_dir,
                    args.name or f"sweep-{args.config.stem}",
                    on_event=on_event,
                    command=command,
                    backend=args.backend,
                    address=args.address,
                )
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"sweep    {result.sweep_dir}")
    busy = f", {len(result.busy)} run by another process" if result.busy else ""
    print(f"trials   {len(result.done)} run, {len(result.skipped)} already complete, {len(result.failed)} failed{busy}")
    for trial, error in result.failed.items():
        print(f"failed   {trial}: {error}")
    return 0 if result.ok else 1


def add_label(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "label",
        help="serve the labelling page of a stopped run's pending preference pairs (the web labeller)",
        description=(
            "Serve the labelling page (docs/labelling.md) of the pairs queued in RUN_DIR/labels.sqlite by a run with "
            "the web labeller that is not running, until Ctrl-C: print the page's address, and record every answer "
            "in the store, where the run collects it when it resumes (sobirl rlhf --resume RUN_DIR). Needs the web "
            'extra (pip install "sobirl[web]").'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="an rlhf run directory with labels.sqlite")
    sub.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1: this machine only)")
    sub.add_argument("--port", type=int, default=8000, help="the port; 0: a free one")
    sub.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="the token the page needs (generated and printed for a host other than a loopback address when missing)",
    )
    sub.set_defaults(handler=functools.partial(_run_label, sub))


def _run_label(parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> int:
    try:
        with reported(parser, (ValueError, ImportError, RuntimeError)):
            labelling.serve_labels(args.run_dir, host=args.host, port=args.port, token=getattr(args, "token", None))
    except KeyboardInterrupt:  # before the server started waiting; it stops on its own after that
        pass
    return 0
