"""ppo_continuous.py: numerics against independent computations, and end-to-end runs read back.

The algorithm blocks shared with ppo_discrete.py (GAE, clipped objective, value loss, KL estimators) are
tested in test_ppo_discrete.py and kept identical by test_shared_blocks.py; this file tests what
continuous control changes: the Gaussian policy, action clipping, observation normalization, reward
scaling, and normalization statistics saved with the agent.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import ppo_continuous
from tests.conftest import ARGUMENT_CHECKS, EXPECTED_KEYS, assert_usage_error, read_scalars, run_script
from tests.probe_envs import expected_values

SCRIPT = "ppo_continuous.py"
TINY = (
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
)
SAVED = ("--save-model", "--eval-episodes", "2")


# ---------------------------------------------------------------- numerics


def sharp_agent(obs_dim: int, action_dim: int, seed: int = 0) -> ppo_continuous.Agent:
    """An agent whose mean depends visibly on the observation and whose stds differ per dimension."""
    torch.manual_seed(seed)
    agent = ppo_continuous.Agent(obs_dim, action_dim)
    with torch.no_grad():
        agent.actor[-1].weight.mul_(100.0)
        agent.actor_logstd.copy_(torch.linspace(-1.0, 0.5, action_dim))
    return agent


def test_gaussian_logprob_and_entropy_match_torch_normal():
    agent = sharp_agent(obs_dim=4, action_dim=3)
    obs, actions = torch.randn(8, 4), torch.randn(8, 3) * 2
    reference = torch.distributions.Normal(agent.actor(obs), agent.actor_logstd.exp())  # independent dimensions
    _, logprob, entropy, value, dist = agent.get_action_and_value(obs, actions)
    torch.testing.assert_close(dist[:, 0], reference.mean)  # the whole distribution: mean and log std, stacked
    torch.testing.assert_close(dist[:, 1], reference.scale.log().expand(8, 3))
    torch.testing.assert_close(logprob, reference.log_prob(actions).sum(-1))  # summed over action dimensions
    torch.testing.assert_close(entropy, reference.entropy().sum(-1))
    closed_form = (
        (0.5 * math.log(2 * math.pi * math.e) + agent.actor_logstd).sum().expand(8)
    )  # sum of log(sigma sqrt(2 pi e))
    torch.testing.assert_close(entropy, closed_form)
    torch.testing.assert_close(value, agent.critic(obs).squeeze(-1))
    mean_action, _, _, _, _ = agent.get_action_and_value(obs, deterministic=True)
    torch.testing.assert_close(mean_action, agent.actor(obs))
    assert agent.actor_logstd.shape == (3,)


def test_initial_policy_is_a_unit_gaussian_near_zero():
    torch.manual_seed(0)
    agent = ppo_continuous.Agent(5, 2)
    assert torch.equal(agent.actor_logstd.detach(), torch.zeros(2))  # sigma = 1
    assert agent.actor(torch.randn(100, 5)).abs().max() < 0.1  # mean head gain 0.01


def test_sampled_actions_follow_the_policy():
    agent = sharp_agent(obs_dim=2, action_dim=3)
    obs = torch.tensor([[0.3, -0.7]]).expand(200_000, 2)
    with torch.inference_mode():
        actions, logprobs, _, _, _ = agent.get_action_and_value(obs)
    mean, std = agent.actor(obs[:1])[0].detach(), agent.actor_logstd.exp().detach()
    assert mean.abs().max() > 0.3  # the mean is not trivially 0
    torch.testing.assert_close(actions.mean(0), mean, atol=4 * std.max().item() / math.sqrt(200_000), rtol=0)
    torch.testing.assert_close(actions.std(0), std, atol=0.01, rtol=0)
    assert abs(np.corrcoef(actions[:, 0], actions[:, 2])[0, 1]) < 0.01  # independent dimensions
    reference = torch.distributions.Normal(mean, std).log_prob(actions).sum(-1)
    torch.testing.assert_close(logprobs, reference)


def test_running_mean_std_matches_numpy_on_the_concatenated_data():
    rng = np.random.default_rng(0)
    rms = ppo_continuous.RunningMeanStd((3,))
    np.testing.assert_allclose(
        rms.normalize(np.array([[1.0, -2.0, 3.0]]), 10.0), [[1.0, -2.0, 3.0]]
    )  # identity before any data
    batches = [rng.normal(5.0, 3.0, size=(size, 3)) * [1, 10, 0.1] for size in (1, 1, 7, 64, 1, 300, 2)]
    for batch in batches:
        rms.update(batch)
    data = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-10)
    assert rms.count == len(data)
    x = rng.normal(size=(4, 3)) * 100
    np.testing.assert_allclose(
        rms.normalize(x, 10.0), np.clip((x - data.mean(0)) / np.sqrt(data.var(0) + 1e-8), -10, 10)
    )
    state = rms.state_dict()  # as a checkpoint holds it: tensors, not numpy arrays
    assert all(torch.is_tensor(state[name]) for name in ("mean", "var")) and state["count"] == rms.count
    restored = ppo_continuous.RunningMeanStd((3,))
    restored.load_state_dict(state)
    assert (
        np.array_equal(restored.mean, rms.mean)
        and np.array_equal(restored.var, rms.var)
        and restored.count == rms.count
    )


def test_reward_scaling_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    num_steps, num_envs, gamma, clip = 40, 3, 0.9, 3.0
    rewards = rng.normal(-2.0, 3.0, size=(num_steps, num_envs))
    rewards[5, 1] = -5000.0  # one huge reward: about -sqrt(18) std once it is in the statistics, so clipped
    dones = rng.random((num_steps, num_envs)) < 0.15
    scaler = ppo_continuous.RewardScaler((num_envs,), gamma, clip)
    scaled = np.stack([scaler(rewards[t], dones[t]) for t in range(num_steps)])

    # Directly: each env's discounted return within its episode, its variance over all envs and steps so far
    discounted = np.zeros((num_steps, num_envs))
    for env in range(num_envs):
        running = 0.0
        for t in range(num_steps):
            running = gamma * running + rewards[t, env]
            discounted[t, env] = running
            if dones[t, env]:
                running = 0.0
    expected = np.stack([rewards[t] / np.sqrt(discounted[: t + 1].var() + 1e-8) for t in range(num_steps)])
    expected = np.clip(expected, -clip, clip)
    np.testing.assert_allclose(scaled, expected, rtol=1e-9)
    assert scaled[5, 1] == -clip
    assert np.array_equal(np.sign(scaled), np.sign(rewards))  # scaled, not centred


# ---------------------------------------------------------------- in-process runs


class RecordingEnv(gym.Env):
    """Narrow action bounds, so a unit Gaussian's samples mostly fall outside them. Records the actions it
    receives and the observations the agent gets to see (not the final observation of an episode, which
    goes to infos["final_obs"] under SAME_STEP autoreset)."""

    received: list = []
    shown: list = []

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.action_space = gym.spaces.Box(
            np.array([-0.1, -0.2], dtype=np.float32), np.array([0.1, 0.3], dtype=np.float32)
        )
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        obs = self.np_random.normal(50.0, 4.0, size=3).astype(np.float32)
        RecordingEnv.shown.append(obs)
        return obs, {}

    def step(self, action):
        RecordingEnv.received.append(np.array(action, dtype=np.float64))
        self.t += 1
        obs = self.np_random.normal(50.0, 4.0, size=3).astype(np.float32)
        if self.t < 16:
            RecordingEnv.shown.append(obs)
        return obs, float(action[0]), False, self.t >= 16, {}


gym.register("RecordingBox-v0", entry_point=RecordingEnv)


@pytest.mark.parametrize("normalize", [True, False])
def test_env_gets_clipped_actions_and_the_update_scores_the_samples(tmp_path, monkeypatch, normalize):
    """The env receives clip(sample, low, high); the buffer holds the unclipped sample, and with one
    epoch of one minibatch the ratio is exactly 1 (observations were stored as the policy saw them)."""
    sampled, scored_after_rollout, scored = [], [], []
    original_sample, original_score = ppo_continuous.Agent.sample_action, ppo_continuous.Agent.get_action

    def recording_sample(self, x, deterministic=False):  # the rollout samples with it, step by step
        action = original_sample(self, x, deterministic)
        sampled.append(action.detach().clone())
        return action

    def recording_score(self, x, action=None, deterministic=False):  # all of a rollout after it, then each minibatch
        result = original_score(self, x, action, deterministic)
        (scored_after_rollout if result[0].dim() == 3 else scored).append(result[0].detach().clone())
        return result

    monkeypatch.setattr(ppo_continuous.Agent, "sample_action", recording_sample)
    monkeypatch.setattr(ppo_continuous.Agent, "get_action", recording_score)
    RecordingEnv.received, RecordingEnv.shown = [], []
    args = ppo_continuous.Args(
        env_id="RecordingBox-v0",
        total_timesteps=256,
        num_envs=1,
        num_steps=128,
        num_minibatches=1,
        update_epochs=1,
        norm_obs=normalize,
        norm_reward=normalize,
        save_model=True,
        eval_episodes=1,
        output_dir=str(tmp_path),
        run_name="run",
        progress_interval=0,
    )
    ppo_continuous.main(args)

    training_samples = torch.cat(sampled[:256]).double().numpy()  # later samples are the evaluation's
    received = np.stack(RecordingEnv.received[:256])
    low, high = np.array([-0.1, -0.2]), np.array([0.1, 0.3])
    assert ((training_samples < low) | (training_samples > high)).mean() > 0.5  # most samples are out of bounds
    np.testing.assert_allclose(received, np.clip(training_samples, low, high), rtol=1e-6)
    assert len(scored_after_rollout) == 2  # one pass over each rollout: (num_steps, num_envs, action_dim)
    np.testing.assert_array_equal(torch.cat(scored_after_rollout).reshape(256, 2).double().numpy(), training_samples)
    scored_actions = torch.cat(scored).double().numpy()  # 2 updates x 1 minibatch of 128, shuffled
    for iteration in range(2):
        batch = training_samples[128 * iteration : 128 * (iteration + 1)]
        update = scored_actions[128 * iteration : 128 * (iteration + 1)]
        np.testing.assert_array_equal(
            np.sort(update, axis=0), np.sort(batch, axis=0).astype(np.float32).astype(np.float64)
        )
    scalars = read_scalars(tmp_path / "run")
    assert [value for _, value in scalars["losses/approx_kl"]] == [0.0, 0.0]
    assert [value for _, value in scalars["losses/clipfrac"]] == [0.0, 0.0]
    assert [value for _, value in scalars["losses/exact_kl"]] == [0.0, 0.0]  # against the stored mean and log std

    payload = ppo_continuous.load_checkpoint(str(tmp_path / "run"), "model.pt")
    if normalize:
        obs_rms = payload["obs_rms"]
        shown = np.stack(RecordingEnv.shown[:257]).astype(np.float64)  # the first reset, then one per step
        assert obs_rms["count"] == 257
        np.testing.assert_allclose(obs_rms["mean"].numpy(), shown.mean(0), rtol=1e-10)  # final observations left out
        np.testing.assert_allclose(obs_rms["var"].numpy(), shown.var(0), rtol=1e-8)
    else:
        assert payload["obs_rms"] is None


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_name, terminate", [("LoopTruncatedContinuous-v0", False), ("LoopTerminatedContinuous-v0", True)]
)
def test_truncation_bootstraps_from_the_normalized_final_observation(tmp_path, env_name, terminate):
    """The probe env's observations lie at 20..25, far from what the critic was trained on once normalized:
    the bootstrap value of a truncated episode is right only if its final observation is normalized too."""
    gamma, lam = 0.5, 0.95
    result = run_script(
        SCRIPT,
        "--env-id",
        f"tests.probe_envs:{env_name}",
        "--gamma",
        str(gamma),
        "--gae-lambda",
        str(lam),
        "--norm-obs",
        "--no-norm-reward",
        "--total-timesteps",
        "8192",
        "--num-envs",
        "4",
        "--num-steps",
        "32",
        "--num-minibatches",
        "4",
        "--update-epochs",
        "4",
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
    payload = ppo_continuous.load_checkpoint(str(tmp_path / "probe"), "model.pt")
    agent = ppo_continuous.Agent(2, 1)
    agent.load_state_dict(payload["model"])
    obs_rms = ppo_continuous.RunningMeanStd((2,))
    obs_rms.load_state_dict(payload["obs_rms"])
    raw = np.array([[25.0, 20.0], [20.0, 25.0]])  # s0 and s1 as the env shows them
    value_s0, value_s1 = agent.get_value(torch.as_tensor(obs_rms.normalize(raw, 10.0), dtype=torch.float32)).tolist()
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
    assert learning_rates[0] == pytest.approx(3e-4) and learning_rates[-1] == pytest.approx(3e-4 / 8)
    # Entropy of the initial unit Gaussian in Pendulum's one action dimension, log(sqrt(2 pi e)) = 1.419
    assert scalars["losses/entropy"][0][1] == pytest.approx(0.5 * math.log(2 * math.pi * math.e), abs=0.01)
    returns = [value for _, value in scalars["charts/episodic_return"]]
    lengths = [value for _, value in scalars["charts/episodic_length"]]
    assert len(returns) == 4 and lengths == [200] * 4  # Pendulum: truncated at 200 steps
    assert all(-2000 < value < 0 for value in returns)  # raw returns, not scaled ones


def test_same_seed_same_run(tiny_runs):
    out, _ = tiny_runs
    first, second = read_scalars(out / "a"), read_scalars(out / "b")
    first.pop("charts/SPS"), second.pop("charts/SPS")
    assert first == second  # the evaluation's returns included
    assert read_scalars(out / "c")["losses/value_loss"] != first["losses/value_loss"]


BAD_INPUTS = ARGUMENT_CHECKS + [
    (("--env-id", "NoSuchEnv-v0"), "unknown env id"),
    (("--env-id", "CartPole-v1"), "ppo_discrete.py"),
    (("--env-id", "ALE/Breakout-v5"), "ppo_atari.py"),
    (("--env-id", "BreakoutNoFrameskip-v4"), "ppo_atari.py"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = run_script(SCRIPT, *args, "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert_usage_error(result, "ppo_continuous.py", message)
    assert not (tmp_path / "out").exists()  # rejected before anything was written


def test_existing_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    result = run_script(SCRIPT, *TINY, "--output-dir", str(tmp_path), "--run-name", "run")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "run" / "keep.txt").read_text() == "precious"


def test_save_and_evaluate_with_the_frozen_normalization_statistics(tiny_runs, tmp_path):
    out, results = tiny_runs
    model = out / "a" / "model.pt"
    assert model.is_file() and "evaluation: mean return" in results["a"].stdout
    assert len(read_scalars(out / "a")["eval/episodic_return"]) == 2

    payload = ppo_continuous.load_checkpoint(str(model), "model.pt")
    saved = {key: value.clone() if torch.is_tensor(value) else value for key, value in payload["obs_rms"].items()}
    assert saved["count"] == 2 * (1 + 1024 // 2)  # updated on every observation of both envs, resets included
    assert abs(saved["mean"][2].item()) < 3 and saved["var"][2].item() > 0.5  # Pendulum's angular velocity
    with torch.no_grad():  # make the mean action depend strongly on the (normalized) observation
        payload["model"]["actor.4.weight"].mul_(300.0)

    returns = ppo_continuous.evaluate(payload, 2, True, 123, torch.device("cpu"))
    assert ppo_continuous.evaluate(payload, 2, True, 123, torch.device("cpu")) == returns  # frozen: evaluation repeats
    sampled = []
    for other_seed in (1, 2):  # whatever the process's random state, sampled actions repeat with the evaluation seed
        torch.manual_seed(other_seed)
        sampled.append(ppo_continuous.evaluate(payload, 2, False, 123, torch.device("cpu")))
    assert sampled[0] == sampled[1] != returns  # and they are sampled: not the greedy returns
    for key, value in saved.items():  # evaluation neither updates nor replaces the saved statistics
        assert (
            torch.equal(payload["obs_rms"][key], value) if torch.is_tensor(value) else payload["obs_rms"][key] == value
        )
    fresh = dict(payload, obs_rms=ppo_continuous.RunningMeanStd((3,)).state_dict())
    assert ppo_continuous.evaluate(fresh, 2, True, 123, torch.device("cpu")) != returns  # the statistics are used

    evaluation = run_script(SCRIPT, "--eval-checkpoint", str(model), "--eval-episodes", "2", "--eval-deterministic")
    assert evaluation.returncode == 0, evaluation.stderr
    assert "mean return" in evaluation.stdout and "over 2 episodes" in evaluation.stdout

    payload = torch.load(model, weights_only=True)
    payload["script"] = "ppo_discrete"
    torch.save(payload, tmp_path / "foreign.pt")
    bad = run_script(SCRIPT, "--eval-checkpoint", str(tmp_path / "foreign.pt"))
    assert (
        bad.returncode == 2 and "written by ppo_discrete.py" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    ), bad.stderr


@pytest.mark.slow
def test_wandb_offline_and_pendulum_video(tmp_path):
    result = run_script(
        SCRIPT, *TINY, "--track", "--capture-video", "--output-dir", str(tmp_path), "--run-name", "run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    offline_runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))
    videos = list((tmp_path / "videos" / "run").glob("*.mp4"))
    assert videos and all(video.stat().st_size > 1000 for video in videos)


@pytest.mark.slow
def test_mujoco_runs_and_records_video_headless(tmp_path):
    """MuJoCo v5 through gymnasium, rendered off-screen with MUJOCO_GL=egl (set by run_script)."""
    result = run_script(
        SCRIPT,
        "--env-id",
        "Reacher-v5",
        "--total-timesteps",
        "256",
        "--num-steps",
        "128",
        "--num-minibatches",
        "4",
        "--capture-video",
        "--save-model",
        "--eval-episodes",
        "1",
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lengths = [value for _, value in read_scalars(tmp_path / "run")["charts/episodic_length"]]
    assert lengths == [50] * 5  # Reacher: truncated at 50 steps
    videos = list((tmp_path / "videos" / "run").glob("*.mp4"))
    assert videos and all(video.stat().st_size > 1000 for video in videos)


@pytest.mark.slow
def test_pendulum_learns(tmp_path):
    """A fixed seed and budget: random play scores about -1200 to -1500 on Pendulum-v1. 30 iterations of the
    default batch of 2048 steps, collected by 4 envs (cheaper per step than 1), without learning-rate
    annealing so that the short run learns at the pace of a long one: the last 20 episodes score about -720."""
    result = run_script(
        SCRIPT,
        "--seed",
        "1",
        "--total-timesteps",
        "61440",
        "--num-envs",
        "4",
        "--num-steps",
        "512",
        "--no-anneal-lr",
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "run",
    )
    assert result.returncode == 0, result.stderr
    returns = [value for _, value in read_scalars(tmp_path / "run")["charts/episodic_return"]]
    assert np.mean(returns[:10]) < -1000
    assert np.mean(returns[-20:]) >= -900
