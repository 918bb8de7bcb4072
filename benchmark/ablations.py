"""The PPO paper's Table 1 on our scripts: no clipping, clipping, adaptive and fixed KL penalties, per env and on
average, normalized the way the paper normalizes, beside the paper's own numbers.

    python -m benchmark.ablations --runs benchmark/runs/ablations --out benchmark/results/ablations

Reads RUNS/<env id>/<setting>/, one sweep each (benchmark/recipes/ablations.sh makes them; the setting names are
SETTINGS below). Writes into --out: ablations.md, ablations.csv (one row per env and setting, then one `average`
row per setting) and ablations.png.

A run's score is the mean return over its last 100 training episodes, as in the other reports. Per env and
setting: mean and std (ddof=0) over seeds. Normalized as in the paper (Section 6.1): per env, the random policy
scores 0 and the best setting (highest mean) scores 1; the random policy's score is the mean return of
uniformly random actions over RANDOM_EPISODES episodes with a fixed seed, computed here. A setting's average is
the mean of its normalized scores over the envs that have it.
"""

import argparse
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.aggregate import LAST_EPISODES, IncompleteRun, RunSummary, load_sweep  # noqa: E402
from benchmark.atomic import atomic_path, write_text_atomic  # noqa: E402
from benchmark.manifest import MANIFEST_NAME, SweepError  # noqa: E402
from benchmark.tables import fmt, markdown_table, mean_spread, write_csv  # noqa: E402

RANDOM_EPISODES = 100
RANDOM_SEED = 0
AVERAGE = "average"  # the env_id column of the per-setting average rows in the CSV


@dataclass(frozen=True)
class Setting:
    name: str  # the sweep directory's name under RUNS/<env id>/
    label: str  # the row's name in the paper's Table 1
    paper: float  # the paper's average normalized score


SETTINGS = (
    Setting("no-clip", "No clipping or penalty", -0.39),
    Setting("clip-0.1", "Clipping, epsilon = 0.1", 0.76),
    Setting("clip-0.2", "Clipping, epsilon = 0.2", 0.82),
    Setting("clip-0.3", "Clipping, epsilon = 0.3", 0.70),
    Setting("kl-adaptive-0.003", "Adaptive KL, d_targ = 0.003", 0.68),
    Setting("kl-adaptive-0.01", "Adaptive KL, d_targ = 0.01", 0.74),
    Setting("kl-adaptive-0.03", "Adaptive KL, d_targ = 0.03", 0.71),
    Setting("kl-fixed-0.3", "Fixed KL, beta = 0.3", 0.62),
    Setting("kl-fixed-1", "Fixed KL, beta = 1", 0.71),
    Setting("kl-fixed-3", "Fixed KL, beta = 3", 0.72),
    Setting("kl-fixed-10", "Fixed KL, beta = 10", 0.69),
)
PAPER_NOTE = (
    "Paper: Schulman et al. 2017, Table 1: average normalized score of each setting over 21 runs (7 MuJoCo tasks of "
    "gym v1, HalfCheetah, Hopper, InvertedDoublePendulum, InvertedPendulum, Reacher, Swimmer, Walker2d; 3 seeds "
    "each), 1M steps per run, beta initialized at 1. Other tasks, budgets and implementation: compare the ordering "
    "of the settings, not the numbers."
)


@dataclass
class Cell:
    """One env and one setting: its runs' scores over seeds, and where they fall between random and best."""

    env_id: str
    setting: Setting
    script: str
    seeds: list[int]
    scores: list[float]  # per seed, the mean return of the last LAST_EPISODES episodes
    total_steps: int
    mean: float
    std: float
    normalized: float = float("nan")  # (mean - random) / (best mean - random)
    normalized_std: float = float("nan")  # the std over seeds on the same scale


@dataclass
class Average:
    setting: Setting
    normalized: float  # mean over envs of the cells' normalized scores
    env_ids: list[str]


def random_policy_score(env_id: str, episodes: int = RANDOM_EPISODES, seed: int = RANDOM_SEED) -> float:
    """Mean undiscounted return of uniformly random actions over `episodes` episodes (the first reset and the
    action space seeded with `seed`: the same number every time)."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    returns, episode_return = [], 0.0
    while len(returns) < episodes:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        episode_return += float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            episode_return = 0.0
            env.reset()
    env.close()
    return float(np.mean(returns))


def load_cells(runs_root: Path) -> tuple[list[Cell], list[IncompleteRun]]:
    """A Cell per env dir and known setting dir under `runs_root` with at least one complete run that scored
    (ended an episode), in SETTINGS order; and the runs that are not complete."""
    cells, incomplete = [], []
    for env_dir in sorted(path for path in Path(runs_root).iterdir() if path.is_dir()):
        for setting in SETTINGS:
            sweep_dir = env_dir / setting.name
            if not (sweep_dir / MANIFEST_NAME).is_file():
                continue
            complete, not_complete = load_sweep(sweep_dir)
            incomplete += not_complete
            scored = sorted((run for run in complete if np.isfinite(run.final_return)), key=lambda run: run.seed)
            if scored:
                cells.append(make_cell(setting, scored))
    return cells, incomplete


def make_cell(setting: Setting, runs: Sequence[RunSummary]) -> Cell:
    env_ids = {run.env_id for run in runs}
    if len(env_ids) != 1:
        raise SweepError(f"the {setting.name} sweep holds more than one env: {sorted(env_ids)}")
    scores = np.array([run.final_return for run in runs])
    return Cell(
        env_id=runs[0].env_id,
        setting=setting,
        script=runs[0].script,
        seeds=[run.seed for run in runs],
        scores=scores.tolist(),
        total_steps=max(run.total_steps for run in runs),
        mean=float(scores.mean()),
        std=float(scores.std()),  # ddof=0, as the other reports
    )


def normalize(cells: Sequence[Cell], random_scores: dict[str, float]) -> dict[str, float]:
    """Fill in each cell's normalized score (random policy 0, the env's best setting 1); returns the best mean per
    env."""
    best = {}
    for env_id in dict.fromkeys(cell.env_id for cell in cells):
        best[env_id] = max(cell.mean for cell in cells if cell.env_id == env_id)
    for cell in cells:
        scale = best[cell.env_id] - random_scores[cell.env_id]
        if scale > 0:
            cell.normalized = (cell.mean - random_scores[cell.env_id]) / scale
            cell.normalized_std = cell.std / scale
    return best


def averages(cells: Sequence[Cell]) -> list[Average]:
    """Per setting (SETTINGS order, those with a cell): the mean normalized score over its envs."""
    result = []
    for setting in SETTINGS:
        own = [cell for cell in cells if cell.setting == setting and np.isfinite(cell.normalized)]
        if own:
            result.append(
                Average(setting, float(np.mean([cell.normalized for cell in own])), [cell.env_id for cell in own])
            )
    return result


def csv_rows(
    cells: Sequence[Cell], means: Sequence[Average], random_scores: dict[str, float], best: dict[str, float]
) -> list[dict]:
    rows = [
        {
            "env_id": cell.env_id,
            "setting": cell.setting.name,
            "label": cell.setting.label,
            "script": cell.script,
            "seeds": " ".join(str(seed) for seed in cell.seeds),
            "scores": " ".join(f"{score:.6g}" for score in cell.scores),
            "steps": cell.total_steps,
            "return_mean": cell.mean,
            "return_std": cell.std,
            "random_score": random_scores[cell.env_id],
            "best_mean": best[cell.env_id],
            "normalized": cell.normalized,
            "normalized_std": cell.normalized_std,
            "num_envs": "",
            "paper_table1": "",
        }  # fmt: skip
        for cell in cells
    ]
    for average in means:
        row = dict.fromkeys(rows[0], "")
        row.update(env_id=AVERAGE, setting=average.setting.name, label=average.setting.label,
                   normalized=average.normalized, num_envs=len(average.env_ids),
                   paper_table1=average.setting.paper)  # fmt: skip
        rows.append(row)
    return rows


def ablations_markdown(
    command: str,
    cells: Sequence[Cell],
    means: Sequence[Average],
    random_scores: dict[str, float],
    best: dict[str, float],
    incomplete: Sequence[IncompleteRun],
) -> str:
    env_ids = list(dict.fromkeys(cell.env_id for cell in cells))
    by_key = {(cell.env_id, cell.setting.name): cell for cell in cells}
    average_rows = []
    for average in means:
        partial = "" if len(average.env_ids) == len(env_ids) else f" ({len(average.env_ids)} of {len(env_ids)} envs)"
        per_env = [
            fmt(by_key[(env_id, average.setting.name)].normalized)
            if (env_id, average.setting.name) in by_key
            else "n/a"
            for env_id in env_ids
        ]
        average_rows.append(
            [average.setting.label, f"**{fmt(average.normalized)}**{partial}", *per_env, fmt(average.setting.paper)]
        )
    parts = [
        "# The PPO paper's Table 1 on our scripts",
        f"Written by `{command}`.",
        f"Score of a run: its mean episodic return over its last {LAST_EPISODES} training episodes. "
        "Per env and setting: mean ± std over seeds (ddof=0). "
        "Normalized as in the paper: per env, the random policy scores 0 and the "
        f"best setting's mean scores 1 (random policy: uniformly random actions, {RANDOM_EPISODES} episodes, seed "
        f"{RANDOM_SEED}). Average: the mean of a setting's normalized scores over the envs.",
        PAPER_NOTE,
        "## Average normalized score",
        markdown_table(["Setting", "Ours (average)", *env_ids, "Paper, Table 1 (MuJoCo, 1M steps)"], average_rows),
        "![ablations](ablations.png)",
    ]
    for env_id in env_ids:
        own = [cell for cell in cells if cell.env_id == env_id]
        unscaled = (
            " No setting beats the random policy: no normalized scores, and the env is left out of the averages."
            if best[env_id] <= random_scores[env_id]
            else ""
        )
        parts += [
            f"## {env_id}",
            f"`{own[0].script}`, {max(cell.total_steps for cell in own):,} steps; "
            f"random policy {fmt(random_scores[env_id])}, "
            f"best setting {fmt(best[env_id])}.{unscaled}",
            markdown_table(
                ["Setting", "Return (mean ± std over seeds)", "Seeds", "Normalized (± std over seeds)"],
                [
                    [
                        cell.setting.label,
                        mean_spread(cell.mean, cell.std),
                        " ".join(str(seed) for seed in cell.seeds),
                        mean_spread(cell.normalized, cell.normalized_std),
                    ]
                    for cell in own
                ],
            ),
        ]
    if incomplete:
        parts += [
            "## Not included (not complete)",
            markdown_table(
                ["Run", "Sweep", "State", "Reason"],
                [[run.name, run.sweep, run.state, run.reason] for run in incomplete],
            ),
        ]
    return "\n\n".join(parts) + "\n"


def plot(path: Path, cells: Sequence[Cell], means: Sequence[Average]) -> None:
    """Bars: our average normalized score and the paper's, per setting; dots: our score on each env."""
    positions = np.arange(len(means))
    fig, ax = plt.subplots(figsize=(12, 5.5))
    ax.bar(positions - 0.2, [average.normalized for average in means], width=0.4, label="ours: average over envs")
    ax.bar(
        positions + 0.2,
        [average.setting.paper for average in means],
        width=0.4,
        label="paper, Table 1 (MuJoCo, 1M steps)",
        color="lightgray",
    )
    for marker, env_id in zip("o^sDv", dict.fromkeys(cell.env_id for cell in cells)):
        points = [
            (index, cell.normalized)
            for index, average in enumerate(means)
            for cell in cells
            if cell.env_id == env_id and cell.setting == average.setting and np.isfinite(cell.normalized)
        ]
        if not points:
            continue
        ax.scatter(
            [index - 0.2 for index, _ in points],
            [value for _, value in points],
            marker=marker,
            color="black",
            s=18,
            zorder=3,
            label=f"ours: {env_id}",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(
        positions,
        ["\n".join(textwrap.fill(part, 14) for part in average.setting.label.split(", ")) for average in means],
        fontsize="small",
    )
    ax.set_ylabel("normalized score (random 0, best setting 1)")
    ax.set_title("The PPO paper's Table 1 ablation on our scripts")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    with atomic_path(path) as tmp_path:
        fig.savefig(tmp_path, dpi=110)
    plt.close(fig)


def write_ablations(
    runs_root: Path, out_dir: Path, random_scores: Optional[dict[str, float]] = None, command: str = ""
) -> dict[str, Path]:
    """Write the three files; returns their paths. `random_scores` ({env id: score}) overrides the random
    policy's measured scores. Raises SweepError when no sweep has a complete run."""
    if not Path(runs_root).is_dir():
        raise SweepError(f"no directory {runs_root}")
    cells, incomplete = load_cells(Path(runs_root))
    if not cells:
        raise SweepError(
            f"no complete run under {runs_root}/<env id>/<setting>/ (settings: {', '.join(s.name for s in SETTINGS)})"
        )
    random_scores = dict(random_scores or {})
    for env_id in dict.fromkeys(cell.env_id for cell in cells):
        if env_id not in random_scores:
            random_scores[env_id] = random_policy_score(env_id)
    best = normalize(cells, random_scores)
    means = averages(cells)
    paths = {
        "markdown": out_dir / "ablations.md",
        "csv": out_dir / "ablations.csv",
        "figure": out_dir / "ablations.png",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(paths["csv"], csv_rows(cells, means, random_scores, best))
    plot(paths["figure"], cells, means)
    write_text_atomic(
        paths["markdown"],
        ablations_markdown(command or "python -m benchmark.ablations", cells, means, random_scores, best, incomplete),
    )
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.ablations",
        description="The paper's Table 1 from the sweeps of benchmark/recipes/ablations.sh.",
    )
    parser.add_argument("--runs", type=Path, required=True, help="the sweeps' root: RUNS/<env id>/<setting>/")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    command = "python -m benchmark.ablations " + " ".join(
        shlex.quote(arg) for arg in (sys.argv[1:] if argv is None else argv)
    )
    try:
        paths = write_ablations(args.runs, args.out, command=command)
    except SweepError as error:
        print(f"benchmark.ablations: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {paths['markdown']}, {paths['csv']} and {paths['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
