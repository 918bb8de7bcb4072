"""The state of every run of a sweep, from its result files, job locks and (if submitted) the Slurm queue.

A run's state is that of its job (the process that trains it: see benchmark.manifest); a status's `index` is
the job's (its Slurm array task), which the runs of a batched job share.

States, in the order they are decided:
    queued / running   Slurm has the job's task pending / running (a failed earlier attempt may be retried;
                       a requeued task is queued again and resumes from its checkpoint)
    complete / interrupted / failed
                       its result file says so; an interrupted run (stopped by a signal with a checkpoint)
                       resumes from its checkpoint when the sweep is run or submitted again
    running            a local runner holds the job's lock
    lost               submitted to Slurm, gone from the queue, no result (killed before it could write one,
                       e.g. a node failure); the Slurm state is shown while scontrol still remembers it
    not started        none of the above
"""

import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from benchmark.manifest import Manifest, SweepLayout
from benchmark.run_result import read_result
from benchmark.run_one import is_running
from benchmark.slurm import TaskState, read_submissions

FINAL_STATES = ("complete", "interrupted", "failed", "lost", "not started")


@dataclass
class RunStatus:
    index: int  # the run's job's
    name: str
    state: str
    detail: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def run_statuses(
    manifest: Manifest, layout: SweepLayout, slurm_states: Optional[dict[int, TaskState]] = None
) -> list[RunStatus]:
    slurm_states = slurm_states or {}
    submitted = {index for submission in read_submissions(layout) for index in submission["indices"]}
    statuses = []
    for index, job in enumerate(manifest.jobs):
        task = slurm_states.get(index)
        for spec in job.runs:
            result = read_result(layout, spec.name)
            if task is not None and task.active and not (result is not None and result.complete):
                state = "queued" if task.state == "PENDING" else "running"
                detail = f"Slurm {task.job_id}_{index} {task.state} {task.reason}".strip()
                if result is not None:
                    detail += f"; attempt {result.attempt} {result.status}: {result.reason}"
                statuses.append(RunStatus(index, spec.name, state, detail))
            elif result is not None:
                resumed = (
                    f", resumed from iteration {result.resumed_from_iteration}"
                    if result.resumed_from_iteration is not None
                    else ""
                )
                detail = (
                    f"attempt {result.attempt}{resumed}, {result.wall_time_s:.0f} s"
                    if result.complete
                    else f"attempt {result.attempt}{resumed}: {result.reason}"
                )
                statuses.append(RunStatus(index, spec.name, result.status, detail))
            elif is_running(layout, job.name):
                statuses.append(RunStatus(index, spec.name, "running", "a local runner holds its lock"))
            elif index in submitted:
                detail = (
                    f"left the queue without a result; Slurm {task.job_id}_{index} {task.state} {task.reason}".strip()
                    if task
                    else "left the queue without a result"
                )
                statuses.append(RunStatus(index, spec.name, "lost", detail))
            else:
                statuses.append(RunStatus(index, spec.name, "not started"))
    return statuses


def summary_line(statuses: Sequence[RunStatus]) -> str:
    counts = Counter(status.state for status in statuses)
    order = ("complete", "interrupted", "failed", "running", "queued", "lost", "not started")
    return f"{len(statuses)} runs: " + ", ".join(f"{counts[state]} {state}" for state in order if counts[state])


def format_table(statuses: Sequence[RunStatus]) -> str:
    width = max([len(status.name) for status in statuses] + [4])
    lines = [f"{'#':>4}  {'run':<{width}}  {'state':<11}  detail"]
    lines += [f"{status.index:>4}  {status.name:<{width}}  {status.state:<11}  {status.detail}" for status in statuses]
    return "\n".join(lines)


def all_final(statuses: Sequence[RunStatus]) -> bool:
    return all(status.state in FINAL_STATES for status in statuses)


def wait_until_final(read_statuses, timeout_s: float, interval_s: float = 5.0) -> tuple[list[RunStatus], bool]:
    """Call `read_statuses()` until no run is queued or running, or `timeout_s` passes.
    Returns the last statuses and whether they are final."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = read_statuses()
        if all_final(statuses):
            return statuses, True
        if time.monotonic() >= deadline:
            return statuses, False
        time.sleep(interval_s)
