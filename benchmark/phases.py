"""Where a script's training loop spends its time: env stepping, inference, storage and GAE, update, the rest.

    python -m benchmark.phases --out phases.json -- ppo_discrete.py --total-timesteps 20480

Runs the script in this process (as `python SCRIPT.py ARGS` would: its `__main__` block, its exit code) while
a timer signal samples, about every millisecond, which line of the script's main() is executing (LineSampler). Each line
belongs to a phase, read from the structure of main()'s code (its syntax tree), never from its comments: the training
loop is the `for` loop that holds the rollout's `for step in ...` loop (or main() itself, if none does), and each
statement of its body falls in

  the statement holding the rollout loop  a statement calling `envs.step(...)` -> env, one calling a method of an
                                          object named *agent -> inference, any other -> storage+gae
  after it, up to the update              storage+gae (GAE, flattening the batch)
  from the one holding the update's       update (the epochs of minibatches, then the update's statistics)
  `for epoch in ...` loop
  from the first call on `writer` on      other (logging, progress, checkpoint)
  before the rollout                      other (learning-rate annealing)

Every other line of main() (setup and finish, the training loop's own header), and samples with main() not on the
stack (imports, the script's own wrapping), are setup.

The JSON written (even when the script exits by SystemExit) holds the loop phases' shares (they sum to 1),
the seconds and sample counts per phase, the seconds outside the loop (`setup_s`: imports, setup and
finish), the peak RSS of the process in MB, and the script's exit code.
"""

import argparse
import ast
import resource
import runpy
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Sequence

from benchmark.atomic import write_json_atomic

LOOP_PHASES = ("env", "inference", "storage+gae", "update", "other")
SETUP = "setup"
COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar, ast.Match,
            ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)  # fmt: skip


def find_main(tree: ast.Module) -> ast.FunctionDef:
    return next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")


def loop_over(node: ast.AST, name: str) -> bool:
    """Whether `node` is, or holds, a `for NAME in ...` loop."""
    return any(isinstance(child, ast.For) and isinstance(child.target, ast.Name) and child.target.id == name
               for child in ast.walk(node))  # fmt: skip


def calls_method_of(parts: list, owner) -> bool:
    """Whether the expressions `parts` call a method of a name for which owner(name) is true."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
        and owner(node.func.value.id)
        for part in parts for node in ast.walk(part)
    )  # fmt: skip


def header(node: ast.stmt) -> list:
    """The expressions of a compound statement's header line(s), not its body: what that header itself runs."""
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return [node.target, node.iter]
    if isinstance(node, (ast.If, ast.While)):
        return [node.test]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [item.context_expr for item in node.items]
    if isinstance(node, ast.Match):
        return [node.subject]
    return []


def rollout_phase(parts: list) -> str:
    if calls_method_of(parts, lambda name: name == "envs"):
        return "env"
    return "inference" if calls_method_of(parts, lambda name: name.endswith("agent")) else "storage+gae"


def statement_span(node: ast.stmt) -> tuple[range, list]:
    """The lines a statement owns (a compound statement: its header lines only) and the expressions they run."""
    if isinstance(node, COMPOUND):
        first_body_line = min(child.lineno for child in node.body) if node.body else node.lineno + 1
        return range(node.lineno, max(node.lineno, first_body_line - 1) + 1), header(node)
    return range(node.lineno, node.end_lineno + 1), [node]


def is_loop_over(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.For) and isinstance(node.target, ast.Name) and node.target.id == name


def line_phases(source: str) -> dict[int, str]:
    """{line number: phase} for the lines of main(), from the structure of its code (see the module docstring).
    A line takes the phase of the innermost statement that owns it (every line of a multi-line statement alike;
    a compound statement owns its header lines, whose phase is that of the header's own expressions); a line of
    no statement (`else:`, a comment) that of the training loop's statement it lies in."""
    main = find_main(ast.parse(source))
    phases = dict.fromkeys(range(main.lineno, main.end_lineno + 1), SETUP)
    around_rollout = [node for node in ast.walk(main) if isinstance(node, ast.For) and not is_loop_over(node, "step")
                      and loop_over(node, "step")]  # fmt: skip
    # the innermost loop around the rollout; main() itself where the rollout runs once
    training_loop = min(around_rollout, key=lambda loop: loop.end_lineno - loop.lineno, default=main)
    region = "other"
    for statement in training_loop.body:
        if loop_over(statement, "step"):
            region = "rollout"
        elif loop_over(statement, "epoch"):
            region = "update"
        elif region == "rollout":
            region = "storage+gae"
        if region == "update" and calls_method_of([statement], lambda name: name == "writer"):
            region = "other"
        default = "storage+gae" if region == "rollout" else region
        phases.update(dict.fromkeys(range(statement.lineno, statement.end_lineno + 1), default))
        for node in ast.walk(statement):  # outer statements first, so the inner ones overwrite them
            if isinstance(node, ast.stmt):
                span, parts = statement_span(node)
                phases.update(dict.fromkeys(span, rollout_phase(parts) if region == "rollout" else region))
    return phases


class LineSampler:
    """Samples, about every `interval` seconds of wall time, the line that a function's frame is executing.

    Pure Python (an interval timer's SIGALRM, whose handler walks out from the interrupted frame): it needs no
    ptrace permission, unlike py-spy, so it works on any CI machine. Not a thread reading sys._current_frames():
    a thread reads the main thread's frames only once it holds the GIL, which the main thread hands over at its
    next release, inside a torch call, so pure-Python work (a classic-control env's step) would go unseen. The
    handler runs in the main thread at its next bytecode, or once the C call in progress returns; each sample is
    weighted by the time since the previous one, so a long C call counts for its whole length.
    """

    def __init__(self, filename: str, function: str = "main", interval: float = 0.001):
        self.filename, self.function, self.interval = filename, function, interval
        self.seconds: Counter = Counter()  # {line number, or None when the function is not on the stack: seconds}
        self.samples: Counter = Counter()

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        now = time.perf_counter()
        while frame is not None and not (
            frame.f_code.co_name == self.function and frame.f_code.co_filename == self.filename
        ):
            frame = frame.f_back
        line = None if frame is None else frame.f_lineno
        self.seconds[line] += now - self._last
        self.samples[line] += 1
        self._last = now

    def __enter__(self) -> "LineSampler":
        self._last = time.perf_counter()
        self._previous_handler = signal.signal(signal.SIGALRM, self._sample)
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous_handler)


def summarize(phases: dict[int, str], seconds: Counter, samples: Counter) -> dict:
    """Per-phase seconds and sample counts from per-line ones, and the loop phases' shares of the loop time."""
    phase_seconds, phase_samples = Counter(), Counter()
    for line, value in seconds.items():
        phase_seconds[phases.get(line, SETUP)] += value
        phase_samples[phases.get(line, SETUP)] += samples[line]
    loop_seconds = sum(phase_seconds[phase] for phase in LOOP_PHASES)
    return {
        "shares": {phase: phase_seconds[phase] / loop_seconds if loop_seconds else 0.0 for phase in LOOP_PHASES},
        "seconds": {phase: phase_seconds[phase] for phase in (*LOOP_PHASES, SETUP)},
        "samples": {phase: phase_samples[phase] for phase in (*LOOP_PHASES, SETUP)},
        "setup_s": phase_seconds[SETUP],
        "loop_s": loop_seconds,
    }


def run_script(script: Path, script_args: Sequence[str]) -> int:
    """Run the script's `__main__` in this process with sys.argv set (put back after); its exit code."""
    saved_argv, saved_path = sys.argv, sys.path[:]
    sys.argv = [str(script), *script_args]
    sys.path.insert(0, str(script.parent))  # as `python SCRIPT.py` does
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0


def profile(script: Path, script_args: Sequence[str], out: Path, interval: float = 0.001) -> int:
    """Run the script under the sampler and write the phase summary to `out` (also when the script fails)."""
    script = script.resolve()
    phases = line_phases(script.read_text())
    exit_code = 1  # an exception other than SystemExit propagates after the summary is written
    sampler = LineSampler(str(script), interval=interval)
    try:
        with sampler:
            exit_code = run_script(script, script_args)
    finally:
        summary = summarize(phases, sampler.seconds, sampler.samples)
        summary.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, exit_code=exit_code,
                       script=str(script), args=list(script_args), interval_s=interval)  # fmt: skip
        write_json_atomic(out, summary)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--interval", type=float, default=0.001, help="seconds between samples")
    parser.add_argument("script", type=Path)
    parser.add_argument("script_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    return profile(args.script, args.script_args, args.out, args.interval)


if __name__ == "__main__":
    sys.exit(main())
