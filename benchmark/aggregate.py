"""Per-run and per-(script, env id) statistics of one or more sweeps.

Per run: the mean return of its last 100 training episodes (charts/episodic_return, as CleanRL's and
openrlbenchmark's tables), its return curve, SPS (median and final of charts/SPS), and wall time and peak
memory from its result file. Per script and env id, over seeds: mean and standard deviation (ddof=0, as
openrlbenchmark computes CleanRL's published "mean ± std"), and the interquartile mean with a 95%
stratified bootstrap confidence interval (rliable).
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmark.events import Series, load_scalars
from benchmark.manifest import RunSpec, SweepLayout, load_manifest
from benchmark.run_result import RunResult, read_result

RETURN_TAG = "charts/episodic_return"
SPS_TAG = "charts/SPS"
DIAGNOSTIC_TAGS = (
    "losses/clipfrac",
    "losses/approx_kl",
    "losses/entropy",
    "losses/explained_variance",
    "charts/learning_rate",
    "losses/value_loss",
)
LAST_EPISODES = 100
BOOTSTRAP_REPS = 5000
CONFIDENCE = 0.95


@dataclass
class RunSummary:
    name: str
    script: str  # script stem, e.g. ppo_discrete
    env_id: str
    seed: int
    extra_args: tuple[str, ...]  # the sweep's arguments to every run: part of what makes runs comparable
    final_return: float  # mean of the last LAST_EPISODES episodic returns; nan when no episode ended
    num_episodes: int
    total_steps: int
    sps_median: float
    sps_final: float
    wall_time_s: Optional[float]
    peak_rss_mb: Optional[float]
    returns: Series
    diagnostics: dict[str, Series] = field(default_factory=dict)
    sweep: str = ""


@dataclass
class IncompleteRun:
    sweep: str
    name: str
    script: str
    env_id: str
    seed: int
    state: str  # "failed", "interrupted" or "no result"
    reason: str


@dataclass
class GroupSummary:
    script: str
    env_id: str
    extra_args: tuple[str, ...]
    seeds: list[int]
    final_returns: list[float]  # per seed, in the order of `seeds`
    total_steps: int
    mean: float
    std: float
    iqm: float
    iqm_low: float
    iqm_high: float
    sps_median: float  # median over seeds of each run's median SPS
    wall_time_mean_s: Optional[float]
    peak_rss_max_mb: Optional[float]

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)


def last_mean(values: np.ndarray, count: int = LAST_EPISODES) -> float:
    return float(np.mean(values[-count:])) if len(values) else float("nan")


def _median(series: Optional[Series]) -> float:
    return float(np.median(series.values)) if series is not None and len(series) else float("nan")


def summarize_run(run_dir: Path, spec: RunSpec, result: Optional[RunResult], sweep: str = "") -> RunSummary:
    scalars = load_scalars(run_dir)
    empty = Series(np.array([], dtype=np.int64), np.array([]), np.array([]))
    returns = scalars.get(RETURN_TAG, empty)
    sps = scalars.get(SPS_TAG)
    return RunSummary(
        name=spec.name,
        script=spec.script_stem,
        env_id=spec.env_id,
        seed=spec.seed,
        extra_args=spec.extra_args,
        final_return=last_mean(returns.values),
        num_episodes=len(returns),
        total_steps=int(max((int(s.steps.max()) for s in scalars.values() if len(s)), default=0)),
        sps_median=_median(sps),
        sps_final=float(sps.values[-1]) if sps is not None and len(sps) else float("nan"),
        wall_time_s=result.run_wall_time_s if result else None,  # a resumed run's summed over its attempts
        peak_rss_mb=result.peak_rss_mb if result else None,
        returns=returns,
        diagnostics={tag: scalars[tag] for tag in DIAGNOSTIC_TAGS if tag in scalars},
        sweep=sweep,
    )


def load_sweep(sweep_dir: Path) -> tuple[list[RunSummary], list[IncompleteRun]]:
    """Summaries of the sweep's complete runs, and the runs that are not complete (with why)."""
    layout = SweepLayout(sweep_dir)
    manifest = load_manifest(layout)
    complete, incomplete = [], []
    for spec in manifest.runs:
        result = read_result(layout, spec.name)
        if result is not None and result.complete:
            complete.append(summarize_run(layout.run_dir(spec.name), spec, result, str(sweep_dir)))
        else:
            state, reason = (
                (result.status, result.reason) if result else ("no result", "not run, still running, or killed")
            )
            incomplete.append(
                IncompleteRun(str(sweep_dir), spec.name, spec.script_stem, spec.env_id, spec.seed, state, reason)
            )
    return complete, incomplete


def iqm_with_ci(scores: Sequence[float], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean of `scores` (runs of one task) and its 95% stratified bootstrap CI (percentile
    method), with rliable: `get_interval_estimates` of `aggregate_iqm` on a (num_runs, 1) score matrix."""
    from rliable import library as rly
    from rliable import metrics

    matrix = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    # rliable 1.2's StratifiedBootstrap draws its resampling indices from the global np.random, whatever
    # random_state says: seed the global generator for a repeatable interval, and put its state back.
    global_state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch's notice about random_state, which rliable passes
            points, intervals = rly.get_interval_estimates(
                {"scores": matrix},
                lambda x: np.array([metrics.aggregate_iqm(x)]),
                reps=reps,
                confidence_interval_size=CONFIDENCE,
                random_state=np.random.RandomState(seed),
            )
    finally:
        np.random.set_state(global_state)
    return float(points["scores"][0]), float(intervals["scores"][0, 0]), float(intervals["scores"][1, 0])


def _mean_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def summarize_group(runs: Sequence[RunSummary], reps: int = BOOTSTRAP_REPS) -> GroupSummary:
    """Statistics over the seeds of one (script, env id); seeds where no episode ended are left out."""
    runs = sorted(runs, key=lambda run: run.seed)
    scored = [run for run in runs if np.isfinite(run.final_return)]
    finals = np.array([run.final_return for run in scored])
    if len(finals):
        iqm, low, high = iqm_with_ci(finals, reps)
        mean, std = float(finals.mean()), float(finals.std())  # ddof=0, as openrlbenchmark
    else:
        iqm = low = high = mean = std = float("nan")
    peak = [run.peak_rss_mb for run in runs if run.peak_rss_mb is not None]
    return GroupSummary(
        script=runs[0].script,
        env_id=runs[0].env_id,
        extra_args=runs[0].extra_args,
        seeds=[run.seed for run in scored],
        final_returns=finals.tolist(),
        total_steps=max(run.total_steps for run in runs),
        mean=mean,
        std=std,
        iqm=iqm,
        iqm_low=low,
        iqm_high=high,
        sps_median=float(np.nanmedian([run.sps_median for run in runs]))
        if any(np.isfinite(run.sps_median) for run in runs)
        else float("nan"),
        wall_time_mean_s=_mean_or_none([run.wall_time_s for run in runs]),
        peak_rss_max_mb=max(peak) if peak else None,
    )


GroupKey = tuple[str, str, tuple[str, ...]]


def group_runs(runs: Sequence[RunSummary]) -> dict[GroupKey, list[RunSummary]]:
    """Runs by (env id, script, extra arguments), sorted. Runs with different extra arguments (another
    budget, another learning rate) are different experiments and never pooled. A seed twice in one group
    (the same run in two sweeps) is refused: it would count twice."""
    groups: dict[GroupKey, list[RunSummary]] = {}
    for run in sorted(runs, key=lambda run: (run.env_id, run.script, run.extra_args, run.seed)):
        group = groups.setdefault((run.env_id, run.script, run.extra_args), [])
        if any(other.seed == run.seed for other in group):
            raise ValueError(
                f"seed {run.seed} of {run.script} on {run.env_id} with {list(run.extra_args)} is in two sweeps: "
                f"{group[0].sweep} and {run.sweep}"
            )
        group.append(run)
    return groups


def summarize_groups(runs: Sequence[RunSummary], reps: int = BOOTSTRAP_REPS) -> list[GroupSummary]:
    return [summarize_group(group, reps) for group in group_runs(runs).values()]
