"""Sweeps with --batch-seeds: a job (one process) trains several seeds of one env id with the script's batched
variant, ppo_discrete_seeds.py, and each seed is still a run of its own (its run directory, its result file).

- The manifest's jobs: how runs are grouped into jobs, the batched command line, and manifests written before jobs.
- A real local sweep of 2 seeds x 1 env id as one job: a leftover run directory is moved aside, the sweep is
  stopped by SIGTERM (the job stops with one checkpoint for both seeds) and run again (both resume to the end),
  then extended with a third seed (run alone, as a new job); benchmark.aggregate reads every run.
- The same sweep through the Slurm backend: one array task for both seeds (skipped without a Slurm controller).
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmark import run_one, slurm, sweep
from benchmark.aggregate import load_sweep, summarize_groups
from benchmark.manifest import (
    JobSpec,
    Manifest,
    RunSpec,
    SweepError,
    SweepLayout,
    expand_runs,
    load_manifest,
    run_name,
)
from benchmark.run_result import RunResult, read_result
from benchmark.status import run_statuses
from tests.benchmark_fixtures import (
    REPO,
    SLOW_ENV_MODULE,
    assert_scalars_continue,
    attempt_outputs,
    checkpoint_mtime,
    wait_for,
    write_slow_envs,
)
from tests.conftest import read_scalars

SCRIPT = "ppo_discrete_seeds.py"


def spec(script: str, env_id: str, seed: int, extra_args=()) -> RunSpec:
    return RunSpec(run_name(script, env_id, seed), script, env_id, seed, tuple(extra_args))


# ---------------- jobs in the manifest ----------------


def test_a_batched_job_is_one_command_for_all_its_seeds():
    job = JobSpec(tuple(spec("a_seeds.py", "X-v0", seed, ["--lr", "1"]) for seed in (3, 1)))
    assert job.batched and job.name == "X-v0__a_seeds__3" and job.label == "X-v0__a_seeds__{3,1}"
    fresh = job.command("python", Path("/s/runs"), 2, checkpoint_every=10)
    assert fresh == [
        "python", "a_seeds.py", "--env-id", "X-v0", "--seeds", "3", "1",
        "--output-dir", "/s/runs", "--run-name", "X-v0__a_seeds__{seed}",
        "--torch-threads", "2", "--checkpoint-every", "10", "--lr", "1",
    ]  # fmt: skip
    # the checkpoint of all seeds is in the first seed's run directory; the other arguments stay
    resumed = job.command("python", Path("/s/runs"), 2, checkpoint_every=10, resume=True)
    assert resumed == [
        "python", "a_seeds.py", "--env-id", "X-v0", "--seeds", "3", "1", "--resume", "/s/runs/X-v0__a_seeds__3",
        "--torch-threads", "2", "--checkpoint-every", "10", "--lr", "1",
    ]  # fmt: skip
    one = JobSpec((spec("a.py", "X-v0", 1),))
    assert not one.batched and one.label == one.name == "X-v0__a__1"
    assert one.command("python", Path("/s/runs"), 1) == spec("a.py", "X-v0", 1).command("python", Path("/s/runs"), 1)
    assert "--seeds" not in one.command("python", Path("/s/runs"), 1)


def test_a_job_holds_the_seeds_of_one_batched_script_env_id_and_extra_args():
    with pytest.raises(ValueError, match="one seed a process"):
        JobSpec((spec("a.py", "X-v0", 1), spec("a.py", "X-v0", 2)))
    with pytest.raises(ValueError, match="share their script"):
        JobSpec((spec("a_seeds.py", "X-v0", 1), spec("a_seeds.py", "Y-v0", 2)))
    with pytest.raises(ValueError, match="share their script"):
        JobSpec((spec("a_seeds.py", "X-v0", 1), spec("a_seeds.py", "X-v0", 2, ["--lr", "1"])))


def test_batched_runs_are_one_job_per_env_id_and_new_seeds_a_new_job():
    manifest = Manifest(workdir="/w", python="python", threads_per_run=1)
    assert manifest.extend(expand_runs(["a.py"], ["X-v0"], [1, 2], [])) == [0, 1]  # a job a run
    assert manifest.extend(expand_runs(["a_seeds.py"], ["X-v0", "Y-v0"], [1, 2], [])) == [2, 3]
    assert [[run.name for run in job.runs] for job in manifest.jobs[2:]] == [
        ["X-v0__a_seeds__1", "X-v0__a_seeds__2"],
        ["Y-v0__a_seeds__1", "Y-v0__a_seeds__2"],
    ]
    # seeds 1 and 2 are in jobs 2 and 3 already; seed 3 of each env id is new: a job each, the old ones unchanged
    assert manifest.extend(expand_runs(["a_seeds.py"], ["X-v0", "Y-v0"], [1, 2, 3], [])) == [2, 4, 3, 5]
    assert [[run.seed for run in job.runs] for job in manifest.jobs] == [[1], [2], [1, 2], [1, 2], [3], [3]]
    assert manifest.extend(expand_runs(["a_seeds.py"], ["X-v0"], [2], [])) == [2]  # part of a job: that job
    assert len(manifest.runs) == 8 and len(manifest.jobs) == 6
    again = Manifest.from_json(json.loads(json.dumps(manifest.to_json())))
    assert again.jobs == manifest.jobs and again.runs == manifest.runs
    with pytest.raises(SweepError, match="already has a run"):
        manifest.extend(expand_runs(["a_seeds.py"], ["X-v0"], [1], ["--lr", "2"]))


def test_manifests_from_before_jobs_read_as_a_job_a_run():
    old = {
        "version": 1, "created": "2026-01-01T00:00:00+00:00", "workdir": "/w", "python": "python",
        "threads_per_run": 1, "checkpoint_every": 10,
        "runs": [spec("a.py", "X-v0", seed).to_json() for seed in (1, 2)],
    }  # fmt: skip
    manifest = Manifest.from_json(old)
    assert [job.runs for job in manifest.jobs] == [(spec("a.py", "X-v0", 1),), (spec("a.py", "X-v0", 2),)]
    assert manifest.extend(expand_runs(["a.py"], ["X-v0"], [2, 3], [])) == [1, 2]
    written = manifest.to_json()
    assert written["version"] == 2 and written["jobs"] == [[0], [1], [2]]


@pytest.mark.parametrize(
    "jobs, error",
    [([[0], [0, 1]], "list a run twice"), ([[0], [5]], "list a run twice"), ([[0, 1]], "one seed a process")],
)
def test_manifests_with_inconsistent_jobs_are_refused(jobs, error):
    manifest = Manifest(workdir="/w", python="python", threads_per_run=1)
    manifest.extend(expand_runs(["a.py"], ["X-v0"], [1, 2], []))
    with pytest.raises(SweepError, match=error):
        Manifest.from_json({**manifest.to_json(), "jobs": jobs})


def test_batch_seeds_refuses_a_script_without_a_batched_variant(tmp_path, capsys):
    assert not (REPO / "ppo_atari_seeds.py").exists()
    args = ["--script", str(REPO / "ppo_atari.py"), "--env-ids", "BreakoutNoFrameskip-v4", "--seeds", "1", "2"]
    assert sweep.main([*args, "--out", str(tmp_path / "s"), "--batch-seeds"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("benchmark.sweep: error: --batch-seeds:") and "ppo_atari_seeds.py" in line, line
    assert not (tmp_path / "s").exists()  # nothing written


# ---------------- a real local sweep: leftover, SIGTERM, resume, more seeds ----------------

# 32 iterations of 2 envs x 64 steps of TickingCartPole (1 ms a step: 0.26 s an iteration for the two seeds, 8 s
# the job, however fast the machine), so that the job is still going when the sweep's SIGTERM reaches it.
ITERATIONS, BATCH = 32, 128
ARGS = ["--total-timesteps", str(ITERATIONS * BATCH), "--num-envs", "2", "--num-steps", "64"]
TICKING = f"{SLOW_ENV_MODULE}:TickingCartPole-v0"
FIRST, SECOND, THIRD = (run_name(SCRIPT, TICKING, seed) for seed in (1, 2, 3))
TIMEOUT_S = 300


def sweep_command(out: Path, *seeds: int) -> list[str]:
    return [
        sys.executable, "-m", "benchmark.sweep", "--script", str(REPO / "ppo_discrete.py"), "--batch-seeds",
        "--env-ids", TICKING, "--seeds", *map(str, seeds), "--out", str(out), "--checkpoint-every", "1",
        "--progress-interval", "600", "--", *ARGS,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """A leftover run directory of seed 2 (no checkpoint); the sweep of seeds 1 and 2 (one job) stopped by a
    SIGTERM to the sweep after the job's first checkpoint; the same command again; then seeds 1, 2 and 3."""
    root = tmp_path_factory.mktemp("batched")
    layout = SweepLayout(root / "sweep")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(write_slow_envs(root)), str(REPO)]), WANDB_MODE="disabled")
    leftover = layout.run_dir(SECOND)
    leftover.mkdir(parents=True)
    (leftover / "events.out.tfevents.partial").write_text("partial")

    first = subprocess.Popen(
        sweep_command(layout.root, 1, 2), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: checkpoint_mtime(layout, FIRST), "the job's first checkpoint", TIMEOUT_S, process=first)
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=TIMEOUT_S)
    finally:
        if first.poll() is None:
            first.kill()
    stopped = {name: read_result(layout, name) for name in (FIRST, SECOND)}
    statuses = run_statuses(load_manifest(layout), layout)

    def run(*seeds: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            sweep_command(layout.root, *seeds), cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )

    again = run(1, 2)
    completed = {name: layout.result(name).read_text() for name in (FIRST, SECOND)}
    extended = run(1, 2, 3)
    return {
        "layout": layout,
        "first": (first.returncode, output),
        "stopped": stopped,
        "statuses": statuses,
        "again": again,
        "completed": completed,
        "extended": extended,
    }


def test_the_job_stops_with_one_checkpoint_for_both_seeds(local_sweep):
    layout = local_sweep["layout"]
    code, output = local_sweep["first"]
    assert code == 130, output
    first, second = local_sweep["stopped"].values()
    assert (first.status, first.exit_code, first.attempt) == ("interrupted", 143, 1), first
    assert 1 <= first.stopped_after_iteration < ITERATIONS
    # one result per run, alike but for the run's name and directory
    assert (first.name, first.run_dir, second.name, second.run_dir) == (
        FIRST, f"runs/{FIRST}", SECOND, f"runs/{SECOND}",
    )  # fmt: skip
    assert {**asdict(second), "name": FIRST, "run_dir": f"runs/{FIRST}"} == asdict(first)
    assert first.command[first.command.index("--seeds") :][:3] == ["--seeds", "1", "2"]
    assert first.log == f"logs/{FIRST}.log" and not layout.log(SECOND).exists()  # one process, one log
    assert (layout.run_dir(FIRST) / "checkpoint.pt").is_file()
    assert not (layout.run_dir(SECOND) / "checkpoint.pt").exists()  # the job's one checkpoint is in its first run's
    assert (
        len(run_one.status_events(attempt_outputs(layout, FIRST)[0], "stop_requested")) == 1
    )  # one signal reached the script
    assert f"interrupted {run_name(SCRIPT, TICKING, '{1,2}')}" in output
    assert [(status.index, status.name, status.state) for status in local_sweep["statuses"]] == [
        (0, FIRST, "interrupted"),
        (0, SECOND, "interrupted"),
    ]


def test_a_leftover_run_directory_of_another_seed_is_moved_aside(local_sweep):
    layout = local_sweep["layout"]
    assert (layout.runs_dir / f"{SECOND}.failed-1" / "events.out.tfevents.partial").read_text() == "partial"
    assert f"moved the run directory of an unfinished attempt (no checkpoint.pt) to {SECOND}.failed-1" in (
        layout.log(FIRST).read_text()
    )
    assert not list(layout.runs_dir.glob(f"{FIRST}.failed-*"))


def test_running_the_sweep_again_resumes_both_seeds_to_the_end(local_sweep):
    layout, again = local_sweep["layout"], local_sweep["again"]
    assert again.returncode == 0, again.stdout + again.stderr
    for name in (FIRST, SECOND):
        stop = local_sweep["stopped"][name].stopped_after_iteration
        result = RunResult(**json.loads(local_sweep["completed"][name]))
        assert result.complete and result.attempt == 2 and result.resumed, result
        assert (result.resumed_from_iteration, result.resumed_from_step) == (stop, stop * BATCH)
        command = result.command
        assert command[command.index("--resume") + 1] == str(layout.run_dir(FIRST)) and "--run-name" not in command
        assert command[command.index("--seeds") :][:3] == ["--seeds", "1", "2"]
        assert_scalars_continue(layout.run_dir(name), ITERATIONS, BATCH, [stop])
    first, second = (read_scalars(layout.run_dir(name))["charts/episodic_return"] for name in (FIRST, SECOND))
    assert first != second  # two seeds, not one seed twice


def test_new_seeds_run_as_a_new_job_and_complete_runs_are_kept(local_sweep):
    layout, extended = local_sweep["layout"], local_sweep["extended"]
    assert extended.returncode == 0, extended.stdout + extended.stderr
    assert "3 runs in 2 jobs: 2 already complete, 1 to run" in extended.stdout
    assert [[run.seed for run in job.runs] for job in load_manifest(layout).jobs] == [[1, 2], [3]]
    assert {name: layout.result(name).read_text() for name in (FIRST, SECOND)} == local_sweep["completed"]
    third = read_result(layout, THIRD)
    assert third.complete and third.attempt == 1 and not third.resumed
    assert third.command[third.command.index("--seeds") :][:2] == ["--seeds", "3"] and "--run-name" in third.command
    assert_scalars_continue(layout.run_dir(THIRD), ITERATIONS, BATCH, [])


def test_aggregate_reads_every_seed_as_a_run_of_the_batched_script(local_sweep):
    complete, incomplete = load_sweep(local_sweep["layout"].root)
    assert incomplete == []
    assert [(run.name, run.script, run.seed) for run in complete] == [
        (FIRST, "ppo_discrete_seeds", 1),
        (SECOND, "ppo_discrete_seeds", 2),
        (THIRD, "ppo_discrete_seeds", 3),
    ]
    assert all(run.total_steps == ITERATIONS * BATCH and run.num_episodes > 0 for run in complete)
    (group,) = summarize_groups(complete, reps=100)
    assert (group.script, group.env_id, group.seeds) == ("ppo_discrete_seeds", TICKING, [1, 2, 3])


# ---------------- the Slurm backend: one array task for both seeds ----------------

SLURM, WHY_NOT = slurm.slurm_available()
TINY = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64"]


def slurm_args(out: Path) -> list[str]:
    return [
        "--backend", "slurm", "--script", str(REPO / "ppo_discrete.py"), "--batch-seeds", "--env-ids", "CartPole-v1",
        "--seeds", "1", "2", "--out", str(out), "--time", "10:00", "--wait", "--wait-timeout", str(TIMEOUT_S),
        "--poll-interval", "1", "--", *TINY,
    ]  # fmt: skip


@pytest.mark.skipif(not SLURM, reason=f"no Slurm: {WHY_NOT}")
def test_slurm_runs_a_batched_job_as_one_array_task(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    layout = SweepLayout(tmp_path / "sweep")
    assert sweep.main(slurm_args(layout.root)) == 0
    assert sweep.main(slurm_args(layout.root)) == 0  # complete: nothing submitted again
    (submission,) = json.loads(layout.submissions.read_text())
    assert submission["indices"] == [0] and "--array=0" in submission["command"]
    for seed in (1, 2):
        name = run_name(SCRIPT, "CartPole-v1", seed)
        result = read_result(layout, name)
        assert result.complete and result.slurm_job == f"{submission['job_id']}_0", result
        assert max(step for step, _ in read_scalars(layout.run_dir(name))["charts/SPS"]) == 256
    capsys.readouterr()
    assert sweep.main(["status", "--out", str(layout.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [(run["index"], run["state"]) for run in status["runs"]] == [(0, "complete"), (0, "complete")]
