"""Upper-level update rules: the surrogates' gradients against the formulas by hand, the warm-up, STORM."""

from __future__ import annotations

import math

import pytest
import torch

from sobirl.rlhf import (
    MlpActionRewardNet,
    PreferenceUpdate,
    RewardNet,
    StormMomentum,
    preference_logits,
    preference_loss,
)

F64 = torch.float64
B, L, K, OBS, ACT = 3, 4, 3, 2, 1
ALPHA = 0.7


def batch() -> tuple[RewardNet, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tiny float64 reward net and 3 labelled pairs of 4-step fragments."""
    net = RewardNet(OBS, ACT, hidden=(5,), activation="tanh", seed=3, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    observations = torch.randn(B, 2, L, OBS, generator=gen, dtype=F64)
    actions = torch.rand(B, 2, L, ACT, generator=gen, dtype=F64) * 2 - 1
    labels = torch.tensor([1.0, 0.0, 0.3], dtype=F64)
    return net, observations, actions, labels


def stub_policy(seed: int = 1):
    """A policy whose draws come from a seeded generator: 0.1 s_0 + U(-0.5, 0.5) per row."""
    gen = torch.Generator().manual_seed(seed)

    def sample(obs: torch.Tensor) -> torch.Tensor:
        return 0.1 * obs[:, :1] + torch.rand(len(obs), 1, generator=gen, dtype=obs.dtype) - 0.5

    return sample


def flat_grad(output: torch.Tensor, net: RewardNet) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(output, list(net.parameters()))])


def surrogate_grad(update: PreferenceUpdate, net: RewardNet, *args, **kwargs) -> torch.Tensor:
    net.zero_grad()
    update.surrogate(net, *args, **kwargs).loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in net.parameters()])


def sigma_and_gradient(values: list[float], jacobians: list[torch.Tensor]) -> tuple[float, torch.Tensor]:
    """The population standard deviation ``sigma`` of rewards ``values`` and its gradient
    ``(mean(r J) - mean(r) mean(J)) / sigma`` from their Jacobians."""
    n = len(values)
    mean_r, mean_J = sum(values) / n, sum(jacobians) / n
    sigma = math.sqrt(sum(v * v for v in values) / n - mean_r**2)
    return sigma, (sum(v * g for v, g in zip(values, jacobians, strict=True)) / n - mean_r * mean_J) / sigma


def by_hand(
    net,
    observations,
    actions,
    labels,
    policy_actions,
    *,
    estimator,
    gamma,
    discount,
    rule="sobirl",
    penalty=None,
    scale=1.0,
    clip=None,
) -> torch.Tensor:
    """grad = mean_j grad l_j + (c/alpha) mean_j w_j grad(u_j / sigma) (c = scale) with w_j = l_j - mean_{j' != j} l_j'
    (sobirl, hpgd); pbrl: mean_j grad l_j - lambda mean_j grad(u_j / sigma) / (2 L). Here
    u_j = sum_{i,h} D_h in rewards, sigma the population standard deviation of every reward of the batch (taken and
    policy actions), grad(u / sigma) = G / sigma - u grad(sigma) / sigma^2 with G = sum_{i,h} D_h in J = d r/dx, and
    grad(sigma) = (mean(r J) - mean(r) mean(J)) / sigma. Every J by its own backward."""

    def J(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return flat_grad(net(s, a), net)

    def r(s: torch.Tensor, a: torch.Tensor) -> float:
        return net(s, a).item()

    rows = [(observations[j, i, h], actions[j, i, h]) for j in range(B) for i in (0, 1) for h in range(L)]
    rows += [
        (observations[j, i, h], policy_actions[j, i, h, m])
        for j in range(B)
        for i in (0, 1)
        for h in range(L)
        for m in range(K)
    ]
    sigma, grad_sigma = sigma_and_gradient([r(*row) for row in rows], [J(*row) for row in rows])

    exploitations, losses, scores = [], [], []
    for j in range(B):
        R = [sum(discount**h * r(observations[j, i, h], actions[j, i, h]) for h in range(L)) for i in (0, 1)]
        logit, y = R[0] - R[1], labels[j].item()
        sig = 1.0 / (1.0 + math.exp(-logit))
        loss = -(y * math.log(sig) + (1 - y) * math.log(1 - sig))
        grad_R = [sum(discount**h * J(observations[j, i, h], actions[j, i, h]) for h in range(L)) for i in (0, 1)]
        exploitation = (sig - y) * (grad_R[0] - grad_R[1])
        G, u = 0.0, 0.0
        for i in (0, 1):
            for h in range(L):
                s = observations[j, i, h]
                horizon = range(h, L) if estimator == "monte-carlo" else range(h, h + 1)
                G = G + sum(gamma ** (m - h) * J(observations[j, i, m], actions[j, i, m]) for m in horizon)
                u = u + sum(gamma ** (m - h) * r(observations[j, i, m], actions[j, i, m]) for m in horizon)
                G = G - sum(J(s, policy_actions[j, i, h, m]) for m in range(K)) / K
                u = u - sum(r(s, policy_actions[j, i, h, m]) for m in range(K)) / K
        exploitations.append(exploitation)
        losses.append(loss)
        scores.append(G / sigma - u * grad_sigma / sigma**2)
    if rule == "pbrl":
        return sum(exploitations) / B - penalty * sum(scores) / (B * 2 * L)
    weights = [loss - (sum(losses) - loss) / (B - 1) for loss in losses]
    if clip is not None:
        assert max(abs(w) for w in weights) > clip  # the clip binds
        weights = [min(max(w, -clip), clip) for w in weights]
    return sum(e + scale * w * score / ALPHA for e, w, score in zip(exploitations, weights, scores, strict=True)) / B


@pytest.mark.parametrize(
    ("estimator", "gamma", "discount", "scale"),
    [
        ("one-step", 0.99, 1.0, 1.0),
        ("monte-carlo", 0.9, 1.0, 1.0),
        ("one-step", 0.5, 0.8, 1.0),
        ("one-step", 0.9, 1.0, 0.05),
    ],
)
def test_sobirl_gradient_equals_the_formula(estimator, gamma, discount, scale):
    net, observations, actions, labels = batch()
    update = PreferenceUpdate(
        "sobirl", estimator=estimator, action_samples=K, gamma=gamma, discount=discount, exploration_scale=scale
    )
    policy_actions = update.policy_actions(stub_policy(), observations)
    assert policy_actions.shape == (B, 2, L, K, ACT) and not policy_actions.requires_grad
    got = surrogate_grad(
        update, net, observations, actions, labels, agent_steps=0, alpha=ALPHA, policy_actions=policy_actions
    )
    expected = by_hand(
        net,
        observations,
        actions,
        labels,
        policy_actions,
        estimator=estimator,
        gamma=gamma,
        discount=discount,
        scale=scale,
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("estimator", ["one-step", "monte-carlo"])
def test_advantage_clip_clips_the_pair_weights(estimator):
    net, observations, actions, labels = batch()
    update = PreferenceUpdate("sobirl", estimator=estimator, action_samples=K, gamma=0.9, advantage_clip=0.1)
    policy_actions = update.policy_actions(stub_policy(), observations)
    got = surrogate_grad(
        update, net, observations, actions, labels, agent_steps=0, alpha=ALPHA, policy_actions=policy_actions
    )
    expected = by_hand(
        net, observations, actions, labels, policy_actions, estimator=estimator, gamma=0.9, discount=1.0, clip=0.1
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("rule", ["sobirl", "hpgd"])
def test_weight_cap_replaces_scale_over_alpha_once_it_binds(rule):
    net, observations, actions, labels = batch()
    capped = PreferenceUpdate(rule, action_samples=K, exploration_scale=0.5, exploration_weight_max=0.2)
    assert capped.exploration_weight(10.0) == pytest.approx(0.05)  # 0.5 / 10 < cap
    assert capped.exploration_weight(ALPHA) == 0.2  # 0.5 / 0.7 > cap
    policy_actions = capped.policy_actions(stub_policy(), observations)
    same = PreferenceUpdate(rule, action_samples=K, exploration_scale=0.2 * ALPHA)  # uncapped, weight 0.2 at ALPHA
    grads = [
        surrogate_grad(u, net, observations, actions, labels, agent_steps=0, alpha=ALPHA, policy_actions=policy_actions)
        for u in (capped, same)
    ]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("rule", "estimator", "penalty"), [("hpgd", "monte-carlo", None), ("pbrl", "one-step", 2.5)])
def test_hpgd_and_pbrl_gradients_equal_their_formulas(rule, estimator, penalty):
    net, observations, actions, labels = batch()
    update = PreferenceUpdate(rule, action_samples=K, gamma=0.9)
    assert update.estimator == estimator  # each rule's default
    policy_actions = update.policy_actions(stub_policy(), observations)
    kwargs = dict(agent_steps=0, alpha=ALPHA, policy_actions=policy_actions, penalty=penalty)
    got = surrogate_grad(update, net, observations, actions, labels, **kwargs)
    expected = by_hand(
        net,
        observations,
        actions,
        labels,
        policy_actions,
        estimator=estimator,
        gamma=0.9,
        discount=1.0,
        rule=rule,
        penalty=penalty,
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    out = update.surrogate(net, observations, actions, labels, **kwargs)
    assert out.explored and out.loss.item() == pytest.approx(out.cross_entropy + out.exploration, abs=1e-14)


@pytest.mark.parametrize("rule", ["sobirl", "hpgd", "pbrl"])
def test_second_term_on_its_own_on_policy_batch(rule):
    """surrogate(A, on_policy=B) = cross-entropy on A + the second term on B (each checked by hand)."""
    net, observations, actions, labels = batch()
    gen = torch.Generator().manual_seed(7)
    fresh = (torch.randn(B, 2, L, OBS, generator=gen, dtype=F64), torch.rand(B, 2, L, ACT, generator=gen, dtype=F64))
    fresh_labels = torch.tensor([0.0, 1.0, 0.6], dtype=F64)
    update = PreferenceUpdate(rule, action_samples=K, gamma=0.9)
    policy_actions = update.policy_actions(stub_policy(), fresh[0])
    got = surrogate_grad(
        update,
        net,
        observations,
        actions,
        labels,
        agent_steps=0,
        alpha=ALPHA,
        policy_actions=policy_actions,
        penalty=1.5,
        on_policy=(*fresh, fresh_labels),
    )
    drlhf = PreferenceUpdate("drlhf")
    hand = dict(estimator=update.estimator, gamma=0.9, discount=1.0, rule=rule, penalty=1.5)
    second_term = by_hand(net, *fresh, fresh_labels, policy_actions, **hand) - surrogate_grad(
        drlhf, net, *fresh, fresh_labels, agent_steps=0
    )
    expected = surrogate_grad(drlhf, net, observations, actions, labels, agent_steps=0) + second_term
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("rule", ["sobirl", "hpgd", "pbrl"])
def test_second_term_has_no_component_along_the_reward_scale(rule):
    """Scaling the last layer by c scales r_x by c; d/dc at c = 1 is the direction v = (its weight, its bias). The
    second term's gradient (the rule's minus drlhf's) is orthogonal to v, while the cross-entropy's is not."""
    net, observations, actions, labels = batch()
    update = PreferenceUpdate(rule, action_samples=K)
    policy_actions = update.policy_actions(stub_policy(), observations)
    kwargs = dict(agent_steps=0, alpha=ALPHA, policy_actions=policy_actions, penalty=2.0)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    v = torch.cat(
        [
            p.detach().reshape(-1) if any(p is q for q in last.parameters()) else torch.zeros(p.numel(), dtype=F64)
            for p in net.parameters()
        ]
    )
    total = surrogate_grad(update, net, observations, actions, labels, **kwargs)
    cross_entropy = surrogate_grad(PreferenceUpdate("drlhf"), net, observations, actions, labels, agent_steps=0)
    assert abs(torch.dot(total - cross_entropy, v).item()) <= 1e-12 * (total - cross_entropy).norm().item() * v.norm()
    assert abs(torch.dot(cross_entropy, v).item()) > 1e-3 * cross_entropy.norm().item() * v.norm()


@pytest.mark.parametrize("rule", ["sobirl", "hpgd"])
def test_equal_losses_leave_no_exploration_term(rule):
    """With every l_j equal the leave-one-out weights are 0: the gradient is drlhf's."""
    net, observations, actions, _ = batch()
    labels = torch.full((B,), 0.5, dtype=F64)
    observations[:, 1], actions[:, 1] = observations[:, 0], actions[:, 0]  # logits 0: every l_j = log 2
    update = PreferenceUpdate(rule, action_samples=K)
    policy_actions = update.policy_actions(stub_policy(), observations)
    out = update.surrogate(
        net, observations, actions, labels, agent_steps=0, alpha=ALPHA, policy_actions=policy_actions
    )
    assert out.exploration == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        update.surrogate(
            net,
            observations[:1],
            actions[:1],
            labels[:1],
            agent_steps=0,
            alpha=ALPHA,
            policy_actions=policy_actions[:1],
        )


def test_pbrl_penalty_weight_grows_geometrically_to_its_cap():
    update = PreferenceUpdate("pbrl", penalty=2.0, penalty_growth=1.5, penalty_max=5.0)
    assert [update.penalty_weight(k) for k in range(4)] == [2.0, 3.0, 4.5, 5.0]
    assert PreferenceUpdate("pbrl", penalty_growth=1.0).penalty_weight(50) == 1.0


def test_policy_actions_are_drawn_per_state_in_one_call():
    _, observations, _, _ = batch()
    calls = []

    def policy(obs: torch.Tensor) -> torch.Tensor:
        calls.append(len(obs))
        return stub_policy()(obs)

    drawn = PreferenceUpdate(action_samples=K).policy_actions(policy, observations)
    assert calls == [B * 2 * L * K]
    noise = stub_policy()(torch.zeros(B * 2 * L * K, OBS, dtype=F64)).reshape(B, 2, L, K, ACT)
    torch.testing.assert_close(drawn, 0.1 * observations[..., None, :1] + noise, rtol=0, atol=1e-15)


def test_monte_carlo_equals_one_step_at_gamma_zero():
    net, observations, actions, labels = batch()
    policy_actions = PreferenceUpdate(action_samples=K).policy_actions(stub_policy(), observations)
    grads = [
        surrogate_grad(
            PreferenceUpdate(estimator=name, gamma=0.0),
            net,
            observations,
            actions,
            labels,
            agent_steps=0,
            alpha=ALPHA,
            policy_actions=policy_actions,
        )
        for name in ("one-step", "monte-carlo")
    ]
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-14)


def test_drlhf_is_sobirl_with_the_exploration_term_off_and_the_warmup_switch():
    net, observations, actions, labels = batch()
    drlhf = PreferenceUpdate("drlhf")
    sobirl = PreferenceUpdate("sobirl", exploration_warmup=100, action_samples=K)
    policy_actions = sobirl.policy_actions(stub_policy(), observations)
    assert not drlhf.explores(10**9) and not sobirl.explores(99) and sobirl.explores(100)

    result = drlhf.surrogate(net, observations, actions, labels, agent_steps=500)
    reference = preference_loss(preference_logits(net, observations, actions), labels)
    assert not result.explored and result.exploration == 0.0
    assert result.cross_entropy == pytest.approx(reference.item(), abs=1e-15)
    g_drlhf = surrogate_grad(drlhf, net, observations, actions, labels, agent_steps=500)
    g_ce = torch.cat([g.reshape(-1) for g in torch.autograd.grad(reference, list(net.parameters()))])
    torch.testing.assert_close(g_drlhf, g_ce, rtol=0, atol=1e-15)
    # warm-up: no alpha or policy actions needed, the gradient is drlhf's
    torch.testing.assert_close(surrogate_grad(sobirl, net, observations, actions, labels, agent_steps=99), g_drlhf)
    on = sobirl.surrogate(
        net, observations, actions, labels, agent_steps=100, alpha=ALPHA, policy_actions=policy_actions
    )
    assert on.explored and on.cross_entropy == pytest.approx(reference.item(), abs=1e-14)
    assert on.loss.item() == pytest.approx(on.cross_entropy + on.exploration, abs=1e-14) and on.exploration != 0.0
    torch.testing.assert_close(on.logits, result.logits, rtol=0, atol=1e-14)


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="unknown estimator 'td-critic'; valid: one-step, monte-carlo"):
        PreferenceUpdate(estimator="td-critic")
    with pytest.raises(ValueError, match="unknown rule 'parl'; valid: drlhf, sobirl, hpgd, pbrl"):
        PreferenceUpdate("parl")
    with pytest.raises(ValueError, match=r"estimator of rule 'hpgd' must be one of \['monte-carlo'\], got 'one-step'"):
        PreferenceUpdate("hpgd", estimator="one-step")
    with pytest.raises(ValueError, match=r"estimator of rule 'pbrl' must be one of \['one-step'\]"):
        PreferenceUpdate("pbrl", estimator="monte-carlo")
    with pytest.raises(ValueError, match="penalty_growth must be in"):
        PreferenceUpdate("pbrl", penalty_growth=0.9)
    with pytest.raises(ValueError, match="penalty_max must be in"):
        PreferenceUpdate("pbrl", penalty=2.0, penalty_max=1.0)
    with pytest.raises(ValueError, match="exploration_warmup must be an integer >= 0, got -1"):
        PreferenceUpdate(exploration_warmup=-1)
    with pytest.raises(ValueError, match="action_samples must be an integer >= 1, got 0"):
        PreferenceUpdate(action_samples=0)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], got 1.5"):
        PreferenceUpdate(gamma=1.5)
    with pytest.raises(ValueError, match=r"exploration_weight_max must be in \(0, inf\), got 0"):
        PreferenceUpdate(exploration_weight_max=0.0)
    with pytest.raises(ValueError, match=r"advantage_clip must be in \(0, inf\), got -1"):
        PreferenceUpdate(advantage_clip=-1.0)
    net, observations, actions, labels = batch()
    update = PreferenceUpdate(action_samples=K)
    policy_actions = update.policy_actions(stub_policy(), observations)
    for alpha in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"alpha must be in \(0, inf\)"):
            update.surrogate(
                net, observations, actions, labels, agent_steps=0, alpha=alpha, policy_actions=policy_actions
            )
    with pytest.raises(
        ValueError,
        match=r"exactly one of policy_actions \(Box actions\) and policy_probs \(Discrete actions\) is required while",
    ):
        update.surrogate(net, observations, actions, labels, agent_steps=0, alpha=ALPHA)
    with pytest.raises(ValueError, match="alpha is required while the sobirl exploration term is on"):
        update.surrogate(net, observations, actions, labels, agent_steps=0, policy_actions=policy_actions)
    with pytest.raises(ValueError, match="penalty is required while the pbrl penalty is on"):
        PreferenceUpdate("pbrl", action_samples=K).surrogate(
            net, observations, actions, labels, agent_steps=0, policy_actions=policy_actions
        )
    with pytest.raises(ValueError, match=r"policy_actions must have shape \(B, 2, L, k, \*act_shape\)"):
        update.surrogate(
            net, observations, actions, labels, agent_steps=0, alpha=ALPHA, policy_actions=policy_actions[:, :, 1:]
        )
    with pytest.raises(ValueError, match=r"eta must be in \(0, 1\]"):
        StormMomentum(net.parameters(), eta=0.0)


def test_storm_recursion_on_a_quadratic():
    """f(x; B) = a_B / 2 |x - c_B|^2, g = a_B (x - c_B): h_k and x_k against the recursion by hand."""
    gen = torch.Generator().manual_seed(0)
    batches = [
        (0.5 + torch.rand((), generator=gen, dtype=F64), torch.randn(3, generator=gen, dtype=F64)) for _ in range(4)
    ]
    etas = [None, None, 0.6, None]  # a per-step override at k = 2
    eta, beta = 0.3, 0.1
    x = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=F64))
    unused = torch.nn.Parameter(torch.ones(2, dtype=F64))
    storm = StormMomentum([x, unused], eta=eta)
    optimizer = torch.optim.SGD([x, unused], lr=beta)

    x_ref, x_prev, h_ref = x.detach().clone(), None, None
    for (a, c), eta_k in zip(batches, etas, strict=True):
        loss = storm.step(lambda a=a, c=c: 0.5 * a * ((x - c) ** 2).sum(), eta=eta_k)
        assert loss.item() == pytest.approx((0.5 * a * ((x_ref - c) ** 2).sum()).item(), abs=1e-14)
        g_new = a * (x_ref - c)
        weight = 1 - (eta if eta_k is None else eta_k)
        h_ref = g_new if h_ref is None else g_new + weight * (h_ref - a * (x_prev - c))
        torch.testing.assert_close(x.detach(), x_ref, rtol=0, atol=0)  # parameters restored after g(x_{k-1})
        torch.testing.assert_close(x.grad, h_ref, rtol=0, atol=1e-14)
        assert (unused.grad == 0).all()
        optimizer.step()
        x_prev, x_ref = x_ref, x_ref - beta * h_ref
        torch.testing.assert_close(x.detach(), x_ref, rtol=0, atol=1e-14)


# ---- Discrete actions: per-action reward nets, the exact baseline -----------------------------------------------

N_ACTIONS = 3


def discrete_batch() -> tuple[MlpActionRewardNet, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tiny float64 per-action net, 3 labelled pairs of 4-step fragments with Discrete actions (as SB3 stores them,
    floats with a trailing 1) and the actor's probabilities at every visited state."""
    net = MlpActionRewardNet(OBS, N_ACTIONS, hidden=(5,), activation="tanh", seed=3, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    observations = torch.randn(B, 2, L, OBS, generator=gen, dtype=F64)
    actions = torch.randint(0, N_ACTIONS, (B, 2, L, 1), generator=gen).to(F64)
    probs = torch.softmax(torch.randn(B, 2, L, N_ACTIONS, generator=gen, dtype=F64), dim=-1)
    return net, observations, actions, torch.tensor([1.0, 0.0, 0.3], dtype=F64), probs


def discrete_by_hand(net, observations, actions, labels, probs, *, estimator, gamma, rule="sobirl", penalty=None):
    """As :func:`by_hand` with ``b_x(s) = sum_a pi(a|s) r_x(s, a)`` and sigma over the taken rewards and every
    action's reward at every visited state; every J by its own backward."""

    def every(s: torch.Tensor) -> torch.Tensor:
        return net.action_rewards(s)

    def J(s: torch.Tensor, a: int) -> torch.Tensor:
        return flat_grad(every(s)[a], net)

    steps = [(j, i, h) for j in range(B) for i in (0, 1) for h in range(L)]
    taken = {(j, i, h): int(actions[j, i, h, 0].item()) for j, i, h in steps}
    rows = [(observations[k], taken[k]) for k in steps] + [
        (observations[k], a) for k in steps for a in range(N_ACTIONS)
    ]
    sigma, grad_sigma = sigma_and_gradient([every(s)[a].item() for s, a in rows], [J(s, a) for s, a in rows])

    exploitations, losses, scores = [], [], []
    for j in range(B):
        R = [sum(every(observations[j, i, h])[taken[j, i, h]].item() for h in range(L)) for i in (0, 1)]
        logit, y = R[0] - R[1], labels[j].item()
        sig = 1.0 / (1.0 + math.exp(-logit))
        losses.append(-(y * math.log(sig) + (1 - y) * math.log(1 - sig)))
        grad_R = [sum(J(observations[j, i, h], taken[j, i, h]) for h in range(L)) for i in (0, 1)]
        exploitations.append((sig - y) * (grad_R[0] - grad_R[1]))
        G, u = 0.0, 0.0
        for i in (0, 1):
            for h in range(L):
                s, p = observations[j, i, h], probs[j, i, h]
                horizon = range(h, L) if estimator == "monte-carlo" else range(h, h + 1)
                G = G + sum(gamma ** (m - h) * J(observations[j, i, m], taken[j, i, m]) for m in horizon)
                u = u + sum(gamma ** (m - h) * every(observations[j, i, m])[taken[j, i, m]].item() for m in horizon)
                G = G - sum(p[a].item() * J(s, a) for a in range(N_ACTIONS))
                u = u - sum(p[a].item() * every(s)[a].item() for a in range(N_ACTIONS))
        scores.append(G / sigma - u * grad_sigma / sigma**2)
    if rule == "pbrl":
        return sum(exploitations) / B - penalty * sum(scores) / (B * 2 * L)
    weights = [loss - (sum(losses) - loss) / (B - 1) for loss in losses]
    return sum(e + w * score / ALPHA for e, w, score in zip(exploitations, weights, scores, strict=True)) / B


@pytest.mark.parametrize(
    ("rule", "estimator", "penalty"),
    [
        ("sobirl", "one-step", None),
        ("sobirl", "monte-carlo", None),
        ("hpgd", "monte-carlo", None),
        ("pbrl", "one-step", 2.5),
    ],
)
def test_discrete_gradients_equal_the_formulas_with_the_exact_baseline(rule, estimator, penalty):
    net, observations, actions, labels, probs = discrete_batch()
    update = PreferenceUpdate(rule, estimator=estimator, gamma=0.9)
    got = surrogate_grad(
        update,
        net,
        observations,
        actions,
        labels,
        agent_steps=0,
        alpha=None if rule == "pbrl" else ALPHA,
        penalty=penalty,
        policy_probs=probs,
    )
    expected = discrete_by_hand(
        net, observations, actions, labels, probs, estimator=estimator, gamma=0.9, rule=rule, penalty=penalty
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_state_only_reward_has_no_one_step_exploration_term():
    """With r_x(s, a) = r_x(s) every ``J(s, a) - sum_a pi(a|s) J(s, a)`` is zero: sobirl's one-step gradient is
    drlhf's, while the monte-carlo estimator's (discounted sums along the fragment) is not."""
    _, observations, actions, labels, probs = discrete_batch()
    net = MlpActionRewardNet(OBS, N_ACTIONS, hidden=(5,), normalize_output=True, state_only=True, seed=3, dtype=F64)
    kwargs = {"agent_steps": 0, "alpha": ALPHA, "policy_probs": probs}
    drlhf = surrogate_grad(PreferenceUpdate("drlhf"), net, observations, actions, labels, **kwargs)
    one_step = surrogate_grad(
        PreferenceUpdate("sobirl", estimator="one-step"), net, observations, actions, labels, **kwargs
    )
    torch.testing.assert_close(one_step, drlhf, rtol=0, atol=1e-12)
    update = PreferenceUpdate("sobirl", estimator="monte-carlo", gamma=0.9)
    monte_carlo = surrogate_grad(update, net, observations, actions, labels, **kwargs)
    assert (monte_carlo - drlhf).abs().max().item() > 1e-6


def test_action_probabilities_in_one_call_and_discrete_bad_inputs():
    net, observations, actions, labels, probs = discrete_batch()
    calls = []

    def policy(rows: torch.Tensor) -> torch.Tensor:
        calls.append(rows.shape)
        return torch.softmax(rows[:, :1].repeat(1, N_ACTIONS) * torch.arange(N_ACTIONS, dtype=F64), dim=-1)

    drawn = PreferenceUpdate.action_probabilities(policy, observations)
    assert calls == [(B * 2 * L, OBS)] and drawn.shape == (B, 2, L, N_ACTIONS) and not drawn.requires_grad
    torch.testing.assert_close(drawn.sum(-1), torch.ones(B, 2, L, dtype=F64))
    update = PreferenceUpdate("sobirl")
    kwargs = dict(agent_steps=0, alpha=ALPHA)
    with pytest.raises(ValueError, match=r"policy_probs must have shape \(B, 2, L, n_actions\) = \(3, 2, 4, 3\)"):
        update.surrogate(net, observations, actions, labels, policy_probs=probs[..., :2], **kwargs)
    box_net = RewardNet(OBS, 1, hidden=(5,), dtype=F64)
    with pytest.raises(TypeError, match="policy_probs need a per-action reward net"):
        update.surrogate(box_net, observations, actions, labels, policy_probs=probs, **kwargs)
    with pytest.raises(ValueError, match="exactly one of policy_actions"):
        update.surrogate(
            net, observations, actions, labels, policy_probs=probs, policy_actions=probs.unsqueeze(-1), **kwargs
        )
