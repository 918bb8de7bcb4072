"""Return curves: a trailing mean over episodes, and several seeds' curves on one common step grid."""

from typing import Sequence

import numpy as np

from benchmark.events import Series


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each position (fewer at the start): the curve's value at the
    final episode equals the table's last-`window`-episode mean."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def common_grid(series: Sequence[Series], num_points: int) -> np.ndarray:
    """Steps from the latest first step to the earliest last step over all series: every seed has data over
    the whole grid, so nothing is extrapolated."""
    start = max(float(s.steps[0]) for s in series)
    stop = min(float(s.steps[-1]) for s in series)
    if stop <= start:
        return np.array([stop])
    return np.linspace(start, stop, num_points)


def on_grid(series: Sequence[Series], num_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(grid, values of shape (num_series, len(grid))): each series linearly interpolated onto the common grid.
    Several values at one step (episodes ending together) are averaged first, so the interpolation is of a
    function of the step."""
    series = [s for s in series if len(s) > 0]
    if not series:
        return np.array([]), np.empty((0, 0))
    grid = common_grid(series, num_points)
    rows = []
    for s in series:
        steps, inverse = np.unique(s.steps, return_inverse=True)
        means = np.bincount(inverse, weights=s.values) / np.bincount(inverse)
        rows.append(np.interp(grid, steps, means))
    return grid, np.vstack(rows)


def smoothed(series: Series, window: int) -> Series:
    return Series(series.steps, trailing_mean(series.values, window), series.wall_times)
