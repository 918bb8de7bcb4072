"""The sweep runner: naming and manifest rules, and a tiny real sweep of ppo_discrete.py through the local backend
that fails, is resumed, and is run once more.

The real sweep has two runs, CartPole-v1 and an env registered by a module that does not exist yet, so its
first attempt fails (exit code 2, `cannot import`). Before the first pass, CartPole's run directory is
planted as if a killed attempt had left it, with a half-written result file beside it. The second pass
(after the module is written) must skip CartPole and rerun the other; the third must run nothing.
"""

import json
import os
from pathlib import Path

import pytest

from benchmark import slurm, sweep
from benchmark.manifest import Manifest, RunSpec, SweepError, SweepLayout, check_extra_args, expand_runs, run_name
from benchmark.run_result import read_result
from benchmark.run_one import failure_reason, logged_attempts, move_aside
from tests.benchmark_fixtures import REPO

TINY = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64"]
FLAKY_MODULE = "benchmark_flaky_env"
FLAKY_ENV = f"{FLAKY_MODULE}:BenchFlaky-v0"
FLAKY_SOURCE = (
    "import gymnasium as gym\n\n"
    'gym.register("BenchFlaky-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv", '
    "max_episode_steps=500)\n"
)
CARTPOLE = run_name("ppo_discrete.py", "CartPole-v1", 1)
FLAKY = run_name("ppo_discrete.py", FLAKY_ENV, 1)


# ---------------- names, manifest, small pieces ----------------


def test_run_names_are_deterministic_and_file_safe():
    assert run_name("ppo_discrete.py", "CartPole-v1", 3) == "CartPole-v1__ppo_discrete__3"
    assert run_name("/abs/path/ppo_atari.py", "ALE/Pong-v5", 1) == "ALE-Pong-v5__ppo_atari__1"
    assert (
        run_name("ppo_discrete.py", "tests.probe_envs:LoopTruncated-v0", 2)
        == "tests.probe_envs-LoopTruncated-v0__ppo_discrete__2"
    )


def test_expand_runs_is_the_cross_product():
    runs = expand_runs(["a.py", "b.py"], ["X-v0", "Y-v1"], [1, 2, 3], ["--lr", "1"])
    assert len(runs) == 12
    assert runs[0] == RunSpec("X-v0__a__1", "a.py", "X-v0", 1, ("--lr", "1"))
    assert runs[-1].name == "Y-v1__b__3"
    with pytest.raises(SweepError, match="share the name"):
        expand_runs(["a.py"], ["ALE/Pong-v5", "ALE-Pong-v5"], [1], [])


@pytest.mark.parametrize(
    "arg",
    [
        "--seed",
        "--seed=3",
        "--env_id=CartPole-v1",
        "--output-dir",
        "--run_name",
        "--torch-threads=4",
        "--checkpoint-every=5",
        "--resume",
    ],
)
def test_extra_args_may_not_set_managed_flags(arg):
    with pytest.raises(SweepError, match="sets --"):
        check_extra_args(["--total-timesteps", "100", arg])


def test_extra_args_may_set_anything_else():
    check_extra_args(["--total-timesteps=100", "--learning-rate", "0.001", "--no-anneal-lr", "--seed-like-value"])


def test_manifest_extends_but_refuses_a_changed_run():
    manifest = Manifest(workdir="/w", python="python", threads_per_run=1)
    first = expand_runs(["a.py"], ["X-v0"], [1, 2], ["--n", "1"])
    assert manifest.extend(first) == [0, 1]
    assert manifest.extend(expand_runs(["a.py"], ["X-v0"], [2, 3], ["--n", "1"])) == [1, 2]  # seed 3 appended
    assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))).runs == manifest.runs
    with pytest.raises(SweepError, match="already has a run"):
        manifest.extend(expand_runs(["a.py"], ["X-v0"], [1], ["--n", "2"]))


def test_a_resumed_run_continues_its_directory_with_the_same_arguments():
    spec = RunSpec("X-v0__a__1", "a.py", "X-v0", 1, ("--lr", "1"))
    fresh = spec.command("python", Path("/s/runs"), 2, checkpoint_every=10)
    assert fresh == [
        "python",
        "a.py",
        "--env-id",
        "X-v0",
        "--seed",
        "1",
        "--output-dir",
        "/s/runs",
        "--run-name",
        "X-v0__a__1",
        "--torch-threads",
        "2",
        "--checkpoint-every",
        "10",
        "--lr",
        "1",
    ]
    resumed = spec.command("python", Path("/s/runs"), 2, checkpoint_every=10, resume=True)
    assert resumed == [
        "python",
        "a.py",
        "--env-id",
        "X-v0",
        "--seed",
        "1",
        "--resume",
        "/s/runs/X-v0__a__1",
        "--torch-threads",
        "2",
        "--checkpoint-every",
        "10",
        "--lr",
        "1",
    ]
    assert "--checkpoint-every" not in spec.command("python", Path("/s/runs"), 2)  # 0: the scripts' default


def test_manifests_from_before_checkpoints_still_load():
    manifest = Manifest(workdir="/w", python="python", threads_per_run=1, checkpoint_every=5)
    data = manifest.to_json()
    assert Manifest.from_json(data).checkpoint_every == 5
    del data["checkpoint_every"]
    assert Manifest.from_json(data).checkpoint_every == 0


def test_attempts_are_counted_from_the_log_headers(tmp_path):
    log = tmp_path / "run.log"
    assert logged_attempts(log) == 0
    log.write_text(
        "===== attempt 1 of r, started ...\nstep 1\n===== attempt 3 of r, started ...\nx ===== attempt 9 of r\n"
    )
    assert logged_attempts(log) == 3  # only header lines count


def test_move_aside_numbers_attempts_and_keeps_data(tmp_path):
    for attempt in (1, 2):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "events").write_text(str(attempt))
        assert move_aside(tmp_path / "run") == tmp_path / f"run.failed-{attempt}"
    assert [(tmp_path / f"run.failed-{n}" / "events").read_text() for n in (1, 2)] == ["1", "2"]
    assert move_aside(tmp_path / "run") is None


def test_failure_reasons():
    assert failure_reason(0, "", has_events=True) == ""
    assert failure_reason(0, "", has_events=False) == "exited 0 but wrote no TensorBoard events"
    assert (
        failure_reason(2, "step ...\nppo_discrete.py: error: unknown env id 'X'", True)
        == "exit code 2: ppo_discrete.py: error: unknown env id 'X'"
    )
    assert failure_reason(-9, "", False) == "killed by signal SIGKILL"


def test_slurm_durations():
    assert [slurm.parse_time(text) for text in ("10", "10:30", "1:02:03", "2-3", "2-3:04", "2-03:04:05", "0:08")] == [
        600,
        630,
        3723,
        183600,
        183840,
        183845,
        8,
    ]
    assert [slurm.parse_time(text) for text in ("UNLIMITED", "NOT_SET", "INVALID", "")] == [None] * 4


def test_a_time_limit_must_leave_room_for_the_stop_signal(tmp_path, capsys):
    args = [
        "--backend",
        "slurm",
        "--script",
        str(REPO / "ppo_discrete.py"),
        "--env-ids",
        "CartPole-v1",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "s"),
    ]
    assert sweep.main([*args, "--time", "4:00"]) == 2  # 240 s: the default 180 s grace, and up to 60 s early
    assert "--stop-grace 180" in capsys.readouterr().err and not (tmp_path / "s").exists()
    sweep.check_time_and_grace("4:00", 60)
    sweep.check_time_and_grace("4:00", 0)  # no stop signal
    sweep.check_time_and_grace(None, 180)
    sweep.check_time_and_grace("infinite", 180)
    with pytest.raises(SweepError, match="65535"):
        sweep.check_time_and_grace(None, 70000)


def test_results_that_are_not_whole_do_not_count(tmp_path):
    layout = SweepLayout(tmp_path)
    layout.make_dirs()
    layout.result("r").write_text('{"name": "r", "status": "comp')  # cannot come from the atomic writer, but still
    assert read_result(layout, "r") is None


def test_array_spec_compacts_indices():
    assert slurm.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert slurm.array_spec([3], max_concurrent=2) == "3%2"
    assert slurm.array_spec([4, 2, 3, 3]) == "2-4"


def test_sbatch_command_is_an_argument_list_with_the_fixed_script(tmp_path):
    layout = SweepLayout(tmp_path / "sweep; rm -rf x")  # a hostile-looking path stays one argument
    options = slurm.SlurmOptions(
        partition="gpu",
        time="1:00:00",
        cpus_per_task=2,
        gpus_per_task=1,
        max_concurrent=4,
        job_name="bench",
        extra=["--account=rl"],
    )
    command = slurm.sbatch_command(layout, "/usr/bin/python3", [0, 1, 2], options)
    assert command[:3] == ["sbatch", "--parsable", "--array=0-2%4"]
    assert {
        "--partition=gpu",
        "--time=1:00:00",
        "--cpus-per-task=2",
        "--gpus-per-task=1",
        "--account=rl",
        "--job-name=bench",
    } <= set(command)
    # preemption and time limits resume
    assert {"--requeue", "--open-mode=append", "--signal=B:TERM@180"} <= set(command)
    options.stop_grace_s = 0
    assert not [arg for arg in slurm.sbatch_command(layout, "python", [0], options) if arg.startswith("--signal")]
    assert command[-3:] == [str(slurm.ARRAY_TASK_SCRIPT), "/usr/bin/python3", str(layout.manifest)]
    with pytest.raises(SweepError, match="'%'"):
        slurm.sbatch_command(SweepLayout(tmp_path / "100%"), "python", [0], options)


def test_array_task_script_passes_only_its_arguments_and_the_task_id():
    lines = [line for line in slurm.ARRAY_TASK_SCRIPT.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == ['exec "$1" -m benchmark.run_one "$2" "$SLURM_ARRAY_TASK_ID"']


def test_parse_squeue_and_scontrol():
    squeue = "12|0|RUNNING|None\n12|3|PENDING|JobArrayTaskLimit\n13|0|PENDING|None\n"
    states = slurm.parse_squeue(squeue, "12")
    assert {index: (s.state, s.reason) for index, s in states.items()} == {
        0: ("RUNNING", "None"),
        3: ("PENDING", "JobArrayTaskLimit"),
    }
    assert all(s.active for s in states.values())
    scontrol = (
        "JobId=14 ArrayJobId=12 ArrayTaskId=1 ArrayTaskThrottle=2 JobName=b JobState=COMPLETED Reason=None "
        "ExitCode=0:0 RunTime=00:00:03\n"
        "JobId=15 ArrayJobId=12 ArrayTaskId=2 JobName=b JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n"
        "JobId=12 ArrayJobId=12 ArrayTaskId=3-5%2 JobName=b JobState=PENDING Reason=None ExitCode=0:0\n"
    )
    finished = slurm.parse_scontrol(scontrol, "12")
    assert {index: s.state for index, s in finished.items()} == {1: "COMPLETED", 2: "TIMEOUT"}
    assert not finished[2].active and finished[2].reason == "ExitCode=0:15"


# ---------------- a real sweep through the local backend ----------------


def sweep_args(out: Path) -> list[str]:
    return [
        "--script",
        str(REPO / "ppo_discrete.py"),
        "--env-ids",
        "CartPole-v1",
        FLAKY_ENV,
        "--seeds",
        "1",
        "--out",
        str(out),
        "--workers",
        "2",
        "--progress-interval",
        "5",
        "--",
        *TINY,
    ]


def snapshot(layout: SweepLayout) -> dict:
    return {path.name: (path.read_text(), path.stat().st_mtime_ns) for path in layout.results_dir.glob("*.json")}


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    """Run the sweep three times (see the module docstring); returns what each pass left behind."""
    root = tmp_path_factory.mktemp("sweep")
    module_dir = root / "modules"
    module_dir.mkdir()
    layout = SweepLayout(root / "sweep")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("PYTHONPATH", os.pathsep.join([str(module_dir), str(REPO)]))
        patch.setenv("WANDB_MODE", "disabled")
        # the leftovers of a killed attempt: a run dir with partial events, and a result file half-written
        stale = layout.run_dir(CARTPOLE)
        stale.mkdir(parents=True)
        (stale / "events.out.tfevents.partial").write_text("partial")
        layout.results_dir.mkdir(parents=True)
        (layout.results_dir / f".{CARTPOLE}.json.x1y2.tmp").write_text('{"status": "complete"')

        first_code = sweep.main(sweep_args(layout.root))
        first = snapshot(layout)
        (module_dir / f"{FLAKY_MODULE}.py").write_text(FLAKY_SOURCE)
        second_code = sweep.main(sweep_args(layout.root))
        second = snapshot(layout)
        third_code = sweep.main(sweep_args(layout.root))
        third = snapshot(layout)
    return {"layout": layout, "codes": (first_code, second_code, third_code), "snapshots": (first, second, third)}


def test_first_pass_completes_one_run_and_records_the_failure(passes):
    layout = passes["layout"]
    assert passes["codes"][0] == 1  # some run failed
    first = passes["snapshots"][0]
    assert set(first) == {f"{CARTPOLE}.json", f"{FLAKY}.json"}
    cartpole = json.loads(first[f"{CARTPOLE}.json"][0])
    assert cartpole["status"] == "complete" and cartpole["exit_code"] == 0
    assert cartpole["attempt"] == 2  # the killed attempt that left the run dir was attempt 1
    assert cartpole["command"][2:4] == ["--env-id", "CartPole-v1"] and "--torch-threads" in cartpole["command"]
    assert cartpole["wall_time_s"] > 0 and cartpole["peak_rss_mb"] > 50  # a python process with torch
    assert "done:" in cartpole["log_tail"]
    flaky = json.loads(first[f"{FLAKY}.json"][0])
    assert flaky["status"] == "failed" and flaky["exit_code"] == 2
    assert "cannot import" in flaky["log_tail"] and flaky["reason"].startswith(
        "exit code 2: ppo_discrete.py: error: cannot import"
    )
    assert (layout.root / flaky["log"]).is_file()


def test_leftover_run_dir_is_moved_aside_and_kept(passes):
    layout = passes["layout"]
    kept = layout.runs_dir / f"{CARTPOLE}.failed-1"
    assert (kept / "events.out.tfevents.partial").read_text() == "partial"
    assert "moved the run directory of an unfinished attempt" in layout.log(CARTPOLE).read_text()


def test_runs_are_complete_with_their_tensorboard_events(passes):
    from tests.conftest import read_scalars

    layout = passes["layout"]
    assert passes["codes"][1] == 0
    for name in (CARTPOLE, FLAKY):
        result = read_result(layout, name)
        assert result is not None and result.complete
        scalars = read_scalars(layout.run_dir(name))
        assert max(step for step, _ in scalars["charts/SPS"]) == 256
        assert len(scalars["charts/episodic_return"]) > 0
        assert {"losses/clipfrac", "losses/approx_kl", "losses/entropy", "charts/learning_rate"} <= set(scalars)


def test_rerun_skips_complete_runs_and_retries_failed_ones(passes):
    first, second, _ = passes["snapshots"]
    assert second[f"{CARTPOLE}.json"] == first[f"{CARTPOLE}.json"]  # not touched
    flaky = json.loads(second[f"{FLAKY}.json"][0])
    assert flaky["status"] == "complete" and flaky["attempt"] == 2
    log = passes["layout"].log(FLAKY).read_text()
    assert "attempt 1 of" in log and "attempt 2 of" in log and "cannot import" in log  # both attempts logged


def test_rerun_of_a_complete_sweep_runs_nothing(passes):
    _, second, third = passes["snapshots"]
    assert passes["codes"][2] == 0
    assert third == second


def test_status_command(passes, capsys):
    capsys.readouterr()
    assert sweep.main(["status", "--out", str(passes["layout"].root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {run["name"]: run["state"] for run in status["runs"]} == {CARTPOLE: "complete", FLAKY: "complete"}
    assert status["summary"] == "2 runs: 2 complete"


def test_same_names_with_other_extra_args_are_refused(passes, capsys):
    args = sweep_args(passes["layout"].root)
    args[-1] = "32"  # --num-steps 32: another experiment under the same run names
    assert sweep.main(args) == 2
    assert "already has a run" in capsys.readouterr().err


def test_missing_script_is_a_usage_error(tmp_path, capsys):
    assert (
        sweep.main(
            [
                "--script",
                str(tmp_path / "nope.py"),
                "--env-ids",
                "CartPole-v1",
                "--seeds",
                "1",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    assert "no script" in capsys.readouterr().err
