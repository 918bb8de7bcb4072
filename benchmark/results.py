"""A run's result file (results/NAME.json): what happened to its last attempt.

Written atomically by the runner after the run's process has exited. A run is complete exactly when this
file exists and says "complete" (exit code 0 and TensorBoard events present); a run dir without a result
file is the leftover of a killed attempt and counts for nothing.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from benchmark.atomic import read_json, write_json_atomic
from benchmark.manifest import SweepLayout

COMPLETE = "complete"
FAILED = "failed"


@dataclass
class RunResult:
    name: str
    status: str  # COMPLETE or FAILED
    exit_code: Optional[int]  # the process's exit code; negative: killed by that signal
    reason: str  # "" when complete, else why it failed, in words
    attempt: int  # 1 for the first attempt
    command: list[str]
    started_at: str  # ISO 8601, UTC
    finished_at: str
    wall_time_s: float
    peak_rss_mb: Optional[float]  # peak resident memory of the run's process (getrusage of that child)
    log: str  # path of the log file, relative to the sweep directory
    log_tail: str  # the last lines of this attempt's output
    run_dir: str  # relative to the sweep directory
    host: str
    slurm_job: Optional[str] = None  # "ARRAYJOB_TASK" when run as a Slurm array task
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
