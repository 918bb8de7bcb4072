"""A tiny real sweep of ppo_discrete.py through the Slurm backend: one sbatch array job, waited for with squeue.

Needs a reachable Slurm controller (CI starts one with benchmark/slurm/start_local_slurm.sh and exports
SLURM_CONF); skipped with the reason otherwise.
"""

import json

import pytest

from benchmark import slurm, sweep
from benchmark.manifest import SweepLayout, run_name
from benchmark.results import read_result
from tests.benchmark_fixtures import REPO

AVAILABLE, WHY_NOT = slurm.slurm_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no Slurm: {WHY_NOT}")

TINY = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64"]
WAIT_S = 300


def sweep_args(out) -> list[str]:
    return [
        "--backend", "slurm", "--script", str(REPO / "ppo_discrete.py"), "--env-ids", "CartPole-v1", "--seeds", "1", "2",
        "--out", str(out), "--max-concurrent", "2", "--time", "10:00", "--wait", "--wait-timeout", str(WAIT_S), "--poll-interval", "1",
        "--", *TINY,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("WANDB_MODE", "disabled")
        code = sweep.main(sweep_args(root / "sweep"))
        again = sweep.main(sweep_args(root / "sweep"))
    return SweepLayout(root / "sweep"), code, again


def test_array_job_runs_every_seed(submitted):
    from tests.conftest import read_scalars

    layout, code, _ = submitted
    assert code == 0
    (submission,) = json.loads(layout.submissions.read_text())
    assert submission["indices"] == [0, 1] and "--array=0-1%2" in submission["command"]
    for seed in (1, 2):
        name = run_name("ppo_discrete.py", "CartPole-v1", seed)
        result = read_result(layout, name)
        assert result is not None and result.complete, result
        assert result.slurm_job == f"{submission['job_id']}_{seed - 1}"  # it ran as that array task
        assert result.peak_rss_mb > 50
        scalars = read_scalars(layout.run_dir(name))
        assert max(step for step, _ in scalars["charts/SPS"]) == 256
        assert len(scalars["charts/episodic_return"]) > 0
        assert (layout.slurm_dir / f"{submission['job_id']}_{seed - 1}.out").is_file()


def test_resubmitting_a_complete_sweep_submits_nothing(submitted):
    layout, _, again = submitted
    assert again == 0
    assert len(json.loads(layout.submissions.read_text())) == 1


def test_status_reads_the_finished_job(submitted, capsys):
    layout, _, _ = submitted
    capsys.readouterr()
    assert sweep.main(["status", "--out", str(layout.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [run["state"] for run in status["runs"]] == ["complete", "complete"]


def test_task_states_come_from_the_controller(submitted):
    layout, _, _ = submitted
    states = slurm.sweep_task_states(layout)
    # finished tasks are known to scontrol for MinJobAge seconds (300 by default) after they end
    assert set(states) == {0, 1}
    assert [state.state for state in states.values()] == ["COMPLETED", "COMPLETED"]
