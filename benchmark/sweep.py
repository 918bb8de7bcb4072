"""Sweep scripts x env ids x seeds, locally or as one Slurm array job; see a sweep's status.

    python -m benchmark.sweep --script ppo_discrete.py --env-ids CartPole-v1 Acrobot-v1 --seeds 1 2 3 \\
        --out benchmark/runs/classic_control -- --total-timesteps 500000
    python -m benchmark.sweep --backend slurm --partition gpu --gpus-per-task 1 --max-concurrent 8 ... -- ...
    python -m benchmark.sweep status --out benchmark/runs/classic_control [--wait] [--json]

Everything after `--` is passed to every run. Running the same command again skips complete runs and
reruns failed or unfinished ones; adding seeds or env ids extends the sweep. Runs write a checkpoint every
--checkpoint-every iterations (10 by default), and a run stopped by a signal (Ctrl-C, SIGTERM, a Slurm
preemption, requeue or time limit) writes one as it stops: its next attempt resumes from it. Exit codes: 0
when every run is complete (or, for a Slurm submission without --wait, when the job was submitted), 1 when
some failed or did not finish, 2 on bad input, 130 when the local backend was interrupted.

With --batch-seeds, each script's batched variant (SCRIPT_seeds.py, which trains several seeds in one process)
runs once per env id with all the seeds: one job (one local worker's process, one Slurm array task) per env id
instead of one per run. Its runs are named after the batched script, so they are other runs than the
script's own; seeds added later to an env id whose job exists run as a new job.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from benchmark import local, slurm
from benchmark.manifest import (
    SweepError,
    SweepLayout,
    batched_script,
    create_or_extend,
    expand_runs,
    load_manifest,
)
from benchmark.status import format_table, run_statuses, summary_line, wait_until_final


def split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split at the first `--`: the sweep's own arguments, and the arguments passed to every run."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {value}")
    return value


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.sweep",
        description="Run every script x env id x seed; arguments after `--` go to every run. "
        "`python -m benchmark.sweep status --out DIR` shows a sweep's state.",
    )
    parser.add_argument(
        "--script",
        dest="scripts",
        nargs="+",
        action="extend",
        required=True,
        help="training script(s), e.g. ppo_discrete.py",
    )
    parser.add_argument("--env-ids", nargs="+", action="extend", required=True, help="gymnasium env ids")
    parser.add_argument("--seeds", nargs="+", action="extend", type=int, required=True, help="seeds")
    parser.add_argument("--out", type=Path, required=True, help="sweep directory, e.g. benchmark/runs/NAME")
    parser.add_argument(
        "--batch-seeds",
        action="store_true",
        help="train the seeds of each script and env id in one process: runs the script's batched variant "
        "(ppo_discrete.py -> ppo_discrete_seeds.py) once per env id with all the seeds; its runs are named "
        "after it, so they are other runs than the script's own",
    )
    parser.add_argument("--backend", choices=("local", "slurm"), default="local")
    parser.add_argument(
        "--threads-per-run",
        type=positive_int,
        default=1,
        help="OMP_NUM_THREADS and --torch-threads of each run (default 1)",
    )
    parser.add_argument(
        "--checkpoint-every", type=non_negative_int, default=10,
        help="the scripts' --checkpoint-every: a checkpoint every N iterations, so a run that is killed loses "
        "at most N; a stopped or killed run's next attempt resumes from its checkpoint "
        "(default 10; 0: only when stopped by a signal)",
    )  # fmt: skip
    local_group = parser.add_argument_group("local backend")
    local_group.add_argument(
        "--workers", type=positive_int, default=None, help="jobs at once (default: CPU cores // threads per run)"
    )
    local_group.add_argument(
        "--progress-interval", type=float, default=30.0, help="seconds between progress summary lines"
    )
    slurm_group = parser.add_argument_group("slurm backend (one sbatch --array job)")
    slurm_group.add_argument("--partition", default=None)
    slurm_group.add_argument("--time", default=None, help="time limit per job (array task), e.g. 8:00:00")
    slurm_group.add_argument("--cpus-per-task", type=positive_int, default=None, help="default: --threads-per-run")
    slurm_group.add_argument("--gpus-per-task", type=int, default=0)
    slurm_group.add_argument("--mem", default=None, help="memory per job (array task), e.g. 8G")
    slurm_group.add_argument(
        "--max-concurrent", type=positive_int, default=None, help="array throttle: at most N jobs at once (%%N)"
    )
    slurm_group.add_argument("--job-name", default=None, help="default: benchmark-<sweep dir name>")
    slurm_group.add_argument(
        "--stop-grace", type=non_negative_int, default=slurm.DEFAULT_STOP_GRACE_S,
        help="seconds before the time limit at which a run is told to stop with a checkpoint "
        f"(sbatch --signal=B:TERM@N); the task then requeues itself and resumes "
        f"(default {slurm.DEFAULT_STOP_GRACE_S}; 0: no early signal)",
    )  # fmt: skip
    slurm_group.add_argument(
        "--sbatch-arg",
        dest="sbatch_args",
        action="append",
        default=[],
        help="extra sbatch argument, e.g. --sbatch-arg=--account=rl (repeatable)",
    )
    slurm_group.add_argument(
        "--wait", action="store_true", help="wait for the job to finish and exit like the local backend"
    )
    slurm_group.add_argument("--wait-timeout", type=float, default=7 * 24 * 3600, help="seconds --wait waits at most")
    slurm_group.add_argument(
        "--poll-interval", type=float, default=30.0, help="seconds between squeue polls with --wait"
    )
    return parser


def status_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.sweep status", description="Show the state of every run of a sweep."
    )
    parser.add_argument("--out", type=Path, required=True, help="the sweep directory")
    parser.add_argument("--json", action="store_true", help="print the states as JSON")
    parser.add_argument(
        "--wait", action="store_true", help="wait until no run is queued or running; exit 0 if all are complete, else 1"
    )
    parser.add_argument("--timeout", type=float, default=7 * 24 * 3600, help="seconds --wait waits at most")
    parser.add_argument("--poll-interval", type=float, default=30.0)
    return parser


def status_reader(layout: SweepLayout):
    """A function returning the sweep's current statuses (asking Slurm only if the sweep was submitted)."""
    manifest = load_manifest(layout)

    def read_statuses():
        states = slurm.sweep_task_states(layout) if slurm.read_submissions(layout) else {}
        return run_statuses(manifest, layout, states)

    return read_statuses


def print_statuses(statuses, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps({"summary": summary_line(statuses), "runs": [status.to_json() for status in statuses]}, indent=2)
        )
    else:
        print(format_table(statuses))
        print(summary_line(statuses))


def exit_code(statuses) -> int:
    return 0 if all(status.state == "complete" for status in statuses) else 1


def main_status(argv: Sequence[str]) -> int:
    args = status_parser().parse_args(argv)
    read_statuses = status_reader(SweepLayout(args.out))
    if not args.wait:
        statuses = read_statuses()
        print_statuses(statuses, args.json)
        return 0
    statuses, final = wait_until_final(read_statuses, args.timeout, args.poll_interval)
    print_statuses(statuses, args.json)
    if not final:
        print(f"timed out after {args.timeout:.0f} s with runs still queued or running", file=sys.stderr)
    return exit_code(statuses)


def check_time_and_grace(time_limit: Optional[str], stop_grace: int) -> None:
    """The stop signal must come after a run has started: Slurm sends it up to 60 s before the --stop-grace
    seconds before the time limit."""
    if stop_grace > 65535:
        raise SweepError(f"--stop-grace {stop_grace} is more than Slurm's --signal accepts (65535 s)")
    if time_limit is None or not stop_grace:
        return
    seconds = slurm.parse_time(time_limit)
    if seconds is not None and seconds <= stop_grace + 60:
        raise SweepError(
            f"--time {time_limit} leaves no time before the stop signal --stop-grace {stop_grace} asks for "
            "(Slurm may send it up to 60 s early): raise --time or lower --stop-grace"
        )


def scripts_to_run(scripts: Sequence[str], batch_seeds: bool) -> list[str]:
    """The scripts as given or, with --batch-seeds, their batched variants; refuses a script that is missing
    or has no batched variant. (A batched script given as such runs batched either way.)"""
    for script in scripts:
        if not Path(script).is_file():
            raise SweepError(f"no script {script!r} (relative to {Path.cwd()})")
    if not batch_seeds:
        return list(scripts)
    for script in scripts:
        if not Path(batched_script(script)).is_file():
            raise SweepError(
                f"--batch-seeds: {script} has no batched variant {batched_script(script)!r} (a script that trains "
                "several seeds in one process); run it without --batch-seeds"
            )
    return [batched_script(script) for script in scripts]


def main_run(argv: Sequence[str]) -> int:
    own_args, extra_args = split_extra(argv)
    args = run_parser().parse_args(own_args)
    layout = SweepLayout(args.out)
    runs = expand_runs(scripts_to_run(args.scripts, args.batch_seeds), args.env_ids, args.seeds, extra_args)
    if args.backend == "slurm":
        check_time_and_grace(args.time, args.stop_grace)
    manifest, indices = create_or_extend(
        layout, runs, args.threads_per_run, Path.cwd(), checkpoint_every=args.checkpoint_every
    )
    print(f"sweep {layout.root}: {len(runs)} runs of {len(manifest.runs)} in the manifest")

    if args.backend == "local":
        workers = args.workers or max(1, (os.cpu_count() or 1) // args.threads_per_run)
        try:
            local.run_local(manifest, layout, indices, workers, args.progress_interval)
        except KeyboardInterrupt:
            print(
                "interrupted; run the same command again to finish the sweep "
                "(interrupted runs resume from their checkpoints)",
                file=sys.stderr,
            )
            return 130
        statuses = [status for status in run_statuses(manifest, layout) if status.index in set(indices)]
        print(summary_line(statuses))
        return exit_code(statuses)

    available, reason = slurm.slurm_available()
    if not available:
        raise SweepError(f"Slurm is not reachable: {reason}")
    active = {index for index, task in slurm.sweep_task_states(layout).items() if task.active}
    incomplete = {status.index for status in run_statuses(manifest, layout) if status.state != "complete"}
    todo = [index for index in indices if index in incomplete and index not in active]
    if not todo:
        print(f"nothing to submit: {len(active & set(indices))} jobs queued or running, the rest complete")
    else:
        options = slurm.SlurmOptions(
            partition=args.partition, time=args.time, cpus_per_task=args.cpus_per_task or args.threads_per_run,
            gpus_per_task=args.gpus_per_task, mem=args.mem, max_concurrent=args.max_concurrent,
            job_name=args.job_name or f"benchmark-{layout.root.name}", extra=args.sbatch_args,
            stop_grace_s=args.stop_grace,
        )  # fmt: skip
        job_id = slurm.submit(layout, manifest.python, todo, options)
        print(f"submitted array job {job_id} with {len(todo)} tasks ({slurm.array_spec(todo, args.max_concurrent)}); "
              f"output in {layout.slurm_dir}; see `python -m benchmark.sweep status --out {args.out}`")  # fmt: skip
    if not args.wait:
        return 0
    statuses, _ = wait_until_final(status_reader(layout), args.wait_timeout, args.poll_interval)
    statuses = [status for status in statuses if status.index in set(indices)]
    print(format_table(statuses))
    print(summary_line(statuses))
    return exit_code(statuses)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["status"]:
            return main_status(argv[1:])
        return main_run(argv)
    except SweepError as error:
        print(f"benchmark.sweep: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
