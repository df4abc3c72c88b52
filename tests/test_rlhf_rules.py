"""Upper-level update rules: each surrogate's gradient against its formula by hand (every Jacobian by its own
backward), the warm-up, the successor-feature critic, STORM, and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from sobirl.rlhf import (
    RULES,
    CriticConfig,
    Follower,
    MlpActionRewardNet,
    RewardNet,
    SuccessorFeatures,
    Visits,
    preference_logits,
    preference_loss,
)
from sobirl.rlhf.reward_net import head_parameters
from sobirl.rlhf.rules import StocSoBiRL, UpdateLoss

F64 = torch.float64
B, L, K, OBS, ACT, N_ACTIONS = 3, 4, 3, 2, 1, 3
TAU, GAMMA = 0.7, 0.9


def flat_grad(output: torch.Tensor, net: torch.nn.Module) -> torch.Tensor:
    grads = torch.autograd.grad(output, list(net.parameters()), allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(net.parameters(), grads, strict=True)]
    )


def box_batch():
    """A tiny float64 reward net, 3 labelled pairs of 4-step fragments and K policy actions per visited state."""
    net = RewardNet(OBS, ACT, hidden=(5,), activation="tanh", seed=3, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(B, 2, L, OBS, generator=gen, dtype=F64)
    act = torch.rand(B, 2, L, ACT, generator=gen, dtype=F64) * 2 - 1
    drawn = torch.rand(B, 2, L, K, ACT, generator=gen, dtype=F64) * 2 - 1
    labels = torch.tensor([1.0, 0.0, 0.3], dtype=F64)
    return net, Visits(obs, act, labels, policy_actions=drawn)


def discrete_batch():
    """A tiny float64 per-action net, Discrete actions as SB3 stores them (floats with a trailing 1), and the
    follower's probabilities at every visited state."""
    net = MlpActionRewardNet(OBS, N_ACTIONS, hidden=(5,), activation="tanh", seed=3, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(B, 2, L, OBS, generator=gen, dtype=F64)
    act = torch.randint(0, N_ACTIONS, (B, 2, L, 1), generator=gen).to(F64)
    probs = torch.softmax(torch.randn(B, 2, L, N_ACTIONS, generator=gen, dtype=F64), dim=-1)
    return net, Visits(obs, act, torch.tensor([1.0, 0.0, 0.3], dtype=F64), policy_probs=probs)


def stub_sampler(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(obs), ACT, dtype=obs.dtype)


def follower(visits: Visits, critic=None, clip=None) -> Follower:
    if visits.policy_probs is not None:
        return Follower(tau=TAU, gamma=GAMMA, probabilities=lambda o: None, critic=critic, reward_clip=clip)
    return Follower(tau=TAU, gamma=GAMMA, sample_actions=stub_sampler, critic=critic, reward_clip=clip)


def steps(visits: Visits):
    """Per visited step ``(j, i, h)``: the state, the taken action and the baseline's ``[(weight, action)]``."""
    for j in range(B):
        for i in (0, 1):
            for h in range(L):
                s = visits.observations[j, i, h]
                if visits.policy_probs is not None:
                    base = [
                        (visits.policy_probs[j, i, h, a].item(), torch.tensor([float(a)], dtype=F64))
                        for a in range(N_ACTIONS)
                    ]
                else:
                    base = [(1.0 / K, visits.policy_actions[j, i, h, m]) for m in range(K)]
                yield j, i, h, s, visits.actions[j, i, h], base


def by_hand(net, visits: Visits, *, estimator: str, clip: float | None = None, psi=None) -> torch.Tensor:
    """grad mean_j l_j + (1/tau) mean_j w_j sum_{i,h} D_h, w_j = l_j - mean_{j' != j} l_j', with D_h in Jacobians:
    one-step ``J(s_h, a_h) - E J(s_h, .)``; monte-carlo ``sum_{m>=h} gamma^(m-h) J(s_m, a_m) - E J(s_h, .)``;
    successor-features ``psi(s_h, a_h) - E psi(s_h, .)`` in the head's coordinates. ``clip``: J of the clamped
    reward."""

    def r(s, a):
        return net(s, a) if visits.policy_probs is None else net(s, a.reshape(()))

    def J(s, a):
        out = r(s, a)
        if clip is not None and abs(out.item()) >= clip:
            return torch.zeros(sum(p.numel() for p in net.parameters()), dtype=F64)
        return flat_grad(out, net)

    obs, act = visits.observations, visits.actions
    losses, exploitation = [], 0.0
    for j in range(B):
        R = [sum(r(obs[j, i, h], act[j, i, h]).item() for h in range(L)) for i in (0, 1)]
        y = visits.labels[j].item()
        sig = 1.0 / (1.0 + math.exp(-(R[0] - R[1])))
        losses.append(-(y * math.log(sig) + (1 - y) * math.log(1 - sig)))
        grad_R = [sum(flat_grad(r(obs[j, i, h], act[j, i, h]), net) for h in range(L)) for i in (0, 1)]
        exploitation = exploitation + (sig - y) * (grad_R[0] - grad_R[1]) / B
    weights = [loss - (sum(losses) - loss) / (B - 1) for loss in losses]
    scores = [0.0] * B
    for j, i, h, s, a, base in steps(visits):
        if estimator == "successor-features":
            head = torch.zeros(sum(p.numel() for p in net.parameters()), dtype=F64)
            delta = (psi(s, a) - sum(w * psi(s, b) for w, b in base)).reshape(net.head.out_features, -1)
            # the head's weight and bias are the last parameters; psi is laid out [W_k, b_k] row by row
            head[-delta.numel() :] = torch.cat([delta[:, :-1].reshape(-1), delta[:, -1]])
            scores[j] = scores[j] + head
            continue
        horizon = range(h, L) if estimator == "monte-carlo" else range(h, h + 1)
        scores[j] = scores[j] + sum(GAMMA ** (m - h) * J(obs[j, i, m], act[j, i, m]) for m in horizon)
        scores[j] = scores[j] - sum(w * J(s, b) for w, b in base)
    return exploitation + sum(w * g for w, g in zip(weights, scores, strict=True)) / (B * TAU)


def rule_grad(rule, net, visits, fol) -> torch.Tensor:
    out = rule.surrogate(
        net, (visits.observations, visits.actions, visits.labels), agent_steps=0, follower=fol, visits=visits
    )
    return flat_grad(out.loss, net)


@pytest.mark.parametrize("make", [box_batch, discrete_batch])
@pytest.mark.parametrize("estimator", ["one-step", "monte-carlo"])
def test_sobirl_gradient_equals_the_formula(make, estimator):
    net, visits = make()
    rule = RULES["sobirl"].from_settings({"estimator": estimator})
    torch.testing.assert_close(
        rule_grad(rule, net, visits, follower(visits)), by_hand(net, visits, estimator=estimator), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("make", [box_batch, discrete_batch])
def test_hpgd_is_sobirl_with_monte_carlo_sensitivities(make):
    net, visits = make()
    rule = RULES["hpgd"].from_settings({"estimator": "one-step"})  # another rule's setting: ignored
    torch.testing.assert_close(
        rule_grad(rule, net, visits, follower(visits)),
        by_hand(net, visits, estimator="monte-carlo"),
        rtol=0,
        atol=1e-10,
    )


@pytest.mark.parametrize("make", [box_batch, discrete_batch])
def test_successor_features_gradient_equals_the_formula(make):
    net, visits = make()
    critic = SuccessorFeatures(net, gamma=GAMMA, config=CriticConfig(critic_hidden=(4,)), seed=1)
    if visits.policy_probs is None:
        psi = lambda s, a: critic.psi(s, a).detach()  # noqa: E731
    else:
        psi = lambda s, a: critic.psi_all(s)[int(a.item())].detach()  # noqa: E731
    rule = RULES["sobirl"]()
    assert rule.needs_critic
    got = rule_grad(rule, net, visits, follower(visits, critic=critic))
    torch.testing.assert_close(got, by_hand(net, visits, estimator="successor-features", psi=psi), rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", [box_batch, discrete_batch])
def test_the_second_term_differentiates_the_clamped_reward(make):
    net, visits = make()
    rewards = net(
        visits.observations.reshape(-1, OBS),
        visits.actions.reshape(-1, visits.actions.shape[-1])
        if visits.policy_probs is None
        else visits.actions.reshape(-1),
    )
    clip = rewards.abs().median().item() * 1.001  # about half the rewards clamped, none at the boundary
    rule = RULES["sobirl"].from_settings({"estimator": "one-step"})
    got = rule_grad(rule, net, visits, follower(visits, clip=clip))
    torch.testing.assert_close(got, by_hand(net, visits, estimator="one-step", clip=clip), rtol=0, atol=1e-10)


def test_drlhf_and_the_warmup_give_the_preference_loss_alone():
    net, visits = box_batch()
    batch = (visits.observations, visits.actions, visits.labels)
    ce = flat_grad(preference_loss(preference_logits(net, *batch[:2]), batch[2]), net)
    drlhf = RULES["drlhf"]().surrogate(net, batch, agent_steps=10**6)
    assert not drlhf.explored and drlhf.second_term == 0.0
    torch.testing.assert_close(flat_grad(drlhf.loss, net), ce, rtol=0, atol=0)
    sobirl = RULES["sobirl"].from_settings({"exploration_warmup": 100})
    assert not sobirl.explores(99) and sobirl.explores(100)
    off = sobirl.surrogate(net, batch, agent_steps=99)  # no follower needed before the warm-up ends
    torch.testing.assert_close(flat_grad(off.loss, net), ce, rtol=0, atol=0)


def test_pbrl_penalty_formula_and_schedule():
    net, visits = box_batch()
    rule = RULES["pbrl"].from_settings({"penalty": 2.0, "penalty_growth": 2.0, "penalty_max": 10.0})
    assert [rule.penalty_weight(k) for k in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    rows = visits.observations.reshape(-1, OBS)
    taken = net(rows, visits.actions.reshape(-1, ACT))
    drawn = net(rows.repeat_interleave(K, 0), visits.policy_actions.reshape(-1, ACT))
    sigma = torch.cat([taken, drawn]).std(correction=0)
    penalty = 4.0 * (drawn.reshape(-1, K).mean(1) - taken).mean() / sigma
    batch = (visits.observations, visits.actions, visits.labels)
    expected = preference_loss(preference_logits(net, *batch[:2]), batch[2]) + penalty
    out = rule.surrogate(net, batch, agent_steps=0, follower=follower(visits), visits=visits, update=1)
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-12)
    torch.testing.assert_close(flat_grad(out.loss, net), flat_grad(expected, net), rtol=0, atol=1e-10)


@pytest.mark.parametrize("state_only", [False, True])
def test_head_features_reproduce_the_reward(state_only):
    """r(s, a) = F(s, a) . theta_head + const, with output normalisation: the contract the critic relies on."""
    gen = torch.Generator().manual_seed(2)
    obs = torch.randn(7, OBS, generator=gen, dtype=F64)
    box = RewardNet(OBS, ACT, hidden=(4,), normalize_output=True, seed=1, dtype=F64)
    per_action = MlpActionRewardNet(
        OBS, N_ACTIONS, hidden=(4,), normalize_output=True, state_only=state_only, seed=1, dtype=F64
    )
    act = torch.rand(7, ACT, generator=gen, dtype=F64)
    idx = torch.randint(0, N_ACTIONS, (7,), generator=gen)
    for net, a in ((box, act), (per_action, idx)):
        net.train()
        net(obs * 3 + 1, a)  # move the running statistics away from (0, 1)
        net.eval()
        r = net(obs, a)
        F = net.head_features(obs, a)
        torch.testing.assert_close(F @ head_parameters(net) - net.output_offset(), r, rtol=0, atol=1e-12)


def test_successor_features_reach_the_td_fixed_point_on_a_table():
    """One-hot states of a 4-state, 2-action MDP: the critic's TD fixed point is the exact successor features."""
    S, A, gamma = 4, 2, 0.8
    gen = torch.Generator().manual_seed(0)
    P = torch.softmax(3 * torch.randn(S, A, S, generator=gen, dtype=F64), dim=-1)
    pi = torch.softmax(torch.randn(S, A, generator=gen, dtype=F64), dim=-1)
    net = MlpActionRewardNet(S, A, hidden=(), seed=0, dtype=F64)
    critic = SuccessorFeatures(
        net, gamma=gamma, config=CriticConfig(critic_hidden=(), critic_lr=0.05, critic_target_tau=1.0), seed=0
    )
    eye = torch.eye(S, dtype=F64)
    s = torch.arange(S).repeat_interleave(A * S)
    a = torch.arange(A).repeat_interleave(S).repeat(S)
    s2 = torch.arange(S).repeat(S * A)
    weight = P[s, a, s2]  # every transition, weighted by its probability: expected TD
    for _ in range(1500):
        rows = torch.multinomial(weight, 4096, replacement=True, generator=gen)
        critic.td_step(net, eye[s[rows]], a[rows], eye[s2[rows]], torch.zeros(4096, dtype=F64), pi[s2[rows]])
    M = torch.linalg.inv(
        torch.eye(S * A, dtype=F64)
        - gamma * P.reshape(S * A, S) @ (torch.eye(S, dtype=F64).unsqueeze(-1) * pi.unsqueeze(0)).reshape(S, S * A)
    )
    Mr = M.reshape(S, A, S, A)
    exact = torch.cat([Mr.permute(0, 1, 3, 2), Mr.sum(2).unsqueeze(-1)], dim=-1).reshape(S, A, -1)
    learned = critic.psi_all(eye).detach()
    assert ((learned - exact).norm() / exact.norm()).item() < 0.02


def test_storm_recursion_on_a_quadratic_restarts_and_never_touches_the_optimiser():
    """f(x; B) = a_B / 2 |x - c_B|^2: h_k and x_k against the recursion by hand (constant schedule)."""
    gen = torch.Generator().manual_seed(0)
    batches = [
        (0.5 + torch.rand((), generator=gen, dtype=F64), torch.randn(3, generator=gen, dtype=F64)) for _ in range(4)
    ]
    eta, beta = 0.3, 0.1
    rule = StocSoBiRL(StocSoBiRL.Config(storm_lr=beta, storm_eta=eta, storm_decay=0.0))
    net = torch.nn.Linear(3, 1, dtype=F64)  # x is the weight row; the bias is unused by the loss
    x = net.weight
    optimizer = torch.optim.SGD(net.parameters(), lr=123.0)  # a step with it would be visible

    x_ref, x_prev, h_ref = x.detach().clone().reshape(-1), None, None
    for k, (a, c) in enumerate(batches):
        if k == 2:
            rule.begin_update()
            h_ref = None

        def surrogate(a=a, c=c):
            loss = 0.5 * a * ((x.reshape(-1) - c) ** 2).sum()
            return UpdateLoss(loss, loss.item(), 0.0, False, torch.zeros(1))

        rule.step(net, optimizer, surrogate)
        g_new = a * (x_ref - c)
        h_ref = g_new if h_ref is None else g_new + (1 - eta) * (h_ref - a * (x_prev - c))
        x_prev, x_ref = x_ref, x_ref - beta * h_ref
        torch.testing.assert_close(x.detach().reshape(-1), x_ref, rtol=0, atol=1e-14)
    assert rule.k == 4
    decaying = StocSoBiRL(StocSoBiRL.Config(storm_lr=1.0, storm_eta=0.5, storm_decay=10.0))
    decaying.k = 10
    assert decaying.schedule() == pytest.approx((2 ** (-1 / 3), 0.5 * 2 ** (-2 / 3)))


def test_bad_inputs_name_the_field():
    net, visits = box_batch()
    batch = (visits.observations, visits.actions, visits.labels)
    with pytest.raises(ValueError, match="exactly one of sample_actions"):
        Follower(tau=1.0, gamma=0.9)
    with pytest.raises(ValueError, match=r"tau must be in \(0, inf\)"):
        Follower(tau=0.0, gamma=0.9, sample_actions=stub_sampler)
    with pytest.raises(ValueError, match="unknown estimator 'x'"):
        RULES["sobirl"].from_settings({"estimator": "x"})
    with pytest.raises(TypeError, match="rule 'sobirl' takes a SoBiRLConfig, got PBRLConfig"):
        RULES["sobirl"](RULES["pbrl"].Config())
    with pytest.raises(ValueError, match="pass the follower and the visits"):
        RULES["sobirl"]().surrogate(net, batch, agent_steps=0)
    with pytest.raises(ValueError, match="needs the follower's critic"):
        RULES["sobirl"]().surrogate(net, batch, agent_steps=0, follower=follower(visits), visits=visits)
    with pytest.raises(ValueError, match="leave-one-out baseline needs a batch of at least 2 pairs"):
        one = Visits(
            *(t[:1] for t in (visits.observations, visits.actions, visits.labels)),
            policy_actions=visits.policy_actions[:1],
        )
        RULES["sobirl"].from_settings({"estimator": "one-step"}).surrogate(
            net, (one.observations, one.actions, one.labels), agent_steps=0, follower=follower(visits), visits=one
        )
    with pytest.raises(ValueError, match=r"critic_lr must be in \(0, inf\)"):
        CriticConfig(critic_lr=0.0)


def test_random_response_bounds_the_loss_and_reduces_to_bradley_terry():
    from sobirl.rlhf.preference_model import pair_losses

    logits = torch.tensor([-40.0, -1.0, 0.0, 2.0, 40.0], dtype=F64)
    labels = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0], dtype=F64)
    eps = 0.1
    p = eps / 2 + (1 - eps) * torch.sigmoid(logits)
    expected = -(labels * p.log() + (1 - labels) * (1 - p).log())
    torch.testing.assert_close(pair_losses(logits, labels, random_response=eps), expected, rtol=1e-12, atol=1e-12)
    assert pair_losses(logits, labels, random_response=eps).max().item() <= -math.log(eps / 2) + 1e-12
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    torch.testing.assert_close(pair_losses(logits, labels), plain, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"random_response must be in \[0, 1\)"):
        pair_losses(logits, labels, random_response=1.0)
