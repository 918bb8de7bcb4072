"""A study's report, and the validation of its best configuration on fresh seeds.

    python -m benchmark.tune report --study-dir DIR
    python -m benchmark.tune validate --study-dir DIR [--trial N] [--seeds 101 ... 108] [--total-timesteps T]

report.md (rewritten at the end of every search command) holds the top trials with each seed's return, the
parameter importances, the optimization history and a parallel-coordinate plot (PNG), and the exact command
line of the best configuration. Validation cannot flatter: it trains the chosen configuration and the script's
defaults on seeds the search never used (default 101-108) at the full budget, as two benchmark sweeps, and
writes validation.md with mean, std, IQM and its bootstrap CI (rliable) per env, each seed's return, and the
learning curves of both.
"""

import argparse
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from benchmark.aggregate import load_sweep, summarize_groups
from benchmark.atomic import atomic_path, read_json, write_text_atomic
from benchmark.space import to_cli
from benchmark.tables import fmt, markdown_table
from benchmark.tune import STATE_FILE, Study, TuneError, open_storage

TOP_TRIALS = 10
VALIDATION_SEEDS = list(range(101, 109))


def load_study(study_dir: Path, storage: Optional[str] = None) -> tuple[Study, optuna.Study]:
    state_path = study_dir / STATE_FILE
    if not state_path.exists():
        raise TuneError(f"{study_dir} holds no study ({STATE_FILE} is missing)")
    study = Study(**read_json(state_path))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna_study = optuna.load_study(study_name=study.study_name, storage=open_storage(storage or study.storage))
    return study, optuna_study


def best_command(study: Study, params: dict, seeds: Sequence[int], total: Optional[int] = None) -> tuple[str, str]:
    """The configuration as commands (at `total` steps, default the study's): the script for one seed, and its seeds
    variant for the group."""
    options = to_cli({**study.fixed, **params})
    total = total or study.total_timesteps
    budget = ["--total-timesteps", str(total)] if total else []
    env = ["--env-id", study.env_ids[0]]
    single = shlex.join(["python", study.script, *env, "--seed", str(seeds[0]), *budget, *options, *study.extra_args])
    group = shlex.join(["python", study.trial_script, *env, "--seeds", *map(str, seeds), *budget, *options,
                        *study.extra_args])  # fmt: skip
    return single, group


def param_text(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def seed_returns_text(trial: optuna.trial.FrozenTrial) -> str:
    returns = trial.user_attrs.get("returns", {})
    return "; ".join(f"{env}: {', '.join(f'{value:.1f}' for value in values)}" for env, values in returns.items())


def plot_study(optuna_study: optuna.Study, study_dir: Path) -> list[str]:
    """optimization_history.png and parallel_coordinate.png, through Optuna's matplotlib plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    if not any(t.state == TrialState.COMPLETE for t in optuna_study.get_trials(deepcopy=False)):
        return written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are experimental, and say so every time
        for name, plot in (("optimization_history", optuna_plots.plot_optimization_history),
                           ("parallel_coordinate", optuna_plots.plot_parallel_coordinate)):  # fmt: skip
            try:
                axes = plot(optuna_study)
            except (ValueError, RuntimeError):  # too few complete trials for this plot
                continue
            figure = np.ravel(axes)[0].figure if isinstance(axes, np.ndarray) else axes.figure
            figure.set_size_inches(9, 5)
            figure.tight_layout()
            with atomic_path(study_dir / f"{name}.png") as tmp_path:
                figure.savefig(tmp_path, dpi=100, format="png")
            plt.close(figure)
            written.append(f"{name}.png")
    return written


# PED-ANOVA compares the top 10% of the complete trials with all of them, and needs 2 trials in the top 10%
MIN_TRIALS_FOR_IMPORTANCES = 20


def importances(optuna_study: optuna.Study) -> tuple[dict[str, float], list[str]]:
    """Each parameter's importance over the complete trials, and the parameters that took one value in all of them.

    Those are left out: PED-ANOVA gives a parameter that never varied a nonzero weight, which would read as an effect.
    A study that starts from enqueued configurations holds several such parameters."""
    complete = [t for t in optuna_study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    names = sorted({name for trial in complete for name in trial.params})
    constant = [name for name in names if len({repr(trial.params.get(name)) for trial in complete}) == 1]
    varied = [name for name in names if name not in constant]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCES or not varied:
        return {}, constant
    try:
        return optuna.importance.get_param_importances(optuna_study, params=varied), constant
    except (ValueError, RuntimeError):  # every complete trial with the same value
        return {}, constant


def write_report(study_dir: Path, storage: Optional[str] = None) -> Path:
    study, optuna_study = load_study(study_dir, storage)
    trials = optuna_study.get_trials(deepcopy=False)
    by_state = {state: [t for t in trials if t.state == state] for state in TrialState}
    complete = sorted(by_state[TrialState.COMPLETE], key=lambda t: t.value, reverse=True)
    lines = [f"# Study {study.study_name}", ""]
    lines += [f"`{study.trial_script}` x {len(study.seeds)} seeds ({', '.join(map(str, study.seeds))}) per trial on "
              f"{', '.join(study.env_ids)}, {study.total_timesteps or 'the default'} steps per run; space "
              f"`{study.space}`; extra arguments `{shlex.join(study.extra_args)}`.", ""]  # fmt: skip
    lines += [f"Trials: {len(complete)} complete, {len(by_state[TrialState.PRUNED])} pruned, "
              f"{len(by_state[TrialState.FAIL])} failed, {len(by_state[TrialState.RUNNING])} running. Score: IQM over "
              "seeds of each seed's mean return over its last 100 episodes"
              + (" (normalized per env, then averaged)." if study.score_ranges else "."), ""]  # fmt: skip
    if complete:
        best = complete[0]
        single, group = best_command(study, best.params, study.seeds)
        mean, worst = best.user_attrs.get("mean", float("nan")), best.user_attrs.get("min", float("nan"))
        summary = f"Trial {best.number}: score {best.value:.4g}; mean {mean:.4g}, worst seed {worst:.4g}"
        lines += ["## Best configuration", "", f"{summary}; each seed: {seed_returns_text(best)}.", ""]
        lines += ["```bash", single, group, "```", ""]
        names = sorted({name for trial in complete for name in trial.params})
        rows = [[str(t.number), fmt(t.value, 4), fmt(t.user_attrs.get("mean"), 4), fmt(t.user_attrs.get("min"), 4)]
                + [param_text(t.params.get(name, "")) for name in names] + [seed_returns_text(t)]
                for t in complete[:TOP_TRIALS]]  # fmt: skip
        lines += [f"## Top {min(TOP_TRIALS, len(complete))} trials", ""]
        lines += [markdown_table(["trial", "score", "mean", "worst seed", *names, "each seed's return"], rows), ""]
    weights, constant = importances(optuna_study)
    if weights:
        lines += ["## Parameter importances (Optuna's default evaluator, PED-ANOVA)", ""]
        note = f"Over the {len(complete)} complete trials"
        if constant:
            note += f"; left out, as one value in all of them: {', '.join(constant)}"
        lines += [note + ".", ""]
        lines += [markdown_table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in weights.items()]), ""]
    elif 0 < len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
        lines += [f"Parameter importances: not computed from {len(complete)} complete trials (PED-ANOVA needs "
                  f"{MIN_TRIALS_FOR_IMPORTANCES}, so that its top 10% holds 2).", ""]  # fmt: skip
    for name in plot_study(optuna_study, study_dir):
        lines += [f"![{name}]({name})", ""]
    failed = by_state[TrialState.FAIL]
    if failed:
        lines += ["## Failed trials", ""]
        lines += [f"- trial {t.number}: {t.user_attrs.get('failure', 'no reason recorded')}" for t in failed[-10:]]
        lines.append("")
    path = study_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def main_report(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.tune report")
    parser.add_argument("--study-dir", type=Path, required=True)
    parser.add_argument("--storage", help="the study's storage, when not the one it was created with")
    args = parser.parse_args(argv)
    print(write_report(args.study_dir, args.storage))
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# Validation on fresh seeds
# ---------------------------------------------------------------------------------------------------------------------


def validation_sweep(study: Study, out: Path, seeds: Sequence[int], total: Optional[int], params: dict) -> list[str]:
    command = [sys.executable, "-m", "benchmark.sweep", "--script", study.script, "--env-ids", *study.env_ids,
               "--seeds", *map(str, seeds), "--out", str(out), "--workers", "1"]  # fmt: skip
    command += ["--batch-seeds"] if study.batched else []
    budget = ["--total-timesteps", str(total)] if total else []
    return [*command, "--", *budget, *to_cli(params), *study.extra_args]


def validation_table(defaults_dir: Path, tuned_dir: Path) -> tuple[str, dict]:
    runs = {}
    rows = []
    for label, sweep_dir in (("defaults", defaults_dir), ("tuned", tuned_dir)):
        complete, _ = load_sweep(sweep_dir)
        runs[label] = complete
        for group in summarize_groups(complete):
            returns = group.final_returns
            rows.append([group.env_id, label, str(group.num_seeds), f"{group.mean:,.2f}", f"{group.std:,.2f}",
                         f"{group.iqm:,.2f} [{group.iqm_low:,.2f}, {group.iqm_high:,.2f}]", f"{min(returns):,.2f}",
                         ", ".join(f"{value:,.1f}" for value in returns)])  # fmt: skip
    rows.sort(key=lambda row: (row[0], row[1]))
    headers = ["env", "config", "seeds", "mean", "std", "IQM [95% CI]", "worst seed", "each seed"]
    return markdown_table(headers, rows), runs


def plot_validation(runs: dict, out_dir: Path, trial_number: int) -> list[Path]:
    """learning_curves_<env>.png: the defaults and the tuned configuration, each the mean over its seeds of the
    trailing 100-episode mean return, with a band from the lowest to the highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.aggregate import LAST_EPISODES
    from benchmark.curves import on_grid, smoothed
    from benchmark.manifest import safe_name

    paths = []
    for env_id in sorted({run.env_id for group in runs.values() for run in group}):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for label, group in runs.items():
            group = [run for run in group if run.env_id == env_id]
            grid, values = on_grid([smoothed(run.returns, LAST_EPISODES) for run in group], 200)
            if values.size == 0:
                continue
            name = "defaults" if label == "defaults" else f"tuned (trial {trial_number})"
            (line,) = axes.plot(grid, values.mean(axis=0), label=f"{name}, {len(group)} seeds")
            axes.fill_between(grid, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
        axes.set_title(f"{env_id} on fresh seeds: mean over seeds, band = min-max")
        axes.set_xlabel("environment steps")
        axes.set_ylabel(f"episodic return (mean of last {LAST_EPISODES} episodes)")
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        path = out_dir / f"learning_curves_{safe_name(env_id)}.png"
        with atomic_path(path) as tmp_path:
            figure.savefig(tmp_path, dpi=120, format="png")
        plt.close(figure)
        paths.append(path)
    return paths


def main_validate(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.tune validate",
        description="Train the best configuration (or --trial N's) and the script's defaults on fresh seeds at the "
        "full budget, side by side, and write validation.md and learning curves.",
    )
    parser.add_argument("--study-dir", type=Path, required=True)
    parser.add_argument("--storage", help="the study's storage, when not the one it was created with")
    parser.add_argument("--trial", type=int, help="validate this trial's configuration (default: the best)")
    parser.add_argument("--seeds", nargs="+", type=int, default=VALIDATION_SEEDS, help="default 101-108")
    parser.add_argument("--total-timesteps", type=int, help="the full budget (default: the study's)")
    parser.add_argument("--out", type=Path, help="also copy validation.md and the curves here (e.g. for commit)")
    args = parser.parse_args(argv)
    study, optuna_study = load_study(args.study_dir, args.storage)
    if set(args.seeds) & set(study.seeds):
        raise TuneError(f"--seeds {sorted(set(args.seeds) & set(study.seeds))} were used by the search: not fresh")
    complete = [t for t in optuna_study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if args.trial is not None:
        chosen = [t for t in complete if t.number == args.trial]
        if not chosen:
            raise TuneError(f"trial {args.trial} is not a complete trial of this study")
        trial = chosen[0]
    elif complete:
        trial = max(complete, key=lambda t: t.value)
    else:
        raise TuneError("the study has no complete trial yet")
    total = args.total_timesteps or study.total_timesteps
    root = args.study_dir / "validation"
    dirs = {"defaults": root / "defaults", "tuned": root / f"trial-{trial.number}"}
    tuned = {**study.fixed, **trial.params}
    commands = {name: validation_sweep(study, out, args.seeds, total, tuned if name == "tuned" else {})
                for name, out in dirs.items()}  # fmt: skip
    processes = [subprocess.Popen(command) for command in commands.values()]  # the two side by side
    codes = [process.wait() for process in processes]
    if any(code != 0 for code in codes):
        print(f"benchmark.tune: a validation sweep did not finish (exit codes {codes}); run the same command again "
              "to resume it", file=sys.stderr)  # fmt: skip
        return 1
    table, runs = validation_table(dirs["defaults"], dirs["tuned"])
    figures = plot_validation(runs, root, trial.number)
    single, group = best_command(study, trial.params, args.seeds, total)
    text = [f"# Validation of trial {trial.number} of study {study.study_name}", "",
            f"The tuned configuration and `{study.script}`'s defaults, each on seeds {args.seeds[0]}-{args.seeds[-1]} "
            f"(never used by the search), {total or 'the default'} steps per run. Return: mean over a run's last 100 "
            "episodes; std over seeds (ddof=0); IQM with a 95% stratified bootstrap CI (rliable).", "",
            table, "", "Tuned configuration:", "", "```bash", single, "```", "",
            "The two sweeps behind this table:", "", "```bash",
            *[shlex.join(["python", *command[1:]]) for command in commands.values()], "```", ""]  # fmt: skip
    text += [f"![{figure.name}]({figure.name})" for figure in figures]
    write_text_atomic(root / "validation.md", "\n".join(text) + "\n")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "validation.md", "\n".join(text) + "\n")
        for figure in figures:
            (args.out / figure.name).write_bytes(figure.read_bytes())
    print(table)
    return 0
