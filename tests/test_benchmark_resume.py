"""Runs of a sweep that are stopped by a signal resume from their checkpoint: real processes, real signals.

- A local sweep of two tiny ppo_discrete.py runs: one script gets SIGTERM directly (the sweep goes on), then
  the sweep itself gets SIGTERM (the runner forwards it to the other script); both stop with a checkpoint and
  are recorded as interrupted. Running the sweep again resumes both to the end.
- One run driven by `python -m benchmark.run_one`, as a Slurm array task is: stopped by a SIGTERM to its whole
  process group (what Slurm's cancel, requeue, preemption and time limit do), then by a SIGTERM to the runner
  only (Slurm's --signal=B:TERM), then killed with SIGKILL (no result), then run to the end. Each signal must
  reach the script exactly once: a second would stop it at once (exit 130) instead of after its iteration.
  Its env sleeps in every step so that an iteration lasts longer than the runner waits before it forwards a
  signal (run_one.FORWARD_DELAY_S): a runner that forwarded a signal the script already got would be caught.

Either way the TensorBoard scalars must continue without a duplicated or missing step, to the total step.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark import run_one
from benchmark.manifest import SweepLayout, create_or_extend, expand_runs, run_name
from benchmark.run_result import read_result
from tests.benchmark_fixtures import (
    REPO,
    SLOW_ENV_MODULE,
    assert_scalars_continue,
    attempt_outputs,
    checkpoint_mtime,
    wait_for,
    write_slow_envs,
)

# Local sweep: 64 iterations of 4 envs x 64 steps of TickingCartPole (1 ms a step: 0.26 s an iteration, 17 s a
# run, however fast the machine), so that a signal sent after the first checkpoint and forwarded
# FORWARD_DELAY_S later comes well before the end; plain CartPole-v1 finished first on a fast machine.
NUM_ITERATIONS, BATCH = 64, 256
TINY = ["--total-timesteps", str(NUM_ITERATIONS * BATCH), "--num-envs", "4", "--num-steps", "64"]
# run_one task: 8 iterations of 2 envs x 32 steps of SlowCartPole (50 ms a step): 3.2 s an iteration
TASK_ITERATIONS, TASK_BATCH = 8, 64
TASK_ARGS = ["--total-timesteps", str(TASK_ITERATIONS * TASK_BATCH), "--num-envs", "2", "--num-steps", "32"]
TIMEOUT_S = 300


def env(*paths: Path) -> dict:
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([*map(str, paths), str(REPO)]),
        OMP_NUM_THREADS="1",
        WANDB_MODE="disabled",
    )


def script_pid(parent: int, name: str) -> int:
    """The PID of the child of `parent` running the script of run `name`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and name.encode() in cmdline:
            return int(entry.name)
    return 0


# ---------------- the local backend ----------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_slow_envs(root)
    out = root / "sweep"
    layout = SweepLayout(out)
    env_id = f"{SLOW_ENV_MODULE}:TickingCartPole-v0"
    command = [sys.executable, "-m", "benchmark.sweep", "--script", str(REPO / "ppo_discrete.py"), "--env-ids", env_id,
               "--seeds", "1", "2", "--out", str(out), "--workers", "2", "--checkpoint-every", "1",
               "--progress-interval", "600", "--", *TINY]  # fmt: skip
    first, second = (run_name("ppo_discrete.py", env_id, seed) for seed in (1, 2))
    sweep = subprocess.Popen(
        command, cwd=REPO, env=env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(
            lambda: checkpoint_mtime(layout, first) and checkpoint_mtime(layout, second),
            "both runs' first checkpoint",
            process=sweep,
        )
        # the script only
        os.kill(wait_for(lambda: script_pid(sweep.pid, first), f"the script of {first}"), signal.SIGTERM)
        wait_for(lambda: read_result(layout, first), f"the result of {first}", process=sweep)
        sweep.send_signal(signal.SIGTERM)  # the runner only: the scripts run in their own session
        output, _ = sweep.communicate(timeout=TIMEOUT_S)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    stopped = {name: read_result(layout, name) for name in (first, second)}
    status = subprocess.run(
        [sys.executable, "-m", "benchmark.sweep", "status", "--out", str(out), "--json"],
        cwd=REPO,
        env=env(root),
        capture_output=True,
        text=True,
    )
    again = subprocess.run(command, cwd=REPO, env=env(root), capture_output=True, text=True, timeout=TIMEOUT_S)
    return {
        "layout": layout,
        "names": (first, second),
        "code": sweep.returncode,
        "output": output,
        "stopped": stopped,
        "status": status,
        "again": again,
    }


def test_stopped_runs_are_interrupted_with_a_checkpoint(local_sweep):
    assert local_sweep["code"] == 130, local_sweep["output"]
    for name, result in local_sweep["stopped"].items():
        assert result.status == "interrupted" and result.exit_code == 143, result  # 130 would mean a second signal
        assert result.attempt == 1 and not result.resumed
        assert 1 <= result.stopped_after_iteration < NUM_ITERATIONS
        assert result.reason.startswith(
            f"stopped by SIGTERM after iteration {result.stopped_after_iteration}/{NUM_ITERATIONS}"
        )
        output = attempt_outputs(local_sweep["layout"], name)[0]
        assert len(run_one.status_events(output, "stop_requested")) == 1  # the script got exactly one signal
    assert "interrupted" in local_sweep["output"] and "SIGTERM: stopping" in local_sweep["output"]
    status = json.loads(local_sweep["status"].stdout)
    assert [run["state"] for run in status["runs"]] == ["interrupted", "interrupted"] and status[
        "summary"
    ] == "2 runs: 2 interrupted"


def test_running_the_sweep_again_resumes_to_the_end(local_sweep):
    layout = local_sweep["layout"]
    assert local_sweep["again"].returncode == 0, local_sweep["again"].stdout + local_sweep["again"].stderr
    for name in local_sweep["names"]:
        stop = local_sweep["stopped"][name].stopped_after_iteration
        result = read_result(layout, name)
        assert result.complete and result.attempt == 2 and result.resumed
        assert (result.resumed_from_iteration, result.resumed_from_step) == (stop, stop * BATCH)
        assert (
            result.command[result.command.index("--resume") + 1] == str(layout.run_dir(name))
            and "--output-dir" not in result.command
        )
        assert result.wall_time_total_s == pytest.approx(
            local_sweep["stopped"][name].wall_time_s + result.wall_time_s, abs=0.01
        )
        assert not list(layout.runs_dir.glob(f"{name}.failed-*"))  # resumed in place, nothing moved aside
        assert (
            f"resumed {layout.run_dir(name)} after iteration {stop}/{NUM_ITERATIONS}"
            in attempt_outputs(layout, name)[1]
        )
        assert_scalars_continue(layout.run_dir(name), NUM_ITERATIONS, BATCH, [stop])


# ---------------- a run as a Slurm array task runs it: benchmark.run_one ----------------


@pytest.fixture(scope="module")
def task_attempts(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    write_slow_envs(root)
    layout = SweepLayout(root / "sweep")
    env_id = f"{SLOW_ENV_MODULE}:SlowCartPole-v0"
    create_or_extend(
        layout, expand_runs([str(REPO / "ppo_discrete.py")], [env_id], [1], TASK_ARGS), 1, REPO, checkpoint_every=1
    )
    name = run_name("ppo_discrete.py", env_id, 1)
    results, codes = [], []

    def attempt(stop) -> None:
        before = checkpoint_mtime(layout, name)
        task = subprocess.Popen(
            [sys.executable, "-m", "benchmark.run_one", str(layout.root), "0"],
            cwd=REPO,
            env=env(root),
            start_new_session=True,
        )
        try:
            if stop is not None:
                wait_for(lambda: checkpoint_mtime(layout, name) > before, "a new checkpoint", process=task)
                stop(task)
            codes.append(task.wait(timeout=TIMEOUT_S))
        finally:
            if task.poll() is None:
                os.killpg(task.pid, signal.SIGKILL)
        # the script holds the job's lock until it is gone, which can be after the runner (a killed script may
        # still be exiting): the next attempt started before that would find the job busy and do nothing
        wait_for(lambda: not run_one.is_running(layout, name), "the attempt's script to exit")
        results.append(read_result(layout, name))

    attempt(lambda task: os.killpg(task.pid, signal.SIGTERM))  # runner and script both: Slurm's job-wide signal
    attempt(lambda task: task.send_signal(signal.SIGTERM))  # the runner only: --signal=B:TERM, scancel --batch
    attempt(lambda task: os.killpg(task.pid, signal.SIGKILL))  # no result: a node failure, or KillWait exceeded
    attempt(None)
    return {"layout": layout, "name": name, "results": results, "codes": codes}


def test_a_task_stops_once_whoever_gets_the_signal(task_attempts):
    codes, results = task_attempts["codes"], task_attempts["results"]
    assert codes[:2] == [143, 143]  # run_one exits with the script's code
    first, second = results[:2]
    assert (first.status, first.exit_code, first.attempt, first.resumed) == ("interrupted", 143, 1, False)
    assert (second.status, second.exit_code, second.attempt, second.resumed_from_iteration) == (
        "interrupted",
        143,
        2,
        first.stopped_after_iteration,
    )
    assert first.stopped_after_iteration < second.stopped_after_iteration < TASK_ITERATIONS
    outputs = attempt_outputs(task_attempts["layout"], task_attempts["name"])
    assert [len(run_one.status_events(output, "stop_requested")) for output in outputs[:2]] == [
        1,
        1,
    ]  # one signal each, not two
    assert all("stopped by SIGTERM" in output for output in outputs[:2])


def test_a_killed_attempt_is_counted_and_the_next_resumes_to_the_end(task_attempts):
    codes, results = task_attempts["codes"], task_attempts["results"]
    assert codes[2] == -signal.SIGKILL and results[2] == results[1]  # killed: wrote no result
    last = results[3]
    assert codes[3] == 0 and last.complete
    assert last.attempt == 4  # the killed attempt 3 counts (its header is in the log)
    # from attempt 3's checkpoint
    assert last.resumed and last.resumed_from_iteration > results[1].stopped_after_iteration
    assert last.wall_time_total_s is None  # attempt 3's time is unknown
    assert len(attempt_outputs(task_attempts["layout"], task_attempts["name"])) == 4
    assert_scalars_continue(task_attempts["layout"].run_dir(task_attempts["name"]), TASK_ITERATIONS, TASK_BATCH, [])


# ---------------- which signals the runner passes on, with a stand-in for a script ----------------

STAND_IN = f"""import json, os, signal, sys, time

received = []


def handler(signum, frame):  # the scripts' contract: the first signal asks for a stop, a second stops at once
    received.append(signum)
    if len(received) == 1:
        notice = {{"event": "stop_requested", "signal": signal.Signals(signum).name}}
        os.write(2, ({run_one.STATUS_PREFIX!r} + json.dumps(notice) + "\\n").encode())
    else:
        os.write(2, f"signal {{len(received)}}\\n".encode())


signal.signal(signal.SIGINT, handler)
signal.signal(signal.SIGTERM, handler)
print("ready", flush=True)
while len(received) < 2:
    time.sleep(0.01)
time.sleep(0.5)  # a runner that sent more signals would have them counted by now
sys.exit(130)
"""


@pytest.fixture
def stand_in(tmp_path):
    """Start attempts of a stand-in script that keeps running after a first signal and exits 130 on a second."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    layout = SweepLayout(tmp_path / "sweep")
    manifest, _ = create_or_extend(layout, expand_runs([str(script)], ["X-v0"], [1], []), 1, tmp_path)
    started = []

    def start(own_session: bool) -> run_one.Attempt:
        attempt = run_one.start(manifest, layout, manifest.jobs[0], own_session=own_session)
        started.append(attempt)
        wait_for(lambda: "ready" in run_one.read_output(attempt.log_path, attempt.log_offset), "the stand-in to start")
        return attempt

    yield layout, start
    for attempt in started:
        if attempt.process.returncode is None:
            run_one.send_signal(attempt, signal.SIGKILL)
            run_one.wait(layout, attempt)


def forward_for(layout: SweepLayout, attempt: run_one.Attempt, seconds: float):
    """Run the runner's loop for `seconds` (or until the script exits); returns its result or None. A result
    says in its log tail how many signals the stand-in got ("signal 3" if more than two)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = run_one.poll(layout, attempt)
        if result is not None:
            return result
        run_one.forward_stop(attempt)
        time.sleep(run_one.POLL_SECONDS / 4)
    return None


@pytest.mark.slow
def test_a_signal_only_the_runner_got_is_forwarded_once_after_a_delay(stand_in):
    layout, start = stand_in
    attempt = start(own_session=True)
    run_one.request_stop(attempt, signal.SIGTERM)
    assert forward_for(layout, attempt, run_one.FORWARD_DELAY_S - 0.5) is None and attempt.sent == []  # not yet
    assert forward_for(layout, attempt, 2.0) is None and attempt.sent == [signal.SIGTERM]  # forwarded, once
    run_one.request_stop(attempt, signal.SIGTERM)  # again: stop at once, with another signal number
    result = forward_for(layout, attempt, 5.0)
    assert (
        attempt.sent == [signal.SIGTERM, signal.SIGINT]
        and result.exit_code == 130
        and "signal 3" not in result.log_tail
    )


@pytest.mark.slow
def test_a_signal_the_script_got_itself_is_not_forwarded(stand_in):
    layout, start = stand_in
    for own_session in (True, False):
        attempt = start(own_session)
        os.kill(attempt.process.pid, signal.SIGTERM)  # as a job-wide signal reaches it
        run_one.request_stop(attempt, signal.SIGTERM)
        assert forward_for(layout, attempt, run_one.FORWARD_DELAY_S + 1.0) is None and attempt.sent == []
        run_one.request_stop(attempt, signal.SIGTERM)
        result = forward_for(layout, attempt, 2.0)
        if own_session:  # only the runner can reach it: a second signal to the runner is passed on
            assert (
                attempt.sent == [signal.SIGINT]
                and result.exit_code == 130
                and "signal 2" in result.log_tail
                and "signal 3" not in result.log_tail
            )
        else:  # in the runner's process group (a Slurm task): the second signal reached the script directly
            assert attempt.sent == [] and result is None
            run_one.send_signal(attempt, signal.SIGKILL)
            run_one.wait(layout, attempt)


def test_a_third_signal_kills_a_script_in_its_own_session(stand_in):
    layout, start = stand_in
    attempt = start(own_session=True)
    for _ in range(3):
        run_one.request_stop(attempt, signal.SIGINT)
    result = forward_for(layout, attempt, 2.0)
    assert result is not None and signal.SIGKILL in attempt.sent


def test_status_events_are_read_from_the_json_lines_alone():
    """The runner reads the scripts' PPO_STATUS lines, not their messages: reworded or missing messages change
    nothing, a line cut short by a kill is skipped, and events come back in order."""
    output = "\n".join([
        "resumed elsewhere after iteration 99/99 (step 1)",  # prose: ignored
        'PPO_STATUS {"event": "resumed", "iteration": 3, "num_iterations": 10, "global_step": 384}',
        'PPO_STATUS {"event": "stop_requested", "signal": "SIGTERM"}',
        'PPO_STATUS {"event": "stopped", "signal": "SIGTERM", "iteration": 5, "num_iterations": 10, "global_step": 6}',
        'PPO_STATUS {"event": "stopped", "signal": "SIGINT", "iter',  # cut short
        '  PPO_STATUS {"event": "stopped"}',  # not at the start of a line
    ])  # fmt: skip
    assert run_one.status_events(output, "resumed") == [
        {"event": "resumed", "iteration": 3, "num_iterations": 10, "global_step": 384}
    ]
    assert [event["iteration"] for event in run_one.status_events(output, "stopped")] == [5]
    assert run_one.status_events(output, "stop_requested") == [{"event": "stop_requested", "signal": "SIGTERM"}]
    assert run_one.status_events("stopped by SIGTERM after iteration 5/10 (step 640)", "stopped") == []
