"""The W&B sweep configs under benchmark/wandb/: the scripts accept their arguments in the form W&B's agent passes them.

The agent's command is built here with wandb's own create_sweep_command_args and the agent's macro
expansion (wandb_agent.Agent._command_run), so the argument form is the agent's, not a copy of it. Each
parameter value the config can produce is parsed by the script's own parser (tyro, in-process), and one
config is run for real with a tiny budget.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.benchmark_fixtures import REPO, parse_script_args, script_args_class

CONFIG_DIR = REPO / "benchmark" / "wandb"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
TINY = {"total_timesteps": 256, "num_envs": 2, "num_steps": 64}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def candidates(spec: dict) -> list:
    """The values a parameter can take: its value, its values, or the ends of its distribution."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    return [spec["min"], spec["max"]]


def agent_command(config: dict, values: dict, interpreter: str, program: str) -> list[str]:
    """The argument list W&B's agent runs for these parameter values ("interpreter" is "python" there)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    sweep_vars = create_sweep_command_args({"args": {name: {"value": value} for name, value in values.items()}})
    sweep_vars.update(env=["/usr/bin/env"], interpreter=[interpreter], program=[program])
    command = []
    for item in config["command"]:
        item = str(item)
        command += sweep_vars[item[2:-1]] if item.startswith("${") and item.endswith("}") else [item]
    return command


def script_of(config: dict) -> str:
    """The script the config runs; it must exist."""
    assert (REPO / config["program"]).is_file(), f"the config runs {config['program']}, which does not exist"
    return config["program"]


def test_there_are_configs():
    assert {path.name for path in CONFIGS} >= {"ppo_discrete_cartpole.yaml", "ppo_continuous_pendulum.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_config_shape(path):
    config = load(path)
    assert config["method"] in {"grid", "random", "bayes"}
    command = [str(item) for item in config["command"]]
    if config["program"].endswith("_seeds.py"):  # a seed group per agent run: one W&B run, the group's metric
        assert config["metric"] == {"name": "group/return_iqm", "goal": "maximize"}
        assert command == ["${env}", "${interpreter}", "${program}", "--seeds", "1", "2", "3", "4",
                           "${args_no_boolean_flags}"]  # fmt: skip
    else:
        assert config["metric"] == {"name": "charts/episodic_return", "goal": "maximize"}
        assert command == ["${env}", "${interpreter}", "${program}", "${args_no_boolean_flags}"]
    assert config["parameters"]["track"] == {"value": True}  # the run logs to the agent's W&B run


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_parameter_value_parses_as_intended(path):
    config = load(path)
    program = script_of(config)
    defaults = parse_script_args(program, [])
    parameters = config["parameters"]
    first = {name: candidates(spec)[0] for name, spec in parameters.items()}
    # every value of each parameter, the others at their first value
    assignments = [dict(first, **{name: value}) for name, spec in parameters.items() for value in candidates(spec)]
    for values in assignments:
        command = agent_command(config, values, sys.executable, program)
        assert command[:3] == ["/usr/bin/env", sys.executable, program]
        parsed = parse_script_args(program, command[3:])
        for name, value in values.items():
            if isinstance(value, bool):
                field = name[3:] if name.startswith("no_") else name
                intended = (not value) if name.startswith("no_") else value
                # ${args_no_boolean_flags} drops a false flag: the script's default then applies
                assert value or getattr(defaults, field) == intended, (
                    f"{name}: {value} cannot be passed; sweep no_{field} instead"
                )
                assert getattr(parsed, field) == intended, (name, value, command)
            else:
                assert (
                    getattr(parsed, name) == pytest.approx(value)
                    if isinstance(value, float)
                    else getattr(parsed, name) == value
                ), (name, value)


def test_agent_form_of_booleans_is_what_tyro_needs():
    """${args} would pass `--anneal_lr=True`, which tyro rejects; ${args_no_boolean_flags} passes `--anneal_lr`."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    forms = create_sweep_command_args(
        {"args": {"anneal_lr": {"value": True}, "no_norm_adv": {"value": False}, "learning_rate": {"value": 0.001}}}
    )
    assert forms["args"] == ["--anneal_lr=True", "--no_norm_adv=False", "--learning_rate=0.001"]
    assert forms["args_no_boolean_flags"] == ["--anneal_lr", "--learning_rate=0.001"]
    import tyro

    with pytest.raises(SystemExit):
        tyro.cli(script_args_class("ppo_discrete.py"), args=["--anneal_lr=True"])
    assert parse_script_args("ppo_discrete.py", forms["args_no_boolean_flags"]).learning_rate == pytest.approx(0.001)


@pytest.mark.slow
def test_agent_command_runs_ppo_discrete(tmp_path):
    """ppo_discrete_cartpole.yaml's command, tiny budget, flags that default to true switched off, W&B offline."""
    config = load(CONFIG_DIR / "ppo_discrete_cartpole.yaml")
    values = {name: candidates(spec)[0] for name, spec in config["parameters"].items()}
    values.update(TINY, no_anneal_lr=True, learning_rate=0.001)
    command = agent_command(config, values, sys.executable, str(REPO / config["program"]))
    assert (
        "--learning_rate=0.001" in command
        and "--num_envs=2" in command
        and "--no_anneal_lr" in command
        and "--track" in command
    )
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "done:" in completed.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    from tests.conftest import read_scalars

    scalars = read_scalars(run_dir)
    assert len(scalars["charts/episodic_return"]) > 0
    # --no_anneal_lr took effect
    assert [value for _, value in scalars["charts/learning_rate"]] == pytest.approx([0.001] * 2)
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*/*.wandb")  # --track started a W&B run
    assert b"charts/episodic_return" in offline_run.read_bytes()  # the sweep's metric reached it (sync_tensorboard)
