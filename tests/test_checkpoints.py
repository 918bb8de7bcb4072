"""Checkpoints, exact resume, signals, faults and evaluation, for all three scripts (the code is shared).

The central claim: a run stopped after iteration k (by SIGTERM, or by kill -9 after a periodic checkpoint)
and resumed logs exactly what the same run logs uninterrupted, with no step logged twice. The fault table
checks that each bad input ends in one line and a non-zero exit, with nothing already written changed.
"""

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import tyro

import ppo_atari
import ppo_continuous
import ppo_discrete
from tests.conftest import REPO, assert_usage_error, read_scalars, run_script, script_env

# Tiny but real settings: 10-12 iterations of a few seconds at most (Atari: a few seconds each).
CONFIGS = {
    "ppo_discrete.py": [
        "--env-id",
        "CartPole-v1",
        "--num-envs",
        "2",
        "--num-steps",
        "64",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "2",
    ],
    "ppo_continuous.py": [
        "--env-id",
        "Pendulum-v1",
        "--num-envs",
        "1",
        "--num-steps",
        "128",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "2",
    ],
    "ppo_atari.py": [
        "--env-id",
        "BreakoutNoFrameskip-v4",
        "--num-envs",
        "2",
        "--num-steps",
        "32",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "1",
        "--torch-threads",
        "1",
    ],
}
TOTALS = {"ppo_discrete.py": 1536, "ppo_continuous.py": 1536, "ppo_atari.py": 640}  # 12, 12 and 10 iterations
SCRIPTS = list(CONFIGS)
WRONG_ACTION_SPACE = {
    "ppo_discrete.py": ("Pendulum-v1", "use ppo_continuous.py"),
    "ppo_continuous.py": ("CartPole-v1", "use ppo_discrete.py"),
    "ppo_atari.py": ("CartPole-v1", "use ppo_discrete.py"),
}
IGNORED_TAGS = {"charts/SPS"}  # wall-clock speed is the one thing a resumed run cannot repeat


def run_dir_files(run_dir) -> dict:
    """{file name: sha256} of everything in a run directory: what a failed command must leave as it was."""
    return {
        name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(run_dir))
        if (run_dir / name).is_file()
    }


def assert_same_curves(expected: dict, actual: dict) -> None:
    assert set(expected) == set(actual)
    for tag in expected:
        if tag not in IGNORED_TAGS:
            assert actual[tag] == expected[tag], f"{tag} differs after resume"
    steps = [step for step, _ in actual["losses/value_loss"]]
    assert steps == sorted(set(steps)), "a step was logged twice"


def start_and_signal(
    script: str, args: list, after_lines: int, signum: int, process_group: bool = False
) -> subprocess.CompletedProcess:
    """Start a training run, send `signum` once it has printed `after_lines` progress lines (one per iteration),
    and wait for it to end. process_group: the run starts its own process group and the signal goes to all of
    it, env worker processes included, as Ctrl-C in a terminal does."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / script), "--progress-interval", "0", *args],
        env=script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=process_group,
    )
    lines, children = 0, []
    for line in process.stdout:
        lines += line.startswith("step")
        if lines == after_lines:
            children = child_pids(process.pid)
            if process_group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
            break
    stdout, stderr = process.communicate(timeout=600)
    completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    completed.children = children  # the run's child processes when the signal went out
    return completed


def child_pids(pid: int) -> list:
    """PIDs of the live processes whose parent is `pid`, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)": state, ppid, ...
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """{script: scalars} of each script's uninterrupted tiny run, computed once."""
    runs, scalars = tmp_path_factory.mktemp("uninterrupted"), {}
    for script in SCRIPTS:
        result = run_script(
            script,
            *CONFIGS[script],
            "--total-timesteps",
            str(TOTALS[script]),
            "--output-dir",
            str(runs),
            "--run-name",
            script,
            "--progress-interval",
            "0",
        )
        assert result.returncode == 0, result.stderr
        scalars[script] = read_scalars(runs / script)
    return scalars


# Runs a script whose process sends itself SIGTERM from inside the update: at the N-th optimizer step, between
# backward() and the parameter update of a minibatch.
SIGTERM_IN_UPDATE = """
import os, runpy, signal, sys, torch
calls, real_step, target = [], torch.optim.Adam.step, int(sys.argv[1])
def step_and_maybe_signal(*args, **kwargs):
    calls.append(1)
    if len(calls) == target:
        os.kill(os.getpid(), signal.SIGTERM)
    return real_step(*args, **kwargs)
torch.optim.Adam.step = step_and_maybe_signal
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
MINIBATCHES_PER_UPDATE = {"ppo_discrete.py": 4, "ppo_continuous.py": 4, "ppo_atari.py": 2}


@pytest.mark.parametrize("script", SCRIPTS)
def test_sigterm_in_an_update_then_resume_equals_an_uninterrupted_run(script, tmp_path, uninterrupted):
    """SIGTERM arrives in the middle of iteration 4's update: the update finishes, the checkpoint is written
    after iteration 4, and the resumed run logs what the uninterrupted run logged."""
    run_dir = tmp_path / "run"
    in_update = 3 * MINIBATCHES_PER_UPDATE[script] + 2  # the second minibatch of iteration 4
    args = [
        *CONFIGS[script],
        "--total-timesteps",
        str(TOTALS[script]),
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "run",
    ]
    stopped = subprocess.run(
        [sys.executable, "-c", SIGTERM_IN_UPDATE, str(in_update), str(REPO / script), *args],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "stopped by SIGTERM after iteration 4/" in stopped.stderr
    assert f"resume with: python {script} --resume {run_dir}" in stopped.stderr
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["training"]["iteration"] == 4

    resumed = run_script(script, "--resume", str(run_dir))  # options at their defaults come from the checkpoint
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {run_dir} after iteration 4/" in resumed.stdout
    assert_same_curves(uninterrupted[script], read_scalars(run_dir))


def test_kill_9_after_a_periodic_checkpoint_resumes_without_duplicated_steps(tmp_path, uninterrupted):
    """kill -9 leaves events logged after the last checkpoint on disk; the resumed run purges them
    (TensorBoard's purge_step) and logs those iterations again, once."""
    script, run_dir = "ppo_discrete.py", tmp_path / "run"
    killed = start_and_signal(
        script,
        [
            *CONFIGS[script],
            "--total-timesteps",
            str(TOTALS[script]),
            "--output-dir",
            str(tmp_path),
            "--run-name",
            "run",
            "--checkpoint-every",
            "3",
        ],
        after_lines=5,
        signum=signal.SIGKILL,
    )
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["training"]["iteration"] in (3, 6)
    resumed = run_script(script, "--resume", str(run_dir / "checkpoint.pt"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_curves(uninterrupted[script], read_scalars(run_dir))


# Runs a script with torch.save replaced by one that writes the second checkpoint, cuts the file in half
# (what a kill in the middle of the write leaves behind) and kills the process with SIGKILL.
DIE_IN_SECOND_SAVE = """
import os, runpy, signal, sys, torch
real_save, calls = torch.save, []
def save_then_die(obj, path, *args, **kwargs):
    calls.append(path)
    real_save(obj, path, *args, **kwargs)
    if len(calls) == 2:
        os.truncate(path, os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_to_the_whole_process_group_stops_with_a_checkpoint_and_resumes_exactly(tmp_path, uninterrupted):
    """ppo_atari.py --async-envs steps its envs in worker processes; Ctrl-C in a terminal reaches them too. They
    ignore it, the main process finishes the iteration in progress and writes its checkpoint, and the resumed run
    (its envs in workers again, as the checkpoint says) logs what the uninterrupted in-process run logged."""
    script = "ppo_atari.py"
    run_dir = tmp_path / "run"
    args = [
        *CONFIGS[script],
        "--async-envs",
        "--total-timesteps",
        str(TOTALS[script]),
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "run",
    ]
    stopped = start_and_signal(script, args, after_lines=3, signum=signal.SIGINT, process_group=True)
    num_envs = int(args[args.index("--num-envs") + 1])
    assert len(stopped.children) == num_envs, stopped.children  # one worker process per env: --async-envs took effect
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr
    match = re.search(r"stopped by SIGINT after iteration (\d+)/10", stopped.stderr)
    assert match and "Traceback" not in stopped.stderr, stopped.stderr
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["training"]["iteration"] == int(match.group(1)) < 10

    resumed = run_script(script, "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_curves(uninterrupted[script], read_scalars(run_dir))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_kill_9_during_a_checkpoint_write_keeps_the_previous_checkpoint(script, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        *CONFIGS[script],
        "--total-timesteps",
        str(TOTALS[script]),
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "run",
        "--checkpoint-every",
        "1",
    ]
    killed = subprocess.run(
        [sys.executable, "-c", DIE_IN_SECOND_SAVE, str(REPO / script), *args],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with pytest.raises(Exception):  # the write that was cut short is unreadable ...
        torch.load(run_dir / "checkpoint.pt.tmp", weights_only=True)
    assert (
        torch.load(run_dir / "checkpoint.pt", weights_only=True)["training"]["iteration"] == 1
    )  # ... and never replaced the good one
    resumed = run_script(script, "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "after iteration 1/" in resumed.stdout
    steps = [step for step, _ in read_scalars(run_dir)["losses/value_loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == TOTALS[script]


@pytest.mark.parametrize("script", ["ppo_discrete.py", "ppo_continuous.py"])
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(script, tmp_path):
    """The probe env's reward turns NaN at its 200th step, in iteration 7 of 32 steps each."""
    env_id = (
        "tests.probe_envs:NanReward-v0" if script == "ppo_discrete.py" else "tests.probe_envs:NanRewardContinuous-v0"
    )
    args = [
        "--env-id",
        env_id,
        "--num-envs",
        "1",
        "--num-steps",
        "32",
        "--num-minibatches",
        "2",
        "--total-timesteps",
        "640",
        "--checkpoint-every",
        "1",
    ]
    result = run_script(script, *args, "--output-dir", str(tmp_path), "--run-name", "run")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith(f"{script}: error: iteration 7 (step 224): ") and " is nan" in lines[0]
    ), result.stderr
    assert "(iteration 6), is kept" in lines[0]
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["training"]["iteration"] == 6
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint["model"].values())
    assert (
        max(step for step, _ in read_scalars(tmp_path / "run")["losses/value_loss"]) == 6 * 32
    )  # nothing non-finite was logged


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """One finished tiny run per script, with a checkpoint.pt and a model.pt."""
    runs = tmp_path_factory.mktemp("saved")
    for script in SCRIPTS:
        result = run_script(
            script,
            *CONFIGS[script],
            "--total-timesteps",
            str(TOTALS[script] if script != "ppo_atari.py" else 128),
            "--output-dir",
            str(runs),
            "--run-name",
            script,
            "--checkpoint-every",
            "1",
            "--save-model",
            "--eval-episodes",
            "1",
        )
        assert result.returncode == 0, result.stderr
    return runs


class WritesAFileWhenUnpickled:
    """A pickle that runs code when loaded without weights_only: the fault table checks it never runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def fault_table():
    """(script, id, args built from the saved runs' directory, expected message)."""
    rows = []
    for script in SCRIPTS:
        other = "ppo_continuous.py" if script != "ppo_continuous.py" else "ppo_discrete.py"
        wrong_env, wrong_message = WRONG_ACTION_SPACE[script]
        rows += [
            (script, "unknown env id", lambda runs, s=script: ["--env-id", "NoSuchEnv-v0"], "unknown env id"),
            (script, "wrong action space", lambda runs, e=wrong_env: ["--env-id", e], wrong_message),
            (
                script,
                "inconsistent arguments",
                lambda runs: ["--num-envs", "2", "--num-steps", "5", "--num-minibatches", "4"],
                "does not divide",
            ),
            (
                script,
                "negative checkpoint interval",
                lambda runs: ["--checkpoint-every", "-1"],
                "--checkpoint-every must be non-negative",
            ),
            (script, "missing checkpoint", lambda runs: ["--resume", str(runs / "nowhere")], "no checkpoint at"),
            (
                script,
                "truncated checkpoint",
                lambda runs: ["--resume", str(runs / "truncated.pt")],
                "cannot read checkpoint",
            ),
            (
                script,
                "corrupted checkpoint",
                lambda runs: ["--resume", str(runs / "corrupted.pt")],
                "is damaged (CRC mismatch)",
            ),
            (
                script,
                "code in a pickle",
                lambda runs: ["--resume", str(runs / "malicious.pt")],
                "cannot read checkpoint",
            ),
            (
                script,
                "foreign file",
                lambda runs: ["--resume", str(runs / "foreign.pt")],
                "not a checkpoint of this project",
            ),
            (
                script,
                "another script's checkpoint",
                lambda runs, o=other: ["--resume", str(runs / o)],
                f"was written by {other[:-3]}.py",
            ),
            (
                script,
                "a model without training state",
                lambda runs, s=script: ["--resume", str(runs / s / "model.pt")],
                "no training state",
            ),
            (
                script,
                "resume with another env",
                lambda runs, s=script, e=wrong_env: ["--resume", str(runs / s), "--env-id", e],
                "differs from the checkpoint's",
            ),
            (
                script,
                "resume with other sizes",
                lambda runs, s=script: ["--resume", str(runs / s), "--num-envs", "3"],
                "--num-envs 3 differs from the checkpoint's 2"
                if script != "ppo_continuous.py"
                else "--num-envs 3 differs from the checkpoint's 1",
            ),
            (
                script,
                "resume and evaluate at once",
                lambda runs, s=script: ["--resume", str(runs / s), "--eval-checkpoint", str(runs / s)],
                "give one of them",
            ),
            (
                script,
                "evaluate a truncated checkpoint",
                lambda runs: ["--eval-checkpoint", str(runs / "truncated.pt")],
                "cannot read checkpoint",
            ),
            (
                script,
                "unwritable output directory",
                lambda runs: ["--output-dir", str(runs / "corrupted.pt" / "sub")],
                "cannot create",
            ),
        ]
    return rows


MODULES = {"ppo_discrete.py": ppo_discrete, "ppo_continuous.py": ppo_continuous, "ppo_atari.py": ppo_atari}


def make_bad_files(runs) -> None:
    """Bad checkpoints, made once from a good one: cut in half, with 64 random bytes inside, a file that
    would run code if it were unpickled unsafely, and a torch file that is not ours."""
    if (runs / "truncated.pt").exists():
        return
    data = (runs / "ppo_discrete.py" / "checkpoint.pt").read_bytes()
    (runs / "truncated.pt").write_bytes(data[: len(data) // 2])
    corrupted = bytearray(data)
    corrupted[len(data) // 3 : len(data) // 3 + 64] = os.urandom(64)
    (runs / "corrupted.pt").write_bytes(bytes(corrupted))
    torch.save(
        {"script": "ppo_discrete", "format": 1, "payload": WritesAFileWhenUnpickled(str(runs / "pwned"))},
        runs / "malicious.pt",
    )
    torch.save({"weights": torch.zeros(3)}, runs / "foreign.pt")


@pytest.mark.parametrize(
    "script,case,make_args,message",
    fault_table(),
    ids=[f"{row[0][4:-3]}-{row[1].replace(' ', '-')}" for row in fault_table()],
)
def test_fault_table(script, case, make_args, message, saved_runs, tmp_path, monkeypatch):
    """Each bad input is refused with its message before anything is built or written (in-process: main()
    raises UsageError, which the script's entry point prints as one line with exit code 2, see below)."""
    make_bad_files(saved_runs)
    monkeypatch.chdir(tmp_path)
    module = MODULES[script]
    before = {name: run_dir_files(saved_runs / name) for name in SCRIPTS}
    bad_args = make_args(saved_runs)
    args = tyro.cli(
        module.Args, args=bad_args if "--resume" in bad_args else ["--output-dir", str(tmp_path), *bad_args]
    )
    with pytest.raises(module.UsageError) as error:
        module.main(args, bad_args)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert {name: run_dir_files(saved_runs / name) for name in SCRIPTS} == before  # nothing written was changed
    assert not (saved_runs / "pwned").exists()  # no code ran from a file
    assert os.listdir(tmp_path) == []  # and nothing new was started


@pytest.mark.parametrize("script", SCRIPTS)
def test_faults_end_in_one_line_and_exit_2_in_a_real_process(script, saved_runs, tmp_path):
    make_bad_files(saved_runs)
    for bad_args, message in [
        (["--resume", str(saved_runs / "corrupted.pt")], "is damaged (CRC mismatch)"),
        (["--resume", str(saved_runs / script), "--seed", "7"], "--seed 7 differs from the checkpoint's 1"),
    ]:
        result = run_script(script, *bad_args, cwd=tmp_path)
        assert_usage_error(result, script, message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("script", ["ppo_discrete.py", "ppo_continuous.py"])
def test_resume_may_extend_the_run(script, saved_runs, tmp_path):
    """--total-timesteps may change on resume: a finished run trains on to the new total, in its own directory."""
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    for name in ("checkpoint.pt",):
        (run_dir / name).write_bytes((saved_runs / script / name).read_bytes())
    total = TOTALS[script]
    result = run_script(script, "--resume", str(run_dir), "--total-timesteps", str(total + 512))
    assert result.returncode == 0, result.stderr
    steps = [step for step, _ in read_scalars(run_dir)["losses/value_loss"]]
    assert steps[0] > total and steps[-1] == total + 512
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["training"]["global_step"] == total + 512


@pytest.mark.parametrize("script", SCRIPTS)
def test_evaluate_a_checkpoint_with_video_and_make_a_gif(script, saved_runs, tmp_path):
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    (run_dir / "checkpoint.pt").write_bytes((saved_runs / script / "checkpoint.pt").read_bytes())
    result = run_script(
        script,
        "--eval-checkpoint",
        str(run_dir / "checkpoint.pt"),
        "--eval-episodes",
        "2",
        "--eval-deterministic",
        "--capture-video",
        # one thread, as in training: ppo_atari.py's default 2 wait on each other on a busy 2-core CPU (30 s, not 6)
        "--torch-threads",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "mean return" in line and "+-" in line and "over 2 episodes (greedy actions)" in line and "videos in" in line
    videos = sorted((run_dir / "eval-videos").glob("*.mp4"))
    assert [video.name for video in videos] == ["rl-video-episode-0.mp4", "rl-video-episode-1.mp4"]

    gif = tmp_path / "agent.gif"
    made = subprocess.run(
        [sys.executable, "-m", "benchmark.gif", str(videos[0]), str(gif), "--width", "120", "--seconds", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    from PIL import Image

    with Image.open(gif) as image:
        assert image.size[0] == 120 and image.n_frames > 5


def env_families():
    return [
        (ppo_discrete, "CartPole-v1"),
        (ppo_discrete, "Acrobot-v1"),
        (ppo_continuous, "Pendulum-v1"),
        (ppo_continuous, "HalfCheetah-v5"),
        (ppo_continuous, "Hopper-v5"),
        (ppo_atari, "BreakoutNoFrameskip-v4"),
        (ppo_atari, "ALE/Pong-v5"),  # sticky actions: the emulator's own RNG is part of the state
    ]


def state_mid_episode(module, envs, num_steps: int):
    """Step fresh envs 40 random steps into their episodes; return their state as a checkpoint holds it (saved,
    then loaded with weights_only=True), the next num_steps random actions, and what the envs return for them."""
    envs.reset(seed=1)
    envs.action_space.seed(1)
    for _ in range(40):
        envs.step(envs.action_space.sample())
    buffer = io.BytesIO()
    torch.save(module.env_state(envs), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    actions = [envs.action_space.sample() for _ in range(num_steps)]
    return state, actions, [envs.step(action)[:4] for action in actions]


@pytest.mark.parametrize("module,env_id", env_families(), ids=[env_id for _, env_id in env_families()])
def test_env_state_round_trip_continues_exactly(module, env_id):
    """Save the state of envs mid-episode, load it through torch.load(weights_only=True) into envs reset
    with another seed, and both continue identically under the same actions."""

    def make():
        return gym.vector.SyncVectorEnv(
            [module.make_env(env_id, i, False, "") for i in range(2)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )

    state, actions, expected = state_mid_episode(module, make(), 150)
    restored = make()
    restored.reset(seed=12345)
    module.env_state(restored, state)
    for action, want in zip(actions, expected):
        got = restored.step(action)[:4]
        for got_part, want_part in zip(got, want):
            np.testing.assert_array_equal(got_part, want_part)
    # the state really matters: without restoring, the reset envs go elsewhere
    fresh = make()
    fresh.reset(seed=12345)
    assert not all(np.array_equal(fresh.step(action)[0], want[0]) for action, want in zip(actions[:20], expected[:20]))


def test_env_state_moves_between_worker_processes_and_this_one():
    """The state of Atari envs living in AsyncVectorEnv workers, restored into envs in this process (and back into
    workers), continues exactly as the workers' own envs do."""

    def make(vector_env):
        return vector_env(
            [ppo_atari.make_env("BreakoutNoFrameskip-v4", i, False, "") for i in range(2)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )

    envs = make(gym.vector.AsyncVectorEnv)
    state, actions, expected = state_mid_episode(ppo_atari, envs, 100)
    envs.close()
    for vector_env in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        restored = make(vector_env)
        restored.reset(seed=12345)
        ppo_atari.env_state(restored, state)
        for action, want in zip(actions, expected):
            for got_part, want_part in zip(restored.step(action)[:4], want):
                np.testing.assert_array_equal(got_part, want_part)
        restored.close()


def test_box2d_envs_are_reported_as_not_capturable():
    envs = gym.vector.SyncVectorEnv(
        [ppo_discrete.make_env("LunarLander-v3", 0, False, "")], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    envs.reset(seed=0)
    assert ppo_discrete.env_state(envs) is None


def test_resume_args_merge_rules():
    saved = ppo_discrete.asdict(ppo_discrete.Args(num_envs=8, total_timesteps=100_000, seed=3))
    merged = ppo_discrete.resume_args(ppo_discrete.Args(resume="x"), saved, ["--resume", "x"])
    assert (merged.num_envs, merged.total_timesteps, merged.seed, merged.resume) == (8, 100_000, 3, "x")
    argv = ["--resume", "x", "--total-timesteps", "200000"]
    merged = ppo_discrete.resume_args(ppo_discrete.Args(resume="x", total_timesteps=200_000), saved, argv)
    assert merged.total_timesteps == 200_000
    # what was typed decides, not the value: the default typed on the command line wins too
    argv = ["--resume", "x", "--total-timesteps=500000"]
    assert ppo_discrete.resume_args(ppo_discrete.Args(resume="x"), saved, argv).total_timesteps == 500_000
    argv = ["--resume", "x", "--num-envs", "8"]
    assert ppo_discrete.resume_args(ppo_discrete.Args(resume="x", num_envs=8), saved, argv).num_envs == 8  # same
    with pytest.raises(ppo_discrete.UsageError, match="--seed 4 differs from the checkpoint's 3"):
        ppo_discrete.resume_args(ppo_discrete.Args(resume="x", seed=4), saved, ["--resume", "x", "--seed", "4"])
    with pytest.raises(ppo_discrete.UsageError, match="--num-envs 4 differs from the checkpoint's 8"):
        ppo_discrete.resume_args(ppo_discrete.Args(resume="x"), saved, ["--num-envs", "4"])  # the default, typed


@pytest.mark.parametrize("module", [ppo_discrete, ppo_continuous, ppo_atari])
def test_resume_reads_what_was_typed_from_the_command_line(module):
    """Options typed as --name value, --name=value or --no-name (a flag's off form) count as typed, whatever the
    value; the others keep the checkpoint's."""
    saved = module.asdict(module.Args(total_timesteps=100_000, cuda=True, torch_threads=3))
    argv = ["--resume", "runs/x", "--total-timesteps=500000", "--no-cuda"]
    merged = module.resume_args(tyro.cli(module.Args, args=argv), saved, argv)
    assert (merged.total_timesteps, merged.cuda, merged.torch_threads, merged.resume) == (500_000, False, 3, "runs/x")
    merged = module.resume_args(tyro.cli(module.Args, args=argv[:2]), saved, argv[:2])
    assert (merged.total_timesteps, merged.cuda, merged.torch_threads) == (100_000, True, 3)


def edited_checkpoint(saved_runs, script: str, run_dir: Path, **args) -> None:
    """A copy of the saved run's checkpoint in run_dir with some of its options replaced."""
    os.makedirs(run_dir)
    checkpoint = torch.load(saved_runs / script / "checkpoint.pt", weights_only=True)
    checkpoint["args"].update(args)
    torch.save(checkpoint, run_dir / "checkpoint.pt")


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_total_timesteps_typed_equal_to_the_default_wins(script, saved_runs, tmp_path):
    """A run started to train far longer than the default, resumed with --total-timesteps typed at the default,
    stops at the default: the checkpoint (at the default's last iteration) has nothing left to train."""
    default = MODULES[script].Args().total_timesteps
    checkpoint = torch.load(saved_runs / script / "checkpoint.pt", weights_only=True)
    batch_size = checkpoint["args"]["num_envs"] * checkpoint["args"]["num_steps"]
    last = default // batch_size  # the last iteration of a run of the default length
    edited_checkpoint(saved_runs, script, tmp_path / "run", total_timesteps=1000 * default)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    checkpoint["training"].update(iteration=last, global_step=last * batch_size)
    torch.save(checkpoint, tmp_path / "run" / "checkpoint.pt")
    # the checkpoint's total would train for hours: a timeout here means the typed value was ignored
    result = run_script(script, "--resume", str(tmp_path / "run"), "--total-timesteps", str(default), timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"after iteration {last}/{last} " in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_with_an_option_typed_equal_to_the_default_that_contradicts_the_checkpoint(script, saved_runs):
    """--update-epochs typed at its default, against a checkpoint trained with another value: one line, exit 2."""
    default = MODULES[script].Args().update_epochs
    run_dir = saved_runs / script
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)["args"]["update_epochs"]
    assert saved != default
    before = run_dir_files(run_dir)
    result = run_script(script, "--resume", str(run_dir), "--update-epochs", str(default), cwd=run_dir.parent)
    assert_usage_error(result, script, f"--update-epochs {default} differs from the checkpoint's {saved}")
    assert run_dir_files(run_dir) == before


def test_gif_recipe_commands_parse():
    """docs/gifs/make_gifs.sh lists the commands behind the README's GIFs: each script line parses, each GIF
    is made from a video the evaluation before it records, of a model the training before it saves."""
    import shlex

    from tests.benchmark_fixtures import parse_script_args

    text = (REPO / "docs" / "gifs" / "make_gifs.sh").read_text()
    lines = [shlex.split(line.replace('"$RUNS', '"RUNS')) for line in text.splitlines() if line.startswith("python ")]
    trained, evaluated, gifs = set(), set(), []
    for words in lines:
        if words[1] == "-m":
            assert words[2] == "benchmark.gif" and os.path.dirname(os.path.dirname(words[3])) in evaluated
            gifs.append(words[4])
            continue
        args = parse_script_args(words[1], words[2:])
        if args.eval_checkpoint is None:
            assert args.save_model
            trained.add(os.path.join(args.output_dir, args.run_name))
        else:
            assert args.capture_video and os.path.dirname(args.eval_checkpoint) in trained
            evaluated.add(os.path.dirname(args.eval_checkpoint))
    assert sorted(gifs) == ["docs/gifs/breakout.gif", "docs/gifs/cartpole.gif", "docs/gifs/pendulum.gif"]
