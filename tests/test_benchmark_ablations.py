"""benchmark.ablations on synthetic sweeps whose answer is known: scores, normalization, averages, the files."""

import csv

import pytest

from benchmark import ablations
from tests.benchmark_fixtures import make_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RANDOM = {"Acrobot-v1": -450.0, "CartPole-v1": 20.0, "Pendulum-v1": -1200.0}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """CartPole-v1: no-clip scores 20, 40 (mean 30); clip-0.2 500, 480 (490, the best); kl-fixed-1 255, 255; clip-0.1
    only here (one seed, 255); one failed kl-fixed-1 seed. Pendulum-v1: no-clip -1400; clip-0.2 -200 (the best);
    kl-fixed-1 -700. Acrobot-v1: no-clip -500, below the random policy. A run's score is the mean of its last 100
    returns: 150 returns, the first 50 of them far off."""
    root = tmp_path_factory.mktemp("ablations")
    runs = root / "runs"

    def sweep(env_id, setting, scores, failed=()):
        script = "ppo_continuous.py" if env_id == "Pendulum-v1" else "ppo_discrete.py"
        seeds = [
            (script, env_id, seed, [-99_999.0] * 50 + [score] * 100, 2048) for seed, score in enumerate(scores, start=1)
        ]
        make_sweep(
            runs / env_id / setting,
            seeds,
            failed=[(script, env_id, seed) for seed in failed],
            extra_args=["--total-timesteps", "2048"],
        )

    sweep("CartPole-v1", "no-clip", [20.0, 40.0])
    sweep("CartPole-v1", "clip-0.2", [500.0, 480.0])
    sweep("CartPole-v1", "kl-fixed-1", [255.0, 255.0], failed=[3])
    sweep("CartPole-v1", "clip-0.1", [255.0])
    sweep("Pendulum-v1", "no-clip", [-1400.0, -1400.0])
    sweep("Pendulum-v1", "clip-0.2", [-200.0, -200.0])
    sweep("Pendulum-v1", "kl-fixed-1", [-700.0, -700.0])
    sweep("Acrobot-v1", "no-clip", [-500.0])
    out = root / "results"
    paths = ablations.write_ablations(runs, out, random_scores=RANDOM, command="python -m benchmark.ablations (test)")
    return paths, out


def rows(out) -> dict:
    with open(out / "ablations.csv", newline="") as csv_file:
        return {(row["env_id"], row["setting"]): row for row in csv.DictReader(csv_file)}


def test_scores_over_seeds_and_normalization(written):
    _, out = written
    table = rows(out)
    no_clip = table[("CartPole-v1", "no-clip")]
    # std with ddof=0
    assert float(no_clip["return_mean"]) == pytest.approx(30.0) and float(no_clip["return_std"]) == pytest.approx(10.0)
    assert no_clip["seeds"] == "1 2" and no_clip["script"] == "ppo_discrete" and int(no_clip["steps"]) == 2048
    assert float(no_clip["best_mean"]) == pytest.approx(490.0) and float(no_clip["random_score"]) == 20.0
    assert float(no_clip["normalized"]) == pytest.approx(10 / 470)  # (30 - 20) / (490 - 20)
    assert float(no_clip["normalized_std"]) == pytest.approx(10 / 470)
    assert float(table[("CartPole-v1", "clip-0.2")]["normalized"]) == pytest.approx(1.0)
    assert float(table[("CartPole-v1", "kl-fixed-1")]["normalized"]) == pytest.approx(0.5)
    assert table[("CartPole-v1", "kl-fixed-1")]["seeds"] == "1 2"  # the failed seed is left out
    # (-1400 + 1200) / (-200 + 1200)
    assert float(table[("Pendulum-v1", "no-clip")]["normalized"]) == pytest.approx(-0.2)
    assert float(table[("Pendulum-v1", "kl-fixed-1")]["normalized"]) == pytest.approx(0.5)
    assert table[("Acrobot-v1", "no-clip")]["normalized"] == "nan"  # no setting beats the random policy: no scale


def test_averages_over_envs_beside_the_paper(written):
    _, out = written
    table = rows(out)
    assert float(table[("average", "no-clip")]["normalized"]) == pytest.approx((10 / 470 - 0.2) / 2)
    assert float(table[("average", "clip-0.2")]["normalized"]) == pytest.approx(1.0)
    assert float(table[("average", "kl-fixed-1")]["normalized"]) == pytest.approx(0.5)
    assert table[("average", "clip-0.1")]["num_envs"] == "1" and float(
        table[("average", "clip-0.1")]["normalized"]
    ) == pytest.approx(235 / 470)
    papers = {
        setting: float(table[("average", setting)]["paper_table1"])
        for setting in ("no-clip", "clip-0.1", "clip-0.2", "kl-fixed-1")
    }
    assert papers == {"no-clip": -0.39, "clip-0.1": 0.76, "clip-0.2": 0.82, "kl-fixed-1": 0.71}
    assert [key for key in table if key[0] == "average"] == [
        ("average", name) for name in ("no-clip", "clip-0.1", "clip-0.2", "kl-fixed-1")
    ]  # Table 1 order


def test_markdown_and_figure(written):
    paths, out = written
    markdown = (out / "ablations.md").read_text()
    lines = markdown.splitlines()
    # average, Acrobot (not normalized: no setting beats its random policy), CartPole, Pendulum, paper
    assert "| No clipping or penalty | **-0.09** (2 of 3 envs) | n/a | 0.02 | -0.20 | -0.39 |" in lines
    assert "| Clipping, epsilon = 0.1 | **0.50** (1 of 3 envs) | n/a | 0.50 | n/a | 0.76 |" in lines
    assert "No setting beats the random policy" in markdown.split("## Acrobot-v1")[1].split("##")[0]
    assert "| No clipping or penalty | 30.00 ± 10.00 | 1 2 | 0.02 ± 0.02 |" in lines  # CartPole's own table
    # the paper's setting; the failed run
    assert "MuJoCo" in markdown and "1M steps" in markdown and "failed" in markdown
    data = paths["figure"].read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert not [path.name for path in out.iterdir() if ".tmp" in path.name]


def test_random_policy_score_is_repeatable():
    score = ablations.random_policy_score("CartPole-v1", episodes=20, seed=3)
    assert score == ablations.random_policy_score("CartPole-v1", episodes=20, seed=3)
    assert 10 < score < 40  # random CartPole play lasts about 22 steps


def test_no_complete_run_is_an_error(tmp_path, capsys):
    (tmp_path / "runs" / "CartPole-v1").mkdir(parents=True)
    assert ablations.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    assert "no complete run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
