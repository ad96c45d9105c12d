"""Start ``python -m MODULE …`` children by forking a process that has done their imports.

A Transship server spends ~0.9 s of CPU importing its modules (SQLAlchemy, aiohttp,
pydantic, cryptography) before it does anything, and the suite starts a few hundred of them
(every restart of the crash, soak and worker tests). Each test worker process keeps one fork
server (``tests/support/fork_server_main.py``, started at first use, gone when the worker
ends) that imported them once; a child forked from it costs only what the command does.

:func:`spawn` returns a :class:`ForkedChild`, which answers what :class:`subprocess.Popen`
answers for a child (``pid``, ``poll``, ``wait``, ``returncode``): the forked process runs in
a session of its own with the given environment, working directory and log, so signals to
its process group, ``kill -9`` and ``/proc`` work as for any child. It is the fork server's
child, not the caller's: the fork server reaps it and reports its exit code.

It is on when ``TRANSSHIP_TEST_FORK_SERVER=1``, which the test run sets (``tests/conftest.py``);
the benchmarks, which share these peers, start every child as an ordinary ``Popen``: they
measure processes as a user starts them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FORK_SERVER_MAIN = REPO_ROOT / "tests" / "support" / "fork_server_main.py"
# What `python -m transship serve` (and `worker`) imports before it listens (some of it
# lazily, inside the command).
IMPORTS = (
    "transship.cli.main",
    "transship.cli.server_commands",
    "transship.cli.server",
    "transship.imports.settings_check",
    "transship.api.app",
    "transship.cli.processes",
    # Imported at the first database connection or migration, that is inside the server's
    # first callbacks: each was tens of milliseconds of one callback in every child (and
    # over the stall guard's bound on a loaded machine).
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "alembic.command",
    "alembic.config",
    "alembic.script",
)


def enabled() -> bool:
    """Whether children are forked: TRANSSHIP_TEST_FORK_SERVER=1."""
    return os.environ.get("TRANSSHIP_TEST_FORK_SERVER") == "1"


class ForkedChild:
    """A child of the fork server, seen as :class:`subprocess.Popen` sees its own."""

    def __init__(
        self, args: Sequence[str], conn: socket.socket, pid: int, *, received: bytes = b""
    ) -> None:
        self.args = list(args)
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn
        self._buffer = received  # what the fork server said after the pid
        self._reading = threading.Lock()  # `running` may be asked from several threads

    def poll(self) -> int | None:
        """The exit code once the child has exited, else None."""
        self._read(timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit and return its code; subprocess.TimeoutExpired after
        `timeout` seconds."""
        if not self._read(timeout=timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def _read(self, timeout: float | None) -> bool:
        with self._reading:
            return self._read_locked(timeout)

    def _read_locked(self, timeout: float | None) -> bool:
        while self.returncode is None:
            if b"\n" in self._buffer:
                self._finish(int(json.loads(self._buffer.split(b"\n", 1)[0])["exit"]))
                break
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if not ready:
                return False
            chunk = self._conn.recv(4096)
            if not chunk:
                # The fork server is gone without reporting (its worker is ending): the
                # child was orphaned; it is over for this test.
                self._finish(-signal.SIGKILL)
                break
            self._buffer += chunk
        return True

    def _finish(self, code: int) -> None:
        self.returncode = code
        self._conn.close()


class _ForkServer:
    """The fork server process of this test worker, and how to ask it for a child."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="transship-fork-")
        self.socket_path = os.path.join(self._dir, "socket")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT / "src"), str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self._proc = subprocess.Popen(
            [sys.executable, str(FORK_SERVER_MAIN), self.socket_path, ",".join(IMPORTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=self._dir,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline() != b"ready\n":
            code = self._proc.wait(timeout=10)
            raise RuntimeError(f"the fork server exited with {code} before it was ready")

    def spawn(
        self, module: str, args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
    ) -> ForkedChild:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.socket_path)
        request = {
            "module": module,
            "args": list(args),
            "env": dict(env),
            "cwd": str(cwd),
            "log": str(log),
        }
        conn.sendall(json.dumps(request).encode() + b"\n")
        received = b""
        while b"\n" not in received:
            chunk = conn.recv(4096)
            if not chunk:
                raise RuntimeError("the fork server closed the connection before forking")
            received += chunk
        # A child that ended at once may have its exit in the same read.
        line, rest = received.split(b"\n", 1)
        argv = [sys.executable, "-m", module, *args]
        return ForkedChild(argv, conn, json.loads(line)["pid"], received=rest)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        os.rmdir(self._dir)


_lock = threading.Lock()
_servers: dict[int, _ForkServer] = {}  # by the pid of the process that started it


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> ForkedChild:
    """Fork ``argv`` (``[sys.executable, "-m", MODULE, ARGS…]``) from this process's fork
    server, starting it on first use. Raises ValueError for any other command line."""
    python, dash_m, module, *args = (str(a) for a in argv)
    if python != sys.executable or dash_m != "-m":
        raise ValueError(f"not this interpreter's -m command line: {argv}")
    with _lock:
        server = _servers.get(os.getpid())
        if server is None:
            server = _servers[os.getpid()] = _ForkServer()
            atexit.register(server.close)
    return server.spawn(module, args, env=env, cwd=cwd, log=log)


def forkable(argv: Sequence[str]) -> bool:
    """Whether :func:`spawn` can run `argv`, and forking is on."""
    parts = [str(a) for a in argv]
    return enabled() and len(parts) >= 3 and parts[0] == sys.executable and parts[1] == "-m"
