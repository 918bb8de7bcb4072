"""Run one run of a sweep and record its result; also the entry point of a Slurm array task:

    python -m benchmark.run_one SWEEP_DIR_OR_MANIFEST INDEX

An attempt: take the run's lock (so two runners never run it at once), move a run directory left by an
earlier attempt aside to NAME.failed-N (the scripts refuse an existing run directory, and its data is kept),
start the script with its output appended to logs/NAME.log, and once the process has exited write
results/NAME.json atomically with its exit code, wall time, peak memory and the tail of its log.
"""

import argparse
import fcntl
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmark.manifest import Manifest, RunSpec, SweepError, SweepLayout, load_manifest
from benchmark.results import COMPLETE, FAILED, RunResult, read_result, utc_now, write_result

LOG_TAIL_LINES = 30
LOG_TAIL_CHARS = 6000
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class RunBusy(Exception):
    """Another process holds the run's lock: an attempt of this run is in progress elsewhere."""


@dataclass
class Attempt:
    """A started attempt whose process has not been waited for yet."""

    spec: RunSpec
    number: int
    command: list[str]
    process: subprocess.Popen
    lock_fd: int
    log_path: Path
    log_offset: int  # where this attempt's output starts in the log
    started_at: str
    started_monotonic: float


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
    """Whether some process on this machine (or sharing this file system's locks) is running the run."""
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


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_ENV_VARS})
    env["PYTHONUNBUFFERED"] = "1"  # progress lines reach the log as they are printed
    return env


def start(manifest: Manifest, layout: SweepLayout, spec: RunSpec) -> Attempt:
    """Start an attempt of `spec`. Raises RunBusy when another attempt is in progress."""
    lock_fd = try_lock(layout.lock(spec.name))
    if lock_fd is None:
        raise RunBusy(spec.name)
    try:
        moved = move_aside(layout.run_dir(spec.name))
        previous = read_result(layout, spec.name)
        earlier = len(list(layout.runs_dir.glob(f"{spec.name}.failed-*")))
        number = 1 + max(previous.attempt if previous else 0, earlier)
        command = spec.command(manifest.python, layout.runs_dir, manifest.threads_per_run)
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = layout.log(spec.name)
        with open(log_path, "ab") as log_file:
            header = f"===== attempt {number} of {spec.name}, started {utc_now()} on {socket.gethostname()}\n"
            if moved is not None:
                header += f"===== moved the run directory of an unfinished attempt to {moved.name}\n"
            header += f"===== {' '.join(command)}\n"
            log_file.write(header.encode())
            log_file.flush()
            log_offset = log_file.tell()
            # The child inherits the lock descriptor: the run stays locked while the script runs, even if
            # this runner dies first.
            process = subprocess.Popen(
                command, cwd=manifest.workdir, env=child_env(manifest.threads_per_run),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, pass_fds=(lock_fd,),
            )  # fmt: skip
    except BaseException:
        os.close(lock_fd)
        raise
    return Attempt(spec, number, command, process, lock_fd, log_path, log_offset, utc_now(), time.monotonic())


def read_log_tail(path: Path, offset: int) -> str:
    with open(path, "rb") as log_file:
        log_file.seek(offset)
        text = log_file.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]


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


def finish(layout: SweepLayout, attempt: Attempt, wait_status: int, rusage: Optional[resource.struct_rusage]) -> RunResult:
    """Record the result of an attempt whose process has been reaped, and release the run's lock."""
    exit_code = os.waitstatus_to_exitcode(wait_status)
    attempt.process.returncode = exit_code  # reaped with os.wait4; tell Popen
    run_dir = layout.run_dir(attempt.spec.name)
    has_events = any(run_dir.glob("events.out.tfevents.*"))
    log_tail = read_log_tail(attempt.log_path, attempt.log_offset)
    reason = failure_reason(exit_code, log_tail, has_events)
    slurm_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    result = RunResult(
        name=attempt.spec.name,
        status=COMPLETE if not reason else FAILED,
        exit_code=exit_code,
        reason=reason,
        attempt=attempt.number,
        command=attempt.command,
        started_at=attempt.started_at,
        finished_at=utc_now(),
        wall_time_s=round(time.monotonic() - attempt.started_monotonic, 3),
        peak_rss_mb=round(rusage.ru_maxrss / 1024, 1) if rusage is not None else None,  # ru_maxrss is in KiB on Linux
        log=str(attempt.log_path.relative_to(layout.root)),
        log_tail=log_tail,
        run_dir=str(run_dir.relative_to(layout.root)),
        host=socket.gethostname(),
        slurm_job=f"{slurm_job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if slurm_job else None,
    )
    try:
        write_result(layout, result)
    finally:
        os.close(attempt.lock_fd)
    return result


def send_signal(attempt: Attempt, signum: int) -> None:
    """Signal the attempt's process. os.kill, not Popen.send_signal: that one polls, and reaping the child
    there would lose its rusage. The PID cannot have been reused: the child is not reaped before finish()."""
    try:
        os.kill(attempt.process.pid, signum)
    except ProcessLookupError:
        pass


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


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.run_one", description="Run one run of a sweep (the Slurm array task).")
    parser.add_argument("sweep", type=Path, help="the sweep directory or its manifest.json")
    parser.add_argument("index", type=int, help="the run's index in the manifest (SLURM_ARRAY_TASK_ID)")
    args = parser.parse_args(argv)
    layout = SweepLayout(args.sweep.parent if args.sweep.is_file() else args.sweep)
    try:
        manifest = load_manifest(layout)
        if not 0 <= args.index < len(manifest.runs):
            raise SweepError(f"index {args.index} is not in 0..{len(manifest.runs) - 1}")
    except SweepError as error:
        print(f"run_one: error: {error}", file=sys.stderr)
        return 2
    spec = manifest.runs[args.index]
    previous = read_result(layout, spec.name)
    if previous is not None and previous.complete:
        print(f"{spec.name}: already complete; nothing to do")
        return 0
    try:
        attempt = start(manifest, layout, spec)
    except RunBusy:
        print(f"{spec.name}: another attempt is running; nothing to do")
        return 0

    def forward(signum: int, _frame) -> None:  # scancel or the time limit: stop the script, still record the result
        send_signal(attempt, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"{spec.name}: attempt {attempt.number}: {' '.join(attempt.command)}", flush=True)
    result = wait(layout, attempt)
    print(f"{spec.name}: {result.status}{': ' + result.reason if result.reason else ''} ({result.wall_time_s:.1f} s, peak RSS {result.peak_rss_mb} MB)")
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main())
