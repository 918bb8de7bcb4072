"""Aggregation on inputs whose right answer is known: synthetic TensorBoard events, curves, IQM, published matching."""

import math

import numpy as np
import pytest

from benchmark.aggregate import RunSummary, iqm_with_ci, last_mean, load_sweep, summarize_group, summarize_run
from benchmark.curves import on_grid, trailing_mean
from benchmark.events import Series, load_scalars
from benchmark.manifest import RunSpec
from benchmark.published import base_env_name, comparison_note, load_published, matching
from tests.benchmark_fixtures import make_sweep, training_scalars, write_scalars


def series(steps, values) -> Series:
    return Series(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64), np.zeros(len(values)))


def summary(seed: int, final_return: float) -> RunSummary:
    return RunSummary(
        name=f"run{seed}", script="ppo_discrete", env_id="CartPole-v1", seed=seed, extra_args=(),
        final_return=final_return, num_episodes=100, total_steps=1000, sps_median=100.0 * seed, sps_final=1.0,
        wall_time_s=10.0 * seed, peak_rss_mb=50.0 * seed, returns=series([1], [final_return]),
    )  # fmt: skip


def test_events_round_trip_every_value_in_order(tmp_path):
    # Two episodes end at each step (as with several envs): every value is kept, in the order written.
    points = [(10 * (i // 2), float(i)) for i in range(200)] + [(1000, 7.0)]
    write_scalars(tmp_path / "run", {"charts/episodic_return": points, "losses/entropy": [(5, 0.5)]})
    scalars = load_scalars(tmp_path / "run")
    assert set(scalars) == {"charts/episodic_return", "losses/entropy"}
    returns = scalars["charts/episodic_return"]
    assert returns.values.tolist() == [value for _, value in points]
    assert returns.steps.tolist() == [step for step, _ in points]
    assert load_scalars(tmp_path / "run", tags=["losses/entropy", "missing"]).keys() == {"losses/entropy"}


def test_events_keep_more_than_the_default_reservoir(tmp_path):
    # EventAccumulator keeps a random sample of 10,000 per tag by default; a long run has more episodes.
    count = 10_500
    write_scalars(tmp_path / "run", {"charts/episodic_return": [(i, float(i)) for i in range(count)]})
    returns = load_scalars(tmp_path / "run")["charts/episodic_return"]
    assert len(returns) == count
    assert last_mean(returns.values) == pytest.approx(np.mean(np.arange(count - 100, count)))


def test_run_summary_last_100_mean_sps_and_result_fields(tmp_path):
    layout = make_sweep(tmp_path / "sweep", [("ppo_discrete.py", "CartPole-v1", 1, list(range(200)), 50_000)])
    spec = RunSpec("CartPole-v1__ppo_discrete__1", "ppo_discrete.py", "CartPole-v1", 1)
    run = summarize_run(layout.run_dir(spec.name), spec, None)
    assert run.final_return == pytest.approx(149.5)  # mean of 100..199
    assert run.num_episodes == 200
    assert run.total_steps == 50_000
    assert run.sps_median == pytest.approx(1000 + 10 * 9.5)  # median of 1000, 1010, ..., 1190
    assert run.sps_final == pytest.approx(1190.0)
    assert set(run.diagnostics) == {
        "losses/clipfrac",
        "losses/approx_kl",
        "losses/entropy",
        "losses/explained_variance",
        "charts/learning_rate",
        "losses/value_loss",
    }
    assert run.wall_time_s is None  # no result given


def test_load_sweep_separates_complete_from_failed(tmp_path):
    returns = [list(range(200)), [r + 10 for r in range(200)]]
    make_sweep(
        tmp_path / "sweep",
        [("ppo_discrete.py", "CartPole-v1", seed, returns[seed - 1], 50_000) for seed in (1, 2)],
        failed=[("ppo_discrete.py", "CartPole-v1", 3)],
    )
    complete, incomplete = load_sweep(tmp_path / "sweep")
    assert [run.seed for run in complete] == [1, 2]
    assert [run.final_return for run in complete] == pytest.approx([149.5, 159.5])
    assert [run.wall_time_s for run in complete] == [60.0, 120.0]  # from the result files
    assert [run.peak_rss_mb for run in complete] == [100.0, 200.0]
    assert [(run.seed, run.state) for run in incomplete] == [(3, "failed")]
    assert "synthetic failure" in incomplete[0].reason


def test_group_mean_std_over_seeds():
    group = summarize_group([summary(seed, value) for seed, value in ((1, 149.5), (2, 159.5), (3, 169.5))], reps=200)
    assert group.mean == pytest.approx(159.5)
    assert group.std == pytest.approx(math.sqrt(200 / 3))  # ddof=0: sqrt(((-10)^2 + 0 + 10^2) / 3)
    assert group.iqm == pytest.approx(159.5)  # 3 seeds: a 25% trim removes int(0.75) = 0 from each end
    assert group.seeds == [1, 2, 3]
    assert group.sps_median == pytest.approx(200.0)
    assert group.wall_time_mean_s == pytest.approx(20.0)
    assert group.peak_rss_max_mb == pytest.approx(150.0)


def test_group_leaves_out_seeds_without_episodes():
    group = summarize_group([summary(1, 10.0), summary(2, float("nan")), summary(3, 20.0)], reps=200)
    assert group.seeds == [1, 3]
    assert group.mean == pytest.approx(15.0)


def test_iqm_of_known_values_and_its_bootstrap_interval():
    scores = [1, 2, 3, 4, 100, 200, 300, 400]  # IQM: mean of the middle half 3, 4, 100, 200
    iqm, low, high = iqm_with_ci(scores, reps=1000, seed=0)
    assert iqm == pytest.approx(76.75)
    assert 1 <= low < iqm < high <= 400
    assert iqm_with_ci(scores, reps=1000, seed=0) == (iqm, low, high)  # seeded: repeatable
    assert iqm_with_ci([5.0], reps=100) == (5.0, 5.0, 5.0)  # one seed: no spread at all


def test_trailing_mean():
    assert trailing_mean(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert trailing_mean(np.arange(200.0), 100)[-1] == pytest.approx(149.5)  # the curve ends at the table's number


def test_on_grid_interpolates_onto_the_overlap_only():
    grid, values = on_grid([series([0, 10], [0, 10]), series([5, 20], [5, 20])], num_points=6)
    assert grid.tolist() == pytest.approx([5, 6, 7, 8, 9, 10])  # from the latest start to the earliest end
    assert values.shape == (2, 6)
    assert values == pytest.approx(np.vstack([grid, grid]))  # both are y = x


def test_on_grid_averages_values_at_one_step():
    _, values = on_grid([series([0, 0, 10], [0, 2, 12])], num_points=3)
    assert values[0].tolist() == pytest.approx([1, 6.5, 12])


def test_base_env_names_and_matching():
    assert base_env_name("HalfCheetah-v5") == "HalfCheetah"
    assert base_env_name("BreakoutNoFrameskip-v4") == base_env_name("ALE/Breakout-v5") == "Breakout"
    assert base_env_name("tests.probe_envs:LoopTruncated-v0") == "LoopTruncated"
    published = load_published()
    assert {(r.source, r.env_id) for r in matching(published, "HalfCheetah-v5")} == {
        ("CleanRL", "HalfCheetah-v4"),
        ("OpenAI Baselines", "HalfCheetah-v2"),
    }
    assert {(r.mean, r.spread) for r in matching(published, "CartPole-v1")} == {(490.04, 6.12), (497.54, 4.02)}
    assert matching(published, "Pendulum-v1") == []


def test_comparison_note_names_what_differs():
    cleanrl_cheetah = next(r for r in load_published() if r.env_id == "HalfCheetah-v4")
    assert comparison_note("HalfCheetah-v4", 999_424, cleanrl_cheetah) == ""  # whole batches of 2048: the same budget
    assert (
        comparison_note("HalfCheetah-v5", 999_424, cleanrl_cheetah)
        == "env differs: ours HalfCheetah-v5, published HalfCheetah-v4"
    )
    assert "steps differ: ours 500,000, published 1,000,000" in comparison_note(
        "HalfCheetah-v4", 500_000, cleanrl_cheetah
    )


def test_published_table_has_the_issue_numbers_and_says_what_they_mean():
    published = {(r.source, r.env_id): r for r in load_published()}
    expected = {
        ("CleanRL", "CartPole-v1"): (490.04, 6.12), ("CleanRL", "Acrobot-v1"): (-86.36, 1.32),
        ("OpenAI Baselines", "CartPole-v1"): (497.54, 4.02), ("OpenAI Baselines", "Acrobot-v1"): (-81.82, 5.58),
        ("CleanRL", "HalfCheetah-v4"): (1442.64, 46.03), ("CleanRL", "Walker2d-v4"): (2287.95, 571.78),
        ("CleanRL", "Hopper-v4"): (2382.86, 271.74), ("CleanRL", "InvertedPendulum-v4"): (963.09, 22.20),
        ("CleanRL", "Humanoid-v4"): (716.11, 49.08), ("OpenAI Baselines", "HalfCheetah-v2"): (1668.6, None),
        ("OpenAI Baselines", "Hopper-v2"): (2316.2, None), ("OpenAI Baselines", "Walker2d-v2"): (3425.0, None),
        ("OpenAI Baselines", "Swimmer-v2"): (111.2, None), ("OpenAI Baselines", "InvertedPendulum-v2"): (809.4, None),
        ("OpenAI Baselines", "Reacher-v2"): (-6.71, None), ("CleanRL", "BreakoutNoFrameskip-v4"): (414.66, 28.09),
        ("CleanRL", "PongNoFrameskip-v4"): (20.36, 0.20), ("CleanRL", "BeamRiderNoFrameskip-v4"): (1915.93, 484.58),
    }  # fmt: skip
    assert {key: (r.mean, r.spread) for key, r in published.items()} == expected
    assert all(r.spread_meaning and r.env_versions and r.reference for r in published.values())


def test_training_scalars_helper_is_what_the_tests_assume():
    scalars = training_scalars(list(range(10)), 1000, iterations=4)
    assert [step for step, _ in scalars["charts/episodic_return"]][-1] == 1000
    assert [value for _, value in scalars["charts/SPS"]] == [1000, 1010, 1020, 1030]
