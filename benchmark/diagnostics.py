"""Percentiles of PPO's training diagnostics over iterations, read from TensorBoard event files.

Each scalar a script logs once per iteration (approx KL, clip fraction, explained variance, ...) is pooled over
the runs of a group and summarized by percentiles: the range a healthy run keeps to, for docs/diagnostics.md.

    python -m benchmark.diagnostics classic=benchmark/runs/classic_control mujoco=benchmark/runs/mujoco_core \\
        atari=benchmark/runs/atari_1m atari=benchmark/runs/atari_1m_pong --halves

A positional argument is `LABEL=DIR` or `DIR` (labelled by its name); every run directory (one holding
events.out.tfevents* files) under DIR joins the group, and arguments with the same label pool into one group.
"""

import argparse
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from benchmark.events import load_scalars
from benchmark.tables import markdown_table

TAGS = (
    "losses/approx_kl",
    "losses/old_approx_kl",
    "losses/exact_kl",
    "losses/clipfrac",
    "losses/explained_variance",
    "losses/entropy",
    "losses/grad_norm",
)
PERCENTILES = (5.0, 50.0, 95.0)
PARTS = ("all", "early", "late")


def find_runs(root: Path) -> list[Path]:
    """The run directories at or under `root`: those holding a TensorBoard event file, sorted."""
    return sorted({path.parent for path in root.rglob("events.out.tfevents*")})


def split(values: np.ndarray, part: str) -> np.ndarray:
    """One run's values in iteration order: all of them, or its first ("early") or second ("late") half; the
    middle value of an odd count goes to the late half."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    half = len(values) // 2
    return {"all": values, "early": values[:half], "late": values[half:]}[part]


def pooled_values(run_dirs: Iterable[Path], tags: Sequence[str] = TAGS, part: str = "all") -> dict[str, np.ndarray]:
    """{tag: the values of `part` of every run, concatenated} for the tags that at least one run logged."""
    pooled: dict[str, list[np.ndarray]] = {}
    for run_dir in run_dirs:
        for tag, series in load_scalars(run_dir, tags).items():
            pooled.setdefault(tag, []).append(split(series.values, part))
    return {tag: np.concatenate(pooled[tag]) for tag in tags if tag in pooled}


def percentiles(values: np.ndarray, qs: Sequence[float] = PERCENTILES) -> list[float]:
    """The `qs` percentiles of the finite values (numpy's linear interpolation); NaN where there are none (the
    explained variance of a batch whose return targets are all equal is NaN)."""
    finite = values[np.isfinite(values)]
    return [float("nan")] * len(qs) if finite.size == 0 else [float(q) for q in np.percentile(finite, qs)]


def parse_groups(specs: Sequence[str]) -> dict[str, list[Path]]:
    """{label: run directories} from `LABEL=DIR` or `DIR` arguments, in the order the labels first appear."""
    groups: dict[str, list[Path]] = {}
    for spec in specs:
        label, _, directory = spec.rpartition("=")
        root = Path(directory)
        groups.setdefault(label or root.name, []).extend(find_runs(root))
    return groups


def diagnostics_markdown(
    groups: dict[str, list[Path]], tags: Sequence[str], qs: Sequence[float], parts: Sequence[str]
) -> str:
    """One row per group, tag and part: the number of runs and of values (iterations), then the percentiles."""
    headers = ["group", "tag", "part", "runs", "values"] + [f"p{q:g}" for q in qs]
    rows = []
    for label, run_dirs in groups.items():
        for part in parts:
            for tag, values in pooled_values(run_dirs, tags, part).items():
                cells = [label, f"`{tag}`", part, str(len(run_dirs)), str(values.size)]
                rows.append(cells + [f"{p:.3g}" for p in percentiles(values, qs)])
    return markdown_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", metavar="[LABEL=]DIR", help="runs to pool; the same LABEL pools DIRs")
    parser.add_argument("--tags", nargs="+", default=list(TAGS), help="scalar tags (default: the diagnostics)")
    parser.add_argument("--percentiles", nargs="+", type=float, default=list(PERCENTILES), metavar="Q")
    parser.add_argument("--halves", action="store_true", help="also each run's early and late half of iterations")
    args = parser.parse_args(argv)
    groups = parse_groups(args.groups)
    empty = [label for label, run_dirs in groups.items() if not run_dirs]
    if empty:
        parser.error(f"no TensorBoard event files under the directories of {', '.join(empty)}")
    print(diagnostics_markdown(groups, args.tags, args.percentiles, PARTS if args.halves else ("all",)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
