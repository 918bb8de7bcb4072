"""Write the benchmark report of one or more sweeps: tables beside the published numbers, and figures.

    python -m benchmark.report --runs benchmark/runs/classic_control [more sweeps] \\
        --out benchmark/results/classic_control

Writes into --out: results.md (everything, figures linked), results.csv (our numbers beside each matching
published result, one row per pair), runs.csv (one row per run), learning_curves_<env>.png and
diagnostics_<env>.png. Only complete runs count; the others are listed with why.
"""

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from benchmark import plots, tables
from benchmark.aggregate import (
    BOOTSTRAP_REPS,
    LAST_EPISODES,
    GroupSummary,
    IncompleteRun,
    RunSummary,
    load_sweep,
    summarize_groups,
)
from benchmark.atomic import write_text_atomic
from benchmark.manifest import SweepError
from benchmark.published import PUBLISHED_CSV, PublishedResult, load_published


def report_markdown(
    command: str,
    groups: Sequence[GroupSummary],
    runs: Sequence[RunSummary],
    incomplete: Sequence[IncompleteRun],
    comparison: Sequence[dict],
    published: Sequence[PublishedResult],
    figures: Sequence[Path],
    reps: int,
) -> str:
    matched = [row for row in comparison if row["published_source"]]
    used_sources = [
        result
        for result in published
        if any(row["published_env_id"] == result.env_id and row["published_source"] == result.source for row in matched)
    ]
    parts = [
        "# Benchmark results",
        f"Written by `{command}`.",
        "## Our results",
        f"Return: each run's mean episodic return over its last {LAST_EPISODES} training episodes "
        "(`charts/episodic_return`). "
        "Mean ± std: over seeds (numpy std, ddof=0, the convention of CleanRL's tables). "
        f"IQM: interquartile mean over seeds with a 95% stratified bootstrap confidence interval "
        f"(rliable `get_interval_estimates` with `aggregate_iqm`, {reps} resamples); "
        "with fewer than 4 seeds the IQM trims nothing and equals the mean. "
        "SPS: median over seeds of each run's median `charts/SPS`. Wall time: the run's process, start to exit. "
        "Peak RSS: the largest peak resident memory of a run's process.",
        tables.ours_markdown(groups),
        "## Compared with published results",
        "Matched by env base name; the note says when the env version or the step budget differs. "
        "The sources and what their ± means are listed below the table.",
        tables.comparison_markdown(comparison) if matched else "No published result matches these envs.",
    ]
    if used_sources:
        parts += ["### Sources", tables.sources_markdown(used_sources)]
    parts += ["## Figures"]
    parts += [f"![{figure.stem}]({figure.name})" for figure in figures]
    parts += ["## Runs", tables.runs_markdown(runs, incomplete)]
    return "\n\n".join(parts) + "\n"


def write_report(
    sweep_dirs: Sequence[Path],
    out_dir: Path,
    published_path: Path = PUBLISHED_CSV,
    reps: int = BOOTSTRAP_REPS,
    command: str = "",
) -> dict[str, Path]:
    """Write the report; returns {"markdown", "csv", "runs_csv"} paths. Raises SweepError when no sweep
    has a complete run."""
    runs: list[RunSummary] = []
    incomplete: list[IncompleteRun] = []
    for sweep_dir in sweep_dirs:
        complete, not_complete = load_sweep(Path(sweep_dir))
        runs += complete
        incomplete += not_complete
    if not runs:
        raise SweepError(f"no complete run in {', '.join(str(d) for d in sweep_dirs)}")
    try:
        groups = summarize_groups(runs, reps)
    except ValueError as error:
        raise SweepError(str(error)) from None
    published = load_published(published_path)
    comparison = tables.comparison_rows(groups, published)

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plots.plot_learning_curves(runs, out_dir) + plots.plot_diagnostics(runs, out_dir)
    paths = {"markdown": out_dir / "results.md", "csv": out_dir / "results.csv", "runs_csv": out_dir / "runs.csv"}
    tables.write_csv(paths["csv"], comparison)
    tables.write_csv(paths["runs_csv"], tables.run_rows(runs, incomplete))
    markdown = report_markdown(
        command or "python -m benchmark.report", groups, runs, incomplete, comparison, published, figures, reps
    )
    write_text_atomic(paths["markdown"], markdown)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.report", description="Tables and figures of one or more sweeps."
    )
    parser.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="sweep directories (made by benchmark.sweep)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--published", type=Path, default=PUBLISHED_CSV, help="published results CSV")
    parser.add_argument(
        "--bootstrap-reps",
        type=int,
        default=BOOTSTRAP_REPS,
        help="bootstrap resamples for the IQM confidence intervals",
    )
    args = parser.parse_args(argv)
    command = "python -m benchmark.report " + " ".join(
        shlex.quote(arg) for arg in (sys.argv[1:] if argv is None else argv)
    )
    try:
        paths = write_report(args.runs, args.out, args.published, args.bootstrap_reps, command)
    except SweepError as error:
        print(f"benchmark.report: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {paths['markdown']}, {paths['csv']}, {paths['runs_csv']} and figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
