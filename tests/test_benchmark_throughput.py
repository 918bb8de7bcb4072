"""benchmark.throughput and benchmark.phases: SPS parsing, the table, phase shares of a script with known
times, the script's own env for the env-only limit, the reference's Atari mode, and tiny real measurements."""

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmark import throughput
from benchmark import phases
from benchmark.phases import line_phases


def test_parse_sps_reads_the_done_line():
    output = "step 1,024/2,048 (50%) | SPS  9,999 | ...\ndone: 2,048 steps in 0:00:01 (1,234 SPS) | return ...\n"
    assert throughput.parse_sps(output) == 1234.0
    with pytest.raises(RuntimeError, match="no 'done:' line"):
        throughput.parse_sps("step 1,024/2,048 (50%) | SPS  9,999\n")


def test_table_reports_medians_and_ratios():
    table = throughput.throughput_markdown(
        {"cartpole": {"ours": [900.0, 1000.0, 5000.0], "reference": [500.0, 400.0, 450.0], "env_only": [4000.0] * 3}},
        1000,
        1,
    )
    row = next(line for line in table.splitlines() if line.startswith("| cartpole"))
    assert "1,000 (900-5,000)" in row and "450 (400-500)" in row
    assert "2.22x" in row and "0.25" in row  # 1000 / 450 and 1000 / 4000


def test_a_tiny_real_measurement(tmp_path):
    samples = throughput.measure(throughput.PRESETS["cartpole"], steps=1024, repeats=1, threads=1)
    assert set(samples) == {"ours", "reference", "env_only"}
    assert all(len(values) == 1 and values[0] > 0 for values in samples.values())


# A script whose main() spends known times in each phase: per iteration, env 0.08 s (a multi-line envs.step(...)
# statement, whose sleep is on its second line), inference 0.04, storage+GAE 0.02 + 0.02, update 0.06, other 0.02;
# 0.4 s outside the loop; it ends with sys.exit(3).
SYNTHETIC_SCRIPT = """
import sys
import time


class Envs:
    def step(self, seconds):
        return seconds


class Agent:
    def act(self, seconds):
        time.sleep(seconds)


def wait(seconds):
    time.sleep(seconds)
    return seconds


def main():
    envs, agent = Envs(), Agent()
    wait(0.3)
    # --- Environments: none ---
    for iteration in range(4):
        # ---------------- Rollout: two steps ----------------
        for step in range(2):
            agent.act(0.02)
            envs.step(
                wait(0.04),
            )
            wait(0.01)
        # ---------------- Advantages: GAE ----------------
        wait(0.01 + 0.01)
        # ---------------- Update ----------------
        wait(0.06)
        # ---------------- Logging ----------------
        wait(0.02)
    # --- Finish: done ---
    wait(0.1)


if __name__ == "__main__":
    main()
    sys.exit(3)
"""


def test_line_phases_follow_sections_and_whole_statements():
    phase = line_phases(SYNTHETIC_SCRIPT)
    line = {text.strip(): number for number, text in enumerate(SYNTHETIC_SCRIPT.splitlines(), 1)}
    assert phase[line["wait(0.04),"]] == phase[line["envs.step("]] == "env"  # one statement, all its lines
    assert phase[line["agent.act(0.02)"]] == "inference"
    assert phase[line["for step in range(2):"]] == phase[line["wait(0.01)"]] == "storage+gae"  # a header: its own text
    assert phase[line["wait(0.01 + 0.01)"]] == "storage+gae" and phase[line["wait(0.06)"]] == "update"
    assert phase[line["wait(0.02)"]] == "other"
    assert phase[line["wait(0.3)"]] == phase[line["wait(0.1)"]] == phase[line["for iteration in range(4):"]] == "setup"


def test_phase_shares_of_a_script_with_known_times(tmp_path):
    script, out = tmp_path / "synthetic.py", tmp_path / "phases.json"
    script.write_text(SYNTHETIC_SCRIPT)
    command = [sys.executable, "-m", "benchmark.phases", "--out", str(out), "--", str(script), "--any", "args"]
    result = subprocess.run(command, cwd=throughput.REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    summary = json.loads(out.read_text())  # written although the script ended with sys.exit(3)
    assert summary["exit_code"] == 3 and summary["args"] == ["--any", "args"]
    expected = {"env": 0.08, "inference": 0.04, "storage+gae": 0.04, "update": 0.06, "other": 0.02}
    for phase, seconds in expected.items():
        assert summary["shares"][phase] == pytest.approx(seconds / 0.24, abs=0.08), (phase, summary["shares"])
    assert sum(summary["shares"].values()) == pytest.approx(1.0)
    assert summary["setup_s"] == pytest.approx(0.4, abs=0.25)
    assert summary["samples"]["env"] > 0 and summary["peak_rss_mb"] > 0


# Env steps that hold the GIL (pure Python, as classic-control envs) beside inference that releases it (as torch
# kernels do), 0.3 ms each: a sampler that needs the GIL to look (a thread) would see no env time at all. The
# script measures the wall time each phase really took (on a loaded machine, sleep(0) can hand the core away
# for longer than 0.3 ms) and writes it to the file named by its first argument.
GIL_SCRIPT = """
import json
import sys
import time

TOOK = {"env": 0.0, "inference": 0.0}


def spin(seconds):
    start = time.perf_counter()
    while time.perf_counter() < start + seconds:
        pass
    TOOK["env"] += time.perf_counter() - start


def release(seconds):
    start = time.perf_counter()
    while time.perf_counter() < start + seconds:
        time.sleep(0)
    TOOK["inference"] += time.perf_counter() - start


class Envs:
    def step(self, seconds):
        spin(seconds)


class Agent:
    def act(self, seconds):
        release(seconds)


def main():
    envs, agent = Envs(), Agent()
    # ---------------- Rollout: ----------------
    for step in range(1000):
        envs.step(0.0003)
        agent.act(0.0003)
    with open(sys.argv[1], "w") as file:
        json.dump(TOOK, file)
"""


def test_phase_shares_see_code_that_holds_the_gil(tmp_path):
    script, out, took = tmp_path / "gil.py", tmp_path / "phases.json", tmp_path / "took.json"
    script.write_text(GIL_SCRIPT + "\n\nmain()\n")
    assert phases.profile(script, [str(took)], out) == 0
    shares, seconds = json.loads(out.read_text())["shares"], json.loads(took.read_text())
    env_share = seconds["env"] / (seconds["env"] + seconds["inference"])  # 0.5 on an idle machine
    assert shares["env"] == pytest.approx(env_share, abs=0.08) and shares["inference"] == pytest.approx(
        1 - env_share, abs=0.08
    ), (shares, seconds)


def test_env_only_uses_the_scripts_own_make_env():
    envs = throughput.script_vector_env(throughput.PRESETS["breakout"])
    try:
        assert envs.num_envs == 8 and envs.single_observation_space.shape == (4, 84, 84)
        assert envs.single_observation_space.dtype == np.uint8  # the script's preprocessing, frame stack included
    finally:
        envs.close()
    assert throughput.env_only_sps(throughput.PRESETS["breakout"], steps=256) > 0


def test_naive_ppo_atari_mode_runs_one_iteration():
    command = [sys.executable, "-m", "benchmark.reference.naive_ppo", "--atari", "--env-id", "BreakoutNoFrameskip-v4",
               "--num-envs", "2", "--num-steps", "16", "--total-timesteps", "32"]  # fmt: skip
    assert throughput.run_and_time(command, threads=1) > 0


def test_table_has_the_phase_columns():
    samples = {"ours": [1000.0], "reference": [500.0], "env_only": [4000.0]}
    summary = {
        "shares": {"env": 0.5, "inference": 0.2, "storage+gae": 0.1, "update": 0.15, "other": 0.05},
        "setup_s": 2.54,
        "peak_rss_mb": 1234.4,
    }
    table = throughput.throughput_markdown(
        {"cartpole": samples, "breakout": samples}, 1000, {"cartpole": 1, "breakout": 2}, {"cartpole": summary}
    )
    header = next(line for line in table.splitlines() if line.startswith("| preset"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "preset", "ours SPS", "straightforward", "env only", "ours / straightforward", "ours / env only",
        "env", "inference", "storage+GAE", "update", "other", "setup s", "peak RSS MB",
    ]  # fmt: skip
    cartpole = next(line for line in table.splitlines() if line.startswith("| cartpole"))
    assert [cell.strip() for cell in cartpole.strip("|").split("|")][4:] == [
        "2.00x",
        "0.25",
        "50%",
        "20%",
        "10%",
        "15%",
        "5%",
        "2.5",
        "1,234",
    ]
    breakout = next(line for line in table.splitlines() if line.startswith("| breakout"))
    assert breakout.count("| - ") == 7  # no profiled run: dashes
    assert "OMP_NUM_THREADS=1 (cartpole), 2 (breakout)" in table


def test_a_tiny_real_phase_measurement():
    summary = throughput.measure_phases(throughput.PRESETS["cartpole"], steps=1024)
    shares = summary["shares"]
    assert set(shares) == {"env", "inference", "storage+gae", "update", "other"}
    assert all(0.0 <= share <= 1.0 for share in shares.values()) and sum(shares.values()) == pytest.approx(1.0)
    assert shares["env"] > 0 and shares["update"] > 0 and summary["peak_rss_mb"] > 0 and summary["exit_code"] == 0
