"""The recipes under benchmark/recipes/ are what will be run for the published tables: check, without running
them, that their sweep and report commands parse, name scripts and env ids that exist, pass arguments the
script accepts, and report the sweep they ran."""

import shlex
from pathlib import Path

import pytest

from benchmark import sweep
from tests.benchmark_fixtures import REPO, parse_script_args

RECIPES = sorted((REPO / "benchmark" / "recipes").glob("*.sh"))
EXPECTED = {
    "classic_control.sh": ("ppo_discrete.py", ["CartPole-v1", "Acrobot-v1"], [1, 2, 3], 500_000),
    "pendulum.sh": ("ppo_continuous.py", ["Pendulum-v1"], [1, 2, 3], 1_000_000),
    "mujoco.sh": ("ppo_continuous.py", ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "InvertedPendulum-v5", "Humanoid-v5", "Swimmer-v5", "Reacher-v5"], [1, 2], 1_000_000),
    "atari.sh": ("ppo_atari.py", ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"], [1, 2, 3], 10_000_000),
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
    assert {path.name for path in RECIPES} == set(EXPECTED)


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

    if not (REPO / script).is_file():
        pytest.skip(f"{script} is not written yet")
    parsed = parse_script_args(script, extra)
    assert parsed.total_timesteps == steps


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_recipe_env_ids_exist(path):
    import gymnasium as gym

    _, env_ids, _, _ = EXPECTED[path.name]
    if any("NoFrameskip" in env_id for env_id in env_ids):
        ale_py = pytest.importorskip("ale_py")
        gym.register_envs(ale_py)
    for env_id in env_ids:
        gym.spec(env_id)  # raises for an unknown id or version
