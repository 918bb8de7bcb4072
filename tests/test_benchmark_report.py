"""The report on synthetic sweeps: tables with our numbers beside the published ones, CSVs, PNG figures."""

import csv

import pytest

from benchmark import report
from tests.benchmark_fixtures import make_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Two sweeps: CartPole-v1 (3 seeds, finals 149.5, 159.5, 169.5, one failed seed) and HalfCheetah-v5 (2 seeds)."""
    root = tmp_path_factory.mktemp("report")
    cartpole = [
        ("ppo_discrete.py", "CartPole-v1", seed, [r + 10 * (seed - 1) for r in range(200)], 499_712)
        for seed in (1, 2, 3)
    ]
    make_sweep(
        root / "classic",
        cartpole,
        failed=[("ppo_discrete.py", "CartPole-v1", 4)],
        extra_args=["--total-timesteps", "500000"],
    )
    cheetah = [("ppo_continuous.py", "HalfCheetah-v5", seed, [1000.0 * seed] * 150, 999_424) for seed in (1, 2)]
    make_sweep(root / "mujoco", cheetah, extra_args=["--total-timesteps", "1000000"])
    out = root / "results"
    code = report.main(
        ["--runs", str(root / "classic"), str(root / "mujoco"), "--out", str(out), "--bootstrap-reps", "200"]
    )
    return code, out


def test_report_writes_tables_and_figures(written):
    code, out = written
    assert code == 0
    names = {path.name for path in out.iterdir()}
    assert {"results.md", "results.csv", "runs.csv"} <= names
    figures = {
        "learning_curves_CartPole-v1.png",
        "diagnostics_CartPole-v1.png",
        "learning_curves_HalfCheetah-v5.png",
        "diagnostics_HalfCheetah-v5.png",
    }
    assert figures <= names
    for name in figures:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert not [name for name in names if ".tmp" in name]


def test_markdown_puts_published_numbers_beside_ours(written):
    _, out = written
    markdown = (out / "results.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| CartPole-v1 | ppo_discrete | 159.50 ± 8.16")]
    # ours (mean ± std over seeds 149.5, 159.5, 169.5; ddof=0) on the same row as each published result
    assert any("CleanRL ppo.py" in row and "490.04 ± 6.12" in row for row in rows)
    assert any("OpenAI Baselines" in row and "497.54 ± 4.02" in row for row in rows)
    assert all("steps differ" not in row for row in rows)  # 499,712 steps is the 500k budget in whole batches
    cheetah = [
        line
        for line in markdown.splitlines()
        if line.startswith("| HalfCheetah-v5 | ppo_continuous | 1,500.00 ± 500.00")
    ]
    assert any(
        "HalfCheetah-v4" in row
        and "1,442.64 ± 46.03" in row
        and "env differs: ours HalfCheetah-v5, published HalfCheetah-v4" in row
        for row in cheetah
    )
    assert any("HalfCheetah-v2" in row and "1,668.60" in row for row in cheetah)
    # what ± means
    assert "mean ± std over seeds of each seed's mean return over its last 100 training episodes" in markdown
    assert "MuJoCo v2 (mujoco-py)" in markdown  # which env versions the source used
    assert "![learning_curves_CartPole-v1](learning_curves_CartPole-v1.png)" in markdown
    failed = [line for line in markdown.splitlines() if line.startswith("| CartPole-v1__ppo_discrete__4 ")]
    assert failed and "synthetic failure" in failed[0]


def test_results_csv_one_row_per_published_match(written):
    _, out = written
    with open(out / "results.csv", newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))
    pairs = {(row["env_id"], row["published_source"], row["published_env_id"]) for row in rows}
    assert pairs == {
        ("CartPole-v1", "CleanRL", "CartPole-v1"),
        ("CartPole-v1", "OpenAI Baselines", "CartPole-v1"),
        ("HalfCheetah-v5", "CleanRL", "HalfCheetah-v4"),
        ("HalfCheetah-v5", "OpenAI Baselines", "HalfCheetah-v2"),
    }
    cartpole = next(row for row in rows if row["env_id"] == "CartPole-v1")
    assert float(cartpole["return_mean"]) == pytest.approx(159.5)
    assert float(cartpole["iqm"]) == pytest.approx(159.5)
    assert float(cartpole["iqm_ci_low"]) <= 159.5 <= float(cartpole["iqm_ci_high"])
    assert cartpole["seeds"] == "1 2 3"
    assert float(cartpole["peak_rss_max_mb"]) == pytest.approx(300.0)
    with open(out / "runs.csv", newline="") as csv_file:
        runs = list(csv.DictReader(csv_file))
    assert sorted((row["name"], row["state"]) for row in runs if row["env_id"] == "CartPole-v1") == [
        ("CartPole-v1__ppo_discrete__1", "complete"), ("CartPole-v1__ppo_discrete__2", "complete"),
        ("CartPole-v1__ppo_discrete__3", "complete"), ("CartPole-v1__ppo_discrete__4", "failed"),
    ]  # fmt: skip


def test_report_refuses_a_sweep_without_complete_runs(tmp_path, capsys):
    make_sweep(tmp_path / "sweep", [], failed=[("ppo_discrete.py", "CartPole-v1", 1)])
    assert report.main(["--runs", str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 2
    assert "no complete run" in capsys.readouterr().err


def test_report_refuses_the_same_seed_from_two_sweeps(tmp_path, capsys):
    for name in ("a", "b"):
        make_sweep(tmp_path / name, [("ppo_discrete.py", "CartPole-v1", 1, [1.0] * 10, 1000)])
    assert (
        report.main(
            [
                "--runs",
                str(tmp_path / "a"),
                str(tmp_path / "b"),
                "--out",
                str(tmp_path / "out"),
                "--bootstrap-reps",
                "50",
            ]
        )
        == 2
    )
    assert "in two sweeps" in capsys.readouterr().err
