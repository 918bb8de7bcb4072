"""The seeds variants (ppo_continuous_seeds.py, ppo_discrete_seeds.py): N seeds in one process, each the parent
script at that seed, only batched.

Checked against the parents run at the same seeds: initial weights bit for bit; first-iteration losses, KL,
clip fraction and episode returns to 1e-5 relative (batched matmuls round differently; the KL estimates and the
policy loss are means of terms of size ~1 that cancel to ~1e-3, so they carry float32 rounding of ~1e-7 absolute
and are held to 1e-5 relative or 1e-7 absolute); each seed's
own KL early stop (charts/update_epochs_done exactly, every iteration). And, as for the parents: one run
directory per seed with the parent's tags, a model.pt per seed that the parent evaluates, the one checkpoint
that resumes every seed exactly after SIGTERM, W&B offline, bad input.
"""

import dataclasses
import importlib
import math
import os
import signal
import subprocess
import sys

import pytest
import torch
import tyro

from tests.conftest import REPO, assert_usage_error, read_scalars, run_script, script_env

PARENTS = {"ppo_continuous_seeds.py": "ppo_continuous.py", "ppo_discrete_seeds.py": "ppo_discrete.py"}
# Tiny but real: 2 iterations; Pendulum's 200-step episodes end within the first iteration.
CONFIGS = {
    "ppo_continuous_seeds.py": ["--env-id", "Pendulum-v1", "--num-steps", "256", "--num-minibatches", "4"],
    "ppo_discrete_seeds.py": ["--env-id", "CartPole-v1", "--num-envs", "2", "--num-steps", "128"],
}
COMMON = ["--update-epochs", "3", "--progress-interval", "0"]
BATCH = {"ppo_continuous_seeds.py": 256, "ppo_discrete_seeds.py": 256}  # steps per iteration, per seed
# A KL early stop that seeds reach at different minibatches (seed 1, 2, 3: 1.0, 0.75, 1.0 epochs on Pendulum)
KL_STOP = ["--target-kl", "0.002", "--learning-rate", "0.003"]
CANCELLING_TAGS = {"losses/approx_kl", "losses/old_approx_kl", "losses/exact_kl", "losses/policy_loss"}
IGNORED_TAGS = {"charts/SPS"}


def config(script: str, *extra: str) -> list:
    return [*CONFIGS[script], *COMMON, "--total-timesteps", str(2 * BATCH[script]), *extra]


@pytest.fixture(scope="module", params=sorted(PARENTS))
def runs(request, tmp_path_factory):
    """The parent at seeds 1, 2, 3 and the variant with --seeds 1 2 3 (KL early stop on, models saved, a checkpoint
    per iteration), and the parent and the variant at seed 1 alone with default update settings."""
    script, out = request.param, tmp_path_factory.mktemp("seeds")
    parent = PARENTS[script]
    jobs = [[parent, *config(script, "--seed", "1"), "--run-name", "parent_1"]]
    jobs += [[parent, *config(script, "--seed", s, *KL_STOP), "--run-name", f"pkl_{s}"] for s in "123"]
    jobs.append([script, *config(script, "--seeds", "1"), "--run-name", "variant_{seed}"])
    three_seeds = config(script, "--seeds", "1", "2", "3", *KL_STOP, "--checkpoint-every", "1")
    jobs.append([script, *three_seeds, "--save-model", "--run-name", "vkl_{seed}"])
    for job in jobs:
        result = run_script(job[0], *job[1:], "--output-dir", str(out))
        assert result.returncode == 0, result.stderr
    return {"script": script, "out": out, "stdout": result.stdout}  # the three-seed run's


def close(expected: float, actual: float, tag: str) -> bool:
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    return math.isclose(actual, expected, rel_tol=1e-5, abs_tol=1e-7 if tag in CANCELLING_TAGS else 0.0)


def assert_first_iteration_matches(parent: dict, variant: dict, batch: int) -> None:
    assert set(parent) == set(variant) - {"eval/episodic_return"}
    assert any(step <= batch for step, _ in parent["charts/episodic_return"]), "no episode in the first iteration"
    for tag in set(parent) - IGNORED_TAGS - {"eval/episodic_return"}:
        expected = [value for step, value in parent[tag] if step <= batch]
        actual = [value for step, value in variant[tag] if step <= batch]
        assert len(expected) == len(actual) > 0, tag
        for e, a in zip(expected, actual):
            assert close(e, a, tag), f"{tag}: parent {e}, variant {a}"


def test_one_seed_is_the_parent_at_that_seed(runs):
    out = runs["out"]
    assert_first_iteration_matches(
        read_scalars(out / "parent_1"), read_scalars(out / "variant_1"), BATCH[runs["script"]]
    )


def test_each_of_three_seeds_is_the_parent_at_its_seed_with_its_own_kl_early_stop(runs):
    out, batch = runs["out"], BATCH[runs["script"]]
    epochs_done = []
    for seed in (1, 2, 3):
        parent, variant = read_scalars(out / f"pkl_{seed}"), read_scalars(out / f"vkl_{seed}")
        assert_first_iteration_matches(parent, variant, batch)
        # Each seed stops its update where the parent at that seed stops, in every iteration
        assert variant["charts/update_epochs_done"] == parent["charts/update_epochs_done"]
        epochs_done.append(tuple(value for _, value in parent["charts/update_epochs_done"]))
    assert any(value < 3 for done in epochs_done for value in done), (
        "the KL early stop never came: lower KL_STOP's target"
    )
    assert len(set(epochs_done)) > 1, "every seed stopped at the same minibatch: the test cannot tell them apart"


def test_initial_weights_are_the_parents_bit_for_bit(runs, tmp_path, monkeypatch):
    """main() of each script run in this process, its agent read where main() makes it (flatten_parameters)."""
    script = runs["script"]
    variant, parent = importlib.import_module(script[:-3]), importlib.import_module(PARENTS[script][:-3])
    made = {}

    def capture(module, key):
        flatten = module.flatten_parameters

        def spy(agent):
            made[key] = {name: tensor.clone() for name, tensor in agent.state_dict().items()}
            raise KeyboardInterrupt  # the weights are all this test needs

        monkeypatch.setattr(module, "flatten_parameters", spy)
        return flatten

    monkeypatch.chdir(tmp_path)
    log_std_init = ("--log-std-init", "-1.5") if script == "ppo_continuous_seeds.py" else ()  # passed on to each seed
    for module, key, seeds in ((parent, 2, None), (variant, "variant", (1, 2, 3))):
        capture(module, key)
        cli = config(script, *(("--seed", "2") if seeds is None else ("--seeds", *map(str, seeds))), *log_std_init)
        args = tyro.cli(module.Args, args=[*cli, "--output-dir", str(tmp_path / str(key))])
        with pytest.raises(KeyboardInterrupt):
            module.main(args)
    stacked = made["variant"]
    for name, tensor in made[2].items():
        seed_2 = stacked[name][1] if name == "actor_logstd" else None
        if seed_2 is None:  # a Linear layer: stacked as [W, b, ...] per Sequential, W transposed
            sequential, index, kind = name.split(".")
            linear = [0, 2, 4].index(int(index))
            seed_2 = stacked[f"{sequential}.{2 * linear + (kind == 'bias')}"][1]
            seed_2 = seed_2.T if kind == "weight" else seed_2
        assert torch.equal(seed_2, tensor), name
    if log_std_init:
        assert torch.equal(made[2]["actor_logstd"], torch.full_like(made[2]["actor_logstd"], -1.5))


def test_each_seed_writes_the_run_the_parent_writes(runs):
    out = runs["out"]
    parent_tags = set(read_scalars(out / "pkl_2"))
    for seed in (1, 2, 3):
        variant = read_scalars(out / f"vkl_{seed}")
        assert set(variant) == parent_tags | {"eval/episodic_return"}
        assert len(variant["eval/episodic_return"]) == 10
    assert (out / "vkl_1" / "checkpoint.pt").is_file()
    assert not (out / "vkl_2" / "checkpoint.pt").exists()  # one checkpoint, for all seeds, in the first run
    assert "return" in runs["stdout"] and "over 3 seeds" in runs["stdout"]


def test_a_seeds_model_is_a_model_of_the_parent(runs):
    out, script = runs["out"], runs["script"]
    parent = run_script(PARENTS[script], "--eval-checkpoint", str(out / "vkl_2" / "model.pt"), "--eval-episodes", "2")
    assert parent.returncode == 0, parent.stderr
    assert "mean return" in parent.stdout
    variant = run_script(script, "--eval-checkpoint", str(out / "vkl_1" / "checkpoint.pt"), "--eval-episodes", "2")
    assert variant.returncode == 0, variant.stderr
    lines = [line for line in variant.stdout.splitlines() if "mean return" in line]
    assert [line.split(" seed ")[1].split(":")[0] for line in lines] == ["1", "2", "3"]
    # The checkpoint's seed 2 and the saved model of seed 2 are the same agent: the same evaluation
    seed_2 = run_script(script, "--eval-checkpoint", str(out / "vkl_2" / "model.pt"), "--eval-episodes", "2")
    assert seed_2.returncode == 0, seed_2.stderr
    assert seed_2.stdout.split(": ", 1)[1] == lines[1].split(": ", 1)[1] + "\n"


# Sends SIGTERM from inside the update, at the N-th backward pass: between backward() and the optimizer step.
SIGTERM_IN_UPDATE = """
import os, runpy, signal, sys, torch
calls, real_backward, target = [], torch.Tensor.backward, int(sys.argv[1])
def backward_and_maybe_signal(*args, **kwargs):
    calls.append(1)
    if len(calls) == target:
        os.kill(os.getpid(), signal.SIGTERM)
    return real_backward(*args, **kwargs)
torch.Tensor.backward = backward_and_maybe_signal
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_sigterm_then_resume_goes_on_exactly_for_every_seed(runs, tmp_path):
    out, script = runs["out"], runs["script"]
    args = config(script, "--seeds", "1", "2", "3", *KL_STOP, "--save-model")
    args += ["--output-dir", str(tmp_path), "--run-name", "vkl_{seed}"]
    stopped = subprocess.run([sys.executable, "-c", SIGTERM_IN_UPDATE, "2", str(REPO / script), *args],
        env=script_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "stopped by SIGTERM after iteration 1/2" in stopped.stderr
    resumed = run_script(script, "--resume", str(tmp_path / "vkl_1"))
    assert resumed.returncode == 0, resumed.stderr
    for seed in (1, 2, 3):
        expected, actual = read_scalars(out / f"vkl_{seed}"), read_scalars(tmp_path / f"vkl_{seed}")
        assert set(expected) == set(actual)
        for tag in set(expected) - IGNORED_TAGS:
            assert actual[tag] == expected[tag], f"seed {seed}: {tag} differs after resume"


def test_seed_adam_is_torch_adam_per_seed_and_a_stopped_seed_does_not_move():
    """SeedAdam over (3, P) parameters against one torch.optim.Adam per seed; seed 1 sits out steps 3 and 4."""
    variant = importlib.import_module("ppo_continuous_seeds")
    torch.manual_seed(0)
    start = torch.randn(3, 50)
    stacked = start.clone().requires_grad_()
    optimizer = variant.SeedAdam([stacked], lr=1e-2, eps=1e-5)
    singles = [start[k].clone().requires_grad_() for k in range(3)]
    references = [torch.optim.Adam([single], lr=1e-2, eps=1e-5) for single in singles]
    for step in range(6):
        grads = torch.randn(3, 50)
        active = torch.tensor([True, step not in (3, 4), True])
        stacked.grad = grads.clone()
        before = stacked.detach().clone()
        optimizer.step(active)
        assert torch.equal(stacked.detach()[1], before[1]) or active[1]
        for k in range(3):
            if active[k]:
                singles[k].grad = grads[k].clone()
                references[k].step()
            torch.testing.assert_close(stacked.detach()[k], singles[k].detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("script", sorted(PARENTS))
@pytest.mark.parametrize(
    "args, message",
    [
        (("--seeds", "1", "1"), "--seeds must name one or more different seeds"),
        (("--seeds", "-1"), "--seeds must be in [0, 2**31 - 1]"),
        (("--seeds", "1", "2", "--run-name", "same"), "put {seed} in it"),
        (("--seeds", "1", "--learning-rate", "nan"), "--learning-rate must be a finite number"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(script, args, message, tmp_cwd):
    result = run_script(script, *args, "--total-timesteps", "512", cwd=tmp_cwd)
    assert_usage_error(result, script, message)
    assert not (tmp_cwd / "runs").exists()


def test_track_opens_an_offline_wandb_run_per_seed(tmp_cwd):
    script = "ppo_discrete_seeds.py"
    result = run_script(script, *config(script, "--seeds", "4", "5", "--track"), "--run-name", "w_{seed}", cwd=tmp_cwd)
    assert result.returncode == 0, result.stderr
    for seed in (4, 5):
        run_dir = tmp_cwd / "runs" / f"w_{seed}"
        offline = [name for name in os.listdir(run_dir / "wandb") if name.startswith("offline-run-")]
        assert len(offline) == 1, os.listdir(run_dir / "wandb")
        history = list((run_dir / "wandb" / offline[0]).glob("*.wandb"))
        assert history and history[0].stat().st_size > 0
        assert "losses/value_loss" in read_scalars(run_dir)


@pytest.mark.parametrize("variant", sorted(PARENTS))
def test_resume_decides_by_what_was_typed(variant):
    """As in the parents: an option typed on the command line wins on resume even at its default value, and one
    that may not change, typed at its default against another value in the checkpoint, is a one-line error."""
    module = importlib.import_module(variant[:-3])
    default = module.Args()
    saved = dataclasses.asdict(module.Args(total_timesteps=3 * default.total_timesteps, seeds=(5, 6), num_envs=7))
    argv = ["--resume", "runs/x", "--total-timesteps", str(default.total_timesteps)]
    merged = module.resume_args(tyro.cli(module.Args, args=argv), saved, argv)
    assert (merged.total_timesteps, merged.seeds, merged.num_envs) == (default.total_timesteps, (5, 6), 7)
    argv = ["--resume", "runs/x", "--num-envs", str(default.num_envs)]
    with pytest.raises(module.UsageError, match=f"--num-envs {default.num_envs} differs from the checkpoint's 7"):
        module.resume_args(tyro.cli(module.Args, args=argv), saved, argv)
