"""Shared helpers: run a script as a user would (a subprocess) and read back its TensorBoard events."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, cwd=None, timeout: float = 600, extra_env=None) -> subprocess.CompletedProcess:
    """Run `python <script> <args>` from `cwd` with OMP_NUM_THREADS=1 (pass --torch-threads to fix the script's
    own thread count where its default is not 1: results repeat exactly only at a fixed count)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WANDB_MODE="offline", SDL_VIDEODRIVER="dummy", MUJOCO_GL="egl")
    env.update(extra_env or {})
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout)


def read_scalars(run_dir) -> dict:
    """{tag: [(step, value), ...]} from the TensorBoard event files in run_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
