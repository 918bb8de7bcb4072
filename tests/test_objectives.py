"""The policy objectives of the paper's Table 1 (--policy-objective, --adaptive-clip): the losses, the exact KLs
and the adaptive rules against independent computations, then each switch run through each script.

The helpers are shared blocks (test_shared_blocks.py keeps them identical), so their numerics are tested on
ppo_discrete.py; the Gaussian KL lives in ppo_continuous.py only.
"""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import ppo_atari
import ppo_continuous
import ppo_discrete
from tests.conftest import EXPECTED_KEYS, read_scalars, run_script

TINY = {
    "ppo_discrete.py": (
        "--total-timesteps",
        "1024",
        "--num-envs",
        "2",
        "--num-steps",
        "64",
        "--progress-interval",
        "0",
    ),
    "ppo_continuous.py": (
        "--total-timesteps",
        "1024",
        "--num-envs",
        "2",
        "--num-steps",
        "64",
        "--num-minibatches",
        "4",
        "--update-epochs",
        "2",
        "--progress-interval",
        "0",
    ),
}
ITERATIONS = 8  # 1024 steps in batches of 128
MODULES = {"ppo_discrete.py": ppo_discrete, "ppo_continuous.py": ppo_continuous}


# ---------------------------------------------------------------- adaptive rules


@pytest.mark.parametrize(
    "kl, expected",
    [
        (0.0, 0.5),
        (0.006, 0.5),  # d < d_targ / 1.5 = 0.00667: halve
        (0.0067, 1.0),
        (0.01, 1.0),
        (0.0149, 1.0),  # within [d_targ / 1.5, d_targ * 1.5]: keep
        (0.0151, 2.0),
        (1.0, 2.0),  # d > d_targ * 1.5 = 0.015: double
    ],
)
def test_kl_beta_rule(kl, expected):
    assert ppo_discrete.update_kl_beta(1.0, kl, 0.01) == expected


def test_kl_beta_rule_scales_with_beta_and_target():
    assert ppo_discrete.update_kl_beta(3.0, 0.07, 0.05) == 3.0
    assert ppo_discrete.update_kl_beta(3.0, 0.02, 0.05) == 1.5
    assert ppo_discrete.update_kl_beta(3.0, 0.08, 0.05) == 6.0


@pytest.mark.parametrize(
    "clip_coef, kl, expected",
    [
        (0.2, 0.02, 0.2 / 1.5),
        (0.2, 0.001, 0.3),
        (0.2, 0.01, 0.2),  # shrink, grow, keep (d_targ 0.01)
        (0.025, 0.02, 0.02),
        (0.02, 1.0, 0.02),  # not below 0.02
        (0.4, 0.0, 0.5),
        (0.5, 0.0, 0.5),  # not above 0.5
        (0.8, 0.01, 0.5),
        (0.01, 0.01, 0.02),  # a start outside the bounds is brought inside
    ],
)
def test_clip_coef_rule_and_bounds(clip_coef, kl, expected):
    assert ppo_discrete.update_clip_coef(clip_coef, kl, 0.01) == pytest.approx(expected)


# ---------------------------------------------------------------- losses


def test_no_clip_loss_is_the_unclipped_surrogate_with_the_policy_gradient():
    """Ratios far outside [1 - eps, 1 + eps] are not clipped; d loss / d log pi(a_i|s_i) = -A_i r_i / N."""
    torch.manual_seed(0)
    n = 16
    old_logprob = torch.randn(n, dtype=torch.float64)
    new_logprob = (
        old_logprob + torch.linspace(-2.0, 2.0, n, dtype=torch.float64)
    ).requires_grad_()  # ratios 0.14 .. 7.4
    advantages = torch.randn(n, dtype=torch.float64)
    ratio = (new_logprob - old_logprob).exp()
    loss = ppo_discrete.surrogate_loss(ratio, advantages)
    loss.backward()
    assert loss.item() == pytest.approx(-(ratio * advantages).mean().item(), rel=1e-12)
    assert loss.item() != pytest.approx(ppo_discrete.clipped_surrogate_loss(ratio, advantages, 0.2).item())
    expected_gradient = -advantages * ratio.detach() / n
    torch.testing.assert_close(new_logprob.grad, expected_gradient, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kl_beta", [0.0, 0.3, 10.0])
def test_penalty_loss_is_the_surrogate_plus_beta_times_the_mean_kl(kl_beta):
    torch.manual_seed(1)
    ratio, advantages = torch.rand(32, dtype=torch.float64) + 0.5, torch.randn(32, dtype=torch.float64)
    kl = (torch.rand(32, dtype=torch.float64) * 0.05).requires_grad_()
    loss = ppo_discrete.kl_penalty_loss(ratio, advantages, kl, kl_beta)
    loss.backward()
    expected = -(ratio * advantages).mean() + kl_beta * kl.mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(kl.grad, torch.full_like(kl, kl_beta / 32))  # the penalty pulls on every state's KL


# ---------------------------------------------------------------- exact KL


@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_kl_matches_torch(seed):
    torch.manual_seed(seed)
    old_logits, new_logits = torch.randn(7, 5) * 2, torch.randn(7, 5)
    old_log_probs, new_log_probs = torch.log_softmax(old_logits, -1), torch.log_softmax(new_logits, -1)
    expected = kl_divergence(Categorical(logits=old_logits), Categorical(logits=new_logits))
    for module in (ppo_discrete, ppo_atari):
        torch.testing.assert_close(module.categorical_kl(old_log_probs, new_log_probs), expected)
        torch.testing.assert_close(module.Agent.exact_kl(old_log_probs, new_log_probs), expected)
    assert (ppo_discrete.categorical_kl(old_log_probs, old_log_probs) == 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_kl_matches_torch(seed):
    torch.manual_seed(seed)
    old_mean, new_mean = torch.randn(7, 3), torch.randn(7, 3)
    old_log_std, new_log_std = torch.randn(7, 3) * 0.5, torch.randn(7, 3) * 0.5
    old = Independent(Normal(old_mean, old_log_std.exp()), 1)  # a diagonal Gaussian: independent action dimensions
    new = Independent(Normal(new_mean, new_log_std.exp()), 1)
    expected = kl_divergence(old, new)
    torch.testing.assert_close(ppo_continuous.gaussian_kl(old_mean, old_log_std, new_mean, new_log_std), expected)
    stacked_old, stacked_new = (
        torch.stack((old_mean, old_log_std), dim=-2),
        torch.stack((new_mean, new_log_std), dim=-2),
    )
    torch.testing.assert_close(ppo_continuous.Agent.exact_kl(stacked_old, stacked_new), expected)
    assert (ppo_continuous.gaussian_kl(old_mean, old_log_std, old_mean, old_log_std) == 0).all()


def test_exact_kl_of_two_agents_policies():
    """What get_action_and_value returns as the distribution is what Agent.exact_kl reads, in every script."""
    obs = torch.randn(6, 3)
    torch.manual_seed(0)
    old, new = ppo_continuous.Agent(3, 2), ppo_continuous.Agent(3, 2)
    with torch.no_grad():
        for agent, scale, log_std in ((old, 50.0, (-0.5, 0.2)), (new, 80.0, (0.1, -0.3))):
            agent.actor[-1].weight.mul_(scale)
            agent.actor_logstd.copy_(torch.tensor(log_std))
        old_dist, new_dist = old.get_action_and_value(obs)[4], new.get_action_and_value(obs)[4]
        expected = kl_divergence(
            Independent(Normal(old.actor(obs), old.actor_logstd.exp()), 1),
            Independent(Normal(new.actor(obs), new.actor_logstd.exp()), 1),
        )
    assert old_dist.shape == (6, 2, 2)
    torch.testing.assert_close(ppo_continuous.Agent.exact_kl(old_dist, new_dist), expected)

    torch.manual_seed(0)
    old, new = ppo_discrete.Agent(3, 4), ppo_discrete.Agent(3, 4)
    with torch.no_grad():
        old.actor[-1].weight.mul_(200.0)
        new.actor[-1].weight.mul_(300.0)
        old_dist, new_dist = old.get_action_and_value(obs)[4], new.get_action_and_value(obs)[4]
        expected = kl_divergence(Categorical(logits=old.actor(obs)), Categorical(logits=new.actor(obs)))
    assert expected.min() > 0.01
    torch.testing.assert_close(ppo_discrete.Agent.exact_kl(old_dist, new_dist), expected)


# ---------------------------------------------------------------- each switch, through each script


def run(script: str, out, name: str, *args: str) -> dict:
    result = run_script(script, *TINY[script], *args, "--output-dir", str(out), "--run-name", name)
    assert result.returncode == 0, result.stderr
    scalars = read_scalars(out / name)
    for key in EXPECTED_KEYS:
        assert key in scalars and all(math.isfinite(value) for _, value in scalars[key]), key
    return scalars


def values(scalars: dict, tag: str) -> list:
    return [value for _, value in scalars[tag]]


def follows_rule(rule, logged: list, kls: list, start: float, kl_target: float) -> bool:
    """Each logged value (after that iteration's adaptation) is the rule applied to the previous value and the
    iteration's logged exact KL."""
    previous, expected = start, []
    for kl in kls:
        previous = rule(previous, kl, kl_target)
        expected.append(previous)
    return logged == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("script", list(TINY))
def test_kl_adaptive_adapts_beta_to_the_exact_kl(tmp_path, script):
    scalars = run(
        script, tmp_path, "run", "--policy-objective", "kl-adaptive", "--kl-beta", "2.0", "--kl-target", "0.01"
    )
    betas, kls = values(scalars, "charts/kl_beta"), values(scalars, "losses/exact_kl")
    assert len(betas) == len(kls) == ITERATIONS
    assert all(kl >= 0 for kl in kls) and max(kls) > 0
    assert follows_rule(MODULES[script].update_kl_beta, betas, kls, 2.0, 0.01)
    assert len(set(betas)) > 1 and betas[0] != 2.0  # it moved, from the first update on
    assert values(scalars, "charts/clip_coef") == pytest.approx([0.2] * ITERATIONS)  # epsilon is not adapted


@pytest.mark.slow
@pytest.mark.parametrize("script", list(TINY))
def test_adaptive_clip_moves_epsilon_within_its_bounds(tmp_path, script):
    # A target far above any KL of these runs: epsilon grows by 1.5 per update up to 0.5; far below: it shrinks to 0.02
    grow = run(script, tmp_path, "grow", "--adaptive-clip", "--kl-target", "1.0")
    assert values(grow, "charts/clip_coef") == pytest.approx([0.3, 0.45] + [0.5] * (ITERATIONS - 2))
    shrink = run(script, tmp_path, "shrink", "--adaptive-clip", "--kl-target", "1e-9")
    assert values(shrink, "charts/clip_coef") == pytest.approx(
        [0.2 / 1.5**k for k in range(1, 6)] + [0.02] * (ITERATIONS - 5)
    )
    for scalars, kl_target in ((grow, 1.0), (shrink, 1e-9)):
        assert follows_rule(
            MODULES[script].update_clip_coef,
            values(scalars, "charts/clip_coef"),
            values(scalars, "losses/exact_kl"),
            0.2,
            kl_target,
        )
        assert values(scalars, "charts/kl_beta") == [1.0] * ITERATIONS  # beta is not adapted


@pytest.mark.slow
@pytest.mark.parametrize("script", list(TINY))
def test_objectives_change_the_update(tmp_path, script):
    """Same seed, epsilon 0.01 (so that clipping bites in these tiny runs): kl-fixed with beta 0 is the unclipped
    surrogate exactly; beta 10 and clipping each make another run."""
    common = ("--seed", "3", "--clip-coef", "0.01")
    none = run(script, tmp_path, "none", *common, "--policy-objective", "none")
    zero = run(script, tmp_path, "zero", *common, "--policy-objective", "kl-fixed", "--kl-beta", "0")
    ten = run(script, tmp_path, "ten", *common, "--policy-objective", "kl-fixed", "--kl-beta", "10")
    clip = run(script, tmp_path, "clip", *common, "--policy-objective", "clip")
    for scalars in (none, zero):
        scalars.pop("charts/SPS")
    assert values(zero, "charts/kl_beta") == [0.0] * ITERATIONS and values(ten, "charts/kl_beta") == [10.0] * ITERATIONS
    assert zero.pop("charts/kl_beta") != none.pop("charts/kl_beta")
    assert zero == none
    assert values(ten, "losses/policy_loss") != values(none, "losses/policy_loss")
    assert values(clip, "losses/policy_loss") != values(none, "losses/policy_loss")
    assert max(values(none, "losses/clipfrac")) > 0  # ratios did leave [0.99, 1.01]: clipping had something to do
    for scalars in (none, ten, clip):
        assert values(scalars, "charts/clip_coef") == pytest.approx([0.01] * ITERATIONS)


@pytest.mark.slow
def test_atari_kl_adaptive(tmp_path):
    """One Atari run (the slowest script): the penalty, the exact KL of its categorical policy and the beta rule."""
    args = (
        "--total-timesteps",
        "256",
        "--num-envs",
        "2",
        "--num-steps",
        "64",
        "--torch-threads",
        "1",
        "--progress-interval",
        "0",
    )
    result = run_script(
        "ppo_atari.py", *args, "--policy-objective", "kl-adaptive", "--output-dir", str(tmp_path), "--run-name", "run"
    )
    assert result.returncode == 0, result.stderr
    scalars = read_scalars(tmp_path / "run")
    for key in EXPECTED_KEYS[2:]:  # every key but the episode ones: 256 steps may end no game
        assert key in scalars and all(math.isfinite(value) for _, value in scalars[key]), key
    betas, kls = values(scalars, "charts/kl_beta"), values(scalars, "losses/exact_kl")
    assert len(betas) == 2 and max(kls) > 0
    assert follows_rule(ppo_atari.update_kl_beta, betas, kls, 1.0, 0.01) and betas[0] != 1.0
