"""benchmark.tune --slurm: W array tasks, each one worker, share one study through its SQLite storage.

Needs a reachable Slurm controller (CI starts one with benchmark/slurm/start_local_slurm.sh and exports
SLURM_CONF); skipped with the reason otherwise.
"""

import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from benchmark import slurm
from benchmark.atomic import read_json
from tests.benchmark_fixtures import REPO, wait_for
from tests.conftest import script_env

AVAILABLE, WHY_NOT = slurm.slurm_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no Slurm: {WHY_NOT}")

SPACE = {
    "env_id": {"value": "CartPole-v1"},
    "num_envs": {"value": 2},
    "num_steps": {"value": 64},
    "learning_rate": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.003},
}


def test_slurm_workers_share_one_study(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"parameters": SPACE}))
    study_dir = tmp_path / "shared"
    command = [sys.executable, "-m", "benchmark.tune", "--script", "ppo_discrete.py", "--space",
               str(tmp_path / "space.yaml"), "--study-dir", str(study_dir), "--seeds", "1", "2", "--total-timesteps",
               "1024", "--trials", "4", "--workers", "2", "--pruner", "none", "--poll-interval", "0.2", "--slurm",
               "--time", "10:00"]  # fmt: skip
    submitted = subprocess.run(command, cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=300)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = read_json(study_dir / "slurm" / "submission.json")["job_id"]

    def finished():
        states = slurm.task_states([job_id])
        return len(states) == 2 and all(not state.active for state in states.values())

    wait_for(finished, "the array job to finish", timeout=600)
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{study_dir / 'study.db'}")
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert 4 <= len(complete) <= 5, [t.state for t in trials]  # each worker stops once 4 are done or running
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.FAIL)]
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both array tasks ran trials of the one study
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    logs = sorted((study_dir / "slurm").glob(f"{job_id}_*.out"))
    assert len(logs) == 2 and all("trial " in log.read_text() for log in logs)
