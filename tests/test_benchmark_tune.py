"""benchmark.tune through real Optuna and SQLite on CartPole with tiny budgets: every trial a seed group.

A study of a few trials is made once per module: an enqueued configuration that learns, then one that cannot (a
learning rate of 1e-8), which the median pruner stops; its process ends through the script's SIGTERM path. Then
the same command runs again and continues the study; a worker is killed with SIGKILL in the middle of a trial; a
configuration the script rejects is a failed trial with the script's reason. Spaces are checked against W&B's
own reading of a sweep file, and every bad space is one line, exit code 2, nothing written.
"""

import json
import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from benchmark import space as space_module
from benchmark import tune
from tests.benchmark_fixtures import REPO, wait_for
from tests.conftest import read_scalars, script_env

SPACE = {
    "env_id": {"value": "CartPole-v1"},
    "num_envs": {"value": 2},
    "num_steps": {"value": 64},
    "learning_rate": {"values": [0.0025, 1e-8]},
}
TOTAL = 64 * 2 * 24  # 24 iterations per run
GOOD, BAD = '{"learning_rate": 0.0025}', '{"learning_rate": 1e-08}'


def tune_command(study_dir: Path, space_path: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "benchmark.tune", "--script", "ppo_discrete.py", "--space", str(space_path),
            "--study-dir", str(study_dir), "--seeds", "1", "2", "--total-timesteps", str(TOTAL), "--workers", "1",
            "--report-every", "0.25", "--startup-trials", "1", "--poll-interval", "0.2", *more]  # fmt: skip


def run_tune(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=timeout)


def load(study_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")


def write_space(path: Path, parameters: dict) -> Path:
    path.write_text(yaml.safe_dump({"parameters": parameters}))
    return path


def iqm(values) -> float:
    """Interquartile mean written out: sort, drop a quarter (rounded down) from each end, average the rest."""
    values = np.sort(values)
    cut = len(values) // 4
    return float(values[cut : len(values) - cut].mean())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three trials: the good configuration, the bad one (pruned), then whatever the sampler picks."""
    root = tmp_path_factory.mktemp("tune")
    space_path = write_space(root / "space.yaml", SPACE)
    study_dir = root / "cartpole"
    first = run_tune(*tune_command(study_dir, space_path, "--trials", "2", "--enqueue", GOOD, "--enqueue", BAD))
    assert first.returncode == 0, first.stderr[-3000:]
    return study_dir, space_path, first


@pytest.mark.slow
def test_trials_are_recorded_with_their_group_scores(study):
    study_dir, _, first = study
    trials = load(study_dir).get_trials()
    assert [t.number for t in trials] == [0, 1]
    good = trials[0]
    assert good.state == TrialState.COMPLETE and good.params == {"learning_rate": 0.0025}
    # the score, recomputed from the runs' event files: each seed's mean over its last 100 episodes, their IQM
    per_seed = []
    for seed in (1, 2):
        returns = [value for _, value in read_scalars(study_dir / "trials" / "00000" / f"CartPole-v1__{seed}")[
            "charts/episodic_return"]]  # fmt: skip
        per_seed.append(np.mean(returns[-100:]))
    assert good.user_attrs["returns"]["CartPole-v1"] == pytest.approx(per_seed, rel=1e-6)
    assert good.value == pytest.approx(iqm(per_seed), rel=1e-6)
    assert good.user_attrs["mean"] == pytest.approx(np.mean(per_seed)) and good.user_attrs["min"] == min(per_seed)
    assert good.user_attrs["exit_codes"] == [0]
    # one progress line per finished trial, with the best so far
    lines = [line for line in first.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2 and "best" in lines[0] and "left" in lines[0]


@pytest.mark.slow
def test_a_lagging_trial_is_pruned_and_its_process_ends_cleanly(study):
    study_dir, _, _ = study
    bad = load(study_dir).get_trials()[1]
    assert bad.params == {"learning_rate": 1e-08}
    assert bad.state == TrialState.PRUNED
    assert bad.user_attrs["pruned_at"] < 1.0
    # pruned through the script's SIGTERM path: exit 128 + 15, a checkpoint, the events of a partial run
    assert bad.user_attrs["exit_codes"] == [128 + signal.SIGTERM]
    run_dir = study_dir / "trials" / "00001" / "CartPole-v1__1"
    assert (run_dir / "checkpoint.pt").exists()
    steps = [step for step, _ in read_scalars(run_dir)["charts/learning_rate"]]
    assert 0 < steps[-1] < TOTAL
    assert all(not tune.pid_alive(pid) for pid in bad.user_attrs["pids"])
    # the intermediate scores it reported are below the good trial's at the same fractions
    good = load(study_dir).get_trials()[0]
    for step, value in bad.intermediate_values.items():
        assert value < good.intermediate_values[step]


@pytest.mark.slow
def test_the_same_command_continues_the_study(study):
    study_dir, space_path, _ = study
    before = {path: path.stat().st_mtime_ns for path in (study_dir / "trials" / "00000").rglob("*")}
    again = run_tune(*tune_command(study_dir, space_path, "--trials", "3", "--enqueue", GOOD, "--enqueue", BAD))
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(study_dir).get_trials()
    assert [t.number for t in trials] == [0, 1, 2]  # numbers go on; the enqueued configurations are not queued again
    assert trials[2].state in (TrialState.COMPLETE, TrialState.PRUNED)
    after = {path: path.stat().st_mtime_ns for path in (study_dir / "trials" / "00000").rglob("*")}
    assert after == before  # trial 0 was not rerun
    report = (study_dir / "report.md").read_text()
    assert "## Best configuration" in report and "CartPole-v1: " in report
    assert (study_dir / "optimization_history.png").stat().st_size > 1000
    # the best configuration's command, as the report prints it, runs as it stands
    command = next(line for line in report.splitlines() if line.startswith("python ppo_discrete.py"))
    assert "--learning-rate 0.0025" in command and "--num-envs 2" in command
    result = run_tune(*command.split()[:1], *command.split()[1:], "--output-dir", str(study_dir / "rerun"))
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_a_killed_worker_leaves_the_study_consistent(tmp_path):
    space_path = write_space(tmp_path / "space.yaml", SPACE)
    study_dir = tmp_path / "killed"
    slow = [*tune_command(study_dir, space_path, "--trials", "1", "--enqueue", GOOD)]
    slow[slow.index("--total-timesteps") + 1] = str(TOTAL * 20)
    worker = subprocess.Popen(slow, cwd=REPO, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def running_trial():
        try:
            trials = load(study_dir).get_trials(states=(TrialState.RUNNING,))
        except Exception:  # the storage is not made yet
            return None
        return trials[0] if trials and "pids" in trials[0].user_attrs else None

    lost = wait_for(running_trial, "a running trial", timeout=120, process=worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # the trial's process got SIGTERM when its parent died, and ended through the script's own path
    wait_for(lambda: not any(tune.pid_alive(pid) for pid in lost.user_attrs["pids"]), "the run to stop", timeout=60)
    assert load(study_dir).get_trials()[0].state == TrialState.RUNNING  # nobody has looked yet
    small = [*tune_command(study_dir, space_path, "--trials", "1")]
    small[small.index("--total-timesteps") + 1] = str(TOTAL * 20)  # the study's settings must not change
    small += ["--report-every", "0.5"]
    again = run_tune(*small)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(study_dir).get_trials()
    assert trials[0].state == TrialState.FAIL and "lost" in trials[0].user_attrs["failure"]
    assert [t.number for t in trials] == [0, 1] and trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert not load(study_dir).get_trials(states=(TrialState.RUNNING,))


def open_study_at_the_barrier(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        optuna.create_study(storage=tune.open_storage(url), study_name="shared", load_if_exists=True)
        results.put("ok")
    except Exception as error:  # the race's loser: a table or the schema version row made by another worker
        results.put(f"{type(error).__name__}: {str(error).splitlines()[0]}")


def test_workers_that_start_together_on_a_fresh_database_all_open_it(tmp_path):
    """Workers started together (one per terminal, or the tuner and a test or dashboard reading the study) each create
    the tables they find missing, so all but one lose a race inside Optuna (table already exists, duplicate schema
    version) unless they retry. (--slurm opens the study before it submits, so its array tasks find it made.)"""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    context = multiprocessing.get_context("fork")  # children start with optuna imported: they reach the barrier fast
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'study{attempt}.db'}"
        barrier, results = context.Barrier(8), context.Queue()
        workers = [context.Process(target=open_study_at_the_barrier, args=(url, barrier, results)) for _ in range(8)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join()
        assert outcomes == ["ok"] * 8, outcomes
        assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["shared"]


def test_a_trial_just_asked_for_is_not_lost(tmp_path):
    """Between ask() and its first heartbeat a trial has no worker attributes: another worker must not fail it (the
    race two Slurm workers hit); a trial whose heartbeat is old, or whose worker on this host is gone, is lost."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    fresh, stale, dead = study.ask(), study.ask(), study.ask()
    stale.set_user_attr("heartbeat", 1.0)
    dead.set_user_attr("worker", f"{tune.socket.gethostname()}:{2**22 + 1}")  # beyond Linux's largest PID
    dead.set_user_attr("heartbeat", tune.time.time())
    assert sorted(tune.fail_lost_trials(study, stale_after=120)) == [stale.number, dead.number]
    assert study.get_trials()[fresh.number].state == TrialState.RUNNING


@pytest.mark.slow
def test_a_configuration_the_script_rejects_is_a_failed_trial(tmp_path):
    space_path = write_space(tmp_path / "space.yaml", dict(SPACE, num_minibatches={"values": [3, 4]}))
    study_dir = tmp_path / "rejected"
    first, second = '{"learning_rate": 0.0025, "num_minibatches": 3}', '{"learning_rate": 0.0025, "num_minibatches": 4}'
    result = run_tune(*tune_command(study_dir, space_path, "--trials", "1", "--enqueue", first, "--enqueue", second))
    assert result.returncode == 0, result.stderr[-3000:]
    rejected, complete = load(study_dir).get_trials()
    assert rejected.state == TrialState.FAIL and complete.state == TrialState.COMPLETE  # the study went on
    reason = rejected.user_attrs["failure"]  # the script's one line, as it printed it
    assert (
        reason == "ppo_discrete_seeds.py: error: --num-minibatches 3 does not divide the batch of 128 "
        "(num_envs * num_steps)"
    )
    assert f"trial 0 failed: {reason}" in result.stdout


@pytest.mark.slow
def test_interrupting_the_tuner_fails_the_trial_in_flight(tmp_path):
    space_path = write_space(tmp_path / "space.yaml", SPACE)
    study_dir = tmp_path / "interrupted"
    command = tune_command(study_dir, space_path, "--trials", "1", "--enqueue", GOOD)
    command[command.index("--total-timesteps") + 1] = str(TOTAL * 20)
    worker = subprocess.Popen(command, cwd=REPO, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip

    def started():
        try:
            trials = load(study_dir).get_trials(states=(TrialState.RUNNING,))
        except Exception:
            return False
        return bool(trials) and "pids" in trials[0].user_attrs

    wait_for(started, "a running trial", timeout=120, process=worker)
    run_dir = study_dir / "trials" / "00000" / "CartPole-v1__1"
    # the script has started training (its signal handling is in place once it logs)
    wait_for(lambda: run_dir.is_dir() and read_scalars(run_dir).get("charts/episodic_return"), "training", 120, worker)
    worker.send_signal(signal.SIGINT)
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines()[-1].startswith("stopped by SIGINT; run the same command again")
    (trial,) = load(study_dir).get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure"].startswith("interrupted")
    assert trial.user_attrs["exit_codes"] == [128 + signal.SIGTERM]  # the script stopped with a checkpoint
    assert (run_dir / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Spaces
# ---------------------------------------------------------------------------------------------------------------------

TUNE_SPACES = sorted((REPO / "benchmark" / "wandb").glob("tune_*.yaml"))


def script_for(config: dict) -> str:
    """The script whose Args a W&B file's parameters name (the seeds variants take the parents' options)."""
    return config["program"]


@pytest.mark.parametrize("path", TUNE_SPACES, ids=lambda path: path.name)
def test_a_space_file_gives_optuna_the_space_wandb_reads(path):
    """W&B's own conversion of a sweep file to Optuna distributions (its Optuna scheduler's) against ours."""
    from wandb.sdk.sweeps.scheduler.optuna import search_space_from_sweep_config

    config = yaml.safe_load(path.read_text())
    options = space_module.load_script_options(REPO / script_for(config))
    ours = space_module.load_space(path, options)
    theirs = search_space_from_sweep_config(config["parameters"])
    assert set(ours.distributions) | set(ours.fixed) | set(ours.run_defaults) | {"track"} == set(theirs)
    for name, distribution in ours.distributions.items():
        assert distribution == theirs[name], name
    for name, value in {**ours.fixed, **ours.run_defaults}.items():
        assert theirs[name] == optuna.distributions.CategoricalDistribution([value]), name
    assert len(ours.distributions) >= 5


def test_spaces_cover_every_family():
    programs = {yaml.safe_load(path.read_text())["program"] for path in TUNE_SPACES}
    assert programs == {"ppo_discrete_seeds.py", "ppo_continuous_seeds.py", "ppo_atari.py"}


def test_sampled_values_reach_the_script_as_sampled():
    """to_cli's arguments, parsed by the script's own parser, give back the values (booleans in W&B's no_ form)."""
    from tests.benchmark_fixtures import parse_script_args

    params = {"learning_rate": 0.00012345678901234, "num_envs": 8, "gamma": 0.999, "no_anneal_lr": True,
              "norm_adv": False, "target_kl": None, "policy_objective": "kl-adaptive"}  # fmt: skip
    parsed = parse_script_args("ppo_discrete_seeds.py", space_module.to_cli(params))
    assert parsed.learning_rate == 0.00012345678901234 and parsed.num_envs == 8 and parsed.gamma == 0.999
    assert parsed.anneal_lr is False and parsed.norm_adv is False and parsed.target_kl is None
    assert parsed.policy_objective == "kl-adaptive"
    assert space_module.to_cli({"no_anneal_lr": False}) == []  # false: the script's default


BAD_SPACES = [
    ({"hidden_width": {"values": [64]}}, "the script has no option --hidden-width"),
    ({"learning_rate": {"min": 0.01, "max": 0.001}}, "min 0.01 is greater than max 0.001"),
    ({"learning_rate": {"distribution": "uniform", "min": -0.001, "max": 0.001}}, "--learning-rate must be positive"),
    ({"gamma": {"values": [0.99, 1.01]}}, "--gamma must be in [0, 1]"),
    ({"num_minibatches": {"values": [0, 4]}}, "--num-minibatches must be positive"),
    ({"policy_objective": {"values": ["clip", "trpo"]}}, "expected one of"),
    ({"num_steps": {"distribution": "uniform", "min": 64, "max": 256.5}}, "64.0 can never be given to --num-steps"),
    ({"learning_rate": {"distribution": "normal", "mu": 0, "sigma": 1}}, "give value, values, or min and max"),
    ({"learning_rate": {"distribution": "beta", "min": 0.1, "max": 0.2}}, "distribution 'beta' is not one of"),
    ({"ent_coef": {"distribution": "log_uniform_values", "min": 0, "max": 0.1}}, "needs min > 0"),
    ({"no_anneal_lr": {"values": [True, "maybe"]}}, "expected true or false"),
    ({"resume": {"value": "runs/x"}}, "is not a training hyperparameter"),
    ({"learning_rate": {"value": 0.001}}, "no parameter is searched"),
]


@pytest.mark.parametrize("parameters, message", BAD_SPACES, ids=[message for _, message in BAD_SPACES])
def test_a_bad_space_is_one_line_and_nothing_is_written(tmp_path, capsys, parameters, message):
    space_path = write_space(tmp_path / "space.yaml", {"env_id": {"value": "CartPole-v1"}, **parameters})
    study_dir = tmp_path / "study"
    code = tune.main(["--script", "ppo_discrete.py", "--space", str(space_path), "--study-dir", str(study_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("benchmark.tune: error: ") and message in err, err
    assert not study_dir.exists()


def test_other_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys):
    space_path = write_space(tmp_path / "space.yaml", SPACE)
    (tmp_path / "broken.yaml").write_text("parameters: [unclosed")
    cases = [
        (["--space", str(tmp_path / "broken.yaml")], "is not valid YAML"),
        (["--space", str(tmp_path / "missing.yaml")], "cannot read the space file"),
        (["--space", str(space_path), "--env-ids", "NoSuchEnv-v9"], "unknown env id"),
        (["--space", str(space_path), "--env-ids", "Pendulum-v1"], "use ppo_continuous.py"),
        (["--space", str(space_path), "--env-ids", "CartPole-v1", "Acrobot-v1"], "several env ids need --scores"),
        (["--space", str(space_path), "--report-every", "0"], "--report-every must be in (0, 1]"),
        (["--space", str(space_path), "--enqueue", '{"gamma": 0.9}'], "give searched parameters only"),
    ]
    for argv, message in cases:
        study_dir = tmp_path / "study"
        code = tune.main(["--script", "ppo_discrete.py", "--study-dir", str(study_dir), *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)
        assert not study_dir.exists()


def test_a_study_does_not_continue_with_other_settings(study, capsys):
    study_dir, space_path, _ = study
    argv = tune_command(study_dir, space_path, "--trials", "3")[3:]
    argv[argv.index("--seeds") + 1 : argv.index("--seeds") + 3] = ["1", "3"]
    assert tune.main(argv) == 2
    assert "holds a study with other seeds" in capsys.readouterr().err


def test_scores_are_normalized_per_env_then_averaged():
    per_env = {"A": [0.0, 10.0, 20.0, 30.0], "B": [-100.0, -100.0, 0.0, 100.0]}
    ranges = {"A": (0.0, 40.0), "B": (-200.0, 200.0)}
    expected = np.mean([(15.0 - 0.0) / 40.0, (-50.0 + 200.0) / 400.0])
    assert tune.group_score(per_env, ranges) == pytest.approx(expected)
    assert tune.iqm([5.0, 1.0, 3.0, 100.0, 2.0, 4.0, 6.0, -50.0]) == pytest.approx(iqm([5, 1, 3, 100, 2, 4, 6, -50]))


# ---------------------------------------------------------------------------------------------------------------------
# W&B sweeps of whole seed groups
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_under_a_sweep_agent_a_seed_group_is_one_wandb_run(tmp_path):
    """The environment a W&B sweep agent sets (WANDB_SWEEP_ID, WANDB_RUN_ID), offline: one W&B run for the group."""
    from tests.conftest import run_script

    env = {"WANDB_SWEEP_ID": "sweep123", "WANDB_RUN_ID": "group456", "WANDB_SILENT": "true"}
    result = run_script("ppo_discrete_seeds.py", "--seeds", "1", "2", "3", "--track", "--total-timesteps", "2048",
                        "--num-envs", "2", "--num-steps", "64", "--run-name", "g__{seed}", cwd=tmp_path,
                        extra_env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "runs").glob("g__*/wandb/offline-run-*"))
    assert [run.parent.parent.name for run in runs] == ["g__1"] and runs[0].name.endswith("-group456")
    (history,) = runs[0].glob("*.wandb")
    data = history.read_bytes()
    for key in ("group/return_iqm", "group/return_mean", "group/return_min", "group/return_max",
                "seed_1/return", "seed_2/return", "seed_3/return"):  # fmt: skip
        assert key.encode() in data, key
    assert b"charts/episodic_return" not in data  # the seeds' own logs stay in their TensorBoard runs
    for seed in (1, 2, 3):
        assert read_scalars(tmp_path / "runs" / f"g__{seed}")["charts/episodic_return"]


@pytest.mark.slow
def test_validation_trains_both_configurations_on_fresh_seeds(study, tmp_path):
    study_dir, _, _ = study
    refused = run_tune(sys.executable, "-m", "benchmark.tune", "validate", "--study-dir", str(study_dir),
                       "--seeds", "2", "101")  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.strip().endswith("[2] were used by the search: not fresh")
    out = tmp_path / "committed"
    result = run_tune(sys.executable, "-m", "benchmark.tune", "validate", "--study-dir", str(study_dir), "--trial", "0",
                      "--seeds", "101", "102", "--total-timesteps", "1024", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "validation.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| CartPole-v1 |")]
    assert [row.split(" | ")[1] for row in rows] == ["defaults", "tuned"]
    # each row's mean is the mean of the seeds it lists, read back from the runs' events
    sweeps = {"defaults": study_dir / "validation" / "defaults", "tuned": study_dir / "validation" / "trial-0"}
    for row in rows:
        cells = row.strip("| ").split(" | ")
        run_dirs = sorted((sweeps[cells[1]] / "runs").iterdir())
        assert [path.name.rsplit("__", 1)[1] for path in run_dirs] == ["101", "102"]
        finals = [np.mean([v for _, v in read_scalars(path)["charts/episodic_return"]][-100:]) for path in run_dirs]
        assert float(cells[3].replace(",", "")) == pytest.approx(np.mean(finals), abs=0.006)
        assert cells[2] == "2" and "[" in cells[5]
    assert "--learning-rate 0.0025" in text and "--seeds 101 102" in text
    assert (out / "learning_curves_CartPole-v1.png").stat().st_size > 1000


def test_trial_cost_summary_is_the_ratio_of_medians():
    from benchmark.trial_cost import summary

    rates = {"K runs one after another": (100.0, 300.0, 200.0), "one seeds-variant process": (500.0, 700.0, 600.0)}
    rows = [{"env_id": "E", "script": "s.py", "layout": layout, "seeds": 4, "total_timesteps": 1000,
             "repeat": repeat, "seed_steps_per_s": rate}
            for layout, values in rates.items() for repeat, rate in enumerate(values)]  # fmt: skip
    (line,) = [line for line in summary(rows).splitlines() if line.startswith("| E |")]
    assert line == "| E | s.py | 4 | 1,000 | 200 | 600 | 3.00x | 5.00x, 2.33x, 3.00x |"


@pytest.mark.slow
def test_track_mirrors_every_trial_to_wandb(tmp_path):
    """--track: each run of a trial logs to W&B (offline here), grouped under the trial's name."""
    space_path = write_space(tmp_path / "space.yaml", SPACE)
    study_dir = tmp_path / "tracked"
    command = tune_command(study_dir, space_path, "--trials", "1", "--enqueue", GOOD, "--pruner", "none", "--track")
    command[command.index("--total-timesteps") + 1] = "512"
    result = run_tune(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (1, 2):
        (offline_run,) = (study_dir / "trials" / "00000" / f"CartPole-v1__{seed}" / "wandb").glob("offline-run-*")
        (history,) = offline_run.glob("*.wandb")
        assert b"tracked-trial-0" in history.read_bytes()  # the W&B group of the trial's runs


@pytest.mark.slow
def test_a_journal_file_storage_holds_the_study(tmp_path):
    """--storage journal:PATH (Optuna's journal file, for a shared filesystem) instead of the SQLite default."""
    space_path = write_space(tmp_path / "space.yaml", SPACE)
    study_dir, journal = tmp_path / "journaled", tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()
    command = tune_command(study_dir, space_path, "--trials", "1", "--enqueue", GOOD, "--pruner", "none",
                           "--storage", f"journal:{journal}")  # fmt: skip
    command[command.index("--total-timesteps") + 1] = "512"
    result = run_tune(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (study_dir / "study.db").exists() and journal.stat().st_size > 0
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    (trial,) = optuna.load_study(study_name="journaled", storage=storage).get_trials()
    assert trial.state == TrialState.COMPLETE and trial.params == {"learning_rate": 0.0025}
    assert "Trial 0: score" in (study_dir / "report.md").read_text()  # the report finds the study through it


# ---------------------------------------------------------------------------------------------------------------------
# Tuned recipes: each committed with its validation table, its tuned command in README
# ---------------------------------------------------------------------------------------------------------------------

TUNED_RECIPES = sorted((REPO / "benchmark" / "recipes" / "tuned").glob("*.sh"))


def tune_commands(path: Path) -> list[list[str]]:
    """The recipe's `python -m benchmark.tune ...` commands, continuation lines joined, `"$@"` and `|| ...` dropped."""
    import shlex

    found = []
    for line in path.read_text().replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["python", "-m", "benchmark.tune"]:
            words = words[: words.index("||")] if "||" in words else words
            found.append([word for word in words[3:] if word != "$@"])
    return found


def test_there_are_tuned_recipes():
    assert {path.stem for path in TUNED_RECIPES} >= {"lunarlander", "acrobot"}


@pytest.mark.parametrize("path", TUNED_RECIPES, ids=lambda path: path.name)
def test_a_tuned_recipe_searches_validates_and_is_in_readme(path, monkeypatch):
    from tests.benchmark_fixtures import parse_script_args

    search, validate = tune_commands(path)
    args = tune.search_parser().parse_args(search)
    monkeypatch.chdir(REPO)  # the recipe's paths are the repository's
    _, space = tune.prepare(args, [])  # the tuner's own checks of the command: space, env ids, enqueued JSON
    for text in args.enqueue:
        assert set(json.loads(text)) == set(space.distributions)  # complete configurations
    assert validate[0] == "validate" and validate[validate.index("--study-dir") + 1] == str(args.study_dir)
    out = REPO / validate[validate.index("--out") + 1]
    assert out == REPO / "benchmark" / "results" / "tuned" / path.stem
    text = (out / "validation.md").read_text()  # a tuned recipe is committed with its validation table
    assert "--seeds 101 102 103 104 105 106 107 108" in text
    (command,) = [line for line in text.splitlines() if line.startswith(f"python {args.script} ")]
    parsed = parse_script_args(args.script, command.split()[2:])
    assert parsed.env_id == args.env_ids[0]
    assert command in (REPO / "README.md").read_text()  # the tuned command line, as validated, in README


def test_importances_leave_out_a_parameter_that_never_varied():
    """The report's importances cover only parameters that took more than one value among the complete trials (one
    that stayed fixed, as in a study of enqueued variations, would otherwise get a weight of its own from PED-ANOVA),
    and only from 20 complete trials on."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    from benchmark import tune_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    distributions = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True), "vf_coef": FloatDistribution(0.25, 1.0),
                     "num_envs": CategoricalDistribution([4, 8])}  # fmt: skip
    rng = np.random.default_rng(0)
    for learning_rate in np.geomspace(1e-4, 1e-2, 20):
        params = {"learning_rate": float(learning_rate), "vf_coef": 0.5, "num_envs": int(rng.choice([4, 8]))}
        study.add_trial(
            create_trial(params=params, distributions=distributions, value=-abs(np.log10(learning_rate) + 3))
        )
    study.add_trial(create_trial(params={"learning_rate": 1e-3, "vf_coef": 0.9, "num_envs": 4},
                                 distributions=distributions, state=TrialState.FAIL))  # fmt: skip
    weights, constant = tune_report.importances(study)
    assert constant == ["vf_coef"]  # fixed in every complete trial; the failed one does not count
    assert set(weights) == {"learning_rate", "num_envs"}
    assert max(weights, key=weights.get) == "learning_rate"  # the score depends on it alone
    assert optuna.importance.get_param_importances(study)["vf_coef"] > 0  # what the report would show unfiltered
    # below 20 complete trials PED-ANOVA's top 10% holds fewer than 2: no importances at all
    fewer = optuna.create_study(direction="maximize")
    fewer.add_trials([trial for trial in study.trials if trial.state == TrialState.COMPLETE][:19])
    assert tune_report.importances(fewer) == ({}, ["vf_coef"])


def test_enqueue_defaults_queues_the_scripts_defaults_once():
    """--enqueue-defaults: the first trial is the script's defaults (a `no_FLAG` parameter false: the flag as it is)."""
    import argparse

    path = REPO / "benchmark" / "wandb" / "tune_ppo_discrete_seeds.yaml"
    space = space_module.load_space(path, space_module.load_script_options(REPO / "ppo_discrete_seeds.py"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    args = argparse.Namespace(enqueue=['{"learning_rate": 0.001}'], enqueue_defaults=True)
    tune.enqueue_first(study, space, args)
    tune.enqueue_first(study, space, args)  # a study that continues: nothing queued again
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 2
    first, second = study.ask(space.distributions), study.ask(space.distributions)  # as the tuner asks for them
    assert first.params["learning_rate"] == 2.5e-4 and first.params["num_envs"] == 4 and first.params["gamma"] == 0.99
    assert first.params["no_anneal_lr"] is False and second.params["learning_rate"] == 0.001  # the rest sampled
    from tests.benchmark_fixtures import parse_script_args

    # as command-line arguments, the defaults configuration is the script run without any
    assert parse_script_args("ppo_discrete_seeds.py", space_module.to_cli(first.params)) == parse_script_args(
        "ppo_discrete_seeds.py", []
    )
