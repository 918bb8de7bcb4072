"""A hyperparameter search space in the language of W&B sweep files, checked against a script's options.

One YAML file drives both an Optuna study (`python -m benchmark.tune`) and a W&B sweep (`wandb sweep FILE`): its
`parameters` block names `Args` fields of the script, each with one of

    value: X                                   fixed
    values: [A, B, ...]                        a choice
    distribution: uniform, min, max            a float
    distribution: log_uniform_values, min, max a float, uniform in log space
    distribution: int_uniform, min, max        an integer
    distribution: q_uniform, min, max, q       a multiple of q (integers when min, max and q are)
    min, max without a distribution            int_uniform when both are integers, else uniform (as W&B infers)

The options that say where and how a run happens rather than what it learns (env id, seeds, budget, output and
tracking) may appear as fixed values, for the W&B agent's command line; the tuner takes the env id, seeds and
budget from them unless its own command line gives them, and sets the rest itself.
"""

import dataclasses
import importlib.util
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
import yaml

DISTRIBUTIONS = ("uniform", "log_uniform_values", "int_uniform", "q_uniform")
# Options a trial's command line gets from the tuner, not from the space (env_id, seeds and total_timesteps may be
# fixed in the file as the tuner's defaults; the others are ignored there: the W&B agent needs some of them).
RUN_OPTIONS = ("env_id", "seed", "seeds", "total_timesteps", "track", "wandb_project_name", "wandb_entity",
               "output_dir", "run_name", "exp_name", "torch_threads", "progress_interval", "cuda")  # fmt: skip
NOT_SEARCHABLE = ("resume", "eval_checkpoint", "eval_episodes", "eval_deterministic", "checkpoint_every",
                  "save_model", "capture_video")  # fmt: skip


class SpaceError(Exception):
    """A space that cannot be searched: reported as one line, exit code 2, before any trial starts."""


@dataclass
class Space:
    """What a YAML file holds: the searched options as Optuna distributions, the fixed options, and the tuner's
    defaults taken from the file (env ids, seeds, budget)."""

    distributions: dict[str, optuna.distributions.BaseDistribution]
    fixed: dict[str, Any]
    run_defaults: dict[str, Any]
    program: Optional[str]
    path: Path
    script_defaults: dict[str, Any]  # every option's default in the script


@dataclass
class ScriptOptions:
    """A script's `Args` fields with their types and defaults, and its own argument check."""

    fields: dict[str, dataclasses.Field]
    types: dict[str, Any]
    args_class: type
    check_args: Any  # check_args(args): raises the script's UsageError on a bad combination
    check_env: Any  # check_env(env_id): raises UsageError for an unknown env id or the wrong action space
    usage_error: type


def load_script_options(script: Path) -> ScriptOptions:
    """Import `script` as a module (its `__main__` block does not run) and read its Args and check_args."""
    spec = importlib.util.spec_from_file_location(f"_tuned_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hints = typing.get_type_hints(module.Args)
    fields = {field.name: field for field in dataclasses.fields(module.Args)}
    return ScriptOptions(fields, hints, module.Args, module.check_args, module.check_env, module.UsageError)


def distribution_of(name: str, spec: Any) -> Any:
    """The Optuna distribution of one parameter spec, or ("fixed", value) for `value:`."""
    if not isinstance(spec, dict):
        raise SpaceError(f"parameter {name}: expected a mapping (value, values or a distribution), got {spec!r}")
    if "value" in spec:
        return ("fixed", spec["value"])
    if "values" in spec and "distribution" not in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise SpaceError(f"parameter {name}: values must be a non-empty list, got {values!r}")
        return optuna.distributions.CategoricalDistribution(values)
    if "min" not in spec or "max" not in spec:
        raise SpaceError(f"parameter {name}: give value, values, or min and max")
    low, high = spec["min"], spec["max"]
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise SpaceError(f"parameter {name}: min and max must be finite numbers, got {low!r} and {high!r}")
    if low > high:
        raise SpaceError(f"parameter {name}: min {low} is greater than max {high}")
    both_int = isinstance(low, int) and isinstance(high, int)
    kind = spec.get("distribution") or ("int_uniform" if both_int else "uniform")
    if kind not in DISTRIBUTIONS:
        raise SpaceError(f"parameter {name}: distribution {kind!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if kind == "uniform":
        return optuna.distributions.FloatDistribution(low, high)
    if kind == "log_uniform_values":
        if low <= 0:
            raise SpaceError(f"parameter {name}: log_uniform_values needs min > 0, got {low}")
        return optuna.distributions.FloatDistribution(low, high, log=True)
    if kind == "int_uniform":
        if not both_int:
            raise SpaceError(f"parameter {name}: int_uniform needs integer min and max, got {low!r} and {high!r}")
        return optuna.distributions.IntDistribution(low, high)
    q = spec.get("q", 1)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not q > 0:
        raise SpaceError(f"parameter {name}: q must be a positive number, got {q!r}")
    if both_int and isinstance(q, int):
        return optuna.distributions.IntDistribution(low, high, step=q)
    return optuna.distributions.FloatDistribution(low, high, step=q)


def candidate_values(distribution: optuna.distributions.BaseDistribution) -> list:
    """The values whose validity decides a distribution's: every choice, or both bounds of a range."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def type_error(value: Any, annotation: Any) -> Optional[str]:
    """Why `value` cannot be given to an option of this type (None when it can)."""
    origin, members = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        reasons = [type_error(value, member) for member in members]
        return None if any(reason is None for reason in reasons) else reasons[0]
    if annotation is type(None):
        return None if value is None else "expected null"
    if origin is typing.Literal:
        return None if value in members else f"expected one of {', '.join(map(str, members))}"
    if annotation is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if annotation is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected an integer"
    if annotation is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "expected a number"
    if annotation is str:
        return None if isinstance(value, str) else "expected a string"
    return None


def permissive_company(name: str, value: Any, options: ScriptOptions) -> dict:
    """The other options set so that only `name = value` can make the script's check fail: the batch, budget and
    objective relations are satisfied whatever the value (a minibatch count is judged with a batch it divides)."""
    company = {field: spec.default for field, spec in options.fields.items() if spec.default is not dataclasses.MISSING}
    company.update(num_envs=1, num_steps=1, num_minibatches=1, total_timesteps=10**12, adaptive_clip=False)
    if name == "num_minibatches" and isinstance(value, int) and value > 0:
        company["num_envs"] = value
    if name == "adaptive_clip":
        company["policy_objective"] = "clip"
    company[name] = value
    return {field: setting for field, setting in company.items() if field in options.fields}


def check_value(name: str, value: Any, options: ScriptOptions) -> None:
    """Refuse a value the option can never take: of the wrong type, or rejected by the script's own check."""
    reason = type_error(value, options.types[name])
    if reason is not None:
        raise SpaceError(f"parameter {name}: {value!r} can never be given to --{name.replace('_', '-')}: {reason}")
    try:
        options.check_args(options.args_class(**permissive_company(name, value, options)))
    except options.usage_error as error:
        raise SpaceError(f"parameter {name}: {value!r} can never be given to the script: {error}") from None


def load_space(path: Path, options: ScriptOptions) -> Space:
    """Read a space file and check every parameter against the script's options; SpaceError on the first fault."""
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpaceError(f"cannot read the space file {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise SpaceError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict) or not config["parameters"]:
        raise SpaceError(f"{path}: expected a W&B sweep file with a non-empty `parameters` mapping")
    distributions, fixed, run_defaults = {}, {}, {}
    for name, spec in config["parameters"].items():
        name = str(name)
        if name.startswith("no_") and options.types.get(name[3:]) is bool:  # W&B's way to switch a flag off
            distribution = distribution_of(name, spec)
            for value in candidate_values(distribution) if not isinstance(distribution, tuple) else [distribution[1]]:
                if not isinstance(value, bool):
                    raise SpaceError(f"parameter {name}: {value!r} can never be given: expected true or false")
                check_value(name[3:], not value, options)
            if isinstance(distribution, tuple):
                fixed[name] = distribution[1]
            else:
                distributions[name] = distribution
            continue
        if name not in options.fields:
            raise SpaceError(f"parameter {name}: the script has no option --{str(name).replace('_', '-')}")
        if name in NOT_SEARCHABLE:
            raise SpaceError(f"parameter {name}: --{name.replace('_', '-')} is not a training hyperparameter")
        distribution = distribution_of(name, spec)
        if name in RUN_OPTIONS:
            if isinstance(distribution, tuple) and name in ("env_id", "seeds", "total_timesteps"):
                run_defaults[name] = distribution[1]
            elif not isinstance(distribution, tuple):
                raise SpaceError(f"parameter {name}: --{name.replace('_', '-')} is set by the tuner, not searched")
            continue
        if isinstance(distribution, tuple):
            check_value(name, distribution[1], options)
            fixed[name] = distribution[1]
            continue
        for value in candidate_values(distribution):
            check_value(name, value, options)
        distributions[name] = distribution
    if not distributions:
        raise SpaceError(f"{path}: no parameter is searched (every one has a single value)")
    script_defaults = {name: field.default for name, field in options.fields.items()}
    return Space(distributions, fixed, run_defaults, config.get("program"), path, script_defaults)


def to_cli(params: dict[str, Any]) -> list[str]:
    """Command-line arguments for the scripts (tyro): --name value, --name / --no-name for booleans; `no_name` (W&B's
    form of switching a flag off) true is --no-name, false leaves the script's default."""
    argv = []
    for name, value in params.items():
        flag = name.replace("_", "-")
        if name.startswith("no_") and isinstance(value, bool):
            argv += [f"--{flag}"] if value else []
        elif isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, (list, tuple)):
            argv += [f"--{flag}", *map(str, value)]
        else:
            argv += [f"--{flag}", "None" if value is None else repr(value) if isinstance(value, float) else str(value)]
    return argv
