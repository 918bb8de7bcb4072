"""ppo_discrete.py: numerics against independent computations, and end-to-end runs read back."""

import math

import numpy as np
import pytest
import torch

import ppo_discrete
from tests.conftest import ARGUMENT_CHECKS, EXPECTED_KEYS, assert_usage_error, read_scalars, run_script
from tests.probe_envs import expected_values

SCRIPT = "ppo_discrete.py"
TINY = ("--total-timesteps", "1024", "--num-envs", "2", "--num-steps", "64", "--progress-interval", "0")
SAVED = ("--save-model", "--eval-episodes", "3")


# ---------------------------------------------------------------- numerics


def brute_force_gae(rewards, values, terminated, truncated, final_values, next_value, gamma, lam):
    """A_t as the explicit sum over l of (gamma*lam)^l delta_{t+l}, stopping at the end of t's episode."""
    num_steps, num_envs = rewards.shape
    advantages = np.zeros((num_steps, num_envs))
    for env in range(num_envs):
        deltas = []
        for t in range(num_steps):
            if terminated[t, env]:
                value_after = 0.0
            elif truncated[t, env]:
                value_after = final_values[t, env]
            else:
                value_after = next_value[env] if t == num_steps - 1 else values[t + 1, env]
            deltas.append(rewards[t, env] + gamma * value_after - values[t, env])
        for t in range(num_steps):
            total, weight = 0.0, 1.0
            for k in range(t, num_steps):
                total += weight * deltas[k]
                if terminated[k, env] or truncated[k, env]:
                    break
                weight *= gamma * lam
            advantages[t, env] = total
    return advantages


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_brute_force_sum(seed):
    rng = np.random.default_rng(seed)
    num_steps, num_envs, gamma, lam = 50, 3, 0.97, 0.9
    rewards = rng.normal(size=(num_steps, num_envs))
    values = rng.normal(size=(num_steps, num_envs))
    ends = rng.random((num_steps, num_envs))
    terminated = ends < 0.1
    truncated = (ends >= 0.1) & (ends < 0.2)
    final_values = np.where(truncated, rng.normal(size=(num_steps, num_envs)), 0.0)
    next_value = rng.normal(size=num_envs)
    assert terminated.any() and truncated.any()

    def as_tensor(array):
        return torch.as_tensor(array, dtype=torch.float64)

    advantages, returns = ppo_discrete.compute_gae(
        as_tensor(rewards),
        as_tensor(values),
        torch.as_tensor(terminated | truncated),
        as_tensor(final_values),
        as_tensor(next_value),
        gamma,
        lam,
    )
    expected = brute_force_gae(rewards, values, terminated, truncated, final_values, next_value, gamma, lam)
    np.testing.assert_allclose(advantages.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(returns.numpy(), expected + values, rtol=1e-10, atol=1e-10)


def test_gae_lambda_one_is_the_discounted_return():
    # One episode of 4 steps truncated at the end: with lambda = 1 the return is the discounted sum
    # of rewards plus the discounted bootstrap value, whatever the intermediate values are.
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    values = torch.tensor([[0.5], [-1.0], [2.0], [7.0]], dtype=torch.float64)
    dones = torch.tensor([[False], [False], [False], [True]])
    final_values = torch.tensor([[0.0], [0.0], [0.0], [10.0]], dtype=torch.float64)
    _, returns = ppo_discrete.compute_gae(
        rewards, values, dones, final_values, torch.tensor([99.0], dtype=torch.float64), 0.9, 1.0
    )
    expected = 1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 4 + 0.6561 * 10
    assert returns[0, 0].item() == pytest.approx(expected)


def piecewise_clipped_objective(ratio: float, advantage: float, eps: float):
    """L^CLIP for one sample and its derivative in the ratio, case by case (PPO paper, Figure 1)."""
    if advantage > 0 and ratio > 1 + eps:
        return (1 + eps) * advantage, 0.0
    if advantage < 0 and ratio < 1 - eps:
        return (1 - eps) * advantage, 0.0
    return ratio * advantage, advantage


@pytest.mark.parametrize("advantage", [2.0, -1.5])
@pytest.mark.parametrize("ratio", [0.5, 0.79, 0.95, 1.0, 1.1, 1.21, 1.8])
def test_clipped_objective_and_gradient_piecewise(ratio, advantage):
    eps = 0.2
    ratio_t = torch.tensor([ratio], requires_grad=True)
    loss = ppo_discrete.clipped_surrogate_loss(ratio_t, torch.tensor([advantage]), eps)
    loss.backward()
    objective, derivative = piecewise_clipped_objective(ratio, advantage, eps)
    assert loss.item() == pytest.approx(-objective)
    assert ratio_t.grad.item() == pytest.approx(-derivative)


def test_clipped_objective_is_a_mean_over_samples():
    rng = np.random.default_rng(0)
    ratios, advantages = rng.uniform(0.5, 1.5, size=64), rng.normal(size=64)
    loss = ppo_discrete.clipped_surrogate_loss(torch.tensor(ratios), torch.tensor(advantages), 0.2)
    expected = -np.mean([piecewise_clipped_objective(r, a, 0.2)[0] for r, a in zip(ratios, advantages)])
    assert loss.item() == pytest.approx(expected)


def test_value_loss_clipping():
    returns, old = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 0.0])
    new = torch.tensor([0.1, 0.5, -0.5])
    # clipped predictions: 0.1, 0.2, -0.2 -> squared errors max((new-R)^2, (clipped-R)^2)
    expected = 0.5 * np.mean([max(0.81, 0.81), max(0.25, 0.64), max(2.25, 1.44)])
    assert ppo_discrete.value_loss(new, old, returns, 0.2, True).item() == pytest.approx(expected)
    assert ppo_discrete.value_loss(new, old, returns, 0.2, False).item() == pytest.approx(
        0.5 * np.mean([0.81, 0.25, 2.25])
    )


def test_kl_estimators_against_exact_categorical_kl():
    torch.manual_seed(0)
    old_logits, new_logits = torch.randn(5), torch.randn(5) * 0.5
    old, new = torch.distributions.Categorical(logits=old_logits), torch.distributions.Categorical(logits=new_logits)
    exact = torch.distributions.kl_divergence(old, new).item()
    closed_form = (old.probs * (old.probs.log() - new.probs.log())).sum().item()
    assert exact == pytest.approx(closed_form)
    actions = old.sample((200_000,))
    logratio = new.log_prob(actions) - old.log_prob(actions)
    k1, k3 = ppo_discrete.kl_estimators(logratio)
    assert k1.item() == pytest.approx(exact, rel=0.05)
    assert k3.item() == pytest.approx(exact, rel=0.05)
    assert (((logratio.exp() - 1) - logratio) >= 0).all()  # k3 is non-negative sample by sample


def test_agent_distribution_matches_torch_categorical():
    torch.manual_seed(0)
    agent = ppo_discrete.Agent(obs_dim=3, num_actions=4)
    with torch.no_grad():  # a sharper policy than the near-uniform initial one
        agent.actor[-1].weight.mul_(300.0)
    obs = torch.randn(6, 3)
    reference = torch.distributions.Categorical(logits=agent.actor(obs))
    actions = torch.randint(0, 4, (6,))
    _, logprob, entropy, value, dist = agent.get_action_and_value(obs, actions)
    torch.testing.assert_close(dist, reference.logits)  # the whole distribution, as normalized log-probabilities
    torch.testing.assert_close(logprob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    torch.testing.assert_close(value, agent.critic(obs).squeeze(-1))
    greedy, _, _, _, _ = agent.get_action_and_value(obs, deterministic=True)
    torch.testing.assert_close(greedy, reference.probs.argmax(-1))


def test_sampled_actions_follow_the_policy():
    torch.manual_seed(0)
    agent = ppo_discrete.Agent(obs_dim=2, num_actions=3)
    with torch.no_grad():
        agent.actor[-1].weight.mul_(200.0)
    obs = torch.tensor([[0.3, -0.7]]).expand(100_000, 2)
    actions, logprobs, _, _, _ = agent.get_action_and_value(obs)
    probs = torch.softmax(agent.actor(obs[:1]), -1)[0]
    frequencies = torch.bincount(actions, minlength=3).double() / len(actions)
    assert probs.min() > 0.05  # all three actions matter
    torch.testing.assert_close(frequencies, probs.double(), atol=0.006, rtol=0)
    torch.testing.assert_close(logprobs, probs.log()[actions])


def test_explained_variance():
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert ppo_discrete.explained_variance(targets, targets) == pytest.approx(1.0)
    assert ppo_discrete.explained_variance(torch.full((4,), 2.5), targets) == pytest.approx(0.0)
    assert math.isnan(ppo_discrete.explained_variance(targets, torch.ones(4)))


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("env_name, terminate", [("LoopTruncated-v0", False), ("LoopTerminated-v0", True)])
def test_truncation_bootstraps_from_the_final_observation(tmp_path, env_name, terminate):
    """Trains on a probe env whose critic fixed point differs between truncation handled right,
    truncation treated as termination, and a reset step stored as a fake transition."""
    gamma, lam = 0.5, 0.95
    result = run_script(
        SCRIPT,
        "--env-id",
        f"tests.probe_envs:{env_name}",
        "--gamma",
        str(gamma),
        "--gae-lambda",
        str(lam),
        "--total-timesteps",
        "16384",
        "--num-steps",
        "32",
        "--learning-rate",
        "3e-3",
        "--save-model",
        "--eval-episodes",
        "1",
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "probe",
    )
    assert result.returncode == 0, result.stderr
    payload = ppo_discrete.load_checkpoint(str(tmp_path / "probe"), "model.pt")
    agent = ppo_discrete.Agent(2, 2)
    agent.load_state_dict(payload["model"])
    value_s0, value_s1 = agent.get_value(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).tolist()
    expected_s0, expected_s1 = expected_values(gamma, lam, terminate)
    assert value_s0 == pytest.approx(expected_s0, abs=0.03)
    assert value_s1 == pytest.approx(expected_s1, abs=0.03)
    if not terminate:  # far from what treating the truncation as a termination gives
        wrong_s0, wrong_s1 = expected_values(gamma, lam, True)
        assert abs(value_s0 - wrong_s0) > 0.3 and abs(value_s1 - wrong_s1) > 0.2


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The TINY runs that the checks below read: a and b, one run made twice (the default seed, saving and
    evaluating its model: --save-model), and c, with another seed."""
    out, results = tmp_path_factory.mktemp("tiny"), {}
    for name, extra in (("a", SAVED), ("b", SAVED), ("c", ("--seed", "8"))):
        results[name] = run_script(SCRIPT, *TINY, *extra, "--output-dir", str(out), "--run-name", name)
        assert results[name].returncode == 0, results[name].stderr
    return out, results


def test_tensorboard_events_hold_every_key(tiny_runs):
    out, results = tiny_runs
    assert "done:" in results["a"].stdout and "SPS" in results["a"].stdout
    scalars = read_scalars(out / "a")
    for key in EXPECTED_KEYS:
        assert key in scalars, key
        assert all(math.isfinite(value) for _, value in scalars[key]), key
    iteration_steps = [step for step, _ in scalars["losses/policy_loss"]]
    assert iteration_steps == [128 * i for i in range(1, 9)]  # one point per iteration, against global_step
    # the default objective, clip: epsilon and beta stay at their arguments' values
    assert [value for _, value in scalars["charts/clip_coef"]] == pytest.approx([0.2] * 8)
    assert [value for _, value in scalars["charts/kl_beta"]] == [1.0] * 8
    assert (
        all(value >= 0 for _, value in scalars["losses/exact_kl"])
        and max(value for _, value in scalars["losses/exact_kl"]) > 0
    )
    learning_rates = [value for _, value in scalars["charts/learning_rate"]]
    assert learning_rates[0] == pytest.approx(2.5e-4) and learning_rates == sorted(learning_rates, reverse=True)
    assert learning_rates[-1] == pytest.approx(2.5e-4 / 8)  # linear annealing: the last update uses 1/N of it
    assert all(value >= 0 for _, value in scalars["losses/clipfrac"]) and all(
        value > 0 for _, value in scalars["losses/entropy"]
    )
    returns = [value for _, value in scalars["charts/episodic_return"]]
    lengths = [value for _, value in scalars["charts/episodic_length"]]
    assert len(returns) >= 10 and returns == lengths  # CartPole: +1 per step


def test_same_seed_same_run(tiny_runs):
    out, _ = tiny_runs
    first, second = read_scalars(out / "a"), read_scalars(out / "b")
    first.pop("charts/SPS"), second.pop("charts/SPS")
    assert first == second  # the evaluation's returns included
    assert read_scalars(out / "c")["losses/value_loss"] != first["losses/value_loss"]


BAD_INPUTS = ARGUMENT_CHECKS + [
    (("--env-id", "NoSuchEnv-v0"), "unknown env id"),
    (("--env-id", "Pendulum-v1"), "ppo_continuous.py"),
    (("--env-id", "ALE/Breakout-v5"), "ppo_atari.py"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = run_script(SCRIPT, *args, "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert_usage_error(result, "ppo_discrete.py", message)
    assert not (tmp_path / "out").exists()  # rejected before anything was written


def test_existing_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    result = run_script(SCRIPT, *TINY, "--output-dir", str(tmp_path), "--run-name", "run")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "run" / "keep.txt").read_text() == "precious"


def test_save_evaluate_and_foreign_checkpoints(tiny_runs, tmp_path):
    out, results = tiny_runs
    model = out / "a" / "model.pt"
    assert model.is_file() and "evaluation: mean return" in results["a"].stdout
    assert len(read_scalars(out / "a")["eval/episodic_return"]) == 3

    evaluation = run_script(SCRIPT, "--eval-checkpoint", str(model), "--eval-episodes", "4", "--eval-deterministic")
    assert evaluation.returncode == 0, evaluation.stderr
    assert "mean return" in evaluation.stdout and "over 4 episodes" in evaluation.stdout
    loaded = ppo_discrete.load_checkpoint(str(model), "model.pt")
    sampled = []
    for other_seed in (1, 2):  # whatever the process's random state, sampled actions repeat with the evaluation seed
        torch.manual_seed(other_seed)
        sampled.append(ppo_discrete.evaluate(loaded, 6, False, 7, torch.device("cpu")))
    assert sampled[0] == sampled[1] and len(set(sampled[0])) > 1  # six episodes, not all of one length

    payload = torch.load(model, weights_only=True)
    payload["script"] = "ppo_continuous"
    torch.save(payload, tmp_path / "foreign.pt")
    (tmp_path / "corrupt.pt").write_bytes(model.read_bytes()[:200])
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    for path, message in (
        ("foreign.pt", "written by ppo_continuous.py"),
        ("corrupt.pt", "cannot read checkpoint"),
        ("other.pt", "not a checkpoint of this project"),
    ):
        bad = run_script(SCRIPT, "--eval-checkpoint", str(tmp_path / path))
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.slow
def test_wandb_offline_and_video(tmp_path):
    result = run_script(
        SCRIPT, *TINY, "--track", "--capture-video", "--output-dir", str(tmp_path), "--run-name", "run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    offline_runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))
    videos = list((tmp_path / "videos" / "run").glob("*.mp4"))
    assert videos and all(video.stat().st_size > 1000 for video in videos)


@pytest.mark.slow
def test_cartpole_learns(tmp_path):
    """A fixed seed and budget: random play scores about 22, a learned policy several hundred."""
    result = run_script(
        SCRIPT, "--seed", "1", "--total-timesteps", "100000", "--output-dir", str(tmp_path), "--run-name", "run"
    )
    assert result.returncode == 0, result.stderr
    returns = [value for _, value in read_scalars(tmp_path / "run")["charts/episodic_return"]]
    assert np.mean(returns[-20:]) >= 150
