"""The result tables, as rows (for CSV) and as markdown: our numbers beside the published ones."""

import csv
import io
import math
from pathlib import Path
from typing import Optional, Sequence

from benchmark.aggregate import GroupSummary, IncompleteRun, RunSummary
from benchmark.atomic import write_text_atomic
from benchmark.published import PublishedResult, comparison_note, matching


def fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def mean_spread(mean: float, spread: Optional[float], digits: int = 2) -> str:
    return fmt(mean, digits) if spread is None else f"{fmt(mean, digits)} ± {fmt(spread, digits)}"


def args_label(extra_args: Sequence[str]) -> str:
    return " ".join(extra_args) if extra_args else "(script defaults)"


PUBLISHED_COLUMNS = (
    "published_source", "published_algorithm", "published_env_id", "published_steps", "published_mean",
    "published_spread", "published_spread_meaning", "published_env_versions", "published_reference", "comparison_note",
)  # fmt: skip


def comparison_rows(groups: Sequence[GroupSummary], published: Sequence[PublishedResult]) -> list[dict]:
    """One row per (our group, matching published result); a group without a match gets one row with
    empty published columns. Our statistics repeat on each of a group's rows, so every row stands alone."""
    rows = []
    for group in groups:
        ours = {
            "env_id": group.env_id,
            "script": group.script,
            "args": args_label(group.extra_args),
            "seeds": " ".join(str(seed) for seed in group.seeds),
            "num_seeds": group.num_seeds,
            "steps": group.total_steps,
            "return_mean": group.mean,
            "return_std": group.std,
            "iqm": group.iqm,
            "iqm_ci_low": group.iqm_low,
            "iqm_ci_high": group.iqm_high,
            "sps_median": group.sps_median,
            "wall_time_mean_s": group.wall_time_mean_s,
            "peak_rss_max_mb": group.peak_rss_max_mb,
        }
        matches = matching(published, group.env_id)
        if not matches:
            rows.append({**ours, **dict.fromkeys(PUBLISHED_COLUMNS, "")})
        for result in matches:
            rows.append({
                **ours,
                "published_source": result.source,
                "published_algorithm": result.algorithm,
                "published_env_id": result.env_id,
                "published_steps": result.total_timesteps,
                "published_mean": result.mean,
                "published_spread": "" if result.spread is None else result.spread,
                "published_spread_meaning": result.spread_meaning,
                "published_env_versions": result.env_versions,
                "published_reference": result.reference,
                "comparison_note": comparison_note(group.env_id, group.total_steps, result),
            })  # fmt: skip
    return rows


def run_rows(runs: Sequence[RunSummary], incomplete: Sequence[IncompleteRun]) -> list[dict]:
    rows = [
        {
            "sweep": run.sweep,
            "name": run.name,
            "script": run.script,
            "env_id": run.env_id,
            "seed": run.seed,
            "args": args_label(run.extra_args),
            "state": "complete",
            "final_return": run.final_return,
            "num_episodes": run.num_episodes,
            "steps": run.total_steps,
            "sps_median": run.sps_median,
            "sps_final": run.sps_final,
            "wall_time_s": run.wall_time_s,
            "peak_rss_mb": run.peak_rss_mb,
            "reason": "",
        }  # fmt: skip
        for run in runs
    ]
    for run in incomplete:
        row = dict.fromkeys(rows[0] if rows else (), "")
        row.update(
            sweep=run.sweep,
            name=run.name,
            script=run.script,
            env_id=run.env_id,
            seed=run.seed,
            state=run.state,
            reason=run.reason,
        )
        rows.append(row)
    return rows


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ours_markdown(groups: Sequence[GroupSummary]) -> str:
    headers = [
        "Env",
        "Script",
        "Arguments",
        "Seeds",
        "Steps",
        "Return (mean ± std)",
        "IQM [95% CI]",
        "SPS (median)",
        "Wall time (mean)",
        "Peak RSS (max)",
    ]
    rows = [
        [
            group.env_id,
            group.script,
            f"`{args_label(group.extra_args)}`",
            str(group.num_seeds),
            f"{group.total_steps:,}",
            mean_spread(group.mean, group.std),
            f"{fmt(group.iqm)} [{fmt(group.iqm_low)}, {fmt(group.iqm_high)}]",
            fmt(group.sps_median, 0),
            f"{fmt(group.wall_time_mean_s / 60 if group.wall_time_mean_s is not None else None, 1)} min",
            f"{fmt(group.peak_rss_max_mb, 0)} MB",
        ]  # fmt: skip
        for group in groups
    ]
    return markdown_table(headers, rows)


def comparison_markdown(rows: Sequence[dict]) -> str:
    headers = [
        "Env (ours)",
        "Script",
        "Ours: return (mean ± std over seeds)",
        "Published env",
        "Source",
        "Published",
        "Published steps",
        "Note",
    ]
    table_rows = [
        [
            row["env_id"],
            row["script"],
            f"{mean_spread(row['return_mean'], row['return_std'])} "
            f"({row['num_seeds']} seed{'s' if row['num_seeds'] != 1 else ''}, {row['steps']:,} steps)",
            row["published_env_id"],
            f"{row['published_source']} {row['published_algorithm']}",
            mean_spread(row["published_mean"], row["published_spread"] if row["published_spread"] != "" else None),
            f"{row['published_steps']:,}",
            row["comparison_note"],
        ]  # fmt: skip
        for row in rows
        if row["published_source"]
    ]
    return markdown_table(headers, table_rows)


def sources_markdown(published: Sequence[PublishedResult]) -> str:
    seen: dict[tuple[str, str, str], PublishedResult] = {}
    for result in published:
        seen.setdefault((result.source, result.algorithm, result.env_versions), result)
    headers = ["Source", "Implementation", "Env versions", "What ± means", "Reference", "Note"]
    return markdown_table(
        headers, [[r.source, r.algorithm, r.env_versions, r.spread_meaning, r.reference, r.note] for r in seen.values()]
    )


def runs_markdown(runs: Sequence[RunSummary], incomplete: Sequence[IncompleteRun]) -> str:
    headers = [
        "Run",
        "Seed",
        "Return (last 100 episodes)",
        "Episodes",
        "Steps",
        "SPS (median)",
        "Wall time",
        "Peak RSS",
    ]
    rows = [
        [
            run.name,
            str(run.seed),
            fmt(run.final_return),
            str(run.num_episodes),
            f"{run.total_steps:,}",
            fmt(run.sps_median, 0),
            f"{fmt(run.wall_time_s, 0)} s",
            f"{fmt(run.peak_rss_mb, 0)} MB",
        ]  # fmt: skip
        for run in runs
    ]
    text = markdown_table(headers, rows)
    if incomplete:
        text += "\n\nNot included (not complete):\n\n" + markdown_table(
            ["Run", "Sweep", "State", "Reason"], [[run.name, run.sweep, run.state, run.reason] for run in incomplete]
        )
    return text
