"""The local backend: run a sweep's jobs as child processes, at most `workers` at a time, with live progress.

One loop in one thread starts jobs (a run each, or a batched script's seeds of one env id), reaps the ones
that exit (os.wait4, so each job's own peak memory is known) and prints a line whenever a job starts or ends,
plus a summary line (counting runs) every `progress_interval` seconds. A failed job is recorded and the others
go on.

Ctrl-C or SIGTERM to the sweep stops it: no new run starts, and each running script, which runs in its own
session so that only this runner signals it, gets one SIGTERM or SIGINT (benchmark.run_one.forward_stop),
finishes its iteration, writes its checkpoint and exits; each is recorded as interrupted, and the next
invocation resumes them. A second Ctrl-C stops the scripts at once (they keep their last checkpoint), a third
kills them. A script stopped on its own (e.g. `kill SCRIPT_PID`) is recorded as interrupted and the sweep
goes on.
"""

import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence, TextIO

from benchmark import run_one
from benchmark.manifest import JobSpec, Manifest, SweepLayout
from benchmark.run_result import INTERRUPTED, RunResult, job_complete

POLL_SECONDS = run_one.POLL_SECONDS
STOP_TIMEOUT_S = 600.0  # after a stop request, scripts still running this long later are killed


@dataclass
class Progress:  # in runs
    total: int
    skipped: int = 0  # already complete, or running in another process
    complete: int = 0
    interrupted: int = 0
    failed: int = 0
    running: int = 0
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def pending(self) -> int:
        return self.total - self.skipped - self.complete - self.interrupted - self.failed - self.running

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started_monotonic)
        done = self.skipped + self.complete + self.interrupted + self.failed
        interrupted = f", interrupted {self.interrupted}" if self.interrupted else ""
        return (
            f"[{elapsed // 3600}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}] done {done}/{self.total} "
            f"(complete {self.complete}{interrupted}, failed {self.failed}, skipped {self.skipped}) "
            f"| running {self.running} | pending {self.pending}"
        )


def runs_in(jobs: Sequence[JobSpec]) -> int:
    return sum(len(job.runs) for job in jobs)


def run_local(
    manifest: Manifest,
    layout: SweepLayout,
    indices: Sequence[int],
    workers: int,
    progress_interval: float = 30.0,
    out: TextIO = sys.stdout,
) -> list[RunResult]:
    """Run the jobs at `indices` that are not complete; returns the result of each attempt made here (that of
    its job's first run). Raises KeyboardInterrupt after a stop request (SIGINT or SIGTERM), once the running
    scripts have exited."""
    all_jobs = manifest.jobs
    jobs = [all_jobs[index] for index in indices]
    todo = [job for job in jobs if not job_complete(layout, job)]
    progress = Progress(total=runs_in(jobs), skipped=runs_in(jobs) - runs_in(todo))
    in_jobs = f" in {len(jobs)} job{'s' if len(jobs) > 1 else ''}" if len(jobs) != progress.total else ""
    print(
        f"{progress.total} runs{in_jobs}: {progress.skipped} already complete, {runs_in(todo)} to run with "
        f"{workers} workers; logs in {layout.logs_dir}",
        file=out,
        flush=True,
    )

    results: list[RunResult] = []
    running: list[run_one.Attempt] = []
    stop_signals: list[int] = []  # SIGINT and SIGTERM received by this runner

    def on_signal(signum: int, _frame) -> None:  # only records: the loop below acts on it
        stop_signals.append(signum)

    def report(job: JobSpec, result: RunResult) -> None:
        results.append(result)
        runs = len(job.runs)
        progress.running -= runs
        if result.complete:
            progress.complete += runs
            print(
                f"finished {job.label}: complete in {result.wall_time_s:.1f} s"
                f"{' (resumed)' if result.resumed else ''} | {progress.line()}",
                file=out,
                flush=True,
            )
        elif result.status == INTERRUPTED:
            progress.interrupted += runs
            print(f"interrupted {job.label}: {result.reason} | {progress.line()}", file=out, flush=True)
        else:
            progress.failed += runs
            print(
                f"FAILED {job.label}: {result.reason} (log: {layout.root / result.log}) | {progress.line()}",
                file=out,
                flush=True,
            )

    last_progress = time.monotonic()
    announced = 0  # stop signals announced so far
    previous_handlers = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (todo and not stop_signals) or running:
            while todo and len(running) < workers and not stop_signals:
                job = todo.pop(0)
                try:
                    attempt = run_one.start(manifest, layout, job, own_session=True)
                except run_one.RunBusy:
                    progress.skipped += len(job.runs)
                    print(f"skipped {job.label}: an attempt is running in another process", file=out, flush=True)
                    continue
                running.append(attempt)
                progress.running += len(job.runs)
                resumed = f", resuming from its {run_one.CHECKPOINT_NAME}" if attempt.resumed else ""
                print(f"started {job.label} (attempt {attempt.number}{resumed})", file=out, flush=True)
            time.sleep(POLL_SECONDS)
            if len(stop_signals) > announced:
                announced = len(stop_signals)
                name = signal.Signals(stop_signals[-1]).name
                what = (
                    "stop after their iteration with a checkpoint (signal again to stop them at once)",
                    "stop at once, keeping their last checkpoint (signal again to kill them)",
                    "are killed",
                )[min(announced, 3) - 1]
                print(
                    f"{name}: stopping; {len(running)} running scripts {what}; {runs_in(todo)} runs not started",
                    file=out,
                    flush=True,
                )
                todo.clear()
            for attempt in list(running):
                for signum in stop_signals[
                    len(attempt.received) :
                ]:  # pass the runner's signals on (forward_stop decides)
                    run_one.request_stop(attempt, signum)
                run_one.forward_stop(attempt)
                result = run_one.poll(layout, attempt)
                if result is None:
                    if (
                        attempt.received
                        and time.monotonic() - attempt.received_at > STOP_TIMEOUT_S
                        and signal.SIGKILL not in attempt.sent
                    ):
                        attempt.sent.append(signal.SIGKILL)
                        run_one.send_signal(attempt, signal.SIGKILL)
                    continue
                running.remove(attempt)
                report(attempt.job, result)
            if time.monotonic() - last_progress >= progress_interval:
                last_progress = time.monotonic()
                print(progress.line(), file=out, flush=True)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    if stop_signals:
        print(f"stopped by {signal.Signals(stop_signals[0]).name}: {progress.line()}", file=out, flush=True)
        raise KeyboardInterrupt
    print(f"sweep finished: {progress.line()}", file=out, flush=True)
    return results
