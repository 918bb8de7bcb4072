"""Helpers for the benchmark tests: synthetic TensorBoard runs and sweep directories whose right answers are known,
and the scripts' own argument parsers."""

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmark.manifest import Manifest, RunSpec, SweepLayout, run_name, save_manifest
from benchmark.results import COMPLETE, FAILED, RunResult, write_result

REPO = Path(__file__).resolve().parent.parent


def write_scalars(run_dir: Path, scalars: dict[str, Sequence[tuple[int, float]]]) -> None:
    """Write {tag: [(step, value), ...]} as TensorBoard events, the way the scripts do (SummaryWriter)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()


def training_scalars(returns: Sequence[float], total_steps: int, iterations: int = 20) -> dict[str, list[tuple[int, float]]]:
    """Scalars like a script's: one return per episode spread evenly up to total_steps, and one point per
    iteration for SPS and each diagnostic (known values: SPS 1000 + 10 * iteration, so its median is known)."""
    episode_steps = np.linspace(total_steps / len(returns), total_steps, len(returns)).astype(int)
    iteration_steps = np.linspace(total_steps / iterations, total_steps, iterations).astype(int)
    scalars: dict[str, list[tuple[int, float]]] = {"charts/episodic_return": list(zip(episode_steps.tolist(), [float(r) for r in returns]))}
    scalars["charts/SPS"] = [(int(step), 1000.0 + 10 * i) for i, step in enumerate(iteration_steps)]
    for tag in ("losses/clipfrac", "losses/approx_kl", "losses/entropy", "losses/explained_variance", "charts/learning_rate", "losses/value_loss"):
        scalars[tag] = [(int(step), 1.0 / (i + 1)) for i, step in enumerate(iteration_steps)]
    return scalars


def fake_result(layout: SweepLayout, spec: RunSpec, status: str = COMPLETE, wall_time_s: float = 60.0, peak_rss_mb: Optional[float] = 300.0, reason: str = "") -> RunResult:
    result = RunResult(
        name=spec.name, status=status, exit_code=0 if status == COMPLETE else 1, reason=reason, attempt=1,
        command=["python", spec.script], started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
        wall_time_s=wall_time_s, peak_rss_mb=peak_rss_mb, log=f"logs/{spec.name}.log", log_tail="", run_dir=f"runs/{spec.name}", host="test",
    )  # fmt: skip
    write_result(layout, result)
    return result


def make_sweep(root: Path, runs: Sequence[tuple[str, str, int, Sequence[float], int]], failed: Sequence[tuple[str, str, int]] = (), extra_args: Sequence[str] = ()) -> SweepLayout:
    """A sweep directory with complete runs (script, env id, seed, returns, total steps), each with synthetic
    events and a result file, plus `failed` runs (script, env id, seed) that have a failed result only."""
    layout = SweepLayout(root)
    layout.make_dirs()
    manifest = Manifest(workdir=str(REPO), python="python", threads_per_run=1)
    for script, env_id, seed, returns, total_steps in runs:
        spec = RunSpec(run_name(script, env_id, seed), script, env_id, seed, tuple(extra_args))
        manifest.runs.append(spec)
        write_scalars(layout.run_dir(spec.name), training_scalars(returns, total_steps))
        fake_result(layout, spec, wall_time_s=60.0 * seed, peak_rss_mb=100.0 * seed)
    for script, env_id, seed in failed:
        spec = RunSpec(run_name(script, env_id, seed), script, env_id, seed, tuple(extra_args))
        manifest.runs.append(spec)
        fake_result(layout, spec, status=FAILED, peak_rss_mb=None, reason="exit code 2: ppo_discrete.py: error: synthetic failure")
    save_manifest(layout, manifest)
    return layout


@functools.cache
def script_args_class(program: str):
    """The Args dataclass of a top-level script, its module imported from the file (and registered: tyro reads
    the fields' docs from the source)."""
    name = f"benchmark_test_{Path(program).stem}"
    spec = importlib.util.spec_from_file_location(name, REPO / program)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Args


def parse_script_args(program: str, argv: Sequence[str]):
    """Parse `argv` with the script's own parser (tyro); fails the test if it is rejected."""
    import pytest
    import tyro

    try:
        return tyro.cli(script_args_class(program), args=list(argv))
    except SystemExit as error:
        pytest.fail(f"{program} rejected {list(argv)} (exit {error.code})")
