"""The recipes under benchmark/recipes/ are what will be run for the published tables: check, without running
them, that their sweep and report commands parse, name scripts and env ids that exist, pass arguments the
script accepts, and report the sweep they ran."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from benchmark import ablations, sweep
from tests.benchmark_fixtures import REPO, parse_script_args

ALL_RECIPES = sorted((REPO / "benchmark" / "recipes").glob("*.sh"))
# One sweep and one report each; ablations.sh, many sweeps in a loop, is run with a stand-in python below.
RECIPES = [path for path in ALL_RECIPES if path.name != "ablations.sh"]
EXPECTED = {
    "classic_control.sh": ("ppo_discrete.py", ["CartPole-v1", "Acrobot-v1"], [1, 2, 3], 500_000),
    "pendulum.sh": ("ppo_continuous.py", ["Pendulum-v1"], [1, 2, 3], 1_000_000),
    "mujoco_core.sh": ("ppo_continuous.py", ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"], [1, 2, 3], 1_000_000),
    "atari.sh": ("ppo_atari.py", ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"], [1, 2, 3], 10_000_000),
    "atari_1m.sh": ("ppo_atari.py", ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"], [1, 2], 1_000_000),
    # benchmark.sweep --batch-seeds: the parent script named, its ppo_*_seeds.py variant run
    "seeds_continuous.sh": (
        "ppo_continuous.py",
        ["Pendulum-v1", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"],
        list(range(1, 9)),
        1_000_000,
    ),
    "seeds_discrete.sh": ("ppo_discrete.py", ["CartPole-v1", "Acrobot-v1"], list(range(1, 9)), 500_000),
}


def commands(path: Path) -> dict[str, list[str]]:
    """The recipe's `python -m benchmark.X ...` commands by module, continuation lines joined, `"$@"` and
    `|| status=$?` dropped."""
    text = path.read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["python", "-m"]:
            words = words[: words.index("||")] if "||" in words else words
            found[words[2]] = [word for word in words[3:] if word != "$@"]
    return found


def test_every_recipe_is_checked():
    assert {path.name for path in ALL_RECIPES} == set(EXPECTED) | {"ablations.sh"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_recipe_commands(path):
    found = commands(path)
    assert set(found) == {"benchmark.sweep", "benchmark.report"}
    own, extra = sweep.split_extra(found["benchmark.sweep"])
    args = sweep.run_parser().parse_args(own)
    script, env_ids, seeds, steps = EXPECTED[path.name]
    assert (args.scripts, args.env_ids, args.seeds) == ([script], env_ids, seeds)
    assert extra == ["--total-timesteps", str(steps)]
    report_words = found["benchmark.report"]
    assert report_words[report_words.index("--runs") + 1] == str(args.out)  # it reports the sweep it ran

    assert (REPO / script).is_file(), f"{path.name} runs {script}, which does not exist"
    parsed = parse_script_args(script, extra)
    assert parsed.total_timesteps == steps


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_recipe_env_ids_exist(path):
    import ale_py  # a requirement: the Atari ids are registered by it
    import gymnasium as gym

    gym.register_envs(ale_py)
    _, env_ids, _, _ = EXPECTED[path.name]
    for env_id in env_ids:
        gym.spec(env_id)  # raises for an unknown id or version


# ---------------------------------------------------------------- ablations.sh

# Each setting of the paper's Table 1: what the script must parse its arguments into
ABLATION_SETTINGS = {
    "no-clip": ("none", 0.2, 0.01, 1.0),  # (policy_objective, clip_coef, kl_target, kl_beta)
    "clip-0.1": ("clip", 0.1, 0.01, 1.0),
    "clip-0.2": ("clip", 0.2, 0.01, 1.0),
    "clip-0.3": ("clip", 0.3, 0.01, 1.0),
    "kl-adaptive-0.003": ("kl-adaptive", 0.2, 0.003, 1.0),
    "kl-adaptive-0.01": ("kl-adaptive", 0.2, 0.01, 1.0),
    "kl-adaptive-0.03": ("kl-adaptive", 0.2, 0.03, 1.0),
    "kl-fixed-0.3": ("kl-fixed", 0.2, 0.01, 0.3),
    "kl-fixed-1": ("kl-fixed", 0.2, 0.01, 1.0),
    "kl-fixed-3": ("kl-fixed", 0.2, 0.01, 3.0),
    "kl-fixed-10": ("kl-fixed", 0.2, 0.01, 10.0),
}
ABLATION_ENVS = {"CartPole-v1": "ppo_discrete.py", "Acrobot-v1": "ppo_discrete.py", "Pendulum-v1": "ppo_continuous.py"}


def recorded_commands(tmp_path, *recipe_args: str, env=None) -> list[list[str]]:
    """Run ablations.sh with `python` replaced by a stand-in that records its arguments and does nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    (bin_dir / "python").write_text(
        f'#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done >> {shlex.quote(str(log))}\n'
        f'echo "@@END@@" >> {shlex.quote(str(log))}\n'
    )
    (bin_dir / "python").chmod(0o755)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("STEPS_", "SEEDS", "RUNS", "RESULTS"))
    }
    environment.update(env or {}, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(REPO / "benchmark" / "recipes" / "ablations.sh"), *recipe_args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [call.strip("\n").split("\n") for call in log.read_text().split("@@END@@\n") if call.strip()]


def test_ablations_recipe_sweeps_every_setting_of_table_1_on_every_env(tmp_path):
    calls = recorded_commands(tmp_path, "--workers", "2")
    sweeps, report = calls[:-1], calls[-1]
    assert all(call[:2] == ["-m", "benchmark.sweep"] for call in sweeps) and len(sweeps) == len(ABLATION_ENVS) * len(
        ABLATION_SETTINGS
    )
    assert report == [
        "-m",
        "benchmark.ablations",
        "--runs",
        "benchmark/runs/ablations",
        "--out",
        "benchmark/results/ablations",
    ]
    assert set(ABLATION_SETTINGS) == {
        setting.name for setting in ablations.SETTINGS
    }  # the report reads what the recipe writes
    seen = set()
    for call in sweeps:
        own, extra = sweep.split_extra(call[2:])
        args = sweep.run_parser().parse_args(own)
        assert args.seeds == [1, 2, 3] and args.workers == 2  # the recipe's own arguments reach every sweep
        (env_id,) = args.env_ids
        assert args.scripts == [ABLATION_ENVS[env_id]]
        root, out_env, setting = str(args.out).rsplit("/", 2)
        assert root == "benchmark/runs/ablations" and out_env == env_id  # one sweep directory per env and setting
        parsed = parse_script_args(ABLATION_ENVS[env_id], extra)
        assert (parsed.policy_objective, parsed.clip_coef, parsed.kl_target, parsed.kl_beta) == ABLATION_SETTINGS[
            setting
        ]
        assert parsed.total_timesteps == (1_000_000 if env_id == "Pendulum-v1" else 500_000)
        assert not parsed.adaptive_clip
        seen.add((env_id, setting))
    assert len(seen) == len(sweeps)


def test_ablations_recipe_budget_seeds_and_paths_are_variables(tmp_path):
    env = {"STEPS_DISCRETE": "2048", "STEPS_PENDULUM": "4096", "SEEDS": "1", "RUNS": "/tmp/r", "RESULTS": "/tmp/s"}
    calls = recorded_commands(tmp_path, env=env)
    for call in calls[:-1]:
        own, extra = sweep.split_extra(call[2:])
        args = sweep.run_parser().parse_args(own)
        assert args.seeds == [1] and str(args.out).startswith("/tmp/r/")
        assert extra[:2] == ["--total-timesteps", "4096" if args.env_ids == ["Pendulum-v1"] else "2048"]
    assert calls[-1] == ["-m", "benchmark.ablations", "--runs", "/tmp/r", "--out", "/tmp/s"]
