"""benchmark.throughput: SPS parsing, the ratio table, and one real tiny side-by-side measurement."""

import pytest

from benchmark import throughput


def test_parse_sps_reads_the_done_line():
    output = "step 1,024/2,048 (50%) | SPS  9,999 | ...\ndone: 2,048 steps in 0:00:01 (1,234 SPS) | return ...\n"
    assert throughput.parse_sps(output) == 1234.0
    with pytest.raises(RuntimeError, match="no 'done:' line"):
        throughput.parse_sps("step 1,024/2,048 (50%) | SPS  9,999\n")


def test_table_reports_medians_and_ratios():
    table = throughput.markdown_table({"cartpole": {"ours": [900.0, 1000.0, 5000.0], "reference": [500.0, 400.0, 450.0], "env_only": [4000.0] * 3}}, 1000, 1)
    row = next(line for line in table.splitlines() if line.startswith("| cartpole"))
    assert "1,000 (900-5,000)" in row and "450 (400-500)" in row
    assert "2.22x" in row and "0.25" in row  # 1000 / 450 and 1000 / 4000


def test_a_tiny_real_measurement(tmp_path):
    samples = throughput.measure(throughput.PRESETS["cartpole"], steps=1024, repeats=1, threads=1)
    assert set(samples) == {"ours", "reference", "env_only"}
    assert all(len(values) == 1 and values[0] > 0 for values in samples.values())
