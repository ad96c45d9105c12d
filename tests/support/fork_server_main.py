"""``python fork_server_main.py SOCKET IMPORTS``: a process that has done a module's imports
once and forks a child for each ``python -m MODULE ARGS…`` it is asked to run.

It imports ``IMPORTS`` (comma-separated; no module of the project opens a file, socket or
database at import time), listens on the Unix socket ``SOCKET`` and serves one request per
connection: a JSON line ``{"module", "args", "env", "cwd", "log"}``. The child it forks
becomes what ``python -m MODULE ARGS…`` started with that environment and working directory
would be: a session of its own (its pid is its process group), stdin ``/dev/null``, stdout
and stderr appended to ``log``, ``sys.argv`` and ``sys.path[0]`` as ``-m`` sets them, the
request's ``PYTHONPATH`` entries on ``sys.path``, and the first ``sitecustomize.py`` among
them run (the test run's stall guard, ``tests/support/stall_site``). The answer on the
connection is ``{"pid": N}`` and, once the child has exited, ``{"exit": CODE}`` (negative:
the signal that ended it, as :attr:`subprocess.Popen.returncode`). It exits when its stdin
closes: its test worker ended.

:mod:`tests.peers.forked` is the client. Standard library only, and run by path (not ``-m``),
so nothing of ``tests`` is imported before the fork but what the request asks for.
"""

import contextlib
import io
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any


def main() -> None:
    path, imports = sys.argv[1], sys.argv[2]
    for name in imports.split(","):
        __import__(name)
    # A fork copies the calling thread only: another one could hold a lock the child needs.
    if threading.active_count() != 1:
        sys.exit(f"fork server: the imports started threads: {threading.enumerate()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    children: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "parent":
                if not sys.stdin.buffer.read1(4096):  # the test worker is gone
                    return
            elif key.data == "child":
                os.read(wake_read, 4096)
                _reap(children)
            else:
                conn, _ = listener.accept()
                _fork(conn, children, listener, wake_read, wake_write)
        _reap(children)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(
                    json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n"
                )
            conn.close()


def _fork(
    conn: socket.socket,
    children: dict[int, socket.socket],
    listener: socket.socket,
    wake_read: int,
    wake_write: int,
) -> None:
    with conn.makefile("rb") as lines:
        request = json.loads(lines.readline())
    pid = os.fork()
    if pid == 0:
        # The child, from here on `python -m MODULE …`: what it raises or exits with leaves
        # through main() as from a started interpreter (the traceback or message printed,
        # atexit handlers run, other threads joined).
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(wake_read)
        os.close(wake_write)
        for sock in (listener, conn, *children.values()):
            sock.close()
        children.clear()
        _become(request)
        sys.exit(0)
    children[pid] = conn
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _become(request: dict[str, Any]) -> None:
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    # Unbuffered, as the servers run (PYTHONUNBUFFERED=1): a crash loses no line of the log.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), write_through=True, errors="backslashreplace"
    )
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()
    # PYTHONPATH entries of this request that the fork server was not started with.
    extra = [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path
    ]
    sys.path[1:1] = extra
    # What the interpreter's start does with a sitecustomize on PYTHONPATH (the stall guard's).
    for entry in extra:
        site_customize = Path(entry, "sitecustomize.py")
        if site_customize.is_file():
            runpy.run_path(str(site_customize), run_name="sitecustomize")
            break
    module = request["module"]
    sys.argv = [module, *request["args"]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
