"""What a K-seed trial costs: one process of the seeds variant against K one-seed runs one after another.

    python -m benchmark.trial_cost --env-ids CartPole-v1 LunarLander-v3 HalfCheetah-v5 --seeds 1 2 3 4 \\
        --total-timesteps 50000 --repeats 2 --out benchmark/results/trial_cost

A tuner that scores a configuration on K seeds either runs the parent script K times in a row (as CleanRL's
tuner does with its num_seeds) or, as benchmark.tune does, runs the seeds variant once with the K seeds. Both get
one core (OMP_NUM_THREADS=1, --torch-threads 1). The rate is seed-steps per second of wall clock, start-up
included: what a trial costs. The two layouts alternate within each repeat, so a noisy machine affects them
alike. Writes trial_cost.csv and trial_cost.md (medians over the repeats, and their ratio).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmark.atomic import write_text_atomic
from benchmark.manifest import batched_script
from benchmark.sweep import positive_int
from benchmark.throughput import REPO, parent_script
from benchmark.tables import markdown_table, write_csv


def timed(commands: Sequence[list[str]], out_dir: Path) -> float:
    """Wall seconds to run `commands` one after another, each with one thread; fails loudly on a failed run."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    for command in commands:
        result = subprocess.run(command, cwd=out_dir, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def measure(env_id: str, seeds: Sequence[int], total: int, repeats: int) -> list[dict]:
    script = parent_script(env_id)
    common = ["--env-id", env_id, "--total-timesteps", str(total), "--torch-threads", "1", "--progress-interval", "1e9"]
    rows = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            one_after_another = [[sys.executable, str(REPO / script), *common, "--seed", str(seed), "--output-dir",
                                  str(out / "parent"), "--run-name", f"s{seed}"] for seed in seeds]  # fmt: skip
            one_process = [[sys.executable, str(REPO / batched_script(script)), *common, "--seeds", *map(str, seeds),
                            "--output-dir", str(out / "variant"), "--run-name", "s{seed}"]]  # fmt: skip
            layouts = [("K runs one after another", one_after_another), ("one seeds-variant process", one_process)]
            for layout, commands in layouts if repeat % 2 == 0 else layouts[::-1]:
                seconds = timed(commands, out)
                rows.append({"env_id": env_id, "script": script, "layout": layout, "seeds": len(seeds),
                             "total_timesteps": total, "repeat": repeat, "wall_s": round(seconds, 2),
                             "seed_steps_per_s": round(len(seeds) * total / seconds, 1)})  # fmt: skip
                print(f"{env_id}: {layout}, repeat {repeat}: {seconds:.1f} s", flush=True)
    return rows


def summary(rows: Sequence[dict]) -> str:
    """Median rate of each layout per env, their ratio, and the ratio within each repeat (the two layouts of a
    repeat ran back to back, under the same load)."""
    table = []
    for env_id in dict.fromkeys(row["env_id"] for row in rows):
        rates = {}
        for layout in ("K runs one after another", "one seeds-variant process"):
            values = [row["seed_steps_per_s"] for row in rows if row["env_id"] == env_id and row["layout"] == layout]
            rates[layout] = statistics.median(values)
        first = next(row for row in rows if row["env_id"] == env_id)
        sequential, batched = rates["K runs one after another"], rates["one seeds-variant process"]
        by_repeat: dict[int, dict[str, float]] = {}
        for row in rows:
            if row["env_id"] == env_id:
                by_repeat.setdefault(int(row["repeat"]), {})[row["layout"]] = float(row["seed_steps_per_s"])
        paired = [pair["one seeds-variant process"] / pair["K runs one after another"] for pair in by_repeat.values()]
        table.append([env_id, first["script"], str(first["seeds"]), f"{int(first['total_timesteps']):,}",
                      f"{sequential:,.0f}", f"{batched:,.0f}", f"{batched / sequential:.2f}x",
                      ", ".join(f"{ratio:.2f}x" for ratio in paired)])  # fmt: skip
    headers = ["env", "script", "K", "steps per seed", "K runs one after another (seed-steps/s)",
               "one seeds-variant process (seed-steps/s)", "ratio of medians", "ratio in each repeat"]  # fmt: skip
    return markdown_table(headers, table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.trial_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-ids", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--total-timesteps", type=positive_int, default=50_000, help="steps per seed")
    parser.add_argument("--repeats", type=positive_int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = [row for env_id in args.env_ids for row in measure(env_id, args.seeds, args.total_timesteps, args.repeats)]
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "trial_cost.csv", rows)
    command = "python -m benchmark.trial_cost " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"# Cost of a {len(args.seeds)}-seed trial\n\n`{command}`\n\n{summary(rows)}\n"
    write_text_atomic(args.out / "trial_cost.md", text)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
