"""What a sweep is: its runs, their deterministic names, and where each run's files go.

A sweep directory holds:

    manifest.json         the runs (written when the sweep is created or extended; read by every runner)
    runs/NAME/            the script's --output-dir/--run-name: TensorBoard events, checkpoint.pt
    runs/NAME.failed-N/   run directories of earlier attempts that left no checkpoint, moved aside, never deleted
    logs/NAME.log         the run's stdout and stderr, every attempt appended under a header line
    results/NAME.json     the run's result, written atomically once its process has exited
    slurm/                sbatch output files and submissions.json (Slurm backend)

The run name depends only on the script, the env id and the seed, so running the same sweep again finds
its earlier runs. Extra arguments are part of a run's identity: extending a sweep with the same names but
different extra arguments is refused rather than silently mixing two experiments under one name.

An attempt that finds runs/NAME with a checkpoint.pt (left by an interrupted, preempted or killed attempt)
resumes it with the script's --resume instead of starting over.
"""

import itertools
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional, Sequence

from benchmark.atomic import read_json, write_json_atomic

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"

# Flags the runner sets itself; an extra argument that also sets one would silently fight it.
MANAGED_FLAGS = ("env-id", "seed", "output-dir", "run-name", "torch-threads", "checkpoint-every", "resume")


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
        """The run's argument list (no shell is involved anywhere). With `resume`, the script continues the run
        directory output_dir/NAME from its checkpoint.pt: --resume takes the place of --output-dir/--run-name
        (the script takes the run directory from the checkpoint's location, so a sweep directory that was moved
        still resumes), and the other arguments stay, so the script refuses a checkpoint of another run."""
        location = (
            ["--resume", str(output_dir / self.name)]
            if resume
            else ["--output-dir", str(output_dir), "--run-name", self.name]
        )
        return [
            python, self.script,
            "--env-id", self.env_id,
            "--seed", str(self.seed),
            *location,
            "--torch-threads", str(threads),
            *(["--checkpoint-every", str(checkpoint_every)] if checkpoint_every else []),
            *self.extra_args,
        ]  # fmt: skip

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


def safe_name(text: str) -> str:
    """`text` usable as a file name: characters other than letters, digits, `.`, `_` and `-` (the `/` of
    `ALE/Pong-v5`, the `:` of `module:Env-v0`) become `-`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def run_name(script: str, env_id: str, seed: int) -> str:
    """`{env}__{script stem}__{seed}`: the scripts' own naming without the timestamp."""
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
    """The sweep's runs plus how to run them. Runs keep their index forever (Slurm array indices refer to it):
    extending a sweep appends."""

    workdir: str
    python: str
    threads_per_run: int
    runs: list[RunSpec] = field(default_factory=list)
    created: str = field(default_factory=utc_now)
    checkpoint_every: int = 0  # the scripts' --checkpoint-every (0: a checkpoint only when stopped by a signal)

    def to_json(self) -> dict:
        return {
            "version": MANIFEST_VERSION,
            "created": self.created,
            "workdir": self.workdir,
            "python": self.python,
            "threads_per_run": self.threads_per_run,
            "checkpoint_every": self.checkpoint_every,
            "runs": [run.to_json() for run in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        if data.get("version") != MANIFEST_VERSION:
            raise SweepError(f"manifest version {data.get('version')!r}, this code reads {MANIFEST_VERSION}")
        return cls(
            workdir=data["workdir"],
            python=data["python"],
            threads_per_run=int(data["threads_per_run"]),
            runs=[RunSpec.from_json(run) for run in data["runs"]],
            created=data["created"],
            checkpoint_every=int(data.get("checkpoint_every", 0)),  # absent from manifests written before checkpoints
        )

    def index_of(self, name: str) -> int:
        for index, run in enumerate(self.runs):
            if run.name == name:
                return index
        raise KeyError(name)

    def extend(self, new_runs: Iterable[RunSpec]) -> list[int]:
        """Add runs not yet in the sweep; returns the indices of the given runs (old or new).
        A run whose name exists with a different script, env id, seed or extra arguments is refused."""
        by_name = {run.name: index for index, run in enumerate(self.runs)}
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
                indices.append(by_name[run.name])
            else:
                self.runs.append(run)
                by_name[run.name] = len(self.runs) - 1
                indices.append(len(self.runs) - 1)
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
    """Write the manifest for `runs` (merging into an existing sweep); returns it and the runs' indices.
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
