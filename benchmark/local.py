"""The local backend: run a sweep's runs as child processes, at most `workers` at a time, with live progress.

One loop in one thread starts runs, reaps the ones that exit (os.wait4, so each run's own peak memory is
known) and prints a line whenever a run starts or ends, plus a summary line every `progress_interval`
seconds. A failed run is recorded and the others go on. Ctrl-C or SIGTERM stops the running scripts,
records them as failed ("interrupted") and returns; the next invocation reruns them.
"""

import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, TextIO

from benchmark import run_one
from benchmark.manifest import Manifest, SweepLayout
from benchmark.results import RunResult, read_result

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0


@dataclass
class Progress:
    total: int
    skipped: int = 0  # already complete, or running in another process
    complete: int = 0
    failed: int = 0
    running: int = 0
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def pending(self) -> int:
        return self.total - self.skipped - self.complete - self.failed - self.running

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started_monotonic)
        done = self.skipped + self.complete + self.failed
        return (
            f"[{elapsed // 3600}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}] done {done}/{self.total} "
            f"(complete {self.complete}, failed {self.failed}, skipped {self.skipped}) | running {self.running} | pending {self.pending}"
        )


class Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_local(
    manifest: Manifest,
    layout: SweepLayout,
    indices: Sequence[int],
    workers: int,
    progress_interval: float = 30.0,
    out: TextIO = sys.stdout,
) -> list[RunResult]:
    """Run the runs at `indices` that are not complete; returns the results of the attempts made here."""
    progress = Progress(total=len(indices))
    todo = []
    for index in indices:
        spec = manifest.runs[index]
        previous = read_result(layout, spec.name)
        if previous is not None and previous.complete:
            progress.skipped += 1
        else:
            todo.append(spec)
    print(f"{len(indices)} runs: {progress.skipped} already complete, {len(todo)} to run with {workers} workers; logs in {layout.logs_dir}", file=out, flush=True)

    results: list[RunResult] = []
    running: list[run_one.Attempt] = []
    last_progress = time.monotonic()
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        while todo or running:
            while todo and len(running) < workers:
                spec = todo.pop(0)
                try:
                    attempt = run_one.start(manifest, layout, spec)
                except run_one.RunBusy:
                    progress.skipped += 1
                    print(f"skipped {spec.name}: an attempt is running in another process", file=out, flush=True)
                    continue
                running.append(attempt)
                progress.running += 1
                print(f"started {spec.name} (attempt {attempt.number})", file=out, flush=True)
            time.sleep(POLL_SECONDS)
            for attempt in list(running):
                result = run_one.poll(layout, attempt)
                if result is None:
                    continue
                running.remove(attempt)
                progress.running -= 1
                results.append(result)
                if result.complete:
                    progress.complete += 1
                    print(f"finished {result.name}: complete in {result.wall_time_s:.1f} s | {progress.line()}", file=out, flush=True)
                else:
                    progress.failed += 1
                    print(f"FAILED {result.name}: {result.reason} (log: {layout.root / result.log}) | {progress.line()}", file=out, flush=True)
            if time.monotonic() - last_progress >= progress_interval:
                last_progress = time.monotonic()
                print(progress.line(), file=out, flush=True)
    except (KeyboardInterrupt, Interrupted) as interruption:
        print(f"interrupted ({interruption or 'SIGINT'}): stopping {len(running)} running scripts", file=out, flush=True)
        results.extend(_stop_all(layout, running))
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    print(f"sweep finished: {progress.line()}", file=out, flush=True)
    return results


def _stop_all(layout: SweepLayout, running: list[run_one.Attempt]) -> list[RunResult]:
    """SIGTERM every running script (SIGKILL after a grace period) and record each as failed."""
    for attempt in running:
        run_one.send_signal(attempt, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    results = []
    for attempt in running:
        result: Optional[RunResult] = None
        while result is None:
            result = run_one.poll(layout, attempt)
            if result is None and time.monotonic() > deadline:
                run_one.send_signal(attempt, signal.SIGKILL)
                result = run_one.wait(layout, attempt)
            elif result is None:
                time.sleep(POLL_SECONDS)
        results.append(result)
    return results
