"""Bad input, as a new user types it: one line on stderr naming the option, exit code 2, no traceback, and nothing
written (no run directory, no events file), in every script."""

import os
import subprocess
import sys

import pytest

import ppo_discrete
from tests.conftest import REPO, assert_usage_error, run_script, script_env

SCRIPTS = ["ppo_discrete.py", "ppo_continuous.py", "ppo_atari.py", "ppo_discrete_seeds.py", "ppo_continuous_seeds.py"]
# (arguments, what the one line must say): non-finite and out-of-range numbers, a seed numpy refuses, a path as a name
BAD_INPUT = [
    (("--learning-rate", "nan"), "--learning-rate must be a finite number, got nan"),
    (("--learning-rate", "inf"), "--learning-rate must be a finite number, got inf"),
    (("--max-grad-norm", "nan"), "--max-grad-norm must be a finite number, got nan"),
    (("--ent-coef", "inf"), "--ent-coef must be a finite number, got inf"),
    (("--max-grad-norm", "0"), "--max-grad-norm must be positive"),
    (("--seed", "-1"), "--seed must be in [0, 2**31 - 1], got -1"),
    (("--seed", str(2**32)), "--seed must be in [0, 2**31 - 1]"),
    (("--exp-name", "a/b"), "--exp-name 'a/b' must be a name, not a path"),
    (("--run-name", "../elsewhere"), "--run-name '../elsewhere' must be a name, not a path"),
]


def for_script(script: str, args: tuple, message: str) -> tuple:
    """The row as it reads for `script`: the seeds variants take --seeds, and a --run-name with {seed} in it."""
    if not script.endswith("_seeds.py"):
        return args, message
    if args[0] == "--run-name":
        return ("--run-name", "../{seed}"), "--run-name '../{seed}' must be a name, not a path"
    return tuple("--seeds" if arg == "--seed" else arg for arg in args), message.replace("--seed ", "--seeds ")


def assert_nothing_written(directory) -> None:
    assert not os.path.exists(directory / "runs"), os.listdir(directory / "runs")
    assert not os.path.exists(directory / "videos")


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(args) for args, _ in BAD_INPUT])
def test_bad_numbers_and_names_are_one_line_exit_2_and_nothing_written(script, args, message, tmp_path):
    args, message = for_script(script, args, message)
    result = run_script(script, *args, "--total-timesteps", "4096", cwd=tmp_path)
    assert_usage_error(result, script, message)
    assert "Traceback" not in result.stderr
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("script", SCRIPTS)
def test_track_without_a_wandb_login_says_how_to_log_in(script, tmp_path):
    """No W&B credentials (a fresh HOME, no WANDB_API_KEY) and no WANDB_MODE: the run is refused before anything is
    made, with the two ways out, instead of wandb's prompt or traceback after the run directory exists."""
    env = {key: value for key, value in script_env({"HOME": str(tmp_path)}).items() if not key.startswith("WANDB_")}
    result = subprocess.run(
        [sys.executable, str(REPO / script), "--track"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_usage_error(result, script, "--track needs a W&B login: run `wandb login`, or set WANDB_MODE=offline")
    assert_nothing_written(tmp_path)


def test_a_failed_start_removes_the_run_directory_it_made(tmp_path, monkeypatch):
    """A run that fails while it sets up its tracking (here W&B raising) leaves no empty run directory behind."""

    class FailingWandb:
        @staticmethod
        def init(**kwargs):
            raise ConnectionError("no route to the W&B server\nsecond line")

    monkeypatch.setitem(sys.modules, "wandb", FailingWandb)
    args = ppo_discrete.Args(track=True, output_dir=str(tmp_path / "runs"), run_name="failed")
    with pytest.raises(
        ppo_discrete.RunError, match="cannot start tracking: ConnectionError: no route to the W&B server$"
    ):
        ppo_discrete.start_tracking(args, str(tmp_path / "runs" / "failed"), None)
    assert not (tmp_path / "runs" / "failed").exists()


def test_errors_are_described_by_their_first_line():
    assert ppo_discrete.describe(OSError("disk full\nmore detail")) == "OSError: disk full"
    assert ppo_discrete.describe(ValueError()) == "ValueError: "  # an empty message is not an IndexError
