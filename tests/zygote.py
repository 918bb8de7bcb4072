"""A process that imports what the scripts import once, then forks a child for each script run the tests ask for.

A fresh interpreter spends about 2 s of a short test run importing torch, gymnasium, tyro and torch._dynamo (which
torch.optim loads on first use); a child forked from this process starts with them imported and runs the script
as `python <script> <args>` would: its own process, `__name__ == "__main__"`, sys.argv, working directory,
environment, stdout and stderr to files, exit code and traceback from the interpreter's own exit. Nothing that
reads the environment at import time is imported here except torch and numpy, which read OMP_NUM_THREADS:
tests/conftest.py uses this process only for runs whose environment matches the one it was started with.

Protocol, one JSON object per line: the request {"argv", "cwd", "env", "stdout", "stderr"} on stdin; the replies
{"pid": ...} once the child is forked and {"returncode": ...} once it has exited, on stdout.
"""

import gc
import json
import os
import runpy
import sys

import gymnasium  # noqa: F401
import numpy  # noqa: F401
import torch  # noqa: F401
import torch._dynamo  # noqa: F401  (torch.optim imports it on an optimizer's first use: ~1 s)
import tyro  # noqa: F401
from torch.utils.tensorboard import SummaryWriter  # noqa: F401


def run_child(request: dict) -> None:
    """In the forked child: become `python argv[0] argv[1:]` and run the script; never returns."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    streams = {0: (os.devnull, os.O_RDONLY), 1: (request["stdout"], os.O_WRONLY), 2: (request["stderr"], os.O_WRONLY)}
    for fd, (path, flags) in streams.items():
        target = os.open(path, flags)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # now on the files
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # as for `python script.py`
    runpy.run_path(sys.argv[0], run_name="__main__")
    sys.exit(0)  # an uncaught exception or SystemExit ends the interpreter as it ends a script run


def main() -> None:
    gc.freeze()  # the imported objects: a child's garbage collections skip them (0.3 s instead of 1 s a run)
    reply = sys.stdout
    sys.stdout = sys.stderr  # nothing but the replies goes to the pipe the tests read
    for line in sys.stdin:
        request = json.loads(line)
        reply.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        print(json.dumps({"pid": pid}), file=reply, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), file=reply, flush=True)


if __name__ == "__main__":
    main()
