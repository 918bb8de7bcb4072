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


def test_parse_sps_reads_the_done_status_line():
    output = (
        "step 1,024/2,048 (50%) | SPS  9,999 | ...\ndone: 2,048 steps in 0:00:01 (9,876 SPS) | return ...\n"
        'PPO_STATUS {"event": "done", "global_step": 2048, "seconds": 1.66, "steps_per_second": 1234.5}\n'
    )
    assert throughput.parse_sps(output) == 1234.5  # the status line, not the line for people
    with pytest.raises(RuntimeError, match="no done status line"):
        throughput.parse_sps("step 1,024/2,048 (50%) | SPS  9,999\ndone: 2,048 steps in 0:00:01 (1,234 SPS)\n")


def test_table_reports_medians_and_ratios():
    table = throughput.throughput_markdown(
        {"cartpole": {"ours": [900.0, 1000.0, 5000.0], "reference": [500.0, 400.0, 450.0], "env_only": [4000.0] * 3}},
        1000,
        1,
    )
    row = next(line for line in table.splitlines() if line.startswith("| cartpole"))
    assert "1,000 (900-5,000)" in row and "450 (400-500)" in row
    assert "2.22x" in row and "0.25" in row  # 1000 / 450 and 1000 / 4000


@pytest.mark.slow
def test_a_tiny_real_measurement(tmp_path):
    samples = throughput.measure(throughput.PRESETS["cartpole"], steps=1024, repeats=1, threads=1)
    assert set(samples) == {"ours", "reference", "env_only"}
    assert all(len(values) == 1 and values[0] > 0 for values in samples.values())


# A script whose main() spends known times in each phase: per iteration, env 0.08 s (a multi-line envs.step(...)
# statement, whose sleep is on its second line), inference 0.04, storage+GAE 0.02 + 0.02, update 0.06, other 0.02;
# 0.4 s outside the loop; it ends with sys.exit(3). Its comments name no phase: phases are read from the code.
SYNTHETIC_SCRIPT = """
import sys
import time


class Envs:
    def step(self, seconds):
        return seconds


class Agent:
    def act(self, seconds):
        time.sleep(seconds)


class Writer:
    def add_scalar(self, seconds):
        time.sleep(seconds)


def wait(seconds):
    time.sleep(seconds)
    return seconds


def main():
    envs, agent, writer = Envs(), Agent(), Writer()
    wait(0.3)
    # --- a comment ---
    for iteration in range(4):
        # ---------------- Update ----------------
        for step in range(2):
            agent.act(0.02)
            envs.step(
                wait(0.04),
            )
            wait(0.01)
        # ---------------- Rollout ----------------
        wait(0.01 + 0.01)
        for epoch in range(1):
            wait(0.06)
        writer.add_scalar(0.02)
    wait(0.1)


if __name__ == "__main__":
    main()
    sys.exit(3)
"""


def test_line_phases_follow_the_code_and_whole_statements():
    phase = line_phases(SYNTHETIC_SCRIPT)
    line = {text.strip(): number for number, text in enumerate(SYNTHETIC_SCRIPT.splitlines(), 1)}
    assert phase[line["wait(0.04),"]] == phase[line["envs.step("]] == "env"  # one statement, all its lines
    assert phase[line["agent.act(0.02)"]] == "inference"
    assert phase[line["for step in range(2):"]] == phase[line["wait(0.01)"]] == "storage+gae"  # a header: its own text
    assert phase[line["wait(0.01 + 0.01)"]] == "storage+gae"
    assert phase[line["for epoch in range(1):"]] == phase[line["wait(0.06)"]] == "update"
    assert phase[line["writer.add_scalar(0.02)"]] == "other"
    assert phase[line["wait(0.3)"]] == phase[line["wait(0.1)"]] == phase[line["for iteration in range(4):"]] == "setup"
    without_comments = "\n".join(text.split("#")[0].rstrip() for text in SYNTHETIC_SCRIPT.splitlines())
    assert line_phases(without_comments) == phase  # comments, banners included, play no part


def test_line_phases_of_the_scripts_find_each_phase():
    for script in ("ppo_discrete.py", "ppo_atari.py", "ppo_continuous_seeds.py"):
        source = (throughput.REPO / script).read_text()
        phase = line_phases(source)
        line = {text.strip(): number for number, text in reversed(list(enumerate(source.splitlines(), 1)))}  # first
        step = next(text for text in source.splitlines() if "= envs.step(" in text).strip()
        assert phase[line[step]] == "env", script
        assert phase[line["for epoch in range(args.update_epochs):"]] == "update", script
        assert phase[line[next(text for text in line if text.startswith("advantages, returns = compute_gae("))]] == (
            "storage+gae"
        ), script
        assert {phase[number] for number, text in enumerate(source.splitlines(), 1) if "agent.get_value(" in text
                and "final_obs" in text} == {"inference"}, script  # fmt: skip
        assert phase[line['writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)']] \
            == "other", script  # fmt: skip


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


def test_parse_done_reads_the_parent_and_the_batched_done_status_lines():
    parent = (
        "step 512/1,024 | SPS 99\n"
        'PPO_STATUS {"event": "done", "global_step": 1024, "seconds": 0.8, "steps_per_second": 1234.0}\n'
    )
    batched = (
        'PPO_STATUS {"event": "resumed", "iteration": 1, "num_iterations": 2, "global_step": 512}\n'
        'PPO_STATUS {"event": "done", "global_step": 1024, "seeds": 4, "seconds": 1.7, '
        '"seed_steps_per_second": 2345.0}\n'
    )
    assert throughput.parse_done(parent) == (1024, 1234.0)
    assert throughput.parse_done(batched) == (1024, 2345.0)
    with pytest.raises(RuntimeError, match="no done status line"):
        throughput.parse_done("step 512/1,024 | SPS 99\n")


def test_seed_groups_and_pool_seconds():
    assert throughput.seed_groups(3, 0) == [[1], [2], [3]]  # the parent: a seed a process
    assert throughput.seed_groups(4, 1) == [[1, 2, 3, 4]]
    assert throughput.seed_groups(4, 2) == [[1, 2], [3, 4]] and throughput.seed_groups(5, 2) == [[1, 2], [3, 4, 5]]
    assert throughput.pool_seconds([2.0, 2.0, 2.0, 2.0], workers=2) == 4.0
    assert throughput.pool_seconds([3.0, 1.0, 1.0], workers=2) == 3.0  # the two short ones share a worker
    assert throughput.pool_seconds([1.0, 1.0, 1.0], workers=2) == 2.0  # an odd one out waits for a free worker
    assert throughput.pool_seconds([2.5], workers=2) == 2.5


def scaling_sample(seed_steps: int, loop_s: float, wall_s: float, peak_rss_mb: float) -> dict:
    return {"seed_steps": seed_steps, "loop_s": loop_s, "wall_s": wall_s,
            "processes": [{"steps": 100, "peak_rss_mb": peak_rss_mb}]}  # fmt: skip


def test_seeds_rows_take_medians_and_the_better_batched_layout():
    samples = {  # 400 seed-steps each: rates 400 / seconds
        "parent": [scaling_sample(400, s, 2 * s, 300.0) for s in (1.0, 2.0, 4.0)],  # median 200, wall 100
        "batched_1x2": [scaling_sample(400, s, s + 1, p) for s, p in ((0.5, 350.0), (0.8, 360.0), (1.0, 355.0))],
        "batched_2x1": [scaling_sample(400, s, s + 3, 340.0) for s in (0.4, 0.5, 2.0)],  # median 800, wall 400 / 3.5
    }
    rows = throughput.seeds_rows({"CartPole-v1": {4: samples}}, {"CartPole-v1": "ppo_discrete.py"})
    (row,) = rows
    assert row["batched_script"] == "ppo_discrete_seeds.py" and row["steps_per_seed"] == 100 and row["repeats"] == 3
    assert row["parent_rate"] == 200.0 and (row["parent_rate_min"], row["parent_rate_max"]) == (100.0, 400.0)
    assert row["batched_1x2_rate"] == 500.0 and row["batched_2x1_rate"] == 800.0
    assert row["best_layout"] == "batched_2x1" and row["best_ratio"] == pytest.approx(4.0)
    # on the wall clock, start-up included, the one-process layout wins: 400 / 1.8 against 400 / 3.5
    assert row["best_layout_wall"] == "batched_1x2" and row["best_ratio_wall"] == pytest.approx((400 / 1.8) / 100)
    assert row["batched_1x2_peak_rss_mb"] == 360.0 and row["parent_peak_rss_mb"] == 300.0
    table = throughput.seeds_markdown(rows)
    cells = [cell.strip() for cell in table.splitlines()[-1].strip("|").split("|")]
    assert cells == ["CartPole-v1", "4", "200 (100-400)", "500 (400-800)", "800 (200-1,000)", "4.00x (2x1-thread)",
                     "360"]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_real_seeds_scaling(tmp_path):
    """The mode end to end on the real scripts, as sweeps (CartPole, N 1 and 2, one iteration, one repeat): the
    commands the sweep ran, and the CSV, markdown and PNG agree with each other and with the raw figures."""
    import csv

    import matplotlib.image

    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmark.throughput", "--seeds-scaling", "--env-ids", "CartPole-v1",
               "--num-seeds", "2", "1", "--steps", "512", "--repeats", "1", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=throughput.REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    raw = json.loads((out / "seeds_scaling.json").read_text())["measurements"]["CartPole-v1"]
    assert sorted(raw) == ["1", "2"] and sorted(raw["1"]) == ["batched_1x2", "parent"]
    assert sorted(raw["2"]) == ["batched_1x2", "batched_2x1", "parent"]
    (parent,), (one,), (two,) = raw["2"]["parent"], raw["2"]["batched_1x2"], raw["2"]["batched_2x1"]

    def flag(process, name, count=1):
        return process["command"][process["command"].index(name) + 1 :][:count]

    assert (parent["threads"], parent["workers"], len(parent["processes"])) == (1, 2, 2)
    assert [flag(process, "--seed") for process in parent["processes"]] == [["1"], ["2"]]
    assert all(process["command"][1] == "ppo_discrete.py" for process in parent["processes"])
    assert (one["threads"], one["workers"], len(one["processes"])) == (2, 1, 1)
    assert one["processes"][0]["command"][1] == "ppo_discrete_seeds.py"
    assert flag(one["processes"][0], "--seeds", 2) == ["1", "2"] and flag(one["processes"][0], "--torch-threads") == [
        "2"
    ]
    assert (two["threads"], two["workers"]) == (1, 2)
    assert [process["seeds"] for process in two["processes"]] == [[1], [2]]
    assert all(flag(process, "--torch-threads") == ["1"] for process in two["processes"])
    for sample in (parent, one, two):
        assert sample["seed_steps"] == 2 * 512 and all(process["steps"] == 512 for process in sample["processes"])
        assert sample["loop_s"] == pytest.approx(
            throughput.pool_seconds([process["loop_s"] for process in sample["processes"]], sample["workers"])
        )
        assert 0 < sample["loop_s"] < sample["wall_s"]  # start-up is outside the loop

    with open(out / "seeds_scaling.csv") as file:
        rows = list(csv.DictReader(file))
    assert [(row["env_id"], row["num_seeds"]) for row in rows] == [("CartPole-v1", "1"), ("CartPole-v1", "2")]
    for row in rows:
        n = row["num_seeds"]
        assert row["script"] == "ppo_discrete.py" and row["batched_script"] == "ppo_discrete_seeds.py"
        assert row["steps_per_seed"] == "512" and row["repeats"] == "1"
        for name in ("parent", "batched_1x2", "batched_2x1"):
            if name not in raw[n]:
                assert row[f"{name}_rate"] == "" and row[f"{name}_peak_rss_mb"] == ""
                continue
            (sample,) = raw[n][name]
            assert float(row[f"{name}_rate"]) == pytest.approx(sample["seed_steps"] / sample["loop_s"])
            assert row[f"{name}_rate"] == row[f"{name}_rate_min"] == row[f"{name}_rate_max"]  # one repeat
            assert float(row[f"{name}_wall_rate"]) == pytest.approx(sample["seed_steps"] / sample["wall_s"])
            assert float(row[f"{name}_peak_rss_mb"]) == max(process["peak_rss_mb"] for process in sample["processes"])
            assert float(row[f"{name}_peak_rss_mb"]) > 0
        batched = {name: float(row[f"{name}_rate"]) for name in ("batched_1x2", "batched_2x1") if row[f"{name}_rate"]}
        assert row["best_layout"] == max(batched, key=batched.get)
        assert float(row["best_ratio"]) == pytest.approx(max(batched.values()) / float(row["parent_rate"]))

    table = (out / "seeds_scaling.md").read_text()
    assert table.startswith("`python -m benchmark.throughput --seeds-scaling --env-ids CartPole-v1")
    table_rows = [line for line in table.splitlines() if line.startswith("| CartPole-v1")]
    assert len(table_rows) == 2
    for line, row in zip(table_rows, rows):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1] == row["num_seeds"]
        assert cells[2].startswith(f"{float(row['parent_rate']):,.0f} (")
        assert cells[3].startswith(f"{float(row['batched_1x2_rate']):,.0f} (")
        if row["num_seeds"] == "1":
            assert cells[4] == "-"
        else:
            assert cells[4].startswith(f"{float(row['batched_2x1_rate']):,.0f} (")
        ratio, layout = cells[5].split()
        assert ratio == f"{float(row['best_ratio']):.2f}x" and layout == f"({row['best_layout'][-3:]}-thread)"
        assert cells[6] == f"{float(row['batched_1x2_peak_rss_mb']):,.0f}"

    image = matplotlib.image.imread(out / "seeds_scaling.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0
    assert "CartPole-v1 x 2 seeds, repeat 1/1" in result.stdout
