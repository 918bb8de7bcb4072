"""Shared helpers: run a script as a user would (its own process, forked from tests/zygote.py) and read back its
TensorBoard events.

Where each feature is tested:
    GAE, clipped/unclipped/KL-penalty objectives, KL estimators, value clipping,
      explained variance, the categorical policy ...................... test_ppo_discrete.py (the shared functions)
    the four policy objectives and adaptive beta/epsilon, per script ... test_objectives.py
    Gaussian policy, observation/reward normalization, MuJoCo, video ... test_ppo_continuous.py
    Atari wrappers, Nature CNN, bfloat16, async envs ................... test_ppo_atari.py
    one flat parameter tensor for Adam and clipping .................... test_flat_parameters.py
    checkpoints, exact resume, signals, NaN guard, faulty checkpoints .. test_checkpoints.py
    bad input: one line, exit 2, nothing written ....................... test_bad_input.py (and each script's file)
    shared blocks line-identical; PPO above main(), line budgets ....... test_shared_blocks.py, test_layout.py
    benchmark/: sweeps (local, Slurm), resume, reports, throughput ..... test_benchmark_*.py
    the seeds variants against their parents ........................... test_seeds_variants.py
    run_script's forked runs equal fresh ones (tests/zygote.py) ........ test_zygote.py
"""

import ast
import atexit
import functools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, cwd=None, timeout: float = 600, extra_env=None) -> subprocess.CompletedProcess:
    """Run `python <script> <args>` from `cwd` with OMP_NUM_THREADS=1 (pass --torch-threads to fix the script's
    own thread count where its default is not 1: results repeat exactly only at a fixed count). The process is
    forked from tests/zygote.py, which has the heavy imports done (a fresh interpreter when
    PPO_TESTS_FRESH_PROCESSES=1, or while another thread of this test process is using the zygote)."""
    command, env = [sys.executable, str(REPO / script), *args], script_env(extra_env)
    zygote = Zygote.acquire(env)
    if zygote is None:
        return subprocess.run(command, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        return zygote.run(command, cwd or REPO, env, timeout)
    finally:
        Zygote.lock.release()


# Environment variables that the zygote's imports read (thread counts, the interpreter's own): a run whose values
# differ gets a zygote started with them. Every other variable is set in the child before the script starts.
IMPORT_TIME = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_", "PYTHON", "TORCH_", "LD_", "CUDA")


class Zygote:
    """The tests' side of tests/zygote.py: one per test process, started on first use, serving one run at a time."""

    instance = None
    lock = threading.Lock()

    def __init__(self, env: dict):
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "zygote.py")], cwd=REPO, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.buffer = b""
        atexit.register(self.process.stdin.close)  # the zygote ends when its input does

    @classmethod
    def acquire(cls, env: dict) -> "Zygote | None":
        """The zygote, locked for one run, started anew if it is not running or was started with other values of
        the IMPORT_TIME variables than `env`; None when fresh processes are asked for or the zygote is in use."""
        if os.environ.get("PPO_TESTS_FRESH_PROCESSES") == "1" or not cls.lock.acquire(blocking=False):
            return None
        zygote = cls.instance
        if zygote is not None and zygote.process.poll() is None:
            keys = {key for key in {*env, *zygote.env} if key.startswith(IMPORT_TIME)}
            if all(zygote.env.get(key) == env.get(key) for key in keys):
                return zygote
            zygote.process.stdin.close()
            zygote.process.wait()
        cls.instance = Zygote(env)
        return cls.instance

    def reply(self, timeout: float | None) -> dict:
        """The zygote's next reply line, or TimeoutError after `timeout` seconds."""
        fd = self.process.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("tests/zygote.py ended")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, command: list, cwd, env: dict, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="zygote-") as tmp:
            stdout, stderr = Path(tmp) / "stdout", Path(tmp) / "stderr"
            stdout.touch(), stderr.touch()
            request = {"argv": command[1:], "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            pid = self.reply(60)["pid"]
            try:
                returncode = self.reply(timeout)["returncode"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self.reply(60)
                raise subprocess.TimeoutExpired(command, timeout, stdout.read_text(), stderr.read_text()) from None
            return subprocess.CompletedProcess(command, returncode, stdout.read_text(), stderr.read_text())


def script_env(extra_env=None) -> dict:
    """The environment the scripts run in under test: one OpenMP thread, W&B offline, headless rendering."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        WANDB_MODE="offline",
        SDL_VIDEODRIVER="dummy",
        MUJOCO_GL="egl",
    )
    env.update(extra_env or {})
    return env


def read_scalars(run_dir) -> dict:
    """{tag: [(step, value), ...]} from the TensorBoard event files in run_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


# The scalars every script logs against global_step, read back from the TensorBoard events by the tests.
EXPECTED_KEYS = [
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/learning_rate",
    "charts/SPS",
    "losses/value_loss",
    "losses/policy_loss",
    "losses/entropy",
    "losses/old_approx_kl",
    "losses/approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
    "losses/grad_norm",
    "losses/exact_kl",
    "charts/kl_beta",
    "charts/clip_coef",
]

# Bad arguments every script rejects the same way (check_args is one of the blocks they share).
ARGUMENT_CHECKS = [
    (("--num-minibatches", "3"), "does not divide"),
    (("--num-envs", "0"), "--num-envs must be positive"),
    (("--num-steps", "-1"), "--num-steps must be positive"),
    (("--clip-coef", "0"), "--clip-coef must be positive"),
    (("--gamma", "1.5"), "--gamma must be in [0, 1]"),
    (("--gae-lambda", "-0.1"), "--gae-lambda must be in [0, 1]"),
    (("--kl-target", "0"), "--kl-target must be positive"),
    (("--kl-beta", "-1"), "--kl-beta must be non-negative"),
    (
        ("--policy-objective", "kl-fixed", "--adaptive-clip"),
        "--adaptive-clip adapts the clip range of --policy-objective clip",
    ),
    (("--total-timesteps", "100"), "less than one batch"),
    (("--eval-checkpoint", "missing.pt"), "no checkpoint"),
]


def assert_usage_error(result: subprocess.CompletedProcess, script: str, message: str) -> None:
    """Bad input ends in exit code 2 and one line on stderr, `<script>: error: <message>`, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error:") and message in lines[0], result.stderr


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- scheduling on xdist workers (--dist loadgroup)


@functools.cache
def shared_fixtures(path: Path) -> frozenset:
    """The fixtures that the test module at `path` defines wider than one test and does not use automatically: its
    shared training runs and sweeps, which each worker running one of their tests would make again. Read from the
    module's syntax tree (`@pytest.fixture(scope="module", ...)`): pytest tells a fixture's scope to plugins only
    through its internals."""
    fixtures = set()
    for node in ast.parse(path.read_text()).body:
        for decorator in getattr(node, "decorator_list", []):
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.fixture":
                options = {keyword.arg: keyword.value for keyword in decorator.keywords}
                scope = ast.literal_eval(options["scope"]) if "scope" in options else "function"
                autouse = "autouse" in options and ast.literal_eval(options["autouse"])
                if scope != "function" and not autouse:
                    fixtures.add(ast.literal_eval(options["name"]) if "name" in options else node.name)
    return frozenset(fixtures)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks into the node ids
def pytest_collection_modifyitems(config, items):
    """Under --dist loadgroup, the tests of a module that share one of its module-scoped fixtures form one group
    (one worker, fixture made once; a parametrized fixture's instances go together), and every other test is a unit
    of its own, handed to whichever worker is free: no module's whole runtime lands on one worker. Groups are sent
    first (xdist orders units by size), then the checks marked slow, so that the last tests to start are short ones."""
    if not config.getoption("loadgroup", False):  # set by xdist on its workers under --dist loadgroup
        return  # -n 0, or another --dist: collection order as written
    slow_singles = set()
    for item in items:
        shared = sorted(shared_fixtures(item.path) & set(item.fixturenames))
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.path.name}:{'+'.join(shared)}"))
        elif item.get_closest_marker("slow"):
            slow_singles.add(item)
    items.sort(key=lambda item: item not in slow_singles)  # stable: the slow checks first, the rest as written
