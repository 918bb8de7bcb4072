"""What a sweep is: its runs and jobs, their deterministic names, and where each run's files go.

A run is one seed of one script on one env id. A job is what one process trains (one local worker's attempt,
one Slurm array task): one run, or, for a batched script (SCRIPT_seeds.py, which trains several seeds in one
process: see `--batch-seeds` in benchmark.sweep), the runs of one env id's seeds. A job goes by the name of
its first run: its lock, its log and its checkpoint are that run's.

A sweep directory holds:

    manifest.json         the runs and jobs (written when the sweep is created or extended; read by every runner)
    runs/NAME/            the script's --output-dir/--run-name: TensorBoard events, checkpoint.pt (a batched job's
                          one checkpoint, holding all its seeds, is in its first run's directory)
    runs/NAME.failed-N/   run directories of earlier attempts that left no checkpoint, moved aside, never deleted
    logs/NAME.log         the job's stdout and stderr, every attempt appended under a header line
    results/NAME.json     the run's result, written atomically once its job's process has exited
    slurm/                sbatch output files and submissions.json (Slurm backend)

The run name depends only on the script, the env id and the seed, so running the same sweep again finds
its earlier runs. Extra arguments are part of a run's identity: extending a sweep with the same names but
different extra arguments is refused rather than silently mixing two experiments under one name.

An attempt that finds runs/NAME with a checkpoint.pt (left by an interrupted, preempted or killed attempt)
resumes it with the script's --resume instead of starting over.

Runs and jobs keep their index forever (a Slurm array task's index is its job's): extending a sweep appends.
A job never changes: new seeds of a batched script's env id become a new job.
"""

import itertools
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from benchmark.atomic import read_json, write_json_atomic

MANIFEST_VERSION = 2  # 2: jobs; a manifest of version 1 has none, and each of its runs is a job of one
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
# A batched script: the stem of a script plus this; it takes --seeds and a --run-name with SEED_FIELD in it.
BATCHED_SUFFIX = "_seeds"
SEED_FIELD = "{seed}"

# Flags the runner sets itself; an extra argument that also sets one would silently fight it.
MANAGED_FLAGS = ("env-id", "seed", "seeds", "output-dir", "run-name", "torch-threads", "checkpoint-every", "resume")


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second: the time stamps of manifests, results and submissions."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SweepError(Exception):
    """Bad sweep input or an inconsistent sweep directory: reported as one `error:` line, exit code 2."""


@dataclass(frozen=True)
class RunSpec:
    """One run: `python SCRIPT --env-id ENV_ID --seed SEED ... EXTRA_ARGS`, named NAME."""

    name: str
    script: str
    env_id: str
    seed: int
    extra_args: tuple[str, ...] = ()

    @property
    def script_stem(self) -> str:
        return Path(self.script).stem

    def command(
        self, python: str, output_dir: Path, threads: int, checkpoint_every: int = 0, resume: bool = False
    ) -> list[str]:
        """The argument list of this run alone: that of a job of one (JobSpec.command)."""
        return JobSpec((self,)).command(python, output_dir, threads, checkpoint_every, resume)

    def to_json(self) -> dict:
        return {**asdict(self), "extra_args": list(self.extra_args)}

    @classmethod
    def from_json(cls, data: dict) -> "RunSpec":
        return cls(
            name=data["name"],
            script=data["script"],
            env_id=data["env_id"],
            seed=int(data["seed"]),
            extra_args=tuple(data["extra_args"]),
        )


@dataclass(frozen=True)
class JobSpec:
    """What one process trains: one run, or the runs (seeds) of one batched script on one env id, with the same
    extra arguments. It goes by its first run's name; its checkpoint is in that run's directory."""

    runs: tuple[RunSpec, ...]

    def __post_init__(self):
        first = self.runs[0]
        shared = {(run.script, run.env_id, run.extra_args) for run in self.runs}
        if len(shared) > 1:
            raise ValueError(f"the runs of a job share their script, env id and extra arguments: {self.runs}")
        if len(self.runs) > 1 and not self.batched:
            raise ValueError(f"{first.script} trains one seed a process: a job of it has one run, not {len(self.runs)}")

    @property
    def name(self) -> str:
        return self.runs[0].name

    @property
    def batched(self) -> bool:
        return is_batched_script(self.runs[0].script)

    @property
    def label(self) -> str:
        """For messages: the run's name, or the runs' as one, e.g. `CartPole-v1__ppo_discrete_seeds__{1,2,3}`."""
        if not self.batched:
            return self.name
        first = self.runs[0]
        return run_name(first.script, first.env_id, "{" + ",".join(str(run.seed) for run in self.runs) + "}")

    def command(
        self, python: str, output_dir: Path, threads: int, checkpoint_every: int = 0, resume: bool = False
    ) -> list[str]:
        """The job's argument list (no shell is involved anywhere): its seed (--seed S) or, batched, its seeds
        (--seeds S1 S2 ... with the run name SEED_FIELD-templated). With `resume`, the script continues the run
        directory output_dir/NAME of the job's first run from its checkpoint.pt: --resume takes the place of
        --output-dir/--run-name (the script takes the run directory from the checkpoint's location, so a sweep
        directory that was moved still resumes), and the other arguments stay, so the script refuses a
        checkpoint of another run."""
        first = self.runs[0]
        if self.batched:
            seeds = ["--seeds", *(str(run.seed) for run in self.runs)]
            name = run_name(first.script, first.env_id, SEED_FIELD)
        else:
            seeds, name = ["--seed", str(first.seed)], first.name
        location = (
            ["--resume", str(output_dir / first.name)]
            if resume
            else ["--output-dir", str(output_dir), "--run-name", name]
        )
        return [
            python, first.script,
            "--env-id", first.env_id,
            *seeds,
            *location,
            "--torch-threads", str(threads),
            *(["--checkpoint-every", str(checkpoint_every)] if checkpoint_every else []),
            *first.extra_args,
        ]  # fmt: skip


def is_batched_script(script: str) -> bool:
    """Whether `script` trains several seeds in one process (its stem ends in BATCHED_SUFFIX)."""
    return Path(script).stem.endswith(BATCHED_SUFFIX)


def batched_script(script: str) -> str:
    """The batched variant of `script` (ppo_discrete.py -> ppo_discrete_seeds.py); a batched script itself."""
    if is_batched_script(script):
        return script
    path = Path(script)
    return str(path.with_name(f"{path.stem}{BATCHED_SUFFIX}{path.suffix}"))


def safe_name(text: str) -> str:
    """`text` usable as a file name: characters other than letters, digits, `.`, `_` and `-` (the `/` of
    `ALE/Pong-v5`, the `:` of `module:Env-v0`) become `-`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def run_name(script: str, env_id: str, seed: Union[int, str]) -> str:
    """`{env}__{script stem}__{seed}`: the scripts' own naming without the timestamp (`seed` SEED_FIELD: a batched
    script's --run-name, which it fills in for each seed)."""
    return f"{safe_name(env_id)}__{Path(script).stem}__{seed}"


def check_extra_args(extra_args: Sequence[str]) -> None:
    """Refuse extra arguments that set a flag the runner manages (in `--flag`, `--flag=v` or `--flag_name` form)."""
    for arg in extra_args:
        if not arg.startswith("--"):
            continue
        flag = arg[2:].split("=", 1)[0].replace("_", "-")
        if flag in MANAGED_FLAGS:
            raise SweepError(
                f"extra argument {arg!r} sets --{flag}, which the sweep sets for each run (use the sweep's own options)"
            )


def expand_runs(
    scripts: Sequence[str], env_ids: Sequence[str], seeds: Sequence[int], extra_args: Sequence[str]
) -> list[RunSpec]:
    """The cross product scripts x env ids x seeds, in that nesting order."""
    check_extra_args(extra_args)
    runs = [
        RunSpec(run_name(script, env_id, seed), script, env_id, seed, tuple(extra_args))
        for script, env_id, seed in itertools.product(scripts, env_ids, seeds)
    ]
    seen: dict[str, RunSpec] = {}
    for run in runs:
        if run.name in seen:
            raise SweepError(
                f"two runs would share the name {run.name!r}: {seen[run.name].env_id!r} and {run.env_id!r} "
                "(or a repeated script/env/seed)"
            )
        seen[run.name] = run
    return runs


@dataclass
class Manifest:
    """The sweep's runs and jobs plus how to run them. Runs and jobs keep their index forever (a Slurm array
    task's index is its job's): extending a sweep appends."""

    workdir: str
    python: str
    threads_per_run: int
    runs: list[RunSpec] = field(default_factory=list)
    created: str = field(default_factory=utc_now)
    checkpoint_every: int = 0  # the scripts' --checkpoint-every (0: a checkpoint only when stopped by a signal)
    # Each job's run indices. A run that no job lists (every run of a manifest written before jobs) is a job of
    # one, after these: see job_indices.
    job_runs: list[tuple[int, ...]] = field(default_factory=list)

    def job_indices(self) -> list[tuple[int, ...]]:
        listed = {index for job in self.job_runs for index in job}
        return list(self.job_runs) + [(index,) for index in range(len(self.runs)) if index not in listed]

    @property
    def jobs(self) -> list[JobSpec]:
        return [JobSpec(tuple(self.runs[index] for index in job)) for job in self.job_indices()]

    def to_json(self) -> dict:
        return {
            "version": MANIFEST_VERSION,
            "created": self.created,
            "workdir": self.workdir,
            "python": self.python,
            "threads_per_run": self.threads_per_run,
            "checkpoint_every": self.checkpoint_every,
            "runs": [run.to_json() for run in self.runs],
            "jobs": [list(job) for job in self.job_indices()],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        if data.get("version") not in READABLE_VERSIONS:
            raise SweepError(f"manifest version {data.get('version')!r}, this code reads {READABLE_VERSIONS}")
        manifest = cls(
            workdir=data["workdir"],
            python=data["python"],
            threads_per_run=int(data["threads_per_run"]),
            runs=[RunSpec.from_json(run) for run in data["runs"]],
            created=data["created"],
            checkpoint_every=int(data.get("checkpoint_every", 0)),  # absent from manifests written before checkpoints
            job_runs=[tuple(int(index) for index in job) for job in data.get("jobs", [])],  # absent before jobs
        )
        listed = [index for job in manifest.job_runs for index in job]
        if len(set(listed)) != len(listed) or not set(listed) <= set(range(len(manifest.runs))):
            raise SweepError(
                f"the manifest's jobs {data['jobs']} list a run twice, or one of more than its {len(manifest.runs)}"
            )
        try:
            manifest.jobs  # JobSpec checks that each job's runs belong together
        except ValueError as error:
            raise SweepError(f"the manifest's jobs are inconsistent: {error}") from error
        return manifest

    def index_of(self, name: str) -> int:
        for index, run in enumerate(self.runs):
            if run.name == name:
                return index
        raise KeyError(name)

    def extend(self, new_runs: Iterable[RunSpec]) -> list[int]:
        """Add the runs not yet in the sweep, as new jobs: one a run, or for a batched script one a (script, env
        id, extra arguments) with all of its new seeds (seeds added to a batched job already in the sweep form a
        new job). Returns the indices of the jobs that train the given runs (old or new), in order.
        A run whose name exists with a different script, env id, seed or extra arguments is refused."""
        self.job_runs = self.job_indices()
        by_name = {run.name: index for index, run in enumerate(self.runs)}
        job_of = {run: job for job, runs in enumerate(self.job_runs) for run in runs}
        new_jobs: dict[tuple, int] = {}  # the job of each (script, env id, extra args) or run that is added now
        indices = []
        for run in new_runs:
            if run.name in by_name:
                existing = self.runs[by_name[run.name]]
                if existing != run:
                    raise SweepError(
                        f"the sweep already has a run {run.name!r} with extra arguments {list(existing.extra_args)} "
                        f"(script {existing.script}); now {list(run.extra_args)} (script {run.script}): "
                        "use another --out"
                    )
                job = job_of[by_name[run.name]]
            else:
                self.runs.append(run)
                index = by_name[run.name] = len(self.runs) - 1
                key = (run.script, run.env_id, run.extra_args) if is_batched_script(run.script) else (run.name,)
                if key not in new_jobs:
                    new_jobs[key] = len(self.job_runs)
                    self.job_runs.append(())
                job = job_of[index] = new_jobs[key]
                self.job_runs[job] += (index,)
            if job not in indices:
                indices.append(job)
        return indices


class SweepLayout:
    """Paths inside one sweep directory."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.manifest = self.root / MANIFEST_NAME
        self.runs_dir = self.root / "runs"
        self.logs_dir = self.root / "logs"
        self.results_dir = self.root / "results"
        self.slurm_dir = self.root / "slurm"
        self.submissions = self.slurm_dir / "submissions.json"

    def run_dir(self, name: str) -> Path:
        return self.runs_dir / name

    def log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def result(self, name: str) -> Path:
        return self.results_dir / f"{name}.json"

    def lock(self, name: str) -> Path:
        return self.results_dir / f"{name}.lock"

    def make_dirs(self) -> None:
        for directory in (self.runs_dir, self.logs_dir, self.results_dir):
            directory.mkdir(parents=True, exist_ok=True)


def load_manifest(layout: SweepLayout) -> Manifest:
    if not layout.manifest.is_file():
        raise SweepError(f"no sweep at {layout.root} (no {MANIFEST_NAME})")
    return Manifest.from_json(read_json(layout.manifest))


def save_manifest(layout: SweepLayout, manifest: Manifest) -> None:
    write_json_atomic(layout.manifest, manifest.to_json())


def create_or_extend(
    layout: SweepLayout,
    runs: Sequence[RunSpec],
    threads_per_run: int,
    workdir: Path,
    python: Optional[str] = None,
    checkpoint_every: int = 0,
) -> tuple[Manifest, list[int]]:
    """Write the manifest for `runs` (merging into an existing sweep); returns it and the indices of the jobs
    that train them.
    The interpreter, working directory, thread count and checkpoint interval are those of this invocation
    (none of them is part of a run's identity)."""
    if layout.manifest.exists():
        manifest = load_manifest(layout)
        manifest.workdir, manifest.python, manifest.threads_per_run = (
            str(workdir),
            python or sys.executable,
            threads_per_run,
        )
        manifest.checkpoint_every = checkpoint_every
    else:
        manifest = Manifest(
            workdir=str(workdir),
            python=python or sys.executable,
            threads_per_run=threads_per_run,
            checkpoint_every=checkpoint_every,
        )
    indices = manifest.extend(runs)
    layout.make_dirs()
    save_manifest(layout, manifest)
    return manifest, indices
