"""Steps per second of a script beside a straightforward PPO and beside its env's own limit, side by side.

    python -m benchmark.throughput --preset cartpole --repeats 3 --out benchmark/results/throughput

For each preset (a script at its default settings on one env) it runs, interleaved so that a noisy
machine affects them alike, `repeats` times each:
  - the project's script (SPS from its final `done:` line, timed from the first step),
  - benchmark/reference/naive_ppo.py at the same hyperparameters (the common way of writing PPO),
  - the same vector env stepped with random actions and no learning (the most any script can reach),
and reports the median SPS of each with the ratios. Only ratios measured in one sitting mean anything.
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from benchmark.atomic import write_text_atomic

REPO = Path(__file__).resolve().parent.parent
SPS_PATTERN = re.compile(r"\(([\d,]+) SPS\)")


@dataclass(frozen=True)
class Preset:
    name: str
    script: str
    env_id: str
    num_envs: int
    script_args: tuple[str, ...]  # extra arguments to the project's script (none: its defaults)
    reference_args: tuple[str, ...]  # naive_ppo.py arguments giving the same hyperparameters


PRESETS = {
    "cartpole": Preset("cartpole", "ppo_discrete.py", "CartPole-v1", 4, (), ()),
    "acrobot": Preset("acrobot", "ppo_discrete.py", "Acrobot-v1", 4, ("--env-id", "Acrobot-v1"), ("--env-id", "Acrobot-v1")),
    "pendulum": Preset(
        "pendulum", "ppo_continuous.py", "Pendulum-v1", 1, (),
        ("--env-id", "Pendulum-v1", "--continuous", "--num-envs", "1", "--num-steps", "2048", "--num-minibatches", "32",
         "--update-epochs", "10", "--learning-rate", "3e-4", "--ent-coef", "0"),
    ),  # fmt: skip
    "halfcheetah": Preset(
        "halfcheetah", "ppo_continuous.py", "HalfCheetah-v5", 1, ("--env-id", "HalfCheetah-v5"),
        ("--env-id", "HalfCheetah-v5", "--continuous", "--num-envs", "1", "--num-steps", "2048", "--num-minibatches", "32",
         "--update-epochs", "10", "--learning-rate", "3e-4", "--ent-coef", "0"),
    ),  # fmt: skip
}


def parse_sps(output: str) -> float:
    """The SPS figure of a run's final `done:` line."""
    done_lines = [line for line in output.splitlines() if line.startswith("done:")]
    if not done_lines:
        raise RuntimeError(f"no 'done:' line in the output:\n{output[-2000:]}")
    match = SPS_PATTERN.search(done_lines[-1])
    if match is None:
        raise RuntimeError(f"no SPS figure in {done_lines[-1]!r}")
    return float(match.group(1).replace(",", ""))


def run_and_time(command: Sequence[str], threads: int) -> float:
    env = {"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(Path.home())}
    result = subprocess.run(list(command), cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return parse_sps(result.stdout)


def env_only_sps(env_id: str, num_envs: int, steps: int, seed: int = 0) -> float:
    """SPS of a SyncVectorEnv (SAME_STEP autoreset, episode statistics, as in the scripts) with random actions."""
    import gymnasium as gym
    import numpy as np

    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(env_id)) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    actions = [envs.action_space.sample() for _ in range(256)]  # sampled up front: not part of the env's cost
    iterations = steps // num_envs
    start = time.perf_counter()
    for step in range(iterations):
        envs.step(actions[step % len(actions)])
    elapsed = time.perf_counter() - start
    envs.close()
    return iterations * num_envs / elapsed


def measure(preset: Preset, steps: int, repeats: int, threads: int) -> dict[str, list[float]]:
    python = sys.executable
    ours_command = [python, str(REPO / preset.script), *preset.script_args, "--total-timesteps", str(steps),
                    "--output-dir", "/tmp/benchmark-throughput", "--run-name", "", "--progress-interval", "1e9"]  # fmt: skip
    samples: dict[str, list[float]] = {"ours": [], "reference": [], "env_only": []}
    for repeat in range(repeats):
        ours_command[ours_command.index("--run-name") + 1] = f"{preset.name}-{time.time_ns()}"
        samples["ours"].append(run_and_time(ours_command, threads))
        samples["reference"].append(run_and_time([python, "-m", "benchmark.reference.naive_ppo", *preset.reference_args, "--total-timesteps", str(steps)], threads))
        samples["env_only"].append(env_only_sps(preset.env_id, preset.num_envs, steps))
        print(f"{preset.name} repeat {repeat + 1}/{repeats}: " + ", ".join(f"{key} {values[-1]:,.0f}" for key, values in samples.items()), flush=True)
    return samples


def markdown_table(rows: dict[str, dict[str, list[float]]], steps: int, threads: int) -> str:
    lines = [
        f"Steps per second, median over repeats (min-max), {steps:,} steps a run, OMP_NUM_THREADS={threads}, runs interleaved.",
        "",
        "| preset | ours | straightforward PPO | env only (random actions) | ours / straightforward | ours / env only |",
        "|---|---|---|---|---|---|",
    ]
    for name, samples in rows.items():
        median = {key: statistics.median(values) for key, values in samples.items()}
        cells = [f"{median[key]:,.0f} ({min(samples[key]):,.0f}-{max(samples[key]):,.0f})" for key in ("ours", "reference", "env_only")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {median['ours'] / median['reference']:.2f}x | {median['ours'] / median['env_only']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=["cartpole"])
    parser.add_argument("--steps", type=int, default=100_000, help="environment steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for every run")
    parser.add_argument("--out", type=Path, default=None, help="directory for throughput.md")
    args = parser.parse_args(argv)
    rows = {name: measure(PRESETS[name], args.steps, args.repeats, args.threads) for name in args.preset}
    table = markdown_table(rows, args.steps, args.threads)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "throughput.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
