"""The deep RLHF update rules run on a tabular RLHF instance, against its exact hyper-gradient (docs/math.md,
section 10).

:class:`DeepBridge` runs the deep pipeline's own parts on :func:`sobirl.problems.tabular_rlhf`: one-hot observations,
a per-action reward net without hidden layers (:class:`~sobirl.rlhf.MlpActionRewardNet`, ``hidden=()``: its weight
``W[a, s]`` is the reward table ``x``, its bias 0), the follower's exact soft-optimal policy ``pi*(x)`` as the
:class:`~sobirl.rlhf.visits.Follower`, finished episodes as :class:`~sobirl.rlhf.Trajectory` objects, fragment pairs
from :func:`~sobirl.rlhf.sample_fragment_pairs`, labels from the :class:`~sobirl.rlhf.SyntheticLabeller`, the rule's
surrogate, and, for ``successor-features``, the critic trained by :meth:`SuccessorFeatures.td_step` on the follower's
own transitions.

The distribution is the tabular instance's: each episode is ``H`` steps from ``s_0 ~ rho`` under ``pi*(x)``, so a
fragment (``L = H``) is a whole episode and the objective is ``f(x, pi) = E_{d_1, d_2 ~ pi} E_y[l]``,
:class:`~sobirl.estimators.objectives.PreferenceObjective`. The gradient of a rule's surrogate is compared in the
table's coordinates ``x`` (the weight's gradient, transposed; the bias's gradient is its sum over states) with the
reference :func:`reference_hypergradient`: the exact ``grad phi(x)`` where ``f`` can be enumerated, else the mean of
the model-free estimate with the EXACT per-step sensitivities (estimator ``critic``) over ``reference_pairs`` pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sobirl.estimators.hypergradient import estimate_hypergradient
from sobirl.estimators.objectives import PreferenceObjective
from sobirl.rlhf import MlpActionRewardNet, SyntheticLabeller, Trajectory, sample_fragment_pairs
from sobirl.rlhf.rules import RULES, UpdateRule
from sobirl.rlhf.successor import CriticConfig, SuccessorFeatures
from sobirl.rlhf.visits import Follower, Visits
from sobirl.tabular import hypergradient, lower_level
from sobirl.tabular.mdp import DTYPE
from sobirl.tabular.problem import BilevelProblem
from sobirl.tabular.sampler import sample_trajectories
from sobirl.validation import check_int

DEEP_PREFIX = "deep:"
"""Estimator names of the study that run a deep rule: ``deep:<rule>`` or ``deep:<rule>/<estimator>``."""

REFERENCE_CHUNK = 100_000
"""Pairs per chunk of :func:`reference_hypergradient` (memory stays bounded)."""

BRIDGE_CRITIC = CriticConfig(
    critic_hidden=(), critic_lr=0.02, critic_steps=3000, critic_batch_size=1024, critic_target_tau=1.0
)
"""The bridge's critic: linear on one-hot observations (a table), trained to its TD fixed point."""

CRITIC_PATHS = 4000
"""Trajectories of the follower the critic learns from."""

LONG_CREDIT = {
    "S": 8,
    "A": 3,
    "H": 15,
    "gamma": 0.95,
    "tau": 1.0,
    "state_reward": 1.0,
    "action_reward": 0.1,
    "successors": 1,
}
"""The tabular RLHF instance with long-horizon credit the deep estimators are checked on (docs/math.md, section 9):
deterministic moves (an action decides the whole future), gamma 0.95, 15-step fragments, a true reward that is mostly a
state cost; evaluated at ``x = r_true`` (``--at truth``), where only the exploration term is left in expectation."""


def reference_hypergradient(
    prob: BilevelProblem, x: torch.Tensor, pi: torch.Tensor, *, pairs: int = 1_000_000, seed: int = 10**6
) -> torch.Tensor:
    """``grad phi(x)``: exact (:func:`sobirl.tabular.hypergradient`) where ``prob.exact_upper``, else the mean over
    ``pairs`` preference pairs of the model-free estimate with the exact sensitivities (unbiased; its noise falls as
    ``1/sqrt(pairs)``), in chunks of :data:`REFERENCE_CHUNK` from seeds ``seed, seed + 1, ...``."""
    if getattr(prob, "exact_upper", True):
        return hypergradient(prob, x)
    check_int("pairs", pairs, low=1)
    total = torch.zeros_like(x, dtype=DTYPE)
    done, chunk = 0, 0
    while done < pairs:
        n = min(REFERENCE_CHUNK, pairs - done)
        est = estimate_hypergradient(
            prob, x, pi, batch=n, estimator="critic", generator=torch.Generator().manual_seed(seed + chunk)
        )
        total += n * est.grad
        done, chunk = done + n, chunk + 1
    return total / pairs


def parse_deep(name: str) -> tuple[str, dict[str, Any]]:
    """``deep:<rule>[/<estimator>]`` as the rule's name and its settings; a ValueError naming the valid ones."""
    rule, _, estimator = name.removeprefix(DEEP_PREFIX).partition("/")
    if rule not in RULES:
        raise ValueError(
            f"deep rule {rule!r} is not one of {', '.join(RULES)} (estimator names: deep:<rule>[/<estimator>])"
        )
    return rule, ({"estimator": estimator} if estimator else {})


@dataclass(frozen=True)
class DeepBridge:
    """The deep pipeline on a tabular RLHF instance at leader point ``x`` (module docstring).

    Build with :meth:`build`.
    """

    prob: BilevelProblem
    x: torch.Tensor
    pi: torch.Tensor
    reward_net: MlpActionRewardNet
    follower: Follower

    @classmethod
    def build(
        cls,
        prob: BilevelProblem,
        x: torch.Tensor,
        *,
        critic: CriticConfig | None = BRIDGE_CRITIC,
        critic_paths: int = CRITIC_PATHS,
        seed: int = 0,
    ) -> DeepBridge:
        """The bridge at ``x``; with ``critic``, a successor-feature critic trained on ``critic_paths`` trajectories
        of ``2 / (1 - gamma)`` steps of the follower (seeded by ``seed``)."""
        if not isinstance(getattr(prob, "sampled", None), PreferenceObjective):
            raise ValueError(f"the deep bridge needs a tabular RLHF problem (tabular-rlhf), got {prob.name!r}")
        mdp = prob.mdp
        S, A = mdp.n_states, mdp.n_actions
        pi = lower_level(prob, x).pi.detach()
        net = MlpActionRewardNet(S, A, hidden=(), dtype=DTYPE)
        with torch.no_grad():
            net.head.weight.copy_(prob.reward(x.detach()).T)
            net.head.bias.zero_()

        def probabilities(observations: torch.Tensor) -> torch.Tensor:
            return pi[observations.argmax(dim=-1)]

        successor = None
        if critic is not None:
            successor = _train_critic(mdp, pi, net, critic, critic_paths, seed)
        return cls(
            prob, x, pi, net, Follower(tau=mdp.tau, gamma=mdp.gamma, probabilities=probabilities, critic=successor)
        )

    def episodes(self, n: int, generator: torch.Generator) -> list[Trajectory]:
        """``n`` finished episodes of ``H`` steps from ``rho`` under the follower, one-hot observations."""
        H = self.prob.sampled.H
        paths = sample_trajectories(self.prob.mdp, self.pi, n, H, generator=generator)
        S = self.prob.mdp.n_states
        onehot = torch.nn.functional.one_hot(paths.states, S).numpy().astype(np.float64)
        actions = paths.actions.numpy()
        rewards = self.prob.r_true[paths.states, paths.actions].numpy()
        return [Trajectory(onehot[i], actions[i], rewards[i], terminated=False, truncated=True) for i in range(n)]

    def estimate(self, rule: UpdateRule, pairs: int, seed: int) -> torch.Tensor:
        """The gradient of ``rule``'s surrogate on ``pairs`` labelled pairs (seed ``seed``), in ``x``'s coordinates."""
        check_int("pairs", pairs, low=2)
        objective: PreferenceObjective = self.prob.sampled
        rng = np.random.default_rng(seed)
        episodes = self.episodes(2 * pairs, torch.Generator().manual_seed(seed))
        drawn = sample_fragment_pairs(episodes, pairs, objective.H, rng)
        labeller = SyntheticLabeller(temperature=objective.label_temperature, generator=rng)
        batch = (
            torch.as_tensor(drawn.observations, dtype=DTYPE),
            torch.as_tensor(drawn.actions),
            torch.as_tensor(labeller(drawn), dtype=DTYPE),
        )
        visits = Visits.draw(batch, self.follower, rule.action_samples)
        self.reward_net.zero_grad()
        out = rule.surrogate(
            self.reward_net, batch, agent_steps=rule.config.exploration_warmup, follower=self.follower, visits=visits
        )
        out.loss.backward()
        return self.reward_net.head.weight.grad.T.reshape(-1).clone()


def make_rule(name: str, settings: Mapping[str, Any] | None = None) -> UpdateRule:
    """The deep rule ``deep:<rule>[/<estimator>]`` with ``settings`` over its defaults."""
    rule, extra = parse_deep(name)
    return RULES[rule].from_settings({**extra, **(settings or {})})


def _train_critic(
    mdp: Any, pi: torch.Tensor, net: MlpActionRewardNet, config: CriticConfig, paths: int, seed: int
) -> SuccessorFeatures:
    """The successor-feature critic of ``net`` trained by TD on the follower's own transitions."""
    gen = torch.Generator().manual_seed(seed)
    horizon = max(2, round(2.0 / (1.0 - mdp.gamma)))
    roll = sample_trajectories(mdp, pi, paths, horizon + 1, generator=gen)
    keep = roll.alive[:, 1:]  # transitions (s_t, a_t, s_{t+1}) inside the rollout
    s, a, s2 = roll.states[:, :-1][keep], roll.actions[:, :-1][keep], roll.states[:, 1:][keep]
    eye = torch.eye(mdp.n_states, dtype=DTYPE)
    done = mdp.terminal[s2].to(DTYPE)
    critic = SuccessorFeatures(net, gamma=mdp.gamma, config=config, seed=seed)
    for _ in range(config.critic_steps):
        rows = torch.randint(0, len(s), (config.critic_batch_size,), generator=gen)
        critic.td_step(net, eye[s[rows]], a[rows], eye[s2[rows]], done[rows], pi[s2[rows]])
    return critic
