"""Hyperparameter search where every trial is a seed group: an Optuna study over one script's options.

    python -m benchmark.tune --script ppo_discrete.py --space benchmark/wandb/tune_ppo_discrete_seeds.yaml \\
        --env-ids LunarLander-v3 --total-timesteps 300000 --trials 40 --study-dir benchmark/studies/lunarlander
    python -m benchmark.tune report --study-dir benchmark/studies/lunarlander
    python -m benchmark.tune validate --study-dir benchmark/studies/lunarlander --total-timesteps 500000

A trial trains K seeds (--seeds, default 1 2 3 4) of one configuration on each env id. For the MLP scripts the K
seeds run in one process of the seeds variant (ppo_discrete_seeds.py, ppo_continuous_seeds.py), which costs a
fraction of K separate runs; ppo_atari.py has no seeds variant, so an Atari trial is K runs of the script, side
by side. The trial's score is the group's: the interquartile mean over its seeds of each seed's mean return over
its last 100 episodes (over several env ids: each env's IQM normalized with the min and max of --scores, then
averaged). A one-seed trial ranks seed luck; a group ranks configurations.

The score is also reported at every --report-every fraction of the budget, and the pruner (--pruner median or
halving) stops a trial that lags: its processes get SIGTERM, finish their iteration, write a checkpoint and exit,
so its partial runs stay readable. A configuration the script rejects (say a minibatch count that does not divide
that trial's batch) is a failed trial holding the script's one-line reason; the study goes on.

The study lives in an SQLite file in the study directory (or --storage: an RDB URL such as
postgresql://..., or journal:PATH for Optuna's journal file on a shared filesystem). Running the same command
again continues it: trial numbers go on and finished trials are not rerun. Trials in flight when a worker
crashes, is interrupted or killed are marked failed (they do not count) by the next worker that looks. --workers W
runs W trials at once; --slurm submits W array tasks that share the study through its storage. Watch a study live
with `optuna-dashboard sqlite:///STUDY_DIR/study.db`.
"""

import argparse
import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import optuna
import sqlalchemy
import yaml
from optuna.trial import TrialState

from benchmark.atomic import read_json, write_json_atomic
from benchmark.events import Series, load_scalars
from benchmark.manifest import batched_script
from benchmark.space import Space, SpaceError, load_script_options, load_space, to_cli
from benchmark.sweep import non_negative_int, positive_int, split_extra

RETURN_TAG = "charts/episodic_return"
PROGRESS_TAG = "charts/learning_rate"  # logged once per iteration at the iteration's last step: how far a run is
LAST_EPISODES = 100
MAX_FAILURES_IN_A_ROW = 20  # a space whose every sample the script rejects: stop, rather than fail forever
STATE_FILE = "study.json"  # the study's settings, for report and validate
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SCHEMA_RETRIES = 4  # opening a fresh database while other workers create the same tables


class TuneError(Exception):
    """Bad input or a study that cannot go on: one line, exit code 2."""


# ---------------------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------------------


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50%, rliable's aggregate_iqm (as benchmark.aggregate's tables)."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(np.asarray(values, dtype=np.float64)))


def read_run(run_dir: Path) -> tuple[int, Optional[Series]]:
    """A run's events, read once: the last step they hold (0 before its first iteration reached the disk) and its
    episodic returns (None before the first episode ended)."""
    if not run_dir.is_dir():
        return 0, None
    scalars = load_scalars(run_dir, [PROGRESS_TAG, RETURN_TAG])
    progress = scalars.get(PROGRESS_TAG)
    return (int(progress.steps.max()) if progress is not None and len(progress) else 0), scalars.get(RETURN_TAG)


def mean_return(returns: Optional[Series], up_to_step: Optional[int] = None) -> Optional[float]:
    """Mean return of the last 100 episodes that ended by `up_to_step` (None: no episode ended by then)."""
    if returns is None:
        return None
    values = returns.values if up_to_step is None else returns.values[returns.steps <= up_to_step]
    return float(np.mean(values[-LAST_EPISODES:])) if len(values) else None


def group_score(per_env: dict[str, list[float]], score_ranges: dict[str, tuple[float, float]]) -> float:
    """The trial's score: per env the IQM over seeds, normalized to [min, max] -> [0, 1] when ranges are given,
    then the mean over envs."""
    scores = []
    for env_id, returns in per_env.items():
        value = iqm(returns)
        if env_id in score_ranges:
            low, high = score_ranges[env_id]
            value = (value - low) / (high - low)
        scores.append(value)
    return float(np.mean(scores))


# ---------------------------------------------------------------------------------------------------------------------
# A study's settings
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Study:
    """Everything that defines a study; stored in the study directory and checked when the command runs again."""

    script: str  # the parent script, e.g. ppo_discrete.py
    space: str  # the space file
    env_ids: list[str]
    seeds: list[int]
    total_timesteps: Optional[int]
    extra_args: list[str]
    score_ranges: dict[str, list[float]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # the space's single-valued options, part of every trial
    storage: str = ""
    study_name: str = ""

    @property
    def trial_script(self) -> str:
        """What one trial process runs: the seeds variant where there is one."""
        variant = batched_script(self.script)
        return variant if Path(variant).exists() else self.script

    @property
    def batched(self) -> bool:
        return self.trial_script != self.script

    def defining(self) -> dict:
        """The settings that must not change when a study continues."""
        return {"script": self.script, "env_ids": self.env_ids, "seeds": self.seeds,
                "total_timesteps": self.total_timesteps, "extra_args": self.extra_args,
                "score_ranges": self.score_ranges, "fixed": self.fixed}  # fmt: skip


def storage_url(text: Optional[str], study_dir: Path) -> str:
    return text or f"sqlite:///{(study_dir / 'study.db').resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage (SQLite by default) or, for journal:PATH, Optuna's journal file."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:") :]))
    # SQLite with several writers: wait for the lock instead of failing at once
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None
    for attempt in range(SCHEMA_RETRIES):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.SQLAlchemyError as error:
            # workers that start together on a fresh database all create its tables: the losers find them made
            if not (isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)):
                raise
            time.sleep(0.2 * (attempt + 1))
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def make_pruner(name: str, startup_trials: int) -> optuna.pruners.BasePruner:
    if name == "median":  # stops a trial whose score is below the median of earlier trials at the same fraction
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)
    if name == "halving":  # successive halving: keeps the top 1/reduction_factor at each rung
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------------------------------------------------------------
# One trial: its processes, their progress, pruning and the result
# ---------------------------------------------------------------------------------------------------------------------


def die_with_parent() -> None:
    """In a trial's process before exec: SIGTERM when the tuner dies (kill -9 included), so no run outlives it;
    the script's own SIGTERM path then writes its checkpoint and exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Job:
    """One process of a trial: an env id and the seeds it trains (K seeds in a seeds variant, one otherwise)."""

    env_id: str
    seeds: list[int]
    argv: list[str]
    log: Path
    run_dirs: list[Path]
    budget: int  # the steps each run ends at: whole iterations of its batch
    process: Optional[subprocess.Popen] = None


def trial_jobs(study: Study, trial_dir: Path, params: dict[str, Any], defaults: dict[str, Any], report_every: float,
               track: Optional[str]) -> list[Job]:  # fmt: skip
    """The processes of one trial. Each writes a checkpoint at every reported fraction of its budget: it flushes the
    events the tuner reads then, and a pruned or interrupted run keeps a recent one."""
    settings = {**defaults, **study.fixed, **params}
    total = study.total_timesteps or settings["total_timesteps"]
    batch = settings["num_envs"] * settings["num_steps"]
    iterations = total // batch
    common = to_cli({**study.fixed, **params}) + ["--torch-threads", "1", "--output-dir", str(trial_dir)]
    common += ["--total-timesteps", str(total), "--checkpoint-every", str(max(1, int(iterations * report_every)))]
    common += ["--track", "--wandb-project-name", track] if track else []
    jobs = []
    for env_id in study.env_ids:
        name = env_id.replace("/", "-")
        groups = [study.seeds] if study.batched else [[seed] for seed in study.seeds]
        for seeds in groups:
            if study.batched:
                seed_args = ["--seeds", *map(str, seeds), "--run-name", f"{name}__{{seed}}"]
            else:
                seed_args = ["--seed", str(seeds[0]), "--run-name", f"{name}__{seeds[0]}"]
            argv = [sys.executable, study.trial_script, "--env-id", env_id, *seed_args, *common, *study.extra_args]
            log = trial_dir / (f"{name}.log" if study.batched else f"{name}__{seeds[0]}.log")
            run_dirs = [trial_dir / f"{name}__{seed}" for seed in seeds]
            jobs.append(Job(env_id, seeds, argv, log, run_dirs, iterations * batch))
    return jobs


def last_line(path: Path) -> str:
    """A failed run's reason: the last line it wrote (the scripts report bad input and failures in one line)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


class Worker:
    """A thread of the tuner: runs trials one after another until the study has enough or the tuner stops."""

    def __init__(self, tuner: "Tuner", name: str):
        self.tuner, self.name = tuner, name
        self.jobs: list[Job] = []
        self.lock = threading.Lock()

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        with self.lock:
            for job in self.jobs:
                if job.process is not None and job.process.poll() is None:
                    job.process.send_signal(sig)

    def run(self) -> None:
        tuner = self.tuner
        while not tuner.stopping.is_set():
            trial = tuner.next_trial()
            if trial is None:
                return
            try:
                self.run_trial(trial)
            except Exception as error:  # a trial's failure is recorded; the worker goes on with the next
                self.terminate()
                tuner.finish(trial, TrialState.FAIL, reason=f"tuner error: {error!r}"[:500])

    def run_trial(self, trial: optuna.Trial) -> None:
        tuner, study = self.tuner, self.tuner.study
        trial_dir = tuner.study_dir / "trials" / f"{trial.number:05d}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        jobs = trial_jobs(study, trial_dir, trial.params, tuner.space.script_defaults, tuner.report_every, tuner.track)
        trial.set_user_attr("commands", [shlex.join(job.argv[1:]) for job in jobs])
        trial.set_user_attr("trial_dir", str(trial_dir))
        # one thread per run; with --track, W&B groups a trial's runs under the trial's name
        env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_RUN_GROUP=f"{study.study_name}-trial-{trial.number}")
        with self.lock:
            self.jobs = jobs
            for job in jobs:
                with open(job.log, "ab") as log:
                    job.process = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                   stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)  # fmt: skip
        trial.set_user_attr("pids", [job.process.pid for job in jobs])
        fractions = tuner.report_fractions()
        reported, pruned = 0, False
        while any(job.process.poll() is None for job in jobs):
            tuner.stopping.wait(tuner.poll_interval)
            tuner.heartbeat(trial)
            if tuner.stopping.is_set() or pruned:
                continue
            reported = self.report(trial, jobs, read_runs(jobs), fractions, reported)
            if reported and tuner.pruner_name != "none" and trial.should_prune():
                pruned = True
                trial.set_user_attr("pruned_at", fractions[reported - 1])
                self.terminate()  # the scripts' SIGTERM path: finish the iteration, write a checkpoint, exit
        exit_codes = [job.process.wait() for job in jobs]
        trial.set_user_attr("exit_codes", exit_codes)
        with self.lock:
            self.jobs = []
        if pruned:
            return tuner.finish(trial, TrialState.PRUNED)
        if tuner.stopping.is_set():
            return tuner.finish(trial, TrialState.FAIL, reason="interrupted: the tuner was stopped")
        failed = [job for job, code in zip(jobs, exit_codes) if code != 0]
        if failed:
            return tuner.finish(
                trial, TrialState.FAIL, reason=last_line(failed[0].log) or f"exit code {failed[0].process.returncode}"
            )
        runs = read_runs(jobs)
        self.report(trial, jobs, runs, fractions, reported)  # the fractions the events reached only at the end
        per_env = returns_by_env(jobs, runs, None)
        if per_env is None:
            return tuner.finish(trial, TrialState.FAIL, reason="a seed finished no episode")
        tuner.finish(trial, TrialState.COMPLETE, per_env=per_env)

    def report(self, trial: optuna.Trial, jobs: list[Job], runs: dict, fractions: list[float], reported: int) -> int:
        """Report the group score at each budget fraction every run has passed; returns how many are reported."""
        progress = min(step for step, _ in runs.values())
        while reported < len(fractions):
            step = int(fractions[reported] * min(job.budget for job in jobs))
            per_env = returns_by_env(jobs, runs, step) if progress >= step else None
            if per_env is None:  # not there yet, or a seed without a finished episode: nothing to compare
                break
            trial.report(group_score(per_env, self.tuner.score_ranges), reported + 1)
            reported += 1
        return reported


def read_runs(jobs: list[Job]) -> dict[Path, tuple[int, Optional[Series]]]:
    return {run_dir: read_run(run_dir) for job in jobs for run_dir in job.run_dirs}


def returns_by_env(jobs: list[Job], runs: dict, up_to_step: Optional[int]) -> Optional[dict[str, list[float]]]:
    """{env id: each seed's mean return up to `up_to_step`}, or None while a seed has no finished episode."""
    per_env: dict[str, list[float]] = {}
    for job in jobs:
        for run_dir in job.run_dirs:
            value = mean_return(runs[run_dir][1], up_to_step)
            if value is None:
                return None
            per_env.setdefault(job.env_id, []).append(value)
    return per_env


class Tuner:
    """The study in this process: asks for trials, runs them on worker threads, records their outcome."""

    def __init__(self, study: Study, study_dir: Path, space: Space, optuna_study: optuna.Study, args, workers: int):
        self.study, self.study_dir, self.space, self.optuna_study = study, study_dir, space, optuna_study
        self.target_trials, self.poll_interval = args.trials, args.poll_interval
        self.report_every, self.pruner_name = args.report_every, args.pruner
        self.stale_after = max(120.0, 10 * args.poll_interval)
        self.score_ranges = {env: tuple(bounds) for env, bounds in study.score_ranges.items()}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.started = time.time()
        self.finished_here: list[float] = []  # durations of this process's finished trials, for the time left
        self.failures_in_a_row = 0
        self.workers = workers
        self.track = args.wandb_project_name if args.track else None

    def report_fractions(self) -> list[float]:
        count = max(1, round(1 / self.report_every))
        return [(k + 1) / count for k in range(count)]

    def counted(self) -> int:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # failed ones do not count
        return len(self.optuna_study.get_trials(deepcopy=False, states=states))

    def next_trial(self) -> Optional[optuna.Trial]:
        with self.lock:
            fail_lost_trials(self.optuna_study, self.stale_after)
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:  # no new trial; those running finish
                print(
                    f"{MAX_FAILURES_IN_A_ROW} trials in a row failed: no new trial (report.md says why)",
                    file=sys.stderr,
                )
                return None
            if self.stopping.is_set() or self.counted() >= self.target_trials:
                return None
            trial = self.optuna_study.ask(self.space.distributions)
            trial.set_user_attr("worker", self.worker_id)
            trial.set_user_attr("heartbeat", time.time())
            trial.set_user_attr("started", time.time())
            return trial

    def heartbeat(self, trial: optuna.Trial) -> None:
        trial.set_user_attr("heartbeat", time.time())

    def finish(self, trial: optuna.Trial, state: TrialState, reason: str = "", per_env=None) -> None:
        value = None
        if per_env is not None:
            value = group_score(per_env, self.score_ranges)
            trial.set_user_attr("returns", per_env)
            trial.set_user_attr("mean", float(np.mean([np.mean(v) for v in per_env.values()])))
            trial.set_user_attr("min", float(min(min(v) for v in per_env.values())))
        if reason:
            trial.set_user_attr("failure", reason)
        self.optuna_study.tell(trial, value, state=state)
        with self.lock:
            self.failures_in_a_row = self.failures_in_a_row + 1 if state == TrialState.FAIL else 0
            self.finished_here.append(time.time() - trial.user_attrs.get("started", time.time()))
        self.progress_line(trial.number, state, value, reason)

    def progress_line(self, number: int, state: TrialState, value: Optional[float], reason: str) -> None:
        trials = self.optuna_study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        running = sum(t.state == TrialState.RUNNING for t in trials)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value) if complete else None
        outcome = {TrialState.COMPLETE: f"complete, score {value:.4g}" if value is not None else "complete",
                   TrialState.PRUNED: "pruned", TrialState.FAIL: f"failed: {reason}"}[state]  # fmt: skip
        best_text = f"best {best.value:.4g} (trial {best.number})" if best else "no trial complete yet"
        left = max(0, self.target_trials - len(done) - running)
        durations = self.finished_here[-10:]  # recent trials of this process, run `workers` at a time
        eta = np.mean(durations) * (left + running) / self.workers if durations else float("nan")
        print(f"trial {number} {outcome} | {best_text} | {len(done)}/{self.target_trials} trials done, {running} "
              f"running | {format_duration(time.time() - self.started)} elapsed, about {format_duration(eta)} left",
              flush=True)  # fmt: skip


def format_duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_lost_trials(optuna_study: optuna.Study, stale_after: float) -> list[int]:
    """Mark failed the running trials whose worker is gone: on this host, its process no longer exists; anywhere,
    its heartbeat is older than `stale_after` seconds. They do not count towards the study's trials."""
    host, lost = socket.gethostname(), []
    for trial in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        dead_here = worker_host == host and pid.isdigit() and not pid_alive(int(pid))
        # a trial just asked for has no heartbeat yet: its start stands in, or another worker would fail it at once
        started = trial.datetime_start.timestamp() if trial.datetime_start is not None else time.time()
        stale = time.time() - trial.user_attrs.get("heartbeat", started) > stale_after
        if dead_here or stale:
            try:
                optuna.trial.Trial(optuna_study, trial._trial_id).set_user_attr("failure", f"worker {worker} lost")
                optuna_study.tell(trial.number, state=TrialState.FAIL)
                lost.append(trial.number)
            except (RuntimeError, ValueError):  # another worker got there first
                pass
    return lost


# ---------------------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------------------


def search_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.tune",
        description="An Optuna study over a PPO script's options in which every trial is a seed group: K seeds in "
        "one process of the seeds variant (ppo_atari.py, which has none: K runs of the script). Arguments after "
        "`--` go to every run. Subcommands: `report --study-dir DIR`, `validate --study-dir DIR`.",
    )
    parser.add_argument("--script", required=True, help="ppo_discrete.py, ppo_continuous.py or ppo_atari.py")
    parser.add_argument("--space", type=Path, required=True, help="search space: a W&B sweep YAML file")
    parser.add_argument("--study-dir", type=Path, required=True, help="the study's directory (storage, runs, report)")
    parser.add_argument("--env-ids", nargs="+", help="env ids (default: the space's env_id)")
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="the seeds of every trial (default: the space's, else 1 2 3 4)"
    )
    parser.add_argument(
        "--total-timesteps", type=positive_int, help="budget per run (default: the space's, else the script's)"
    )
    parser.add_argument("--scores", type=Path, help="YAML {env_id: {min: random score, max: reference score}}: "
                        "normalizes each env's score (needed with several env ids)")  # fmt: skip
    parser.add_argument(
        "--trials", type=positive_int, default=50, help="complete or pruned trials to reach (default 50)"
    )
    parser.add_argument("--workers", type=positive_int, help="trials at once (default: cores / processes per trial)")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite:///STUDY_DIR/study.db) or journal:PATH")
    parser.add_argument("--study-name", help="default: the study directory's name")
    parser.add_argument("--pruner", choices=("median", "halving", "none"), default="median")
    parser.add_argument(
        "--startup-trials", type=non_negative_int, default=5, help="median pruner: trials before any is pruned"
    )
    parser.add_argument(
        "--report-every", type=float, default=0.1, help="report the score at this fraction of the budget"
    )
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of Optuna's TPE sampler")
    parser.add_argument("--enqueue", action="append", default=[], metavar="JSON",
                        help='a configuration to try first, e.g. \'{"learning_rate": 0.001}\'; repeatable')  # fmt: skip
    parser.add_argument("--enqueue-defaults", action="store_true", help="try the script's defaults first")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between reads of the runs' events")
    parser.add_argument("--track", action="store_true", help="log every run to W&B, a trial's runs grouped by trial")
    parser.add_argument("--wandb-project-name", default="ppo-reference-tune")
    parser.add_argument("--slurm", action="store_true", help="submit --workers Slurm array tasks sharing the study")
    parser.add_argument("--partition")
    parser.add_argument("--time", help="Slurm time limit per task")
    parser.add_argument("--sbatch-arg", dest="sbatch_args", action="append", default=[])
    return parser


def load_score_ranges(path: Optional[Path], env_ids: Sequence[str]) -> dict[str, list[float]]:
    if path is None:
        if len(env_ids) > 1:
            raise TuneError("several env ids need --scores (each env's min and max score to normalize with)")
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise TuneError(f"cannot read --scores {path}: {error}") from None
    ranges = {}
    for env_id in env_ids:
        entry = (data or {}).get(env_id)
        if not isinstance(entry, dict) or not {"min", "max"} <= set(entry):
            raise TuneError(f"--scores {path} gives no min and max for {env_id}")
        if not entry["max"] > entry["min"]:
            raise TuneError(f"--scores {path}: {env_id}'s max must be above its min")
        ranges[env_id] = [float(entry["min"]), float(entry["max"])]
    return ranges


def prepare(args, extra_args: list[str]) -> tuple[Study, Space]:
    """Check everything before any trial starts or anything is written; TuneError or SpaceError on bad input."""
    script = Path(args.script)
    if script.name not in ("ppo_discrete.py", "ppo_continuous.py", "ppo_atari.py") or not script.exists():
        raise TuneError(f"--script {args.script}: expected ppo_discrete.py, ppo_continuous.py or ppo_atari.py")
    if not 0 < args.report_every <= 1:
        raise TuneError(f"--report-every must be in (0, 1], got {args.report_every}")
    if args.poll_interval <= 0:
        raise TuneError(f"--poll-interval must be positive, got {args.poll_interval}")
    variant = batched_script(str(script))
    options = load_script_options(Path(variant) if Path(variant).exists() else script)
    space = load_space(args.space, options)
    env_ids = args.env_ids or ([space.run_defaults["env_id"]] if "env_id" in space.run_defaults else None)
    if not env_ids:
        raise TuneError("no env id: give --env-ids or a fixed env_id in the space")
    seeds = args.seeds or list(space.run_defaults.get("seeds") or [1, 2, 3, 4])
    if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
        raise TuneError(f"--seeds must be distinct non-negative integers, got {seeds}")
    total = args.total_timesteps or space.run_defaults.get("total_timesteps")
    score_ranges = load_score_ranges(args.scores, env_ids)
    for env_id in env_ids:  # the script's own check: known to gymnasium, the action space the script takes
        try:
            options.check_env(env_id)
        except options.usage_error as error:
            raise TuneError(f"--env-ids {env_id}: {error}") from None
    study_name = args.study_name or args.study_dir.resolve().name
    study = Study(str(script), str(args.space), list(env_ids), [int(s) for s in seeds],
                  None if total is None else int(total), extra_args, score_ranges, space.fixed,
                  storage_url(args.storage, args.study_dir), study_name)  # fmt: skip
    for text in args.enqueue:
        try:
            params = json.loads(text)
        except json.JSONDecodeError as error:
            raise TuneError(f"--enqueue {text!r} is not JSON: {error}") from None
        if not isinstance(params, dict) or set(params) - set(space.distributions):
            raise TuneError(f"--enqueue {text!r}: give searched parameters only ({', '.join(space.distributions)})")
    return study, space


def open_study(study: Study, study_dir: Path, args) -> optuna.Study:
    """Create the study, or continue it when its directory holds one with the same settings."""
    state_path = study_dir / STATE_FILE
    if state_path.exists():
        saved = read_json(state_path)
        previous = Study(**saved)
        if previous.defining() != study.defining():
            changed = [key for key in study.defining() if study.defining()[key] != previous.defining()[key]]
            raise TuneError(f"{study_dir} holds a study with other {', '.join(changed)}; use another --study-dir")
    study_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state_path, study.__dict__)
    sampler = optuna.samplers.TPESampler(seed=args.sampler_seed, constant_liar=True)
    optuna_study = optuna.create_study(storage=open_storage(study.storage), study_name=study.study_name,
                                       direction="maximize", sampler=sampler,
                                       pruner=make_pruner(args.pruner, args.startup_trials),
                                       load_if_exists=True)  # fmt: skip
    return optuna_study


def enqueue_first(optuna_study: optuna.Study, space: Space, args) -> None:
    """Queue the requested configurations once: a study that continues does not queue them again."""
    if optuna_study.user_attrs.get("enqueued"):
        return
    configurations = [json.loads(text) for text in args.enqueue]
    if args.enqueue_defaults:  # a `no_FLAG` parameter's default is false: the flag keeps its default
        defaults = {name: space.script_defaults.get(name, False) for name in space.distributions}
        configurations.insert(0, defaults)
    for params in configurations:
        optuna_study.enqueue_trial(params, skip_if_exists=True)
    optuna_study.set_user_attr("enqueued", True)


def processes_per_trial(study: Study) -> int:
    return len(study.env_ids) * (1 if study.batched else len(study.seeds))


def main_search(argv: Sequence[str]) -> int:
    own, extra_args = split_extra(argv)
    args = search_parser().parse_args(own)
    study, space = prepare(args, extra_args)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna_study = open_study(study, args.study_dir, args)
    enqueue_first(optuna_study, space, args)
    workers = args.workers or max(1, (os.cpu_count() or 1) // processes_per_trial(study))
    if args.slurm:
        return submit_slurm(args, own, extra_args, workers)
    print(f"study {study.study_name} in {args.study_dir}: {study.trial_script} x {len(study.seeds)} seeds on "
          f"{', '.join(study.env_ids)}; {workers} worker(s); storage {study.storage}", flush=True)  # fmt: skip
    tuner = Tuner(study, args.study_dir, space, optuna_study, args, workers)
    threads = [Worker(tuner, f"worker-{k}") for k in range(workers)]
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        tuner.stopping.set()
        for worker in threads:  # first signal: the scripts checkpoint and exit; a second one stops them at once
            worker.terminate(signal.SIGTERM if len(received) == 1 else signal.SIGKILL)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        running = [threading.Thread(target=worker.run, name=worker.name) for worker in threads]
        for thread in running:
            thread.start()
        while any(thread.is_alive() for thread in running):
            for thread in running:
                thread.join(timeout=0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    from benchmark.tune_report import write_report

    write_report(args.study_dir)
    if received:
        print(f"stopped by {signal.Signals(received[0]).name}; run the same command again to continue the study",
              file=sys.stderr)  # fmt: skip
        return 128 + received[0]
    return 0


def submit_slurm(args, own: list[str], extra_args: list[str], workers: int) -> int:
    """W array tasks, each running this command as one worker on the shared storage."""
    from benchmark.slurm import slurm_available

    available, reason = slurm_available()
    if not available:
        raise TuneError(f"Slurm is not reachable: {reason}")
    worker_argv = [arg for arg in own if arg != "--slurm"]
    storage = storage_url(args.storage, args.study_dir)
    command = [sys.executable, "-m", "benchmark.tune", *worker_argv, "--workers", "1", "--storage", storage]
    command += ["--", *extra_args] if extra_args else []
    log_dir = (args.study_dir / "slurm").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    sbatch = ["sbatch", "--parsable", f"--array=0-{workers - 1}", "--job-name", f"tune-{args.study_dir.name}",
              "--cpus-per-task", "1", "--output", str(log_dir / "%A_%a.out"), f"--chdir={Path.cwd()}"]  # fmt: skip
    sbatch += [f"--partition={args.partition}"] if args.partition else []
    sbatch += [f"--time={args.time}"] if args.time else []
    sbatch += [*args.sbatch_args, "--export=ALL,OMP_NUM_THREADS=1", "--wrap", shlex.join(command)]
    result = subprocess.run(sbatch, capture_output=True, text=True)
    if result.returncode != 0:
        raise TuneError(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
    job_id = result.stdout.strip().split(";")[0]
    print(f"submitted array job {job_id} with {workers} workers sharing {storage}; output in {log_dir}", flush=True)
    write_json_atomic(args.study_dir / "slurm" / "submission.json", {"job_id": job_id, "workers": workers})
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["report"]:
            from benchmark.tune_report import main_report

            return main_report(argv[1:])
        if argv[:1] == ["validate"]:
            from benchmark.tune_report import main_validate

            return main_validate(argv[1:])
        return main_search(argv)
    except (TuneError, SpaceError) as error:
        print(f"benchmark.tune: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from benchmark import tune  # as a module, so that its TuneError is the one benchmark.tune_report raises

    sys.exit(tune.main())
