"""Summarize Pendulum-v1 runs from their TensorBoard events: the mean return of the last 100 episodes at a
given step, and the first step at which that mean reaches -400 and -250.

    python benchmark/evidence/pendulum/summarize.py benchmark/runs/pendulum_defaults_s1 ... \\
        [--at 400000] [--csv curves.csv]
"""

import argparse
import csv

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def episodes(run_dir: str) -> tuple:
    """(global steps, returns) of every finished episode, in order."""
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    events = accumulator.Scalars("charts/episodic_return")
    return np.array([event.step for event in events]), np.array([event.value for event in events])


def last100_curve(steps: np.ndarray, returns: np.ndarray, every: int = 2048) -> list:
    """[(step, mean of the last 100 episodes finished by then)] at every multiple of `every`, once 100 exist."""
    curve = []
    for step in range(
        every, int(steps[-1]) + every, every
    ):  # up to the first multiple of `every` past the last episode
        finished = returns[steps <= step]
        if len(finished) >= 100:
            curve.append((step, float(finished[-100:].mean())))
    return curve


def first_crossing(curve: list, threshold: float):
    return next((step for step, value in curve if value >= threshold), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument(
        "--at", type=int, default=None, help="report the last-100 return at this step (default: the end of each run)"
    )
    parser.add_argument("--csv", default=None, help="write every run's last-100 curve to this file")
    options = parser.parse_args()
    rows = []
    print(f"{'run':<40} {'steps':>9} {'last-100 at':>12} {'return':>8} {'-400 at':>9} {'-250 at':>9}")
    for run in options.runs:
        curve = last100_curve(*episodes(run))
        at = options.at if options.at is not None else curve[-1][0]
        # nan: the run stopped earlier
        value = (
            next((value for step, value in reversed(curve) if step <= at), float("nan"))
            if at <= curve[-1][0]
            else float("nan")
        )
        crossings = [first_crossing(curve, threshold) for threshold in (-400, -250)]
        print(
            f"{run.rstrip('/').split('/')[-1]:<40} {curve[-1][0]:>9,} {at:>12,} {value:>8.1f} "
            + " ".join(f"{c:>9,}" if c else f"{'never':>9}" for c in crossings)
        )
        rows += [(run.rstrip("/").split("/")[-1], step, round(v, 2)) for step, v in curve]
    if options.csv:
        with open(options.csv, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(("run", "global_step", "last100_return"))
            writer.writerows(rows)


if __name__ == "__main__":
    main()
