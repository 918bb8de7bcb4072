"""Published reference numbers (benchmark/published.csv) and matching them to our env ids.

Our env ids and the published ones often differ only in version (HalfCheetah-v5 here, HalfCheetah-v4 in
CleanRL's table, HalfCheetah-v2 in Baselines'), or in the Atari naming (ALE/Breakout-v5 against
BreakoutNoFrameskip-v4). Matching is by base name; every match whose env id differs says so.
"""

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"


@dataclass(frozen=True)
class PublishedResult:
    source: str  # e.g. CleanRL, OpenAI Baselines
    algorithm: str  # the implementation, e.g. ppo.py, ppo2
    env_id: str  # as published
    total_timesteps: int
    mean: float
    spread: Optional[float]  # the "±" figure, None when the source gives one number
    spread_meaning: str
    env_versions: str
    reference: str
    note: str


def load_published(path: Path = PUBLISHED_CSV) -> list[PublishedResult]:
    with open(path, newline="", encoding="utf-8") as csv_file:
        return [
            PublishedResult(
                source=row["source"],
                algorithm=row["algorithm"],
                env_id=row["env_id"],
                total_timesteps=int(row["total_timesteps"]),
                mean=float(row["mean"]),
                spread=float(row["spread"]) if row["spread"] else None,
                spread_meaning=row["spread_meaning"],
                env_versions=row["env_versions"],
                reference=row["reference"],
                note=row["note"],
            )
            for row in csv.DictReader(csv_file)
        ]


def base_env_name(env_id: str) -> str:
    """The env's name without module prefix, namespace, version or Atari frame-skip suffix:
    "HalfCheetah-v5" -> "HalfCheetah", "ALE/Breakout-v5" and "BreakoutNoFrameskip-v4" -> "Breakout"."""
    name = env_id.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    name = re.sub(r"-v\d+$", "", name)
    return re.sub(r"NoFrameskip$", "", name)


def matching(published: Sequence[PublishedResult], env_id: str) -> list[PublishedResult]:
    base = base_env_name(env_id)
    return [result for result in published if base_env_name(result.env_id) == base]


def comparison_note(ours_env_id: str, ours_steps: int, result: PublishedResult) -> str:
    """What differs between our run and the published one, in words ("" when nothing does)."""
    notes = []
    if ours_env_id != result.env_id:
        notes.append(f"env differs: ours {ours_env_id}, published {result.env_id}")
    # PPO stops at a whole number of batches (500,000 steps in batches of 512 log 499,712): within 1% is the same budget
    if abs(ours_steps - result.total_timesteps) > 0.01 * result.total_timesteps:
        notes.append(f"steps differ: ours {ours_steps:,}, published {result.total_timesteps:,}")
    return "; ".join(notes)
