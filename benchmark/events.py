"""Reading scalars from a run's TensorBoard event files."""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np


@dataclass
class Series:
    """One scalar tag: values against global_step, in the order they were written."""

    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


def load_scalars(run_dir: Path, tags: Optional[Iterable[str]] = None) -> dict[str, Series]:
    """{tag: Series} for every scalar tag in `run_dir` (or only `tags`, those present). All events are kept:
    EventAccumulator's default keeps a reservoir sample of 10,000 per tag, which would thin long runs."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
    accumulator.Reload()
    available = accumulator.Tags()["scalars"]
    wanted = available if tags is None else [tag for tag in tags if tag in available]
    scalars = {}
    for tag in wanted:
        events = accumulator.Scalars(tag)
        scalars[tag] = Series(
            steps=np.array([event.step for event in events], dtype=np.int64),
            values=np.array([event.value for event in events], dtype=np.float64),
            wall_times=np.array([event.wall_time for event in events], dtype=np.float64),
        )
    return scalars
