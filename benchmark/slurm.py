"""The Slurm backend: a sweep submitted as one `sbatch --array` job, and the state of its tasks.

The batch script is the fixed file benchmark/slurm/array_task.sh; sbatch gets it with two arguments, the
interpreter and the manifest path, and each array task runs
`python -m benchmark.run_one MANIFEST $SLURM_ARRAY_TASK_ID`. Everything is passed as argument lists: no
user input is interpolated into shell text. Task states come from squeue while tasks are queued or
running, and from `scontrol show job` for finished ones while the controller still remembers them
(MinJobAge); there is no accounting database (no sacct).

Preemption and time limits. Tasks are submitted with --requeue (a preempted task, a failed node or
`scontrol requeue` puts the task back in the queue), --open-mode=append (a requeued task's output goes on in
the same file) and, unless stop_grace_s is 0, --signal=B:TERM@stop_grace_s: that many seconds before the
time limit the batch shell, benchmark.run_one, gets SIGTERM and forwards it to the script, which finishes its
iteration, writes its checkpoint and exits; run_one records the run as interrupted and requeues the task
(Slurm does not requeue a task that reaches its time limit). Every new run of a task, requeued or submitted
again, resumes from the checkpoint. A cancel, requeue or preemption signals the script directly (Slurm
signals every process of the job), and it stops the same way if it can within the cluster's KillWait.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from benchmark.atomic import read_json, write_json_atomic
from benchmark.manifest import SweepError, SweepLayout, utc_now

ARRAY_TASK_SCRIPT = Path(__file__).resolve().parent / "slurm" / "array_task.sh"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory `python -m benchmark.run_one` must run in
DEFAULT_STOP_GRACE_S = 180
ACTIVE_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
COMMAND_TIMEOUT_S = 60


@dataclass
class SlurmOptions:
    partition: Optional[str] = None
    time: Optional[str] = None  # sbatch --time, e.g. "4:00:00"
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: Optional[str] = None  # sbatch --mem, e.g. "8G"
    max_concurrent: Optional[int] = None  # the array's %N throttle
    job_name: str = "benchmark"
    extra: list[str] = field(default_factory=list)  # further sbatch arguments, as given
    stop_grace_s: int = DEFAULT_STOP_GRACE_S  # SIGTERM this long before the time limit (0: none)


@dataclass
class TaskState:
    state: str  # Slurm's job state, e.g. PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED
    job_id: str  # the array job id
    reason: str = ""  # squeue's reason, or scontrol's exit code for finished tasks

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def slurm_available() -> tuple[bool, str]:
    """Whether a Slurm controller answers (sinfo exits 0); with the reason when not."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False, "sinfo/sbatch not found (apt-get install slurm-client, and a running cluster)"
    try:
        completed = subprocess.run(["sinfo", "--noheader"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, "sinfo timed out"
    if completed.returncode != 0:
        lines = (completed.stderr.strip() or completed.stdout.strip() or "no output").splitlines()
        return False, f"sinfo failed ({lines[-1]}); SLURM_CONF={os.environ.get('SLURM_CONF', '(unset)')}"
    return True, ""


def parse_time(text: str) -> Optional[int]:
    """Seconds in a Slurm duration: sbatch --time's forms (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) and squeue's
    %L; None for anything else (UNLIMITED, NOT_SET, INVALID, ...)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if match is None:
        return None
    days, first, second, third = match.groups()
    if days is not None:
        return ((int(days) * 24 + int(first)) * 60 + int(second or 0)) * 60 + int(third or 0)
    if third is not None:
        return (int(first) * 60 + int(second)) * 60 + int(third)
    return int(first) * 60 + int(second or 0)


def time_left(job_id: str) -> Optional[int]:
    """Seconds until the job's time limit (squeue %L), or None when it has none."""
    return parse_time(_query(["squeue", "-h", "-j", job_id, "-o", "%L"]).strip())


def array_spec(indices: Sequence[int], max_concurrent: Optional[int] = None) -> str:
    """Compact --array value: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8", with "%N" when throttled."""
    if not indices:
        raise ValueError("no indices")
    ordered = sorted(set(indices))
    parts = []
    start = previous = ordered[0]
    for index in ordered[1:] + [None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    spec = ",".join(parts)
    return f"{spec}%{max_concurrent}" if max_concurrent else spec


def sbatch_command(layout: SweepLayout, python: str, indices: Sequence[int], options: SlurmOptions) -> list[str]:
    """The sbatch argument list for the array job over `indices`."""
    if "%" in str(layout.root):
        raise SweepError(f"the sweep directory {layout.root} contains '%', which Slurm reads as a file name pattern")
    command = [
        "sbatch", "--parsable",
        f"--array={array_spec(indices, options.max_concurrent)}",
        f"--job-name={options.job_name}",
        f"--output={layout.slurm_dir / '%A_%a.out'}",
        f"--chdir={PACKAGE_ROOT}",
        f"--cpus-per-task={options.cpus_per_task}",
        "--requeue", "--open-mode=append",
    ]  # fmt: skip
    if options.stop_grace_s:
        command.append(f"--signal=B:TERM@{options.stop_grace_s}")
    if options.partition:
        command.append(f"--partition={options.partition}")
    if options.time:
        command.append(f"--time={options.time}")
    if options.gpus_per_task:
        command.append(f"--gpus-per-task={options.gpus_per_task}")
    if options.mem:
        command.append(f"--mem={options.mem}")
    command.extend(options.extra)
    return command + [str(ARRAY_TASK_SCRIPT), python, str(layout.manifest)]


def read_submissions(layout: SweepLayout) -> list[dict]:
    return read_json(layout.submissions) if layout.submissions.is_file() else []


def submit(layout: SweepLayout, python: str, indices: Sequence[int], options: SlurmOptions) -> str:
    """Submit the array job; record it in slurm/submissions.json; returns the job id."""
    layout.slurm_dir.mkdir(parents=True, exist_ok=True)
    command = sbatch_command(layout, python, indices, options)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if completed.returncode != 0:
        raise SweepError(f"sbatch failed (exit {completed.returncode}): {completed.stderr.strip()}")
    job_id = completed.stdout.strip().split(";")[0]  # --parsable prints "jobid" or "jobid;cluster"
    if not job_id.isdigit():
        raise SweepError(f"sbatch printed {completed.stdout.strip()!r}, not a job id")
    submissions = read_submissions(layout)
    submissions.append(
        {
            "job_id": job_id,
            "indices": sorted(indices),
            "submitted_at": utc_now(),
            "command": command,
            "stop_grace_s": options.stop_grace_s,
        }
    )
    write_json_atomic(layout.submissions, submissions)
    return job_id


def parse_squeue(text: str, job_id: str) -> dict[int, TaskState]:
    """Parse `squeue -h -r -o %F|%K|%T|%r` lines (array job id | task index | state | reason)."""
    states = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4 or fields[0] != job_id or not fields[1].isdigit():
            continue
        states[int(fields[1])] = TaskState(state=fields[2], job_id=job_id, reason=fields[3])
    return states


def parse_scontrol(text: str, job_id: str) -> dict[int, TaskState]:
    """Parse `scontrol -o show job JOB` (one line per task; Key=Value fields)."""
    states = {}
    for line in text.splitlines():
        array_job = re.search(r"\bArrayJobId=(\d+)", line)
        task = re.search(r"\bArrayTaskId=(\d+)(?:\s|$)", line)
        state = re.search(r"\bJobState=(\S+)", line)
        if not (array_job and task and state) or array_job.group(1) != job_id:
            continue
        exit_code = re.search(r"\bExitCode=(\S+)", line)
        states[int(task.group(1))] = TaskState(
            state=state.group(1), job_id=job_id, reason=f"ExitCode={exit_code.group(1)}" if exit_code else ""
        )
    return states


def _query(command: list[str]) -> str:
    """Run a query; a job the controller no longer knows gives empty output, not an error."""
    completed = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if completed.returncode != 0:
        if "Invalid job id" in completed.stderr:
            return ""
        raise SweepError(f"{' '.join(command)} failed: {completed.stderr.strip()}")
    return completed.stdout


def task_states(job_ids: Sequence[str]) -> dict[int, TaskState]:
    """Per manifest index, the state of its task in the most recent of `job_ids` that has one.
    Finished tasks come from scontrol (while remembered), queued and running ones from squeue."""
    states: dict[int, TaskState] = {}
    for job_id in job_ids:  # oldest first: later submissions override
        states.update(parse_scontrol(_query(["scontrol", "-o", "show", "job", job_id]), job_id))
        states.update(parse_squeue(_query(["squeue", "-h", "-r", "-j", job_id, "-o", "%F|%K|%T|%r"]), job_id))
    return states


def sweep_task_states(layout: SweepLayout) -> dict[int, TaskState]:
    return task_states([submission["job_id"] for submission in read_submissions(layout)])
