"""Figures (PNG, matplotlib's Agg backend): learning curves and training diagnostics, one figure per env.

Each line is one script (and argument set): the mean over seeds of the seeds' curves interpolated onto a
common step grid, with a band from the lowest to the highest seed at each step.
"""

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.atomic import atomic_path  # noqa: E402
from benchmark.aggregate import DIAGNOSTIC_TAGS, LAST_EPISODES, RunSummary, group_runs  # noqa: E402
from benchmark.curves import on_grid, smoothed  # noqa: E402
from benchmark.events import Series  # noqa: E402
from benchmark.manifest import safe_name  # noqa: E402
from benchmark.tables import args_label  # noqa: E402

GRID_POINTS = 200


def _label(script: str, extra_args: tuple[str, ...], with_args: bool, num_seeds: int) -> str:
    label = f"{script} ({num_seeds} seed{'s' if num_seeds != 1 else ''})"
    return f"{label} {args_label(extra_args)}" if with_args else label


def _draw_band(ax, series: Sequence[Series], label: str) -> bool:
    """Mean line and min-max band of `series` on a common grid; False when there is nothing to draw."""
    grid, values = on_grid(series, GRID_POINTS)
    if values.size == 0:
        return False
    (line,) = ax.plot(grid, values.mean(axis=0), label=label)
    ax.fill_between(grid, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2, linewidth=0)
    return True


def _env_groups(runs: Sequence[RunSummary]) -> dict[str, list[tuple[tuple[str, tuple[str, ...]], list[RunSummary]]]]:
    by_env: dict[str, list] = {}
    for (env_id, script, extra_args), group in group_runs(runs).items():
        by_env.setdefault(env_id, []).append(((script, extra_args), group))
    return by_env


def plot_learning_curves(runs: Sequence[RunSummary], out_dir: Path, window: int = LAST_EPISODES) -> list[Path]:
    """learning_curves_<env>.png per env: return (trailing mean over `window` episodes) against steps."""
    paths = []
    for env_id, groups in _env_groups(runs).items():
        with_args = len({extra_args for (_, extra_args), _ in groups}) > 1
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (script, extra_args), group in groups:
            _draw_band(
                ax, [smoothed(run.returns, window) for run in group], _label(script, extra_args, with_args, len(group))
            )
        ax.set_title(f"{env_id}: mean over seeds, band = min-max over seeds")
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"episodic return (mean of last {window} episodes)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize="small")
        path = out_dir / f"learning_curves_{safe_name(env_id)}.png"
        fig.tight_layout()
        with atomic_path(path) as tmp_path:
            fig.savefig(tmp_path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_diagnostics(runs: Sequence[RunSummary], out_dir: Path) -> list[Path]:
    """diagnostics_<env>.png per env: one panel per diagnostic tag against steps."""
    paths = []
    for env_id, groups in _env_groups(runs).items():
        with_args = len({extra_args for (_, extra_args), _ in groups}) > 1
        columns = 3
        rows = int(np.ceil(len(DIAGNOSTIC_TAGS) / columns))
        fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
        for ax, tag in zip(axes.flat, DIAGNOSTIC_TAGS):
            for (script, extra_args), group in groups:
                _draw_band(
                    ax,
                    [run.diagnostics[tag] for run in group if tag in run.diagnostics],
                    _label(script, extra_args, with_args, len(group)),
                )
            ax.set_title(tag, fontsize="medium")
            ax.set_xlabel("environment steps", fontsize="small")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(DIAGNOSTIC_TAGS) :]:
            ax.remove()
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize="small")
        fig.suptitle(f"{env_id}: training diagnostics (mean over seeds, band = min-max over seeds)")
        fig.tight_layout(rect=(0, 0.06, 1, 0.96))
        path = out_dir / f"diagnostics_{safe_name(env_id)}.png"
        with atomic_path(path) as tmp_path:
            fig.savefig(tmp_path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
