"""A run's result file (results/NAME.json): what happened to its last attempt.

Written atomically by the runner after the run's process has exited (the process of its job: for a batched job,
one file per run, alike but for the run's name and directory). A run is complete exactly when this
file exists and says "complete" (exit code 0 and TensorBoard events present). "interrupted": the script was
stopped by SIGTERM or SIGINT (exit code 143 or 130) and its run directory holds a checkpoint.pt, so the next
attempt resumes it; "failed": anything else. A run dir without a result file is the leftover of a killed
attempt: the next attempt resumes it if it holds a checkpoint.pt, else moves it aside.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from benchmark.atomic import read_json, write_json_atomic
from benchmark.manifest import JobSpec, SweepLayout

COMPLETE = "complete"
FAILED = "failed"
INTERRUPTED = "interrupted"  # stopped by a signal with a checkpoint: the next attempt resumes it


@dataclass
class RunResult:
    name: str
    status: str  # COMPLETE, INTERRUPTED or FAILED
    exit_code: Optional[int]  # the process's exit code; negative: killed by that signal
    reason: str  # "" when complete, else why it failed, in words
    attempt: int  # 1 for the first attempt; every start of the script counts, a resumed one too
    command: list[str]
    started_at: str  # ISO 8601, UTC
    finished_at: str
    wall_time_s: float  # this attempt's
    peak_rss_mb: Optional[float]  # peak resident memory of the run's process (getrusage of that child)
    log: str  # path of the log file, relative to the sweep directory
    log_tail: str  # the last lines of this attempt's output
    run_dir: str  # relative to the sweep directory
    host: str
    slurm_job: Optional[str] = None  # "ARRAYJOB_TASK" when run as a Slurm array task
    extra: dict = field(default_factory=dict)
    # Resuming (absent from results written before runs could resume; their defaults describe a fresh start):
    resumed: bool = False  # this attempt was started with --resume on the checkpoint an earlier attempt left
    resumed_from_iteration: Optional[int] = None  # the checkpoint's iteration and step, as the script reported them
    resumed_from_step: Optional[int] = None
    stopped_after_iteration: Optional[int] = None  # interrupted: the iteration of the checkpoint it stopped with
    wall_time_total_s: Optional[float] = None  # summed over the attempts that built this run directory; None
    # when one of them left no result (its time is unknown)

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    @property
    def run_wall_time_s(self) -> Optional[float]:
        """The run's wall time: this attempt's, or for a resumed run the sum over its attempts (None if unknown)."""
        return self.wall_time_total_s if self.resumed else self.wall_time_s


def write_result(layout: SweepLayout, result: RunResult) -> None:
    write_json_atomic(layout.result(result.name), asdict(result))


def read_result(layout: SweepLayout, name: str) -> Optional[RunResult]:
    """The run's result, or None when it has none (never run, or still running, or killed before writing).
    An unreadable file counts as none: it cannot have been written by write_result, which is atomic."""
    path: Path = layout.result(name)
    if not path.is_file():
        return None
    try:
        return RunResult(**read_json(path))
    except (ValueError, TypeError):
        return None


def is_complete(layout: SweepLayout, name: str) -> bool:
    result = read_result(layout, name)
    return result is not None and result.complete


def job_complete(layout: SweepLayout, job: JobSpec) -> bool:
    return all(is_complete(layout, run.name) for run in job.runs)
