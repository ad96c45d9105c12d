"""A managed subprocess: own process group, output to a log file, reliable stop.

Contracts:

- :class:`ManagedProcess` starts its command in a new session (so a new process group whose
  id is the child's pid); stdout and stderr both go to ``log_path``.
- :meth:`ManagedProcess.stop` sends SIGTERM to the whole group, waits up to ``grace``
  seconds for the leader, then SIGKILLs the group; afterwards no process of the group is
  left. It is idempotent, and is what ``__exit__`` calls.
- :meth:`ManagedProcess.kill9` SIGKILLs the group at once (a crash, as a test sees it).
- With ``fork=True``, a ``python -m …`` command line of this interpreter is forked from the
  test worker's fork server (:mod:`tests.peers.forked`: its imports done once) instead of
  started afresh; everything above holds the same.
- :func:`peer_env` is the environment every peer runs with: the caller's, minus HTTP proxy
  settings, plus ``NO_PROXY`` for loopback, so no test traffic leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from . import forked

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")
_NO_PROXY = "127.0.0.1,localhost,::1,.localhost"


def peer_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``os.environ`` without proxy variables, with loopback in NO_PROXY, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = _NO_PROXY
    if extra:
        env.update(extra)
    return env


def group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (zombies left out: PID 1 here may reap
    orphans late, and a zombie holds nothing)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _wait_group_gone(pgid: int, *, timeout: float) -> None:
    """Wait until process group `pgid` has no live member (after a SIGKILL to it). Raises
    TimeoutError naming the members left after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while members := group_members(pgid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process group {pgid} still has {members} after SIGKILL")
        time.sleep(0.01)


class ManagedProcess:
    """One long-running child process owned by a test.

    Create it, then :meth:`start` (or use it as a context manager, which starts it and stops
    it on exit). ``user``/``group`` run the child as another OS user (root only).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        fork: bool = False,
    ) -> None:
        self.argv: list[str] = [str(a) for a in argv]
        # `python -m …` forked from the test worker's fork server (tests/peers/forked.py).
        self.fork = fork and user is None and group is None and forked.forkable(self.argv)
        self.log_path = log_path
        self.env: dict[str, str] = dict(env) if env is not None else peer_env()
        self.cwd = cwd
        self.user = user
        self.group = group
        self._popen: subprocess.Popen[bytes] | forked.ForkedChild | None = None
        self._log: IO[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the child (in its own session / process group). Fails if already running."""
        if self.running:
            raise RuntimeError(f"already running: {self.argv[0]} (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        if self.fork:
            cwd = self.cwd or Path.cwd()
            self._popen = forked.spawn(self.argv, env=self.env, cwd=cwd, log=self.log_path)
            return self
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            user=self.user,
            group=self.group,
        )
        return self

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the group, wait ``grace`` s, then SIGKILL it; return the exit code (None if
        never started)."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                popen.wait(timeout=10)
        # Sweep stragglers the leader left in its group (children that ignored SIGTERM), and
        # wait until they are gone: a SIGKILL is delivered at once but a process under load
        # exits a moment later, and a caller may reuse its port or files right away.
        self._signal_group(signal.SIGKILL)
        _wait_group_gone(popen.pid, timeout=10)
        self._close_log()
        return popen.returncode

    def kill9(self) -> int:
        """SIGKILL the whole group at once and reap the leader; return its exit code."""
        popen = self._require()
        self._signal_group(signal.SIGKILL)
        code = popen.wait(timeout=10)
        _wait_group_gone(popen.pid, timeout=10)
        self._close_log()
        return code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit on its own and return its exit code."""
        return self._require().wait(timeout=timeout)

    # -- state -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The child's pid (also its process-group id)."""
        return self._require().pid

    @property
    def running(self) -> bool:
        """True while the child has been started and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once exited, else None."""
        return None if self._popen is None else self._popen.poll()

    def log_text(self, tail: int | None = 20_000) -> str:
        """The log so far (the last ``tail`` characters; all of it with ``tail=None``)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if tail is None else text[-tail:]

    def describe(self) -> str:
        """A one-paragraph description for failure messages: argv, state, and the log tail."""
        state = "running" if self.running else f"exited with {self.returncode}"
        return f"{' '.join(self.argv)}\n[{state}; log {self.log_path}]\n{self.log_text(8000)}"

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _require(self) -> subprocess.Popen[bytes] | forked.ForkedChild:
        if self._popen is None:
            raise RuntimeError(f"not started: {self.argv[0]}")
        return self._popen

    def _signal_group(self, sig: signal.Signals) -> None:
        popen = self._popen
        if popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def children_of(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is `pid`, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it returns truthy; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met after {timeout:.1f}s")
        time.sleep(interval)


class PeerUnavailable(RuntimeError):
    """A peer's program is not installed here (fixtures turn this into a skip, or a failure
    in CI)."""


def require_binary(name: str) -> str:
    """Return the absolute path of program ``name`` on PATH, or raise :class:`PeerUnavailable`."""
    found = shutil.which(name)
    if found is None:
        raise PeerUnavailable(f"{name!r} is not installed (scripts/test installs it)")
    return found


class Peer:
    """Something a test starts and must stop on loopback: `with Peer(...) as peer:` does both."""

    @property
    def port(self) -> int:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}"
