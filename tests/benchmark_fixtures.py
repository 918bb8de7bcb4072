"""Helpers for the benchmark tests: synthetic TensorBoard runs and sweep directories whose right answers are known,
and the scripts' own argument parsers."""

import functools
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmark.manifest import Manifest, RunSpec, SweepLayout, run_name, save_manifest
from benchmark.run_result import COMPLETE, FAILED, RunResult, write_result

REPO = Path(__file__).resolve().parent.parent
# the scripts log these once an iteration
PER_ITERATION_TAGS = ("charts/SPS", "charts/learning_rate", "losses/value_loss")


def write_scalars(run_dir: Path, scalars: dict[str, Sequence[tuple[int, float]]]) -> None:
    """Write {tag: [(step, value), ...]} as TensorBoard events, the way the scripts do (SummaryWriter)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()


def training_scalars(
    returns: Sequence[float], total_steps: int, iterations: int = 20
) -> dict[str, list[tuple[int, float]]]:
    """Scalars like a script's: one return per episode spread evenly up to total_steps, and one point per
    iteration for SPS and each diagnostic (known values: SPS 1000 + 10 * iteration, so its median is known)."""
    episode_steps = np.linspace(total_steps / len(returns), total_steps, len(returns)).astype(int)
    iteration_steps = np.linspace(total_steps / iterations, total_steps, iterations).astype(int)
    scalars: dict[str, list[tuple[int, float]]] = {
        "charts/episodic_return": list(zip(episode_steps.tolist(), [float(r) for r in returns]))
    }
    scalars["charts/SPS"] = [(int(step), 1000.0 + 10 * i) for i, step in enumerate(iteration_steps)]
    for tag in (
        "losses/clipfrac",
        "losses/approx_kl",
        "losses/entropy",
        "losses/explained_variance",
        "charts/learning_rate",
        "losses/value_loss",
    ):
        scalars[tag] = [(int(step), 1.0 / (i + 1)) for i, step in enumerate(iteration_steps)]
    return scalars


def fake_result(
    layout: SweepLayout,
    spec: RunSpec,
    status: str = COMPLETE,
    wall_time_s: float = 60.0,
    peak_rss_mb: Optional[float] = 300.0,
    reason: str = "",
) -> RunResult:
    result = RunResult(
        name=spec.name, status=status, exit_code=0 if status == COMPLETE else 1, reason=reason, attempt=1,
        command=["python", spec.script], started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:00+00:00", wall_time_s=wall_time_s, peak_rss_mb=peak_rss_mb,
        log=f"logs/{spec.name}.log", log_tail="", run_dir=f"runs/{spec.name}", host="test",
    )  # fmt: skip
    write_result(layout, result)
    return result


def make_sweep(
    root: Path,
    runs: Sequence[tuple[str, str, int, Sequence[float], int]],
    failed: Sequence[tuple[str, str, int]] = (),
    extra_args: Sequence[str] = (),
) -> SweepLayout:
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
        fake_result(
            layout,
            spec,
            status=FAILED,
            peak_rss_mb=None,
            reason="exit code 2: ppo_discrete.py: error: synthetic failure",
        )
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


def wait_for(predicate, what: str, timeout: float = 300, process: Optional[subprocess.Popen] = None):
    """Poll `predicate` until it returns something true (returned); fail the test on timeout or when `process` exits."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            said = process.stderr.read() if process.stderr is not None else ""  # why, where it was kept
            said = said.decode(errors="replace") if isinstance(said, bytes) else said
            pytest.fail(f"process exited ({process.returncode}) while waiting for {what}\n{said[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def checkpoint_mtime(layout: SweepLayout, name: str) -> int:
    """The run's checkpoint.pt's modification time in ns, 0 when it has none."""
    path = layout.run_dir(name) / "checkpoint.pt"
    return path.stat().st_mtime_ns if path.exists() else 0


def attempt_outputs(layout: SweepLayout, name: str) -> list[str]:
    """The run's log split into its attempts' sections."""
    return layout.log(name).read_text().split("===== attempt ")[1:]


def raw_steps(run_dir: Path, tag: str) -> list[list[int]]:
    """The steps of `tag` in each event file of the run, in file order, as written (EventAccumulator would
    drop steps that a later file purges; this does not)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    files = [list(LegacyEventFileLoader(str(path)).Load()) for path in run_dir.glob("events.out.tfevents.*")]
    files.sort(key=lambda events: events[0].wall_time)  # the order the attempts wrote them in
    return [[event.step for event in events for value in event.summary.value if value.tag == tag] for events in files]


def assert_scalars_continue(run_dir: Path, iterations: int, batch: int, stops: list[int]) -> None:
    """TensorBoard shows one point per iteration for the per-iteration tags, every step once, to the total;
    with `stops` (graceful stops at those iterations), the event files written by the attempts join exactly."""
    from tests.conftest import read_scalars

    scalars = read_scalars(run_dir)
    expected = [batch * iteration for iteration in range(1, iterations + 1)]
    for tag in PER_ITERATION_TAGS:
        assert [step for step, _ in scalars[tag]] == expected, tag
    assert max(step for points in scalars.values() for step, _ in points) == iterations * batch
    if stops:  # a graceful stop writes nothing after its checkpoint: the files hold disjoint, adjacent steps
        files = raw_steps(run_dir, "charts/SPS")
        assert [steps[-1] for steps in files[:-1]] == [batch * stop for stop in stops]
        assert sum(files, []) == expected


# CartPoles that sleep in every step, so that a run lasts long enough for a test to signal it mid-way however
# fast the machine: SlowCartPole-v0 sleeps SLOW_STEP_S a step, TickingCartPole-v0 TICKING_STEP_S. Written into a
# directory that goes on the scripts' PYTHONPATH; env ids "benchmark_slow_env:SlowCartPole-v0" and so on.
SLOW_ENV_MODULE, SLOW_STEP_S, TICKING_STEP_S = "benchmark_slow_env", 0.05, 0.001
SLOW_ENV_SOURCE = f"""import time

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class SlowCartPole(CartPoleEnv):
    def __init__(self, step_s={SLOW_STEP_S}, **kwargs):
        super().__init__(**kwargs)
        self.step_s = step_s

    def step(self, action):
        time.sleep(self.step_s)
        return super().step(action)


gym.register("SlowCartPole-v0", entry_point=SlowCartPole, max_episode_steps=500)
gym.register(
    "TickingCartPole-v0", entry_point=SlowCartPole, max_episode_steps=500, kwargs={{"step_s": {TICKING_STEP_S}}}
)
"""


def write_slow_envs(root: Path) -> Path:
    """Write the slow-env module into `root` (put `root` on PYTHONPATH); returns `root`."""
    (root / f"{SLOW_ENV_MODULE}.py").write_text(SLOW_ENV_SOURCE)
    return root
