"""benchmark.diagnostics on event files written here with known values: exact percentiles, pooled and by halves."""

import math

import pytest

from benchmark import diagnostics


def write_run(run_dir, values: dict) -> None:
    """A run directory with one event file: each tag's values logged at steps 0, 1, 2, ..."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    for tag, series in values.items():
        for step, value in enumerate(series):
            writer.add_scalar(tag, value, step)
    writer.close()


@pytest.fixture
def runs(tmp_path):
    """Family "a": runs a1 (clipfrac 0..100, an explained variance that is NaN once) and a2 (clipfrac 101..201);
    family "b": run b1 (clipfrac 0..49)."""
    write_run(tmp_path / "a" / "a1", {"losses/clipfrac": range(101), "losses/explained_variance": [0.5, math.nan, 1.0]})
    write_run(tmp_path / "a" / "a2", {"losses/clipfrac": range(101, 202)})
    write_run(tmp_path / "b" / "b1", {"losses/clipfrac": range(50)})
    return tmp_path


def test_percentiles_of_one_run(runs):
    values = diagnostics.pooled_values([runs / "a" / "a1"], ["losses/clipfrac"])["losses/clipfrac"]
    assert values.tolist() == list(range(101))
    assert diagnostics.percentiles(values) == [5.0, 50.0, 95.0]


def test_runs_of_a_group_are_pooled(runs):
    run_dirs = diagnostics.find_runs(runs / "a")
    assert [path.name for path in run_dirs] == ["a1", "a2"]
    values = diagnostics.pooled_values(run_dirs, ["losses/clipfrac"])["losses/clipfrac"]
    assert diagnostics.percentiles(values, [0, 50, 100]) == [0.0, 100.5, 201.0]


def test_early_and_late_halves_split_each_run(runs):
    one = [runs / "a" / "a1"]
    early = diagnostics.pooled_values(one, ["losses/clipfrac"], "early")["losses/clipfrac"]
    late = diagnostics.pooled_values(one, ["losses/clipfrac"], "late")["losses/clipfrac"]
    assert (early.tolist(), late.tolist()) == (list(range(50)), list(range(50, 101)))  # the odd middle one is late
    assert diagnostics.percentiles(early) == [2.45, 24.5, 46.55]
    assert diagnostics.percentiles(late) == [52.5, 75.0, 97.5]


def test_non_finite_values_are_left_out_and_missing_tags_skipped(runs):
    pooled = diagnostics.pooled_values([runs / "a" / "a1"], ["losses/explained_variance", "losses/grad_norm"])
    assert list(pooled) == ["losses/explained_variance"]
    assert diagnostics.percentiles(pooled["losses/explained_variance"], [0, 50, 100]) == [0.5, 0.75, 1.0]
    assert all(math.isnan(p) for p in diagnostics.percentiles(pooled["losses/explained_variance"][1:2]))


def test_command_line_prints_a_markdown_row_per_group_tag_and_part(runs, capsys):
    code = diagnostics.main([f"first={runs / 'a'}", str(runs / "b"), "--tags", "losses/clipfrac", "--halves"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == "| group | tag | part | runs | values | p5 | p50 | p95 |"
    assert "| first | `losses/clipfrac` | all | 2 | 202 | 10.1 | 100 | 191 |" in lines
    assert "| b | `losses/clipfrac` | early | 1 | 25 | 1.2 | 12 | 22.8 |" in lines
    assert len(lines) == 2 + 2 * 3


def test_a_directory_without_runs_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        diagnostics.main([str(tmp_path)])
    assert stopped.value.code == 2
    assert "no TensorBoard event files" in capsys.readouterr().err
