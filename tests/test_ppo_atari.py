"""ppo_atari.py: the Atari wrappers on real ALE games, the Nature CNN, and end-to-end runs read back."""

import dataclasses
import math
import os
import re

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch
from ale_py.env import AtariEnv

import ppo_atari
from tests.conftest import EXPECTED_KEYS, assert_usage_error, read_scalars, run_script

SCRIPT = "ppo_atari.py"
# 2 envs x 256 steps: each env plays at least one full game of Breakout (a random game lasts ~125-250 steps)
TINY = (
    "--total-timesteps",
    "512",
    "--num-envs",
    "2",
    "--num-steps",
    "64",
    "--torch-threads",
    "1",
    "--progress-interval",
    "0",
)
BREAKOUT, ASTERIX = "BreakoutNoFrameskip-v4", "AsterixNoFrameskip-v4"  # Asterix: 3 lives, no FIRE, raw rewards of 50


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """In-process network calls on one thread: on a busy 2-core machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(env_id: str) -> gym.Env:
    return ppo_atari.make_env(env_id, 0, False, "")()


@pytest.fixture
def raw_frame_rewards(monkeypatch):
    """Every emulator frame's raw reward, in order (the wrappers run with frameskip=1: one AtariEnv.step per frame)."""
    rewards = []
    original_step = AtariEnv.step

    def spy(self, action):
        result = original_step(self, action)
        rewards.append(float(result[1]))
        return result

    monkeypatch.setattr(AtariEnv, "step", spy)
    return rewards


# ---------------------------------------------------------------- wrappers on real games


def test_noop_reset_takes_1_to_30_random_noops():
    env = make(ASTERIX)  # no FIRE: every frame before the first observation is a no-op
    env.reset(seed=0)
    counts = []
    for _ in range(40):  # a reset that does not follow a lost life starts a new game
        env.reset()
        counts.append(env.unwrapped.ale.getEpisodeFrameNumber())
    env.close()
    assert min(counts) >= 1 and max(counts) <= 30, counts
    assert len(set(counts)) >= 12 and min(counts) <= 5 and max(counts) >= 25, counts  # drawn over the whole range


def test_frame_skip_4_max_pools_the_last_two_frames():
    env = make(BREAKOUT)
    obs, _ = env.reset(seed=3)
    for _ in range(5):  # the ball is in flight
        obs, *_ = env.step(2)
    state = env.unwrapped.clone_state(include_rng=True)
    frame_before = env.unwrapped.ale.getEpisodeFrameNumber()
    stacked, *_ = env.step(3)
    assert env.unwrapped.ale.getEpisodeFrameNumber() == frame_before + 4

    raw = gym.make(BREAKOUT, frameskip=1, obs_type="grayscale")  # step the same 4 frames ourselves
    raw.reset(seed=0)
    raw.unwrapped.restore_state(state)
    frames = [raw.step(3)[0] for _ in range(4)]
    raw.close()
    env.close()
    expected = cv2.resize(np.maximum(frames[2], frames[3]), (84, 84), interpolation=cv2.INTER_AREA)
    last_only = cv2.resize(frames[3], (84, 84), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(expected, last_only)  # the ball moved between frames 3 and 4: pooling shows
    np.testing.assert_array_equal(stacked[-1], expected)


def test_life_loss_ends_the_learning_episode_not_the_game(raw_frame_rewards):
    env = make(ASTERIX)
    ale = env.unwrapped.ale
    obs, _ = env.reset(seed=0)
    del raw_frame_rewards[:]  # no-op frames of the reset are not part of the game's score
    rng = np.random.default_rng(0)
    steps, life_losses, clipped_rewards, raw_step_rewards = 0, 0, [], []
    while True:
        frames_so_far = len(raw_frame_rewards)
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        steps += 1
        clipped_rewards.append(reward)
        raw_step_rewards.append(sum(raw_frame_rewards[frames_so_far:]))
        assert not truncated
        if "episode" in info:
            break
        if terminated:  # a lost life: the learning episode ends, the game goes on
            life_losses += 1
            lives, frame = ale.lives(), ale.getEpisodeFrameNumber()
            assert 0 < lives == 3 - life_losses and not ale.game_over()
            continued, _ = env.reset()
            np.testing.assert_array_equal(continued[-1], obs[-1])  # same screen, emulator untouched
            assert (ale.lives(), ale.getEpisodeFrameNumber()) == (lives, frame)
    env.close()
    assert terminated and life_losses == 2 and ale.game_over()
    assert info["episode"]["l"] == steps  # the statistics span all three lives
    assert info["episode"]["r"] == sum(raw_frame_rewards) > 0  # ... and hold the raw score
    # reward clipping: the agent gets the sign of each step's raw reward
    assert max(raw_step_rewards) > 1 and set(clipped_rewards) <= {-1.0, 0.0, 1.0}
    assert clipped_rewards == [float(np.sign(raw)) for raw in raw_step_rewards]


def test_fire_reset_launches_the_ball_every_life():
    env = make(BREAKOUT)
    env.reset(seed=0)
    life_losses = 0
    for steps in range(1, 1000):  # NOOP only: the ball falls past the still paddle once FIRE launched it
        _, _, terminated, _, info = env.step(0)
        if terminated:
            life_losses += 1
            if "episode" in info:
                break
            env.reset()
    env.close()
    assert life_losses == 5 and "episode" in info and steps < 200, (life_losses, steps)

    unfired = gym.wrappers.AtariPreprocessing(
        gym.make(BREAKOUT, frameskip=1, obs_type="grayscale"), noop_max=30, frame_skip=4
    )
    unfired.reset(seed=0)
    lives = unfired.unwrapped.ale.lives()
    for _ in range(300):  # control: without FIRE the ball never appears and no life is lost
        unfired.step(0)
    assert unfired.unwrapped.ale.lives() == lives == 5
    unfired.close()


def test_truncated_game_starts_a_new_game(monkeypatch):
    """The 108,000-frame cap, shortened to 160 frames: truncation is a game over for EpisodicLife."""
    make_env = gym.make
    monkeypatch.setattr(
        gym, "make", lambda env_id, **kwargs: make_env(env_id, max_num_frames_per_episode=160, **kwargs)
    )
    env = make(BREAKOUT)
    ale = env.unwrapped.ale
    env.reset(seed=0)
    steps = 0
    while True:
        _, _, terminated, truncated, info = env.step(0)
        steps += 1
        if truncated:
            break
        if terminated:
            env.reset()
    assert not terminated and 0 < ale.lives() < 5 and info["episode"]["l"] < 45
    env.reset()
    assert ale.lives() == 5 and ale.getEpisodeFrameNumber() <= 30 + 4  # a new game: no-ops and FIRE only
    env.close()


def test_observations_are_a_rolling_stack_of_four_uint8_frames():
    env = make(BREAKOUT)
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    first, _ = env.reset(seed=0)
    assert first.shape == (4, 84, 84) and first.dtype == np.uint8
    assert all(np.array_equal(first[i], first[3]) for i in range(3))  # a reset repeats its frame
    previous = first
    for _ in range(3):
        obs, *_ = env.step(3)
        np.testing.assert_array_equal(obs[:3], previous[1:])
        previous = obs
    assert not np.array_equal(obs[3], obs[2])
    env.close()


# ---------------------------------------------------------------- network


def test_nature_cnn_shapes_scaling_and_init():
    torch.manual_seed(0)
    agent = ppo_atari.Agent(num_actions=6)
    frames = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    action, logprob, entropy, value, dist = agent.get_action_and_value(frames)
    assert action.shape == logprob.shape == entropy.shape == value.shape == (5,) and dist.shape == (5, 6)
    assert action.dtype == torch.long and agent.hidden(frames).shape == (5, 512)
    torch.testing.assert_close(value, agent.get_value(frames))

    # the same function as a plain NCHW network on frames scaled to [0, 1]
    x = frames.float() / 255.0
    for layer in agent.network:
        x = layer(x.contiguous())
    torch.testing.assert_close(agent.hidden(frames), x)
    torch.testing.assert_close(value, agent.critic(x).squeeze(-1))
    log_probs = torch.log_softmax(agent.actor(x), -1)
    torch.testing.assert_close(dist, log_probs)
    torch.testing.assert_close(logprob, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(entropy, torch.distributions.Categorical(logits=agent.actor(x)).entropy())

    convs = [layer for layer in agent.network if isinstance(layer, torch.nn.Conv2d)]
    assert [tuple(conv.weight.shape) for conv in convs] == [(32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3)]
    assert [conv.stride for conv in convs] == [(4, 4), (2, 2), (1, 1)]
    for layer, gain in [
        *((conv, math.sqrt(2)) for conv in convs),
        (agent.network[-2], math.sqrt(2)),
        (agent.actor, 0.01),
        (agent.critic, 1.0),
    ]:
        weight = layer.weight.reshape(layer.weight.shape[0], -1)  # orthogonal rows with norm `gain`
        torch.testing.assert_close(
            weight @ weight.T, gain**2 * torch.eye(weight.shape[0]), atol=1e-5 * max(1.0, gain**2), rtol=0
        )
        assert (layer.bias == 0).all()


def breakout_frames(count: int) -> torch.Tensor:
    """`count` real stacked Breakout observations from random play, (count, 4, 84, 84) uint8."""
    env = make(BREAKOUT)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    frames = []
    for _ in range(count):
        frames.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return torch.as_tensor(np.stack(frames))


def test_bfloat16_trunk_agrees_with_float32():
    """--precision bfloat16 computes what float32 computes, to bf16 accuracy, on real frames: log-probs, values and
    the gradient of the PPO loss; and the rollout (batches of num_envs) and the update (minibatches) get the same
    log-probs from it, so the ratio of Eq. 6 starts at 1 up to rounding."""
    torch.manual_seed(0)
    agent32, agent16 = ppo_atari.Agent(num_actions=4), ppo_atari.Agent(num_actions=4, bf16=True)
    with torch.no_grad():
        agent32.actor.weight.mul_(100.0)  # a policy far from uniform, so that log-probs differ between actions
        agent32.critic.weight.mul_(10.0)
    agent16.load_state_dict(agent32.state_dict())
    frames, actions = breakout_frames(64), torch.arange(64) % 4
    advantages, returns = torch.randn(64, generator=torch.Generator().manual_seed(1)), torch.zeros(64)

    def loss_and_grad(agent, frames):
        _, logprob, entropy, value, _ = agent.get_action_and_value(frames, actions)
        agent.zero_grad()
        loss = (
            ppo_atari.clipped_surrogate_loss((logprob - logprob.detach()).exp(), advantages, 0.1)
            + 0.5 * ((value - returns) ** 2).mean()
            - 0.01 * entropy.mean()
        )
        loss.backward()
        return logprob.detach(), value.detach(), torch.cat([p.grad.flatten() for p in agent.parameters()])

    logprob32, value32, grad32 = loss_and_grad(agent32, frames)
    logprob16, value16, grad16 = loss_and_grad(agent16, frames)
    assert logprob16.dtype == value16.dtype == torch.float32  # the heads run in float32
    assert logprob32.std() > 0.1  # the comparison below is not between near-uniform policies
    assert (logprob16 - logprob32).abs().max() < 0.02  # measured 0.003
    assert (value16 - value32).abs().max() < 0.02 * value32.abs().max()
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.99  # measured 0.9993
    with torch.inference_mode():
        per_rollout_step = torch.cat(
            [agent16.get_action(frames[i : i + 8], actions[i : i + 8])[1] for i in range(0, 64, 8)]
        )
        per_minibatch = agent16.get_action(frames, actions)[1]
    assert (
        per_rollout_step - per_minibatch
    ).abs().max() < 1e-3  # ratio 1 +- 0.1% before the first step (measured 1e-6)


def test_rollout_copy_computes_the_same_bits():
    """for_rollout() under bf16 is a copy of the agent with its trunk cast to bfloat16: on real frames it samples the
    same actions (same noise) and returns the same log-probs, values and distributions, bit for bit, as the agent
    under autocast; an update of the agent reaches it through load_state_dict, still in bfloat16; float32 acts
    itself."""
    torch.manual_seed(0)
    agent = ppo_atari.Agent(num_actions=4, bf16=True)
    with torch.no_grad():
        agent.actor.weight.mul_(100.0)  # far from uniform, so that sampling depends on the log-probs
    ppo_atari.flatten_parameters(agent)  # as in main: the parameters are views of one flat tensor
    frames = breakout_frames(16)
    rollout_agent = agent.for_rollout()
    assert {p.dtype for p in rollout_agent.network.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in agent.parameters()} == {torch.float32}  # the agent that the update trains is untouched
    assert rollout_agent.network[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.manual_seed(1)
        expected = agent.get_action_and_value(frames)
        torch.manual_seed(1)
        got = rollout_agent.get_action_and_value(frames)
        assert expected[2].std() > 0  # not a degenerate comparison: the states' entropies differ
        for name, a, b in zip(("action", "logprob", "entropy", "value", "dist"), expected, got):
            assert a.dtype == b.dtype and torch.equal(a, b), name
        assert torch.equal(agent.get_value(frames), rollout_agent.get_value(frames))
        with torch.no_grad():
            agent.network[0].weight.add_(0.01)  # an update
        assert not torch.equal(agent.get_value(frames), rollout_agent.get_value(frames))
        rollout_agent.load_state_dict(agent.state_dict())  # as before each rollout
        assert {p.dtype for p in rollout_agent.network.parameters()} == {torch.bfloat16}
        assert torch.equal(agent.get_value(frames), rollout_agent.get_value(frames))
    agent32 = ppo_atari.Agent(num_actions=4)
    assert agent32.for_rollout() is agent32


def test_resuming_a_checkpoint_older_than_an_option_is_a_usage_error():
    """A checkpoint written before --precision existed has no such option: a one-line error, not a KeyError."""
    saved = dataclasses.asdict(ppo_atari.Args())
    del saved["precision"]
    with pytest.raises(ppo_atari.UsageError, match="predates --precision"):
        ppo_atari.resume_args(ppo_atari.Args(), saved, frozenset())
    saved["precision"] = "float32"
    # the checkpoint's, not auto's
    assert ppo_atari.resume_args(ppo_atari.Args(), saved, frozenset()).precision == "float32"


def test_a_checkpoint_older_than_an_option_that_may_change_takes_the_given_value():
    """--async-envs changes where the envs run, not what they return: a checkpoint from before it resumes, with
    the value given now (the default, or --async-envs)."""
    saved = dataclasses.asdict(ppo_atari.Args())
    del saved["async_envs"]
    assert "async_envs" in ppo_atari.RESUME_MAY_CHANGE
    assert ppo_atari.resume_args(ppo_atari.Args(), saved, frozenset()).async_envs is False
    assert ppo_atari.resume_args(ppo_atari.Args(async_envs=True), saved, frozenset({"async_envs"})).async_envs is True


def test_precision_auto_follows_the_hardware(tmp_path):
    """auto: bfloat16 where the CPU flags list bf16 matrix units, float32 where they do not and wherever the check
    itself fails (no such file, no flags line); a given precision is kept."""
    flags = "flags\t\t: fpu sse2 avx2 avx512f {}\n"
    for extra, expected in (("avx512_bf16", True), ("amx_tile amx_bf16", True), ("amx_tile", False), ("", False)):
        (tmp_path / "cpuinfo").write_text("processor\t: 0\n" + flags.format(extra))
        assert ppo_atari.bf16_matrix_units(False, str(tmp_path / "cpuinfo")) is expected, extra
    (tmp_path / "no-flags").write_text("processor\t: 0\nmodel name\t: a CPU\n")
    assert ppo_atari.bf16_matrix_units(False, str(tmp_path / "no-flags")) is False
    assert ppo_atari.bf16_matrix_units(False, str(tmp_path / "missing")) is False
    # this machine: the same answer read independently of the script
    on_this_cpu = os.path.exists("/proc/cpuinfo") and bool(
        re.search(r"^flags.*\b(amx_bf16|avx512_bf16)\b", open("/proc/cpuinfo").read(), re.MULTILINE)
    )
    assert ppo_atari.Args(cuda=False).precision == ("bfloat16" if on_this_cpu else "float32")
    assert ppo_atari.Args(cuda=False, precision="float32").precision == "float32"


def test_evaluation_reports_full_game_raw_scores(raw_frame_rewards):
    torch.manual_seed(0)
    payload = {
        "env_id": ASTERIX,
        "args": {"repeat_action_probability": None},
        "model": ppo_atari.Agent(num_actions=9).state_dict(),
    }
    returns = ppo_atari.evaluate(payload, 1, False, 0, torch.device("cpu"))
    # one game of three lives, raw score (50 points a treasure); the reset of the next game adds no-op frames only
    assert len(returns) == 1 and returns[0] == sum(raw_frame_rewards) > max(raw_frame_rewards) > 1
    torch.manual_seed(1)  # whatever the process's random state, sampled actions repeat with the evaluation seed
    assert ppo_atari.evaluate(payload, 1, False, 0, torch.device("cpu")) == returns


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory):
    """Two identical short Breakout runs (seed 7) that save and evaluate their model, one iteration with seed 8
    that records a video and logs to W&B offline, and run a again with the envs in worker processes (d)."""
    out = tmp_path_factory.mktemp("runs")
    results = {}
    for name, seed, extra in (
        ("a", "7", ("--save-model", "--eval-episodes", "2")),
        ("b", "7", ("--save-model", "--eval-episodes", "2")),
        ("c", "8", ("--total-timesteps", "128", "--capture-video", "--track")),
        ("d", "7", ("--async-envs",)),
    ):
        results[name] = run_script(
            SCRIPT, *TINY, "--seed", seed, *extra, "--output-dir", str(out), "--run-name", name, cwd=out
        )
        assert results[name].returncode == 0, results[name].stderr
    return out, results


def test_tensorboard_events_hold_every_key(twin_runs):
    out, results = twin_runs
    assert "done:" in results["a"].stdout and "SPS" in results["a"].stdout
    assert results["a"].stdout.splitlines()[0] == (  # the choice of --precision auto, first
        f"precision: {ppo_atari.Args(cuda=False).precision} "
        "(CNN trunk; --precision auto picks bfloat16 where the hardware has bf16 units)"
    )
    scalars = read_scalars(out / "a")
    for key in EXPECTED_KEYS:
        assert key in scalars, key
        assert all(math.isfinite(value) for _, value in scalars[key]), key
    assert [step for step, _ in scalars["losses/policy_loss"]] == [128, 256, 384, 512]  # one point per iteration
    learning_rates = [value for _, value in scalars["charts/learning_rate"]]
    assert learning_rates == pytest.approx([2.5e-4, 2.5e-4 * 3 / 4, 2.5e-4 / 2, 2.5e-4 / 4])  # linear annealing
    returns = [value for _, value in scalars["charts/episodic_return"]]
    lengths = [value for _, value in scalars["charts/episodic_length"]]
    assert 1 <= len(returns) <= 4  # full games, not lives: one life lasts ~25-60 steps
    assert all(length >= 100 for length in lengths), lengths  # 5 lives of at least ~24 steps each
    assert all(r >= 0 and r == int(r) for r in returns)


def test_same_seed_same_run(twin_runs):
    out, _ = twin_runs
    first, second = read_scalars(out / "a"), read_scalars(out / "b")
    first.pop("charts/SPS"), second.pop("charts/SPS")
    assert first == second
    assert read_scalars(out / "c")["losses/value_loss"][0] != first["losses/value_loss"][0]  # the seed matters


def test_envs_in_worker_processes_give_the_same_run(twin_runs):
    """--async-envs steps the envs in AsyncVectorEnv workers; the default steps them in the main process: the
    transitions, and so everything the run logs, are the same."""
    out, _ = twin_runs
    in_workers, in_process = read_scalars(out / "d"), read_scalars(out / "a")
    assert not ppo_atari.Args().async_envs
    assert set(in_workers) - {"charts/SPS"} <= set(in_process)  # run a also saved and evaluated its model
    for tag in set(in_workers) - {"charts/SPS"}:
        assert in_workers[tag] == in_process[tag], tag
    assert len(in_workers["charts/episodic_return"]) >= 1


def test_video_and_wandb_offline(twin_runs):
    out, _ = twin_runs
    offline_runs = list((out / "c" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))
    videos = list((out / "videos" / "c").glob("*.mp4"))
    assert videos and all(video.stat().st_size > 1000 for video in videos)


def test_save_and_evaluate(twin_runs):
    out, results = twin_runs
    assert "evaluation: mean return" in results["a"].stdout
    assert len(read_scalars(out / "a")["eval/episodic_return"]) == 2
    evaluation = run_script(
        SCRIPT,
        "--eval-checkpoint",
        str(out / "a"),
        "--eval-episodes",
        "1",
        "--eval-deterministic",
        "--torch-threads",
        "1",
    )
    assert evaluation.returncode == 0, evaluation.stderr
    assert f"{BREAKOUT}: mean return" in evaluation.stdout and "over 1 episodes (greedy actions)" in evaluation.stdout
    payload = ppo_atari.load_checkpoint(str(out / "a"), "model.pt")
    assert payload["script"] == "ppo_atari" and payload["args"]["clip_coef"] == 0.1


BAD_INPUTS = [
    (("--env-id", "NoSuchEnv-v0"), "unknown env id"),
    (("--env-id", "Breakout-v5"), "unknown env id"),  # v5 ids live in the ALE/ namespace
    (("--env-id", "CartPole-v1"), "use ppo_discrete.py"),
    (("--env-id", "Pendulum-v1"), "use ppo_continuous.py"),
    (("--env-id", "FrozenLake-v1"), "not an Atari game"),
    (("--repeat-action-probability", "1.5"), "--repeat-action-probability must be in [0, 1]"),
    (("--num-minibatches", "3"), "does not divide"),
    (("--num-envs", "0"), "--num-envs must be positive"),
    (("--clip-coef", "0"), "--clip-coef must be positive"),
    (("--gamma", "1.5"), "--gamma must be in [0, 1]"),
    (("--kl-target", "-0.01"), "--kl-target must be positive"),
    (("--policy-objective", "none", "--adaptive-clip"), "not of none"),
    (("--total-timesteps", "100"), "less than one batch"),
    (("--eval-checkpoint", "missing.pt"), "no checkpoint"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_is_rejected_before_anything_is_written(tmp_cwd, args, message):
    import tyro

    with pytest.raises(ppo_atari.UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ppo_atari.main(tyro.cli(ppo_atari.Args, args=[*args, "--output-dir", "out"]))
    assert not (tmp_cwd / "out").exists()


@pytest.mark.parametrize("args, message", [BAD_INPUTS[2], BAD_INPUTS[5], BAD_INPUTS[-1]])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = run_script(SCRIPT, *args, "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert_usage_error(result, "ppo_atari.py", message)
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_script_is_refused(tmp_path):
    torch.save({"format": 1, "script": "ppo_discrete", "model": {}}, tmp_path / "model.pt")
    with pytest.raises(ppo_atari.UsageError, match="written by ppo_discrete.py"):
        ppo_atari.load_checkpoint(str(tmp_path / "model.pt"), "model.pt")
