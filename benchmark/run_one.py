"""Run one job of a sweep (one run, or a batched script's seeds of one env id) and record the results of its
runs; also the entry point of a Slurm array task:

    python -m benchmark.run_one SWEEP_DIR_OR_MANIFEST INDEX      # INDEX: the job's, in the manifest

An attempt: take the job's lock (so two runners never run it at once); if an earlier attempt left the job's
checkpoint.pt (in its first run's directory), resume it (the script's --resume), else move its runs' leftover
run directories aside to NAME.failed-N (the scripts refuse an existing run directory, and its data is kept);
start the script with its output appended to logs/NAME.log (NAME: the job's first run), and once the process
has exited write each run's results/NAME.json atomically with the job's status (complete, interrupted or
failed), exit code, wall time, peak memory and the tail of its log.

Stopping. The scripts stop cleanly on SIGTERM or SIGINT: they finish the iteration in progress, write
checkpoint.pt and exit with 128 + the signal number; a second signal stops them at once. The runner must
therefore see that the script gets exactly one signal, whether the signal reached the runner only (Ctrl-C of
a local sweep, `kill RUNNER`, Slurm's --signal=B:TERM@N or `scancel --batch`) or the runner and the script
both (a Slurm job's cancel, requeue, preemption or time limit signals every process of the job; Ctrl-C in a
terminal signals the whole foreground process group). On a signal the runner waits FORWARD_DELAY_S, then
sends the same signal to the script unless the script has already said on its output that it is stopping
(its "stop_requested" status line), so it never turns one stop into two. Where the script runs:
  - local backend: in its own session (start_new_session), so a terminal's Ctrl-C or a signal to the sweep's
    process group reaches only the runner, which forwards it; a second signal to the runner is forwarded at
    once (stop now), a third kills the scripts.
  - Slurm array task (`main`): in the runner's process group, as Slurm expects (proctrack/pgid tracks a job's
    processes by process group; a new session would escape it), so job-wide signals reach both and only
    batch-shell-only signals are forwarded. Further signals are not forwarded: they reach the script directly.
When a Slurm task was stopped by the time-limit warning (--signal=B:TERM@GRACE, see benchmark/slurm.py) after
it made progress, it requeues itself (`scontrol requeue`), and the requeued task resumes from the checkpoint.
"""

import argparse
import fcntl
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from benchmark import slurm
from benchmark.manifest import JobSpec, Manifest, SweepError, SweepLayout, load_manifest, utc_now
from benchmark.run_result import COMPLETE, FAILED, INTERRUPTED, RunResult, job_complete, read_result, write_result

LOG_TAIL_LINES = 30
LOG_TAIL_CHARS = 6000
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CHECKPOINT_NAME = "checkpoint.pt"
POLL_SECONDS = 0.2
# How long a signal to the runner waits before it is forwarded: long enough for a script that got the same
# signal directly to print STOP_NOTICE (its handler runs between two Python bytecodes of its main thread).
FORWARD_DELAY_S = 2.0
# The scripts' machine-readable lines: STATUS_PREFIX and a JSON object whose "event" is "stop_requested" (from the
# signal handler, when a SIGINT or SIGTERM reaches them: "signal"), "stopped" (when they stop on it: "signal",
# "iteration", "num_iterations", "global_step") or "resumed" ("iteration", "num_iterations", "global_step").
STATUS_PREFIX = "PPO_STATUS "
ATTEMPT_HEADER = re.compile(rb"^===== attempt (\d+) of ", re.MULTILINE)
# Exit codes of a script stopped by SIGTERM or SIGINT: its own clean stop (128 + signal), or the signal's
# default action when it arrived before the script installed its handler.
STOP_EXIT_CODES = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT}
# Slurm sends --signal's signal up to 60 s earlier than asked ("resolution of event handling").
SLURM_SIGNAL_EARLY_S = 60


class RunBusy(Exception):
    """Another process holds the job's lock: an attempt of this job is in progress elsewhere."""


@dataclass
class Attempt:
    """A started attempt of a job whose process has not been waited for yet."""

    job: JobSpec
    number: int
    command: list[str]
    process: subprocess.Popen
    lock_fd: int
    log_path: Path
    log_offset: int  # where this attempt's output starts in the log
    started_at: str
    started_monotonic: float
    resumed: bool = False  # started with --resume on the run directory's checkpoint
    own_session: bool = False  # the script runs in its own session: signals reach it only through the runner
    previous: Optional[RunResult] = None  # the result of the job's first run before this attempt
    # Stopping (see the module docstring): signals the runner received, and those it sent to the script
    received: list[int] = field(default_factory=list)
    received_at: Optional[float] = None  # time.monotonic() of the first
    received_wall: Optional[float] = None  # time.time() of the first
    first_handled: bool = False  # the first received signal has been forwarded, or found to have reached the script
    second_sent: bool = False  # own session: a second signal has been sent (the script stops at once)
    sent: list[int] = field(default_factory=list)


def try_lock(path: Path) -> Optional[int]:
    """An exclusive flock on `path`, or None when another process holds it. The lock lives as long as any
    process holds the returned descriptor open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_running(layout: SweepLayout, name: str) -> bool:
    """Whether some process on this machine (or sharing this file system's locks) is running the job `name`
    (a job's name: that of its first run)."""
    fd = try_lock(layout.lock(name))
    if fd is None:
        return True
    os.close(fd)
    return False


def move_aside(run_dir: Path) -> Optional[Path]:
    """Rename a leftover run directory to NAME.failed-N (smallest unused N); returns the new path."""
    if not run_dir.exists():
        return None
    for number in range(1, 10_000):
        target = run_dir.with_name(f"{run_dir.name}.failed-{number}")
        if not target.exists():
            run_dir.rename(target)
            return target
    raise SweepError(f"too many earlier attempts of {run_dir}")


def logged_attempts(log_path: Path) -> int:
    """The highest attempt number in the run's log headers (0 without a log). An attempt killed before it
    could write a result still wrote its header, so this counts it."""
    if not log_path.is_file():
        return 0
    numbers = [int(match.group(1)) for match in ATTEMPT_HEADER.finditer(log_path.read_bytes())]
    return max(numbers, default=0)


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_ENV_VARS})
    env["PYTHONUNBUFFERED"] = "1"  # progress lines reach the log as they are printed
    return env


def start(manifest: Manifest, layout: SweepLayout, job: JobSpec, own_session: bool = False) -> Attempt:
    """Start an attempt of `job`; with `own_session`, the script runs in a new session (see the module
    docstring). Raises RunBusy when another attempt is in progress."""
    lock_fd = try_lock(layout.lock(job.name))
    if lock_fd is None:
        raise RunBusy(job.label)
    try:
        resume = (layout.run_dir(job.name) / CHECKPOINT_NAME).is_file()
        moved = [] if resume else [move_aside(layout.run_dir(run.name)) for run in job.runs]
        previous = read_result(layout, job.name)
        earlier = len(list(layout.runs_dir.glob(f"{job.name}.failed-*")))
        log_path = layout.log(job.name)
        number = 1 + max(previous.attempt if previous else 0, earlier, logged_attempts(log_path))
        command = job.command(
            manifest.python, layout.runs_dir, manifest.threads_per_run, manifest.checkpoint_every, resume=resume
        )
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            header = f"===== attempt {number} of {job.label}, started {utc_now()} on {socket.gethostname()}\n"
            if any(moved):
                header += (
                    f"===== moved the run directory of an unfinished attempt (no {CHECKPOINT_NAME}) to "
                    f"{', '.join(path.name for path in moved if path)}\n"
                )
            if resume:
                header += f"===== resuming the run directory of an unfinished attempt from its {CHECKPOINT_NAME}\n"
            header += f"===== {' '.join(command)}\n"
            log_file.write(header.encode())
            log_file.flush()
            log_offset = log_file.tell()
            # The child inherits the lock descriptor: the job stays locked while the script runs, even if
            # this runner dies first.
            process = subprocess.Popen(
                command, cwd=manifest.workdir, env=child_env(manifest.threads_per_run), start_new_session=own_session,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, pass_fds=(lock_fd,),
            )  # fmt: skip
    except BaseException:
        os.close(lock_fd)
        raise
    return Attempt(
        job,
        number,
        command,
        process,
        lock_fd,
        log_path,
        log_offset,
        utc_now(),
        time.monotonic(),
        resume,
        own_session,
        previous,
    )


def read_output(path: Path, offset: int) -> str:
    """This attempt's output: the log from `offset` on."""
    with open(path, "rb") as log_file:
        log_file.seek(offset)
        return log_file.read().decode("utf-8", errors="replace")


def log_tail(output: str) -> str:
    return "\n".join(output.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]


def failure_reason(exit_code: int, log_tail: str, has_events: bool) -> str:
    if exit_code == 0:
        return "" if has_events else "exited 0 but wrote no TensorBoard events"
    if exit_code < 0:
        try:
            reason = f"killed by signal {signal.Signals(-exit_code).name}"
        except ValueError:
            reason = f"killed by signal {-exit_code}"
    else:
        reason = f"exit code {exit_code}"
    error_lines = [line.strip() for line in log_tail.splitlines() if "error:" in line.lower()]
    return f"{reason}: {error_lines[-1]}" if error_lines else reason


def status_events(output: str, event: str) -> list[dict]:
    """The scripts' status lines in `output` whose event is `event`, as dicts, in order."""
    events = []
    for line in output.splitlines():
        if line.startswith(STATUS_PREFIX):
            try:
                fields = json.loads(line[len(STATUS_PREFIX) :])
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if isinstance(fields, dict) and fields.get("event") == event:
                events.append(fields)
    return events


def total_wall_time(attempt: Attempt, wall_time_s: float) -> Optional[float]:
    """This attempt's wall time plus that of the attempts before it in the same run directory; None when one
    of those left no result (so its time is unknown)."""
    if not attempt.resumed:
        return wall_time_s
    previous = attempt.previous
    if previous is None or previous.attempt != attempt.number - 1:
        return None
    before = (
        previous.wall_time_total_s
        if previous.resumed or previous.wall_time_total_s is not None
        else previous.wall_time_s
    )
    return None if before is None else round(before + wall_time_s, 3)


def finish(
    layout: SweepLayout, attempt: Attempt, wait_status: int, rusage: Optional[resource.struct_rusage]
) -> RunResult:
    """Record the result of an attempt whose process has been reaped, one result file for each run of its job,
    and release the job's lock. Returns the result of the job's first run (the others differ only in their
    name and run directory)."""
    exit_code = os.waitstatus_to_exitcode(wait_status)
    attempt.process.returncode = exit_code  # reaped with os.wait4; tell Popen
    run_dirs = [layout.run_dir(run.name) for run in attempt.job.runs]
    without_events = [run_dir.name for run_dir in run_dirs if not any(run_dir.glob("events.out.tfevents.*"))]
    has_checkpoint = (run_dirs[0] / CHECKPOINT_NAME).is_file()
    output = read_output(attempt.log_path, attempt.log_offset)
    tail = log_tail(output)
    reason = failure_reason(exit_code, tail, not without_events)
    if reason and exit_code == 0 and attempt.job.batched:
        reason += f" in {', '.join(without_events)}"
    resumed = next(iter(status_events(output, "resumed")), None)
    stopped = next(iter(status_events(output, "stopped")), None)
    if not reason:
        status = COMPLETE
    elif exit_code in STOP_EXIT_CODES and has_checkpoint:
        status = INTERRUPTED
        said = (
            f"stopped by {stopped['signal']} after iteration {stopped['iteration']}/{stopped['num_iterations']} "
            f"(step {stopped['global_step']:,})"
            if stopped
            else reason
        )
        reason = f"{said}; the next attempt resumes from its checkpoint"
    else:
        status = FAILED
        if attempt.resumed and exit_code == 2:
            reason += (
                f" (while resuming {run_dirs[0].relative_to(layout.root)}: move that directory aside to start the "
                f"{'job' if attempt.job.batched else 'run'} over)"
            )
        elif has_checkpoint:
            reason += "; its checkpoint is kept: the next attempt resumes from it"
    wall_time_s = round(time.monotonic() - attempt.started_monotonic, 3)
    slurm_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    first = RunResult(
        name=attempt.job.name,
        status=status,
        exit_code=exit_code,
        reason=reason,
        attempt=attempt.number,
        command=attempt.command,
        started_at=attempt.started_at,
        finished_at=utc_now(),
        wall_time_s=wall_time_s,
        peak_rss_mb=round(rusage.ru_maxrss / 1024, 1) if rusage is not None else None,  # ru_maxrss is in KiB on Linux
        log=str(attempt.log_path.relative_to(layout.root)),
        log_tail=tail,
        run_dir=str(run_dirs[0].relative_to(layout.root)),
        host=socket.gethostname(),
        slurm_job=f"{slurm_job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if slurm_job else None,
        resumed=attempt.resumed,
        resumed_from_iteration=resumed["iteration"] if resumed else None,
        resumed_from_step=resumed["global_step"] if resumed else None,
        stopped_after_iteration=stopped["iteration"] if stopped and status == INTERRUPTED else None,
        wall_time_total_s=total_wall_time(attempt, wall_time_s),
    )
    try:
        for run, run_dir in zip(attempt.job.runs, run_dirs):
            write_result(layout, replace(first, name=run.name, run_dir=str(run_dir.relative_to(layout.root))))
    finally:
        os.close(attempt.lock_fd)
    return first


def send_signal(attempt: Attempt, signum: int) -> None:
    """Signal the attempt's process. os.kill, not Popen.send_signal: that one polls, and reaping the child
    there would lose its rusage. The PID cannot have been reused: the child is not reaped before finish()."""
    try:
        os.kill(attempt.process.pid, signum)
    except ProcessLookupError:
        pass


def script_saw_stop(attempt: Attempt) -> bool:
    """Whether the script has said, since this attempt started, that a stop signal reached it."""
    return bool(status_events(read_output(attempt.log_path, attempt.log_offset), "stop_requested"))


def request_stop(attempt: Attempt, signum: int) -> None:
    """The runner received `signum` (SIGTERM or SIGINT) while the attempt runs. Only records it (this is
    called from signal handlers); forward_stop, called from the runner's loop, acts on it."""
    if not attempt.received:
        attempt.received_at, attempt.received_wall = time.monotonic(), time.time()
    attempt.received.append(signum)


def forward_stop(attempt: Attempt) -> None:
    """Act on the signals the runner received (see the module docstring): forward the first unless the script
    got it directly; in its own session, forward a second at once (the script then stops at once), SIGKILL on
    a third."""
    if not attempt.received:
        return
    if attempt.own_session and len(attempt.received) >= 3:
        if signal.SIGKILL not in attempt.sent:
            attempt.sent.append(signal.SIGKILL)
            send_signal(attempt, signal.SIGKILL)
        return
    if not attempt.first_handled:
        if (
            not (attempt.own_session and len(attempt.received) >= 2)
            and time.monotonic() - attempt.received_at < FORWARD_DELAY_S
        ):
            return
        attempt.first_handled = True
        if not script_saw_stop(attempt):
            attempt.sent.append(attempt.received[0])
            send_signal(attempt, attempt.received[0])
    if attempt.own_session and len(attempt.received) >= 2 and not attempt.second_sent:
        # The script has had one signal (forwarded, or its own): one more stops it at once. Another signal
        # number than the first, so that the two cannot merge into one (Python runs a handler once for
        # several deliveries of one signal that arrive before it runs).
        attempt.second_sent = True
        second = signal.SIGTERM if attempt.sent[:1] == [signal.SIGINT] else signal.SIGINT
        attempt.sent.append(second)
        send_signal(attempt, second)


def poll(layout: SweepLayout, attempt: Attempt) -> Optional[RunResult]:
    """The result if the attempt's process has exited, else None. os.wait4 gives this child's own rusage
    (peak RSS), which RUSAGE_CHILDREN cannot when several children run at once."""
    pid, status, rusage = os.wait4(attempt.process.pid, os.WNOHANG)
    if pid == 0:
        return None
    return finish(layout, attempt, status, rusage)


def wait(layout: SweepLayout, attempt: Attempt) -> RunResult:
    _, status, rusage = os.wait4(attempt.process.pid, 0)
    return finish(layout, attempt, status, rusage)


def supervise(layout: SweepLayout, attempt: Attempt) -> RunResult:
    """Wait for the attempt's process, forwarding stop signals as they come (see forward_stop)."""
    while True:
        result = poll(layout, attempt)
        if result is not None:
            return result
        forward_stop(attempt)
        time.sleep(POLL_SECONDS)


def requeue_after_time_limit_warning(layout: SweepLayout, attempt: Attempt, result: RunResult) -> Optional[str]:
    """Under Slurm: when the script was stopped by the time-limit warning (the --signal=B:TERM@GRACE of the
    sweep's submission: a signal that reached this runner only, GRACE seconds or less before the end) and
    made progress (a checkpoint after the one it resumed from), requeue this task so that its next run
    resumes. Returns what was done, for the task's output; None when not applicable."""
    job_id, array_job, task = (
        os.environ.get(name) for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
    )
    if not (job_id and array_job and task) or result.status != INTERRUPTED or not attempt.sent:
        return None
    grace = next(
        (
            submission.get("stop_grace_s")
            for submission in slurm.read_submissions(layout)
            if submission.get("job_id") == array_job
        ),
        None,
    )
    if not grace:
        return None
    try:
        left = slurm.time_left(job_id)
    except SweepError as error:
        return f"not requeued: {error}"
    if left is None:
        return None  # no time limit: not a time-limit warning
    left_at_signal = left + (time.time() - attempt.received_wall)
    if left_at_signal > grace + SLURM_SIGNAL_EARLY_S + 10:
        return None  # a stop asked for by someone (scancel --batch), not the time limit
    if result.stopped_after_iteration is None or result.stopped_after_iteration <= (result.resumed_from_iteration or 0):
        return (
            f"not requeued: the attempt made no progress in the {left_at_signal:.0f} s it had left "
            "when the time-limit warning came"
        )
    completed = subprocess.run(
        ["scontrol", "requeue", f"{array_job}_{task}"], capture_output=True, text=True, timeout=slurm.COMMAND_TIMEOUT_S
    )
    if completed.returncode != 0:
        return f"not requeued: scontrol requeue failed: {completed.stderr.strip()}"
    return (
        f"requeued {array_job}_{task} after the time-limit warning ({left_at_signal:.0f} s left): its next run resumes"
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.run_one", description="Run one job of a sweep (the Slurm array task)."
    )
    parser.add_argument("sweep", type=Path, help="the sweep directory or its manifest.json")
    parser.add_argument("index", type=int, help="the job's index in the manifest (SLURM_ARRAY_TASK_ID)")
    args = parser.parse_args(argv)
    layout = SweepLayout(args.sweep.parent if args.sweep.is_file() else args.sweep)
    try:
        manifest = load_manifest(layout)
        jobs = manifest.jobs
        if not 0 <= args.index < len(jobs):
            raise SweepError(f"index {args.index} is not in 0..{len(jobs) - 1}")
    except SweepError as error:
        print(f"run_one: error: {error}", file=sys.stderr)
        return 2
    job = jobs[args.index]
    if job_complete(layout, job):
        print(f"{job.label}: already complete; nothing to do")
        return 0

    # scancel, requeue, preemption or the time limit: the script stops with a checkpoint, the result is
    # recorded. Installed before the script starts; a signal that comes first means: do not start it.
    early: list[int] = []
    attempt: Optional[Attempt] = None

    def on_signal(signum: int, _frame) -> None:
        if attempt is None:
            early.append(signum)
        elif attempt.process.returncode is None:
            request_stop(attempt, signum)

    previous_handlers = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        if early:
            print(
                f"{job.label}: {signal.Signals(early[0]).name} before the script started; not starting it",
                file=sys.stderr,
            )
            return 128 + early[0]
        try:
            attempt = start(manifest, layout, job)  # in this process group: see the module docstring
        except RunBusy:
            print(f"{job.label}: another attempt is running; nothing to do")
            return 0
        for signum in early:
            request_stop(attempt, signum)
        print(
            f"{job.label}: attempt {attempt.number}{' (resumed)' if attempt.resumed else ''}: "
            f"{' '.join(attempt.command)}",
            flush=True,
        )
        result = supervise(layout, attempt)
        print(
            f"{job.label}: {result.status}{': ' + result.reason if result.reason else ''} "
            f"({result.wall_time_s:.1f} s, peak RSS {result.peak_rss_mb} MB)",
            flush=True,
        )
        requeued = requeue_after_time_limit_warning(layout, attempt, result)
        if requeued:
            print(f"{job.label}: {requeued}", flush=True)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    if result.complete:
        return 0
    return result.exit_code if result.status == INTERRUPTED and result.exit_code > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
