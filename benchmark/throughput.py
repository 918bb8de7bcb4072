"""Steps per second of a script beside a straightforward PPO and beside its env's own limit, side by side.

    python -m benchmark.throughput --preset cartpole --repeats 3 --out benchmark/results/throughput
    python -m benchmark.throughput --preset cartpole pendulum breakout --repeats 3   # each preset's own steps

For each preset (a script at its default settings on one env, with OMP_NUM_THREADS of its own) it runs,
interleaved so that a noisy machine affects them alike, `repeats` times each:
  - the project's script (SPS from its final done status line, timed from the first step),
  - benchmark/reference/naive_ppo.py at the same hyperparameters (the common way of writing PPO),
  - the script's own vector env (its make_env, SAME_STEP autoreset) stepped with random actions and no
    learning (the most the script can reach),
and reports the median SPS of each with the ratios; then one more run of the script under benchmark.phases
gives the shares of its training loop's time (env stepping, inference, storage and GAE, update, the rest),
the seconds outside the loop and the peak RSS. Only ratios measured in one sitting mean anything.

    python -m benchmark.throughput --seeds-scaling --env-ids Pendulum-v1 CartPole-v1 --num-seeds 1 2 4 8 \
        --repeats 3 --out DIR

With --seeds-scaling it measures instead the batched variants (ppo_*_seeds.py, N seeds in one process) against
their parent (ppo_continuous.py for Box actions, ppo_discrete.py for Discrete) as benchmark.sweep runs them
(local backend, a fresh sweep each time), in seed-steps per second, for each env id and number of seeds N:
  - parent: N single-seed runs, 2 workers, OMP_NUM_THREADS=1 and --torch-threads 1 each,
  - batched_1x2: one process with --seeds 1..N, 2 threads,
  - batched_2x1 (N >= 2): two processes of half the seeds each, 1 thread each, at once,
interleaved over the repeats. As for the presets, a rate counts training-loop time only (each process's done
status line; a side's processes packed on its workers in the order the sweep starts them), not start-up; the wall
clock with start-up is in the CSV. It writes seeds_scaling.csv, .md (medians and the better batched layout over
the parent), .png (seed-steps per second against N, an env a panel) and .json (every process of every repeat).
"""

import argparse
import importlib.util
import inspect
import io
import shlex
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

from benchmark import local
from benchmark.atomic import atomic_path, read_json, write_json_atomic, write_text_atomic
from benchmark.manifest import SweepLayout, batched_script, create_or_extend, expand_runs, load_manifest
from benchmark.phases import LOOP_PHASES
from benchmark.sweep import positive_int
from benchmark.tables import markdown_table, write_csv

REPO = Path(__file__).resolve().parent.parent


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


def done_status(output: str) -> dict:
    """A run's final `PPO_STATUS {"event": "done", ...}` line, as a dict."""
    from benchmark.run_one import status_events

    events = status_events(output, "done")
    if not events:
        raise RuntimeError(f"no done status line in the output:\n{output[-2000:]}")
    return events[-1]


def parse_sps(output: str) -> float:
    """A run's steps per second, from its done status line."""
    return float(done_status(output)["steps_per_second"])


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


# --- Seeds scaling: the batched variants (ppo_*_seeds.py) against their parent, as benchmark.sweep runs them ---

SCALING_WORKERS = 2  # processes at once on the parent side and the batched two-process one
SCALING_CHECKPOINT_EVERY = 10  # benchmark.sweep's default --checkpoint-every
SCALING_LAYOUTS = {  # name: (batched, processes the seeds are split into (0: one a seed), threads a process, workers)
    "parent": (False, 0, 1, SCALING_WORKERS),
    "batched_1x2": (True, 1, 2, 1),
    "batched_2x1": (True, 2, 1, SCALING_WORKERS),
}
SCALING_LABELS = {"parent": "parent", "batched_1x2": "batched 1x2-thread", "batched_2x1": "batched 2x1-thread"}


def parse_done(output: str) -> tuple[int, float]:
    """(each seed's steps, steps per second over all its seeds) from the done status line of a script or of its
    batched variant."""
    status = done_status(output)
    return int(status["global_step"]), float(status.get("seed_steps_per_second", status.get("steps_per_second")))


def parent_script(env_id: str) -> str:
    """The single-seed script for the env's action space: ppo_discrete.py (Discrete) or ppo_continuous.py (Box)."""
    env = gym.make(env_id)
    space = env.action_space
    env.close()
    if isinstance(space, gym.spaces.Discrete):
        return "ppo_discrete.py"
    if isinstance(space, gym.spaces.Box):
        return "ppo_continuous.py"
    raise ValueError(f"{env_id}: no script for an action space {space}")


def iteration_steps(script: str) -> int:
    """The environment steps of one iteration at the script's defaults: num_envs x num_steps."""
    defaults = load_script(script).Args()
    return defaults.num_envs * defaults.num_steps


def seed_groups(num_seeds: int, processes: int) -> list[list[int]]:
    """Seeds 1..num_seeds, one group a process: `processes` consecutive groups as even as can be (0: a seed each)."""
    seeds = list(range(1, num_seeds + 1))
    if processes == 0:
        return [[seed] for seed in seeds]
    bounds = [num_seeds * index // processes for index in range(processes + 1)]
    return [seeds[low:high] for low, high in zip(bounds, bounds[1:])]


def pool_seconds(durations: Sequence[float], workers: int) -> float:
    """How long `workers` at once take for jobs of these durations, each started in order on the first worker to
    be free (as benchmark.local starts them)."""
    free_at = [0.0] * max(1, min(workers, len(durations)))
    for duration in durations:
        free_at[free_at.index(min(free_at))] += duration
    return max(free_at)


def run_as_sweep(
    script: str, env_id: str, groups: Sequence[Sequence[int]], threads: int, workers: int, steps: int, root: Path
) -> dict:
    """Train the seed groups in a fresh sweep at `root` with benchmark.sweep's local backend: a job a group (the
    batched script's --seeds, or the parent's --seed), `threads` its OMP_NUM_THREADS and --torch-threads,
    `workers` jobs at once, `-- --total-timesteps steps`. Returns the threads and workers, the processes (command,
    seeds, steps a seed, loop seconds from the done status line, wall seconds, peak RSS) and the side's totals:
    seed-steps, wall seconds of the whole pool, loop seconds (pool_seconds of the processes' loop seconds); an error
    if a job did not complete."""
    layout = SweepLayout(root)
    indices = []
    for group in groups:  # one create_or_extend per group: a batched script's new seeds form a new job
        runs = expand_runs([script], [env_id], group, ["--total-timesteps", str(steps)])
        indices += create_or_extend(layout, runs, threads, REPO, checkpoint_every=SCALING_CHECKPOINT_EVERY)[1]
    manifest = load_manifest(layout)
    console = io.StringIO()
    start = time.perf_counter()
    results = {result.name: result for result in local.run_local(manifest, layout, indices, workers, out=console)}
    wall_s = time.perf_counter() - start
    processes = []
    for job in (manifest.jobs[index] for index in indices):
        result = results.get(job.name)
        if result is None or not result.complete:
            reason = f"{result.status}: {result.reason}\n{result.log_tail}" if result else console.getvalue()
            raise RuntimeError(f"{job.label} did not complete: {reason}")
        seed_steps, steps_per_s = parse_done((layout.root / result.log).read_text())
        processes.append({
            "command": result.command, "seeds": [run.seed for run in job.runs], "steps": seed_steps,
            "loop_s": len(job.runs) * seed_steps / steps_per_s, "wall_s": result.wall_time_s,
            "peak_rss_mb": result.peak_rss_mb,
        })  # fmt: skip
    return {
        "threads": manifest.threads_per_run,
        "workers": workers,
        "processes": processes,
        "seed_steps": sum(len(process["seeds"]) * process["steps"] for process in processes),
        "wall_s": wall_s,
        "loop_s": pool_seconds([process["loop_s"] for process in processes], workers),
    }


def measure_seeds(env_id: str, script: str, num_seeds: int, steps: int, repeats: int) -> dict[str, list[dict]]:
    """{layout: [run_as_sweep(...) of each repeat]} for SCALING_LAYOUTS (batched_2x1 from 2 seeds on), the
    layouts interleaved in each repeat."""
    layouts = {name: layout for name, layout in SCALING_LAYOUTS.items() if layout[1] <= num_seeds}  # 2x1: N >= 2
    samples: dict[str, list[dict]] = {name: [] for name in layouts}
    for repeat in range(repeats):
        for name, (batched, processes, threads, workers) in layouts.items():
            with tempfile.TemporaryDirectory(prefix="benchmark-seeds-scaling-") as tmp:
                samples[name].append(
                    run_as_sweep(
                        batched_script(script) if batched else script,
                        env_id,
                        seed_groups(num_seeds, processes),
                        threads,
                        workers,
                        steps,
                        Path(tmp),
                    )
                )
        print(
            f"{env_id} x {num_seeds} seeds, repeat {repeat + 1}/{repeats}: "
            + ", ".join(f"{name} {rate(values[-1]):,.0f}" for name, values in samples.items())
            + " seed-steps/s",
            flush=True,
        )
    return samples


def rate(sample: Mapping, clock: str = "loop") -> float:
    """Seed-steps per second of a run_as_sweep sample: over its loop seconds, or over its wall clock ("wall")."""
    return sample["seed_steps"] / sample[f"{clock}_s"]


def seeds_rows(measurements: Mapping[str, Mapping[int, Mapping[str, list[dict]]]], scripts: Mapping[str, str]) -> list:
    """The CSV rows: one per env id and number of seeds. measurements: {env id: {N: measure_seeds(...)}};
    scripts: {env id: parent script}. Rates are medians over the repeats; ratios, the better batched layout's
    median over the parent's."""
    rows = []
    for env_id, by_seeds in measurements.items():
        for num_seeds, samples in by_seeds.items():
            row = {
                "env_id": env_id,
                "script": scripts[env_id],
                "batched_script": batched_script(scripts[env_id]),
                "num_seeds": num_seeds,
                "steps_per_seed": samples["parent"][0]["processes"][0]["steps"],
                "repeats": len(samples["parent"]),
            }
            for clock in ("loop", "wall"):
                suffix = "" if clock == "loop" else "_wall"
                for name in SCALING_LAYOUTS:
                    values = [rate(sample, clock) for sample in samples.get(name, [])]
                    row[f"{name}{suffix}_rate"] = statistics.median(values) if values else ""
                    row[f"{name}{suffix}_rate_min"] = min(values) if values else ""
                    row[f"{name}{suffix}_rate_max"] = max(values) if values else ""
                best = max((name for name in SCALING_LAYOUTS if name != "parent" and name in samples),
                           key=lambda name: row[f"{name}{suffix}_rate"])  # fmt: skip
                row[f"best_layout{suffix}"] = best
                row[f"best_ratio{suffix}"] = row[f"{best}{suffix}_rate"] / row[f"parent{suffix}_rate"]
            for name in SCALING_LAYOUTS:
                peaks = [process["peak_rss_mb"] for sample in samples.get(name, []) for process in sample["processes"]]
                row[f"{name}_peak_rss_mb"] = max(peaks) if peaks else ""
            rows.append(row)
    return rows


def seeds_markdown(rows: Sequence[Mapping], command: str = "") -> str:
    """The table of seeds_rows with a few lines saying how it was measured."""
    env_ids = list(dict.fromkeys(row["env_id"] for row in rows))
    steps_text = per_preset_text({row["env_id"]: row["steps_per_seed"] for row in rows}, env_ids)
    lines = [f"`{command}`", ""] if command else []
    lines += [
        f"Seed-steps per second, median over {rows[0]['repeats'] if rows else 0} repeats (min-max), "
        f"{steps_text} steps a seed, the layouts interleaved. Each trains seeds 1..N as `benchmark.sweep` runs them "
        f"(local backend, a fresh sweep, --checkpoint-every {SCALING_CHECKPOINT_EVERY}): parent, N single-seed runs, "
        f"{SCALING_WORKERS} at a time, OMP_NUM_THREADS=1 and --torch-threads 1 each; batched 1x2-thread, one process "
        f"of the batched variant with --seeds 1..N and 2 threads; batched 2x1-thread, two processes of half the seeds, "
        "1 thread each, at once.",
        "Rates count training-loop time (each process's done status line, start-up excluded; a side's processes "
        "packed on its workers in the order the sweep starts them); the CSV has the wall clock with start-up too. "
        "Best ratio: the faster batched layout over the parent. Peak RSS: the batched one-process run's (max over "
        "repeats).",
        "",
    ]

    def cell(row: Mapping, name: str) -> str:
        if row[f"{name}_rate"] == "":
            return "-"
        return f"{row[f'{name}_rate']:,.0f} ({row[f'{name}_rate_min']:,.0f}-{row[f'{name}_rate_max']:,.0f})"

    headers = ["env", "N", "parent seed-steps/s", "batched 1x2-thread", "batched 2x1-thread", "best ratio",
               "peak RSS MB"]  # fmt: skip
    table_rows = [
        [
            row["env_id"],
            str(row["num_seeds"]),
            *(cell(row, name) for name in SCALING_LAYOUTS),
            f"{row['best_ratio']:.2f}x ({SCALING_LABELS[row['best_layout']].split()[1]})",
            f"{row['batched_1x2_peak_rss_mb']:,.0f}",
        ]
        for row in rows
    ]
    return "\n".join([*lines, markdown_table(headers, table_rows)]) + "\n"


def plot_seeds_scaling(rows: Sequence[Mapping], path: Path) -> Path:
    """Seed-steps per second against N (log2 axis), parent and batched layouts (median, bars min-max), an env a
    panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = list(dict.fromkeys(row["env_id"] for row in rows))
    fig, axes = plt.subplots(1, len(env_ids), figsize=(5 * len(env_ids), 4), squeeze=False)
    for ax, env_id in zip(axes.flat, env_ids):
        env_rows = [row for row in rows if row["env_id"] == env_id]
        for name, label in SCALING_LABELS.items():
            points = [row for row in env_rows if row[f"{name}_rate"] != ""]
            medians = [row[f"{name}_rate"] for row in points]
            low = [row[f"{name}_rate"] - row[f"{name}_rate_min"] for row in points]
            high = [row[f"{name}_rate_max"] - row[f"{name}_rate"] for row in points]
            ax.errorbar([row["num_seeds"] for row in points], medians, yerr=[low, high], marker="o", capsize=3,
                        label=label)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks([row["num_seeds"] for row in env_rows], [str(row["num_seeds"]) for row in env_rows])
        ax.set_ylim(bottom=0)
        ax.set_title(f"{env_id}: {env_rows[0]['script']} against {env_rows[0]['batched_script']}", fontsize="medium")
        ax.set_xlabel("seeds N")
        ax.set_ylabel("seed-steps per second (training loop)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp_path:
        fig.savefig(tmp_path, dpi=110)
    plt.close(fig)
    return path


def write_seeds_scaling(out: Path, rows: Sequence[Mapping], table: str, raw: Mapping) -> None:
    """seeds_scaling.csv, .md, .png and .json (every repeat's processes) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "seeds_scaling.csv", rows)
    write_text_atomic(out / "seeds_scaling.md", table)
    plot_seeds_scaling(rows, out / "seeds_scaling.png")
    write_json_atomic(out / "seeds_scaling.json", raw)


def main_seeds_scaling(args: argparse.Namespace, command: str) -> int:
    scripts = {env_id: parent_script(env_id) for env_id in args.env_ids}
    iterations = dict(
        zip(args.env_ids, args.iterations * len(args.env_ids) if len(args.iterations) == 1 else args.iterations)
    )
    steps = {env_id: args.steps or iterations[env_id] * iteration_steps(scripts[env_id]) for env_id in args.env_ids}
    measurements: dict[str, dict[int, dict]] = {}
    for env_id in args.env_ids:
        for num_seeds in sorted(set(args.num_seeds)):
            samples = measure_seeds(env_id, scripts[env_id], num_seeds, steps[env_id], args.repeats)
            measurements.setdefault(env_id, {})[num_seeds] = samples
            rows = seeds_rows(measurements, scripts)
            table = seeds_markdown(rows, command)
            if args.out is not None:  # after each N: a long sitting that stops keeps what it measured
                write_seeds_scaling(args.out, rows, table, {"command": command, "measurements": measurements})
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=None, help="default: cartpole")
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="environment steps per run (default: each preset's own, 100k; breakout 20,480; with --seeds-scaling, "
        "each seed's steps, default --iterations' worth)",
    )
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS for every run (default: each preset's own)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="directory for throughput.md (--seeds-scaling: seeds_scaling.*)"
    )
    scaling = parser.add_argument_group("seeds scaling: the batched variants against their parent, run by a sweep")
    scaling.add_argument(
        "--seeds-scaling", action="store_true",
        help="measure the seed-steps per second of ppo_*_seeds.py (one process of N seeds with 2 threads, and two of "
        "N/2 with 1) against N runs of its parent, 2 at a time, instead of the presets",
    )  # fmt: skip
    scaling.add_argument("--env-ids", nargs="+", default=["CartPole-v1"], help="default: CartPole-v1")
    scaling.add_argument(
        "--num-seeds", nargs="+", type=positive_int, default=[1, 2, 4, 8], help="values of N (default 1 2 4 8)"
    )
    scaling.add_argument(
        "--iterations", nargs="+", type=positive_int, default=[3],
        help="steps a seed as iterations of the parent's default num_envs x num_steps: one value, or one per env id "
        "(default 3)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.seeds_scaling:
        if args.preset is not None or args.threads is not None:
            parser.error("--seeds-scaling picks its scripts and threads itself: no --preset or --threads")
        if len(args.iterations) not in (1, len(args.env_ids)):
            parser.error(
                f"--iterations: one value, or one per env id ({len(args.env_ids)}), not {len(args.iterations)}"
            )
        command = shlex.join(["python", "-m", "benchmark.throughput", *(sys.argv[1:] if argv is None else argv)])
        return main_seeds_scaling(args, command)
    args.preset = args.preset or ["cartpole"]
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
