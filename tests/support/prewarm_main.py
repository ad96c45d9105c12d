"""``python prewarm_main.py IMPORTS MODULE ARGS…``: a process that has done its imports and
waits to become ``python -m MODULE ARGS…``.

It imports ``IMPORTS`` (comma-separated: what ``MODULE`` imports; nothing else happens at
import time: no module of the project opens a file, socket or database then), as root at
nice 19 (restored at release), then blocks until a line arrives on stdin. On ``go`` it
points stdin at ``/dev/null`` and runs ``MODULE`` as ``python -m`` would (``sys.argv``,
``sys.path[0]`` the working directory, ``__main__``); at EOF or any other line it exits 0
without running anything.

:class:`tests.peers.transship.TransshipServer` with ``prewarm=True`` keeps one such spare
beside the running server, so a restart after ``kill -9`` costs what the server does at
start-up, not the seconds of interpreter start and imports before that.
Standard library only, and run by path (not ``-m``), so nothing of ``tests`` is imported.
"""

import os
import runpy
import sys


def main() -> None:
    imports, module, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    # As `python -m`: the working directory first on the path, not this script's directory.
    sys.path[0] = os.getcwd()
    # Import at the lowest priority, so the spare takes no CPU from the running server (on a
    # busy machine that would cut the work done between two kills), where the priority can
    # be put back at release (root may lower a nice value; others may not).
    own_priority = os.getpriority(os.PRIO_PROCESS, 0)
    yielding = os.geteuid() == 0
    if yielding:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    for name in imports.split(","):
        __import__(name)
    if sys.stdin.readline() != "go\n":
        sys.exit(0)
    if yielding:
        os.setpriority(os.PRIO_PROCESS, 0, own_priority)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
