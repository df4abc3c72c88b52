"""The deep RLHF loop (:class:`RLHFTrainer`): soft actor-critic, episode recording, fragment queries, synthetic labels
and reward updates joined in one run of an :class:`~sobirl.rlhf.config.RLHFConfig`, into a run directory that can be
resumed after a kill.

The follower is SB3's SAC with a :class:`RewardNet` on ``(s, a)`` for Box actions, or
:class:`~sobirl.agents.DiscreteSAC` with a per-action :class:`~sobirl.rlhf.ActionRewardNet` for Discrete actions (the
exploration term's baseline is then exact, :mod:`sobirl.rlhf.sensitivities`); "SAC" below means either. Atari games
(:func:`sobirl.envs.make_atari`) give uint8 stacks of frames: DiscreteSAC's ``CnnPolicy``, the Nature CNN reward net
and a replay buffer storing each frame once (:class:`~sobirl.agents.FrameStackReplayBuffer`); the episode recorder, the
fragments and the preference dataset keep the frames as uint8 (the recorder and the dataset each frame of an episode
or fragment once), and the reward net sees float copies of one mini-batch at a time. The loop runs SAC in chunks of
agent steps, each chunk ending at the next event:

- a reward update every ``reward_update_interval`` steps before the last (not for ``sac-true-reward``; at the last
  step no policy would learn from it, and the schedule spends its ``total_pairs`` by the last update): query the
  :class:`~sobirl.rlhf.QuerySchedule`'s new pairs from the recorded episodes, label them with the labeller (the
  :class:`SyntheticLabeller` by default), push them to the :class:`PreferenceDataset`, then train the
  :class:`RewardNet` with the algorithm's rule for ``reward_epochs`` passes over the dataset
  (``initial_reward_epochs`` at the first update);
- an evaluation every ``eval_interval`` steps and at the end: the policy's true return on a separate environment
  (the deterministic policy's unless ``eval_deterministic`` is false), the preference accuracy of the reward net on
  fresh held-out pairs from the latest training episodes, and one metrics row
  (:data:`~sobirl.rlhf.run_logger.METRIC_COLUMNS`);
- a checkpoint every ``checkpoint_interval`` steps and at the end (:mod:`sobirl.rlhf.checkpoints`: the run
  directory, what a checkpoint holds, how it is written and read back); :meth:`RLHFTrainer.resume` loads the newest
  intact one, truncates ``metrics.csv`` to its rows (and TensorBoard to the same points) and continues.

A failed checkpoint write stops the run (:class:`~sobirl.rlhf.checkpoints.CheckpointWriteError`), and so does a
non-finite reward output, preference loss, exploration term or SAC loss
(:class:`~sobirl.rlhf.run_logger.NonFiniteError`), before any later checkpoint (docs/reliability.md).

Randomness: SAC seeds Python's, numpy's and torch's global generators with ``seed``; the fragment sampler, the
labeller and the reward mini-batches draw from their own numpy generators spawned from ``seed``, and each
evaluation from generators seeded by ``(seed, evaluation number)``, so the preference pipeline is reproducible
given the seed and evaluations never move the training streams.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from sobirl.agents import (
    FrameStackReplayBuffer,
    actor_probabilities,
    actor_sampler,
    follower_class,
    make_sac,
    sac_temperature,
)
from sobirl.rlhf.action_reward_net import ActionRewardNet, action_reward_net
from sobirl.rlhf.artifacts import POLICY_FILE, REWARD_NET_FILE, save_policy, save_reward_net
from sobirl.rlhf.checkpoints import (
    CHECKPOINT_DIR,
    DamagedCheckpointError,
    check_writable,
    checkpoint_problem,
    checkpoints,
    latest_checkpoint,
    read_checkpoint,
    write_checkpoint,
    write_checkpoint_files,
)
from sobirl.rlhf.config import RLHFConfig, check_device
from sobirl.rlhf.environments import make_env
from sobirl.rlhf.fragments import FragmentPairs, sample_fragment_pairs
from sobirl.rlhf.human.session import labelling_page, run_labeller
from sobirl.rlhf.preference_model import preference_accuracy, preference_logits
from sobirl.rlhf.preferences import PreferenceDataset, PreferenceGatherer, SyntheticLabeller
from sobirl.rlhf.recording import RecordingCallback
from sobirl.rlhf.reward_net import RewardNet
from sobirl.rlhf.rules import UpdateRule
from sobirl.rlhf.run_logger import NonFiniteError, RunLogger, open_metrics
from sobirl.rlhf.successor import SuccessorFeatures
from sobirl.rlhf.trajectories import EpisodeRecorder
from sobirl.rlhf.visits import Follower, PairBatch, Visits
from sobirl.rundir import CONFIG_FILE, TENSORBOARD_DIR, read_metrics

_LOG = logging.getLogger(__name__)
_EVAL_STREAM, _HELD_OUT_STREAM = 1, 2  # second entropy word of the per-evaluation generators


@dataclass
class _Progress:
    """The counters a checkpoint carries besides the objects."""

    queried: int = 0
    reward_updates: int = 0
    rows: int = 0
    reward_loss: float = math.nan
    exploration_norm: float = math.nan
    wall_time: float = 0.0
    row_steps: int = 0
    row_wall_time: float = 0.0


class RLHFTrainer:
    """A deep RLHF run in ``run_dir`` (module docstring): build with a config, or :meth:`resume` a killed run.

    The components default to those the config describes; pass others in to replace them.

    Args:
        config: the run's config.
        run_dir: an existing directory; ``metrics.csv`` must not exist in it yet (write ``config.yaml`` first, e.g.
            with :func:`sobirl.experiments.write_config`).
        rule: the reward net's update rule; None: ``config.update_rule()``.
        labeller: labels the queried pairs; None: the config's ``labeller``: the synthetic Bradley-Terry labeller of
            ``label_temperature`` and ``label_noise``, or (``web``) the run's
            :func:`~sobirl.rlhf.human.session.run_labeller`, whose page the run serves while it trains. The held-out
            accuracy is always judged by the true returns.
        env_factory: ``env_factory(config, evaluation=...)`` builds the training and evaluation environments;
            :func:`~sobirl.rlhf.environments.make_env` by default.
    """

    def __init__(
        self,
        config: RLHFConfig,
        run_dir: str | os.PathLike[str],
        *,
        rule: UpdateRule | None = None,
        labeller: PreferenceGatherer | None = None,
        env_factory: Callable[..., gym.Env] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        check_device(config.device)
        env_factory = make_env if env_factory is None else env_factory
        self.env = env_factory(config)
        self.eval_env = env_factory(config, evaluation=True)
        self.schedule = config.schedule_for()
        self.rule = config.update_rule() if rule is None else rule
        if self.rule.needs_critic and config.algo != "sac-true-reward" and self.frame_stack is not None:
            raise ValueError(
                f"the successor-features estimator needs 1-D observations, and {config.env!r} gives frames; set "
                "estimator: one-step (or monte-carlo) for Atari games"
            )
        fragments, labels, batches = np.random.SeedSequence(config.seed).spawn(3)
        self.fragment_rng = np.random.default_rng(fragments)
        self.batch_rng = np.random.default_rng(batches)
        self.truth = SyntheticLabeller(temperature=config.label_temperature, noise=config.label_noise)
        """The held-out accuracy's judge: the true returns' label probabilities (no draws)."""
        if labeller is None and config.labeller == "web":
            labeller = run_labeller(self.run_dir, wait=not config.labeller_async)
        self.labeller = (
            SyntheticLabeller(
                temperature=config.label_temperature, noise=config.label_noise, generator=np.random.default_rng(labels)
            )
            if labeller is None
            else labeller
        )
        self.dataset = PreferenceDataset(config.dataset_capacity, frame_stack=self.frame_stack)
        frame_steps = config.frame_steps if self.labeller.needs_frames else 0
        self.recorder = EpisodeRecorder(
            1, max_steps=config.recorder_steps, frame_stack=self.frame_stack, frame_steps=frame_steps
        )
        self.state = _Progress()
        self.reward_net: RewardNet | ActionRewardNet | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.critic: SuccessorFeatures | None = None
        sac_kwargs = config.sac_arguments()
        policy = "CnnPolicy" if self.frame_stack is not None else "MlpPolicy"
        algorithm = follower_class(self.env.action_space)  # SAC or DiscreteSAC
        if config.algo == "sac-true-reward":
            if self.frame_stack is not None:
                sac_kwargs.update(
                    replay_buffer_class=FrameStackReplayBuffer, replay_buffer_kwargs={"n_stack": self.frame_stack}
                )
            self.model = algorithm(policy, self.env, seed=config.seed, device=config.device, **sac_kwargs)
        else:
            build = action_reward_net if self.discrete else RewardNet.from_spaces
            # the Nature CNN has no hidden widths to set
            net_kwargs: dict[str, Any] = {} if self.frame_stack is not None else {"hidden": config.reward_hidden}
            if self.discrete:
                net_kwargs["state_only"] = config.reward_state_only
            self.reward_net = build(
                self.env.observation_space,
                self.env.action_space,
                normalize_output=config.reward_normalize,
                seed=config.seed,
                **net_kwargs,
            )
            self.model = make_sac(
                self.env,
                self.reward_net,
                seed=config.seed,
                device=config.device,
                clip=config.clip,
                policy=policy,
                frame_stack=self.frame_stack,
                **sac_kwargs,
            )
            self.reward_net.to(self.model.device)
            self.optimizer = torch.optim.AdamW(
                self.reward_net.parameters(), lr=config.reward_lr, weight_decay=config.reward_weight_decay
            )
            if self.rule.needs_critic:
                self.critic = SuccessorFeatures(
                    self.reward_net, gamma=config.sac_gamma, config=config.critic_config(), seed=config.seed
                ).to(self.model.device)
        self._fresh = True  # the first learn() call resets the environment

    @property
    def discrete(self) -> bool:
        """Whether the actions are Discrete (DiscreteSAC, a per-action reward net, the exact baseline)."""
        return isinstance(self.env.action_space, spaces.Discrete)

    @property
    def frame_stack(self) -> int | None:
        """Frames per observation of an Atari game (``CnnPolicy``, the CNN reward net, the frame-stack replay
        buffer, preference dataset and episode recorder); None for 1-D observations."""
        return self.config.frame_stack if len(self.env.observation_space.shape) == 3 else None

    @property
    def steps(self) -> int:
        """Agent steps so far."""
        return int(self.model.num_timesteps)

    # ---- the loop -------------------------------------------------------------------------------------------

    def run(self, on_steps: Callable[[int], None] | None = None) -> list[dict[str, float]]:
        """Train to ``total_steps``; return the metrics rows logged by this call.

        Args:
            on_steps: called with the agent steps of every finished chunk (e.g. a progress bar's ``update``).

        Raises:
            CheckpointWriteError: the run directory is not writable (checked before any step), or a checkpoint could
                not be written; the previous checkpoint is kept intact.
            NonFiniteError: a reward output, the preference loss, the exploration term or a SAC loss became NaN or
                infinite; no checkpoint is written after it.
        """
        c = self.config
        check_writable(self.run_dir)
        logged: list[dict[str, float]] = []
        callback = RecordingCallback(self.recorder)
        start = time.perf_counter() - self.state.wall_time
        purge = self.steps + 1 if self.steps else None  # resumed: TensorBoard drops the killed run's later points
        tensorboard = RunLogger(self.run_dir / TENSORBOARD_DIR, purge, self._non_finite)
        self.model.set_logger(tensorboard)
        with contextlib.ExitStack() as stack:
            logger = stack.enter_context(open_metrics(self.run_dir, self.state.rows))
            stack.enter_context(contextlib.closing(tensorboard))
            curve = [(r["agent_steps"], r["eval_return"]) for r in read_metrics(self.run_dir)]  # the kept rows
            page = dict(host=c.label_host, port=c.label_port, token=c.label_token, budget=c.total_pairs)
            stack.enter_context(labelling_page(self.labeller, **page, returns=lambda: curve))  # web: while it trains
            while self.steps < c.total_steps:
                target = min(self._next(c.reward_update_interval), self._next(c.eval_interval), c.total_steps)
                target = min(target, self._next(c.checkpoint_interval))
                before = self.steps
                self.model.learn(target - before, callback=callback, reset_num_timesteps=self._fresh)
                self._fresh = False
                if on_steps is not None:
                    on_steps(self.steps - before)
                updates = self.reward_net is not None and self.steps < c.total_steps  # not at the end: no policy learns
                if updates and self.steps % c.reward_update_interval == 0:  # from the labels of an update there
                    self._reward_update()
                self.state.wall_time = time.perf_counter() - start
                if self.steps % c.eval_interval == 0 or self.steps == c.total_steps:
                    row = self._evaluate()
                    logger.log(row)
                    tensorboard.log_row(row, self.steps)
                    curve.append((row["agent_steps"], row["eval_return"]))
                    logged.append(row)
                    self.state.rows += 1
                if self.steps % c.checkpoint_interval == 0 or self.steps == c.total_steps:
                    self.save_checkpoint()
        return logged

    def _next(self, interval: int) -> int:
        """The first multiple of ``interval`` after the current step."""
        return (self.steps // interval + 1) * interval

    def _reward_update(self) -> None:
        """Query the schedule's new pairs, then train the reward net over the dataset (module docstring)."""
        assert self.reward_net is not None and self.optimizer is not None
        c, steps = self.config, self.steps
        new = self.schedule.pairs_to_query(steps, self.state.queried)
        shown = self.labeller.needs_frames  # a person judges the fragments' frames
        cut_from = [t for t in self.recorder.trajectories if t.frames is not None or not shown]
        if new and any(len(t) >= c.fragment_length for t in cut_from):
            pairs = sample_fragment_pairs(cut_from, new, c.fragment_length, self.fragment_rng, frames=shown)
            self.dataset.push(*self.labeller.gather(pairs))  # the pairs labelled now (a person may answer later)
            self.state.queried += new
        if not len(self.dataset):
            return  # no finished episode long enough yet
        epochs = c.initial_reward_epochs if self.state.reward_updates == 0 else c.reward_epochs
        batch = min(c.reward_batch_size, len(self.dataset))
        param = next(self.reward_net.parameters())
        explores = self.rule.explores(steps)
        follower = self._follower() if explores else None
        self.rule.begin_update()
        losses, second_terms = [], []
        self.reward_net.train()
        for _ in range(epochs * math.ceil(len(self.dataset) / batch)):
            pairs = self._batch(self.dataset.sample(batch, self.batch_rng), param)
            visits = None
            if explores:
                on_policy = pairs
                if c.exploration_pairs is not None:
                    newest = min(c.exploration_pairs, len(self.dataset))
                    on_policy = self._batch(
                        self.dataset.sample(min(batch, newest), self.batch_rng, newest=newest), param
                    )
                visits = Visits.draw(on_policy, follower, self.rule.action_samples)

            def surrogate(pairs=pairs, visits=visits):  # this batch
                return self.rule.surrogate(
                    self.reward_net,
                    pairs,
                    agent_steps=steps,
                    follower=follower,
                    visits=visits,
                    update=self.state.reward_updates,
                )

            out = self.rule.step(self.reward_net, self.optimizer, surrogate)
            if not math.isfinite(out.cross_entropy):  # the returns first: a NaN return makes a NaN loss
                returns_finite = bool(torch.isfinite(out.logits).all())
                self._non_finite("preference loss" if returns_finite else "reward output", out.cross_entropy)
            if not math.isfinite(out.second_term):
                self._non_finite("exploration term", out.second_term)
            losses.append(out.cross_entropy)
            second_terms.append(abs(out.second_term))
        self.state.reward_updates += 1
        self.state.reward_loss = float(np.mean(losses))
        self.state.exploration_norm = float(np.mean(second_terms))

    def _non_finite(self, quantity: str, value: float) -> None:
        """Stop the run: raise :class:`NonFiniteError` naming ``quantity`` and the current agent step."""
        raise NonFiniteError(quantity, value, self.steps, latest_checkpoint(self.run_dir))

    def _follower(self) -> Follower:
        """What the rule knows of SAC now, the successor-feature critic trained first where the rule needs it."""
        c = self.config
        sampler = None if self.discrete else actor_sampler(self.model)
        probabilities = actor_probabilities(self.model) if self.discrete else None
        if self.critic is not None:
            self._train_critic(sampler, probabilities)
        return Follower(
            tau=sac_temperature(self.model),
            gamma=c.sac_gamma,
            sample_actions=sampler,
            probabilities=probabilities,
            critic=self.critic,
            reward_clip=c.clip,
        )

    def _train_critic(self, sampler: Callable | None, probabilities: Callable | None) -> None:
        """``critic_steps`` TD steps on SAC's replay buffer with SAC's current next actions."""
        assert self.critic is not None and self.reward_net is not None
        cfg = self.critic.config
        buffer = self.model.replay_buffer
        self.reward_net.eval()  # the features use the statistics the follower's rewards use, and do not move them
        for _ in range(cfg.critic_steps):
            batch = buffer.sample(cfg.critic_batch_size, env=self.model.get_vec_normalize_env())
            with torch.no_grad():
                nxt = probabilities(batch.next_observations) if sampler is None else sampler(batch.next_observations)
            self.critic.td_step(
                self.reward_net,
                batch.observations,
                batch.actions,
                batch.next_observations,
                batch.dones,
                nxt,
                clip=self.config.clip,
            )
        self.reward_net.train()

    @staticmethod
    def _batch(sample: tuple[FragmentPairs, np.ndarray], like: torch.Tensor) -> PairBatch:
        """A dataset sample as tensors of ``like``'s dtype and device: observations, actions, labels."""
        pairs, labels = sample
        obs, act, y = (_like(a, like) for a in (pairs.observations, pairs.actions, labels))
        return obs, act, y

    def _evaluate(self) -> dict[str, float]:
        """One metrics row (:data:`~sobirl.rlhf.run_logger.METRIC_COLUMNS`) at the current step."""
        c, s = self.config, self.state
        k = s.rows + 1
        episodes = self.recorder.trajectories
        recent = episodes[-c.return_window :]
        train_return = float(np.mean([t.true_return() for t in recent])) if recent else math.nan
        steps_per_s = (self.steps - s.row_steps) / max(s.wall_time - s.row_wall_time, 1e-9)
        s.row_steps, s.row_wall_time = self.steps, s.wall_time
        accuracy, accuracy_pairs = self._held_out_accuracy(np.random.default_rng([c.seed, _HELD_OUT_STREAM, k]))
        return {
            "iteration": k,
            "agent_steps": self.steps,
            "train_return": train_return,
            "eval_return": self._eval_return(np.random.SeedSequence([c.seed, _EVAL_STREAM, k])),
            "preference_accuracy": accuracy,
            "accuracy_pairs": accuracy_pairs,
            "reward_loss": s.reward_loss,
            "exploration_norm": s.exploration_norm,
            "alpha": sac_temperature(self.model),
            "pairs": s.queried,
            "steps_per_s": steps_per_s,
            "wall_time": s.wall_time,
        }

    def _eval_return(self, seeds: np.random.SeedSequence) -> float:
        """The policy's mean true return over ``eval_episodes`` episodes of the evaluation env (deterministic, or
        sampled under torch's generators forked and seeded from ``seeds``)."""
        c = self.config
        returns = []
        children = seeds.spawn(c.eval_episodes)
        cuda = [torch.cuda.current_device()] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda, enabled=not c.eval_deterministic):
            if not c.eval_deterministic:
                torch.manual_seed(int(seeds.generate_state(1)[0]))
            for child in children:
                obs, _ = self.eval_env.reset(seed=int(child.generate_state(1)[0]))
                total, done = 0.0, False
                while not done:
                    action, _ = self.model.predict(obs, deterministic=c.eval_deterministic)
                    obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
        return float(np.mean(returns))

    def _held_out_accuracy(self, rng: np.random.Generator) -> tuple[float, float]:
        """The reward net's agreement with the labeller's preferred fragment on fresh pairs cut from the latest
        ``held_out_episodes`` training episodes, and the number of those pairs the labeller does not tie, which the
        accuracy is taken over (both NaN without a reward net or a long enough episode; NaN and 0 when every pair
        ties)."""
        c = self.config
        recent = [t for t in self.recorder.trajectories[-c.held_out_episodes :] if len(t) >= c.fragment_length]
        if self.reward_net is None or not recent:
            return math.nan, math.nan
        pairs = sample_fragment_pairs(recent, c.held_out_pairs, c.fragment_length, rng)
        param = next(self.reward_net.parameters())
        self.reward_net.eval()  # frozen output statistics, so the chunks see the same net
        chunks = []
        with torch.no_grad():  # reward_batch_size pairs at a time: a float copy of every held-out frame is GBs
            for start in range(0, len(pairs), c.reward_batch_size):
                rows = slice(start, start + c.reward_batch_size)
                obs, act = _like(pairs.observations[rows], param), _like(pairs.actions[rows], param)
                chunks.append(preference_logits(self.reward_net, obs, act))
        logits = torch.cat(chunks)
        probabilities = torch.as_tensor(self.truth.probabilities(pairs), device=logits.device)
        return preference_accuracy(logits, probabilities), int((probabilities != 0.5).sum())

    # ---- run directory, checkpoints, resume -----------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-<N>`` atomically (:func:`~sobirl.rlhf.checkpoints.write_checkpoint`: a kill or a
        power cut leaves either no ``step-<N>`` or a complete one, whose damage :meth:`resume` recognises later), then
        the policy and the reward net users load, and keep the newest ``keep_checkpoints`` checkpoints.

        Raises:
            CheckpointWriteError: a write failed (no space, no permission, an I/O error); the partial files are
                removed and the previous checkpoints are untouched.
        """

        def publish() -> None:  # the artifacts users load, each replaced atomically
            save_policy(self.model, self.run_dir / POLICY_FILE)
            if self.reward_net is not None:
                save_reward_net(self.reward_net, self.run_dir / REWARD_NET_FILE)

        return write_checkpoint(
            self.run_dir, self.steps, self._write_checkpoint_files, keep=self.config.keep_checkpoints, publish=publish
        )

    def _write_checkpoint_files(self, directory: Path) -> None:
        """The checkpoint's files in ``directory`` (:func:`~sobirl.rlhf.checkpoints.write_checkpoint_files`), with
        this run's state."""
        state = {
            # one pickle keeps each optimiser's references to its parameters (the reward net's, the critic's)
            "reward_net": self.reward_net,
            "optimizer": self.optimizer,
            "rule": self.rule,
            "critic": self.critic,
            "recorder": self.recorder,
            "progress": dataclasses.asdict(self.state),
            "labeller": self.labeller.state_dict(),
            "generators": {
                "fragments": self.fragment_rng.bit_generator.state,
                "batches": self.batch_rng.bit_generator.state,
                "action_space": self.model.action_space.np_random.bit_generator.state,  # SAC's warm-up actions
            },
            "global_rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),  # noqa: NPY002  (SB3's buffer sampling)
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }
        write_checkpoint_files(directory, self.model, self.dataset, state)

    @classmethod
    def resume(cls, run_dir: str | os.PathLike[str], *, labeller: PreferenceGatherer | None = None) -> RLHFTrainer:
        """The run in ``run_dir`` at its newest intact checkpoint, ready to :meth:`run` on; ``labeller`` as the
        constructor's (the run's own kind: its checkpointed state is loaded into it).

        A checkpoint is damaged when a file of its ``manifest.json`` is missing or differs from its recorded size or
        SHA-256, or when loading it fails; each damaged one is skipped with a one-line warning naming it (logger
        ``sobirl.rlhf.trainer``), and the next older one is tried. The run's next checkpoint at that step replaces
        the damaged one.

        Raises:
            FileNotFoundError: ``run_dir`` has no ``config.yaml`` or no complete checkpoint.
            DamagedCheckpointError: every checkpoint is damaged (each named with its problem).
        """
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} is not an rlhf run directory (no {CONFIG_FILE})")
        found = checkpoints(run_dir)
        if not found:
            raise FileNotFoundError(f"{run_dir} has no complete checkpoint in {CHECKPOINT_DIR}/ to resume from")
        trainer = cls(RLHFConfig.from_yaml(run_dir / CONFIG_FILE), run_dir, labeller=labeller)
        problems = []
        for checkpoint in found:
            problem = checkpoint_problem(checkpoint)
            if problem is None:
                try:
                    trainer._load(checkpoint)
                    return trainer
                except Exception as err:  # any failure to load means the files are not what save_checkpoint wrote
                    problem = " ".join(f"{type(err).__name__}: {err}".split())
            problems.append(f"{checkpoint.name} ({problem})")
            _LOG.warning("checkpoint %s is damaged (%s); trying an older one", checkpoint, problem)
        raise DamagedCheckpointError(
            f"{run_dir} has no intact checkpoint to resume from: {'; '.join(problems)}; move {CHECKPOINT_DIR}/ away "
            "to start the run afresh"
        )

    def _load(self, checkpoint: Path) -> None:
        """Load ``checkpoint`` into this freshly built trainer; every file is read before anything is replaced, so a
        failure leaves the trainer as it was."""
        files = read_checkpoint(
            checkpoint,
            self.env,
            device=self.config.device,
            map_location=self.model.device,
            clip=self.config.clip,
            frame_stack=self.frame_stack,
        )
        state, running = files.state, files.running
        progress = _Progress(**state["progress"])
        self.model = files.model
        self.reward_net, self.optimizer = state["reward_net"], state["optimizer"]
        self.rule, self.critic = state["rule"], state["critic"]
        self.recorder = state["recorder"]
        if running is None:
            self.recorder.drop_running()  # the unfinished episode cannot continue (sobirl.rlhf.checkpoints)
        else:
            self.env.close()
            self.env = running.envs[0]
        self.dataset = files.dataset
        self.state = progress
        self.labeller.load_state_dict(state["labeller"])
        for rng, key in (
            (self.fragment_rng, "fragments"),
            (self.batch_rng, "batches"),
            (self.model.action_space.np_random, "action_space"),  # reseeded by SAC.load
        ):
            rng.bit_generator.state = state["generators"][key]
        # restored after SAC.load, which reseeds the global generators
        rngs = state["global_rng"]
        random.setstate(rngs["python"])
        np.random.set_state(rngs["numpy"])  # noqa: NPY002
        # the generator states are CPU byte tensors, whatever device torch.load mapped the checkpoint to
        torch.set_rng_state(rngs["torch"].cpu())
        if rngs["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rngs["cuda"]])
        if running is None:
            self.model.get_env().seed(self.config.seed + self.steps)  # the new episode's start, reproducibly
        self._fresh = False


def _like(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``array`` as a tensor of ``like``'s dtype and device, converted on the device (uint8 frames travel at a quarter
    of their float size)."""
    return torch.as_tensor(array, device=like.device).to(like.dtype)
