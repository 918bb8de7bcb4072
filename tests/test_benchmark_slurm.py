"""A tiny real sweep of ppo_discrete.py through the Slurm backend: one sbatch array job, waited for with squeue;
and two tasks stopped while running (one requeued, one stopped and submitted again) that resume from their
checkpoints.

Needs a reachable Slurm controller (CI starts one with benchmark/slurm/start_local_slurm.sh and exports
SLURM_CONF); skipped with the reason otherwise.
"""

import json
import os
import subprocess

import pytest

from benchmark import run_one, slurm, sweep
from benchmark import status as status_module
from benchmark.manifest import SweepLayout, load_manifest, run_name
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

AVAILABLE, WHY_NOT = slurm.slurm_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no Slurm: {WHY_NOT}")

TINY = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64"]
WAIT_S = 300


def sweep_args(out) -> list[str]:
    return [
        "--backend", "slurm", "--script", str(REPO / "ppo_discrete.py"), "--env-ids", "CartPole-v1",
        "--seeds", "1", "2", "--out", str(out), "--max-concurrent", "2", "--time", "10:00",
        "--wait", "--wait-timeout", str(WAIT_S), "--poll-interval", "1", "--", *TINY,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("WANDB_MODE", "disabled")
        code = sweep.main(sweep_args(root / "sweep"))
        again = sweep.main(sweep_args(root / "sweep"))
    return SweepLayout(root / "sweep"), code, again


def test_array_job_runs_every_seed(submitted):
    from tests.conftest import read_scalars

    layout, code, _ = submitted
    assert code == 0
    (submission,) = json.loads(layout.submissions.read_text())
    assert submission["indices"] == [0, 1] and "--array=0-1%2" in submission["command"]
    for seed in (1, 2):
        name = run_name("ppo_discrete.py", "CartPole-v1", seed)
        result = read_result(layout, name)
        assert result is not None and result.complete, result
        assert result.slurm_job == f"{submission['job_id']}_{seed - 1}"  # it ran as that array task
        assert result.peak_rss_mb > 50
        scalars = read_scalars(layout.run_dir(name))
        assert max(step for step, _ in scalars["charts/SPS"]) == 256
        assert len(scalars["charts/episodic_return"]) > 0
        assert (layout.slurm_dir / f"{submission['job_id']}_{seed - 1}.out").is_file()


def test_resubmitting_a_complete_sweep_submits_nothing(submitted):
    layout, _, again = submitted
    assert again == 0
    assert len(json.loads(layout.submissions.read_text())) == 1


def test_status_reads_the_finished_job(submitted, capsys):
    layout, _, _ = submitted
    capsys.readouterr()
    assert sweep.main(["status", "--out", str(layout.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [run["state"] for run in status["runs"]] == ["complete", "complete"]


def test_task_states_come_from_the_controller(submitted):
    layout, _, _ = submitted
    states = slurm.sweep_task_states(layout)
    # finished tasks are known to scontrol for MinJobAge seconds (300 by default) after they end
    assert set(states) == {0, 1}
    assert [state.state for state in states.values()] == ["COMPLETED", "COMPLETED"]


# ---------- preemption: a requeued task and a stopped-then-resubmitted one resume from their checkpoints ----------

# 64 iterations of 2 envs x 64 steps of TickingCartPole (1 ms a step: 0.13 s an iteration, 9 s a run, however
# fast the machine), so that the runs are still going when the signals come; plain CartPole-v1 finished first
# on a fast machine.
RESUME_ITERATIONS, RESUME_BATCH = 64, 128
RESUME_ARGS = ["--total-timesteps", str(RESUME_ITERATIONS * RESUME_BATCH), "--num-envs", "2", "--num-steps", "64"]
RESUME_ENV_ID = f"{SLOW_ENV_MODULE}:TickingCartPole-v0"


def resume_sweep_args(out, *more: str) -> list[str]:
    return [
        "--backend", "slurm", "--script", str(REPO / "ppo_discrete.py"), "--env-ids", RESUME_ENV_ID,
        "--seeds", "1", "2", "--out", str(out), "--checkpoint-every", "1", "--time", "10:00", *more, "--", *RESUME_ARGS,
    ]  # fmt: skip


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def preempted(tmp_path_factory):
    """Seed 1's task is requeued (`scontrol requeue`: Slurm signals every process of the job, then runs the
    task again); seed 2's batch shell alone gets SIGTERM (`scancel --batch`, as --signal=B:TERM does before
    the time limit), run_one forwards it, and the sweep is submitted again. Both stop after their first
    checkpoint and must resume from their last one."""
    root = tmp_path_factory.mktemp("preempt")
    layout = SweepLayout(root / "sweep")
    names = [run_name("ppo_discrete.py", RESUME_ENV_ID, seed) for seed in (1, 2)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("WANDB_MODE", "disabled")
        # the tasks inherit PYTHONPATH
        python_path = [str(write_slow_envs(root)), str(REPO), os.environ.get("PYTHONPATH", "")]
        patch.setenv("PYTHONPATH", os.pathsep.join(python_path).rstrip(os.pathsep))
        try:
            return preempt(layout, names)
        finally:  # a failure half-way leaves no task of this sweep queued (a requeued one waits 120 s, then runs)
            for submission in slurm.read_submissions(layout):
                subprocess.run(["scancel", submission["job_id"]], capture_output=True, timeout=60)


def preempt(layout: SweepLayout, names: list[str]) -> dict:
    """See `preempted`."""
    assert sweep.main(resume_sweep_args(layout.root)) == 0
    (submission,) = json.loads(layout.submissions.read_text())
    job = submission["job_id"]
    wait_for(lambda: all(checkpoint_mtime(layout, name) for name in names), "both runs' first checkpoint", WAIT_S)
    scontrol("requeue", f"{job}_0")
    subprocess.run(["scancel", "--batch", "--signal=TERM", f"{job}_1"], check=True, timeout=60)

    def interrupted():
        results = [read_result(layout, name) for name in names]
        if any(result is not None and result.complete for result in results):
            pytest.fail(f"a run completed instead of stopping: {results}")
        return results if all(result is not None and result.status == "interrupted" for result in results) else None

    stopped = wait_for(interrupted, "both runs interrupted", WAIT_S)
    wait_for(
        lambda: [task.state for _, task in sorted(slurm.sweep_task_states(layout).items())] == ["PENDING", "FAILED"],
        "task 0 requeued, task 1 ended",
        WAIT_S,
    )
    states_while_stopped = {
        status.name: status
        for status in status_module.run_statuses(load_manifest(layout), layout, slurm.sweep_task_states(layout))
    }
    scontrol("update", f"JobId={job}_0", "StartTime=now")  # only skips Slurm's requeue delay (BeginTime now + 120 s)
    again = sweep.main(resume_sweep_args(layout.root, "--wait", "--wait-timeout", str(WAIT_S), "--poll-interval", "1"))
    return {
        "layout": layout,
        "names": names,
        "job": job,
        "stopped": stopped,
        "states": states_while_stopped,
        "again": again,
    }


def test_a_preempted_task_is_interrupted_with_a_checkpoint(preempted):
    layout, job = preempted["layout"], preempted["job"]
    (submission, _) = json.loads(layout.submissions.read_text())
    assert {"--requeue", "--open-mode=append", f"--signal=B:TERM@{slurm.DEFAULT_STOP_GRACE_S}"} <= set(
        submission["command"]
    )
    for index, (name, result) in enumerate(zip(preempted["names"], preempted["stopped"])):
        assert (result.status, result.exit_code, result.attempt, result.slurm_job) == (
            "interrupted",
            143,
            1,
            f"{job}_{index}",
        )
        assert 1 <= result.stopped_after_iteration < RESUME_ITERATIONS
        assert (
            len(run_one.status_events(attempt_outputs(layout, name)[0], "stop_requested")) == 1
        )  # one signal reached the script
    requeued, stopped = (preempted["states"][name] for name in preempted["names"])
    assert requeued.state == "queued" and "attempt 1 interrupted: stopped by SIGTERM" in requeued.detail, requeued
    assert stopped.state == "interrupted" and stopped.detail.startswith("attempt 1: stopped by SIGTERM"), stopped


def test_requeued_and_resubmitted_tasks_resume_to_the_end(preempted):
    layout, job = preempted["layout"], preempted["job"]
    assert preempted["again"] == 0
    first, second = json.loads(layout.submissions.read_text())
    assert second["indices"] == [1]  # the requeued task was still in the queue: only seed 2 was submitted again
    for name, stopped, slurm_job in zip(
        preempted["names"], preempted["stopped"], (f"{job}_0", f"{second['job_id']}_1")
    ):
        result = read_result(layout, name)
        assert result.complete and result.attempt == 2 and result.slurm_job == slurm_job, result
        assert result.resumed and result.resumed_from_iteration == stopped.stopped_after_iteration
        assert_scalars_continue(
            layout.run_dir(name), RESUME_ITERATIONS, RESUME_BATCH, [stopped.stopped_after_iteration]
        )
    output = (layout.slurm_dir / f"{job}_0.out").read_text()  # --open-mode=append: both runs of the requeued task
    assert "attempt 1:" in output and "attempt 2 (resumed):" in output
