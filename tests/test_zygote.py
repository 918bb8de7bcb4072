"""tests/zygote.py, the forking server run_script uses: a run forked from it must be the run a fresh interpreter
makes (same events bit for bit, same exit codes, same one-line errors and tracebacks), or the speed-up would change
what every other test checks."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, Zygote, read_scalars, run_script, script_env

pytestmark = pytest.mark.skipif(os.environ.get("PPO_TESTS_FRESH_PROCESSES") == "1", reason="no zygote asked for")
TINY = ["--env-id", "CartPole-v1", "--num-envs", "2", "--num-steps", "64", "--total-timesteps", "256"]
PROBE = """import os, sys
print("name", __name__, "argv", sys.argv[1:], "cwd", os.getcwd(), "parent", os.getppid(), "stdin", sys.stdin.read())
print("to stderr", file=sys.stderr)
if sys.argv[1] == "raise":
    raise ValueError("from the probe")
if sys.argv[1] == "sleep":
    import time
    time.sleep(60)
sys.exit(int(sys.argv[1]))
"""


def fresh_run(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, env=script_env(), capture_output=True, text=True
    )


def test_a_forked_training_run_logs_what_a_fresh_interpreter_logs(tmp_path):
    forked = run_script("ppo_discrete.py", *TINY, "--output-dir", str(tmp_path), "--run-name", "forked")
    assert Zygote.instance is not None and Zygote.instance.process.poll() is None, "run_script did not use the zygote"
    fresh = fresh_run("ppo_discrete.py", *TINY, "--output-dir", str(tmp_path), "--run-name", "fresh", cwd=tmp_path)
    assert forked.returncode == fresh.returncode == 0, forked.stderr + fresh.stderr
    forked_scalars, fresh_scalars = read_scalars(tmp_path / "forked"), read_scalars(tmp_path / "fresh")
    assert set(forked_scalars) == set(fresh_scalars) and len(forked_scalars) > 10
    for tag in set(fresh_scalars) - {"charts/SPS"}:
        assert forked_scalars[tag] == fresh_scalars[tag], tag
    assert forked.stdout.splitlines()[-2].startswith("done: 256 steps")
    assert json.loads(forked.stdout.splitlines()[-1].removeprefix("PPO_STATUS "))["global_step"] == 256


@pytest.mark.parametrize("args", [["--num-envs", "0"], ["--env-id", "NoSuchEnv-v0"], ["--learning-rate", "nan"]])
def test_bad_input_forked_and_fresh_ends_the_same_way(args, tmp_path):
    forked, fresh = (
        run_script("ppo_discrete.py", *args, cwd=tmp_path),
        fresh_run("ppo_discrete.py", *args, cwd=tmp_path),
    )
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == 2 and forked.stderr.startswith("ppo_discrete.py: error:")


def test_the_child_is_a_script_run_of_its_own(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = run_script(str(probe), "3", cwd=tmp_path)  # REPO / an absolute path is that path
    parent = Zygote.instance.process.pid
    assert result.returncode == 3
    assert result.stdout == f"name __main__ argv ['3'] cwd {tmp_path} parent {parent} stdin \n"
    assert result.stderr == "to stderr\n"

    raised = run_script(str(probe), "raise", cwd=tmp_path)  # an uncaught exception: traceback and exit 1
    assert raised.returncode == 1
    assert "Traceback" in raised.stderr and raised.stderr.rstrip().endswith("ValueError: from the probe")

    with pytest.raises(subprocess.TimeoutExpired):
        run_script(str(probe), "sleep", cwd=tmp_path, timeout=1)
    assert run_script(str(probe), "0", cwd=tmp_path).returncode == 0  # and the zygote serves the next run
