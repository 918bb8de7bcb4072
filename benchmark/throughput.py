"""Steps per second of a script beside a straightforward PPO and beside its env's own limit, side by side.

    python -m benchmark.throughput --preset cartpole --repeats 3 --out benchmark/results/throughput
    python -m benchmark.throughput --preset cartpole pendulum breakout --repeats 3   # each preset's own steps

For each preset (a script at its default settings on one env, with OMP_NUM_THREADS of its own) it runs,
interleaved so that a noisy machine affects them alike, `repeats` times each:
  - the project's script (SPS from its final `done:` line, timed from the first step),
  - benchmark/reference/naive_ppo.py at the same hyperparameters (the common way of writing PPO),
  - the script's own vector env (its make_env, SAME_STEP autoreset) stepped with random actions and no
    learning (the most the script can reach),
and reports the median SPS of each with the ratios; then one more run of the script under benchmark.phases
gives the shares of its training loop's time (env stepping, inference, storage and GAE, update, the rest),
the seconds outside the loop and the peak RSS. Only ratios measured in one sitting mean anything.
"""

import argparse
import importlib.util
import inspect
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Mapping, Sequence

import gymnasium as gym

from benchmark.atomic import read_json, write_text_atomic
from benchmark.phases import LOOP_PHASES

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
    threads: int = 1  # OMP_NUM_THREADS of every run (the scripts' --torch-threads default matches it)
    steps: int = 100_000  # environment steps a run, unless --steps says otherwise


# naive_ppo.py at the continuous script's defaults (2048 steps, 32 minibatches, 10 epochs, no entropy bonus)
CONTINUOUS_REFERENCE = "--continuous --num-envs 1 --num-steps 2048 --num-minibatches 32 --update-epochs 10".split()
CONTINUOUS_REFERENCE += "--learning-rate 3e-4 --ent-coef 0".split()
ATARI_REFERENCE = "--atari --num-envs 8 --num-steps 128 --num-minibatches 4 --update-epochs 4".split()
ATARI_REFERENCE += "--learning-rate 2.5e-4 --clip-coef 0.1 --ent-coef 0.01".split()

PRESETS = {
    "cartpole": Preset("cartpole", "ppo_discrete.py", "CartPole-v1", 4, (), ()),
    "acrobot": Preset(
        "acrobot", "ppo_discrete.py", "Acrobot-v1", 4, ("--env-id", "Acrobot-v1"), ("--env-id", "Acrobot-v1")
    ),
    "pendulum": Preset(
        "pendulum", "ppo_continuous.py", "Pendulum-v1", 1, (), ("--env-id", "Pendulum-v1", *CONTINUOUS_REFERENCE)
    ),
    "halfcheetah": Preset(
        "halfcheetah",
        "ppo_continuous.py",
        "HalfCheetah-v5",
        1,
        ("--env-id", "HalfCheetah-v5"),
        ("--env-id", "HalfCheetah-v5", *CONTINUOUS_REFERENCE),
    ),  # fmt: skip
    "breakout": Preset(
        "breakout",
        "ppo_atari.py",
        "BreakoutNoFrameskip-v4",
        8,
        (),
        ("--env-id", "BreakoutNoFrameskip-v4", *ATARI_REFERENCE),
        threads=2,
        steps=20_480,  # 20 iterations: an Atari run of 100k steps takes several minutes
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


def run(command: Sequence[str], threads: int) -> str:
    """The stdout of a command run from the repository with OMP_NUM_THREADS=threads; an error if it fails."""
    env = {"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(Path.home())}
    result = subprocess.run(list(command), cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return result.stdout


def run_and_time(command: Sequence[str], threads: int) -> float:
    return parse_sps(run(command, threads))


def load_script(script: str) -> ModuleType:
    """The project's script as a module (under a private name, so its `__main__` block does not run)."""
    name = f"_throughput_{Path(script).stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def script_vector_env(preset: Preset) -> gym.vector.VectorEnv:
    """The vector env the preset's script trains on, built as its main() builds it: its make_env(env_id, idx,
    capture_video, video_dir, ...) with no video and its defaults (from Args) for any further parameter
    (ppo_atari.py: repeat_action_probability), with SAME_STEP autoreset, in an AsyncVectorEnv where the script
    steps its envs in worker processes by default (an async_envs default of True), a SyncVectorEnv otherwise."""
    module = load_script(preset.script)
    defaults = module.Args()
    extra = [getattr(defaults, name) for name in list(inspect.signature(module.make_env).parameters)[4:]]
    vector_env = gym.vector.AsyncVectorEnv if getattr(defaults, "async_envs", False) else gym.vector.SyncVectorEnv
    return vector_env(
        [module.make_env(preset.env_id, i, False, "", *extra) for i in range(preset.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def env_only_sps(preset: Preset, steps: int, seed: int = 0) -> float:
    """SPS of the script's own vector env (script_vector_env) with random actions."""
    envs = script_vector_env(preset)
    num_envs = envs.num_envs
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


def timed_run_args(preset: Preset, steps: int) -> list[str]:
    """The script's arguments for one timed run: the preset's, the step budget, a fresh run directory, no progress
    lines."""
    return [*preset.script_args, "--total-timesteps", str(steps), "--output-dir", "/tmp/benchmark-throughput",
            "--run-name", f"{preset.name}-{time.time_ns()}", "--progress-interval", "1e9"]  # fmt: skip


def measure(preset: Preset, steps: int, repeats: int, threads: int | None = None) -> dict[str, list[float]]:
    """{"ours", "reference", "env_only": [SPS of each repeat]}; threads: OMP_NUM_THREADS (default: the preset's)."""
    threads = preset.threads if threads is None else threads
    python = sys.executable
    samples: dict[str, list[float]] = {"ours": [], "reference": [], "env_only": []}
    for repeat in range(repeats):
        samples["ours"].append(
            run_and_time([python, str(REPO / preset.script), *timed_run_args(preset, steps)], threads)
        )
        samples["reference"].append(
            run_and_time(
                [
                    python,
                    "-m",
                    "benchmark.reference.naive_ppo",
                    *preset.reference_args,
                    "--total-timesteps",
                    str(steps),
                ],
                threads,
            )
        )
        samples["env_only"].append(env_only_sps(preset, steps))
        print(
            f"{preset.name} repeat {repeat + 1}/{repeats}: "
            + ", ".join(f"{key} {values[-1]:,.0f}" for key, values in samples.items()),
            flush=True,
        )
    return samples


def measure_phases(preset: Preset, steps: int, threads: int | None = None) -> dict:
    """One run of the script under benchmark.phases: its JSON summary (shares, setup_s, peak_rss_mb, ...)."""
    threads = preset.threads if threads is None else threads
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "phases.json"
        run(
            [
                sys.executable,
                "-m",
                "benchmark.phases",
                "--out",
                str(out),
                "--",
                str(REPO / preset.script),
                *timed_run_args(preset, steps),
            ],
            threads,
        )
        return read_json(out)


PHASE_HEADERS = {phase: "storage+GAE" if phase == "storage+gae" else phase for phase in LOOP_PHASES}


def phase_cells(phases: Mapping | None) -> list[str]:
    """The loop shares in percent, the setup seconds and the peak RSS; dashes where no profiled run was made."""
    if phases is None:
        return ["-"] * (len(LOOP_PHASES) + 2)
    return [f"{100 * phases['shares'][phase]:.0f}%" for phase in LOOP_PHASES] + [
        f"{phases['setup_s']:.1f}",
        f"{phases['peak_rss_mb']:,.0f}",
    ]


def per_preset_text(values: int | Mapping[str, int], names: Sequence[str]) -> str:
    """ "5" for one value shared by all presets, else "5 (cartpole), 7 (breakout)"."""
    if not isinstance(values, int) and len(set(values.values())) == 1:
        values = next(iter(values.values()))
    return f"{values:,}" if isinstance(values, int) else ", ".join(f"{values[name]:,} ({name})" for name in names)


def throughput_markdown(
    rows: dict[str, dict[str, list[float]]],
    steps: int | Mapping[str, int],
    threads: int | Mapping[str, int],
    phases: Mapping[str, Mapping] | None = None,
) -> str:
    """rows: {preset: measure(...)}; steps and threads: one value for all, or {preset: its own};
    phases: {preset: measure_phases(...)}."""
    steps_text, threads_text = per_preset_text(steps, list(rows)), per_preset_text(threads, list(rows))
    phases = phases or {}
    lines = [
        f"Steps per second, median over repeats (min-max), {steps_text} steps a run, "
        f"OMP_NUM_THREADS={threads_text}, runs interleaved.",
        "Shares of ours' training-loop time, seconds outside the loop (imports, setup, finish) and peak RSS: "
        "one more run of ours",
        "under benchmark.phases (a 1 ms timer-signal line sampler in the process; "
        "that run's SPS is not the one reported).",
        "",
        "| preset | ours SPS | straightforward | env only | ours / straightforward | ours / env only | "
        + " | ".join(PHASE_HEADERS.values()) + " | setup s | peak RSS MB |",
        "|---" * (8 + len(LOOP_PHASES)) + "|",
    ]  # fmt: skip
    for name, samples in rows.items():
        median = {key: statistics.median(values) for key, values in samples.items()}
        cells = [
            f"{median[key]:,.0f} ({min(samples[key]):,.0f}-{max(samples[key]):,.0f})"
            for key in ("ours", "reference", "env_only")
        ]
        cells += [
            f"{median['ours'] / median['reference']:.2f}x",
            f"{median['ours'] / median['env_only']:.2f}",
            *phase_cells(phases.get(name)),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=["cartpole"])
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="environment steps per run (default: each preset's own, 100k; breakout 20,480)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS for every run (default: each preset's own)"
    )
    parser.add_argument("--out", type=Path, default=None, help="directory for throughput.md")
    args = parser.parse_args(argv)
    threads = {name: PRESETS[name].threads if args.threads is None else args.threads for name in args.preset}
    steps = {name: PRESETS[name].steps if args.steps is None else args.steps for name in args.preset}
    rows, phases = {}, {}
    for name in args.preset:
        rows[name] = measure(PRESETS[name], steps[name], args.repeats, threads[name])
        phases[name] = measure_phases(PRESETS[name], steps[name], threads[name])
    table = throughput_markdown(rows, steps, threads, phases)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "throughput.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
