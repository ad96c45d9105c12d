"""Our own server as a real subprocess, for end-to-end tests.

:class:`TransshipServer` runs::

    python -m transship serve --host 127.0.0.1 --port PORT --data-dir DATA_DIR
        [--database-url URL] [EXTRA_ARGS…]

with ``src/`` first on ``PYTHONPATH`` (so it works from a checkout without installing) and
waits until ``GET /v2/`` answers 200 (``ready_timeout``, default 20 s); on timeout, or if
the process exits first, it raises with the server's log.

With ``tls=True`` it adds ``--tls``: the server speaks HTTPS with a certificate from its
local CA (``ca_certificate``, in the data dir), :attr:`url` is ``https://…``, and readiness
is checked trusting only that CA (:meth:`client_ssl_context`).

- :meth:`stop` — SIGTERM then SIGKILL of the process group (a graceful shutdown);
- :meth:`kill9` — SIGKILL at once (a crash);
- :meth:`restart` — stop (or leave killed) and start again on the **same port and data dir**,
  so tests can check that state survives.

The port is chosen once, at the first start. While the test run's stall guard is on, the
server watches its own event loops (tests/support/loop_stall_child.py).

With ``prewarm=True`` (for tests that restart the server many times, as the soak test does)
each start leaves a spare process behind the running server: the same command line and
environment, started through ``tests/support/prewarm_main.py``, which does the server's
imports (about a second of CPU) and waits. The next :meth:`start` (after :meth:`kill9` or
:meth:`stop`) releases the spare, which becomes ``python -m transship serve …`` in that
process, so a restart costs the server's own start-up; the crash, the fresh process, the
data dir and the port are as without it. :meth:`stop` stops the spare too.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

from .ports import LOOPBACK, free_port, wait_for_http
from .procs import ManagedProcess, Peer, peer_env

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = REPO_ROOT / "src"
# Set by the stall guard (tests/support/loop_stall.py): the bound, and the directory servers
# write their stalls to; STALL_SITE's sitecustomize.py makes the server watch its loops.
STALL_BOUND_ENV = "TRANSSHIP_TEST_LOOP_STALL_MS"
STALL_DIR_ENV = "TRANSSHIP_TEST_LOOP_STALL_DIR"
STALL_SITE = REPO_ROOT / "tests" / "support" / "stall_site"
PREWARM_MAIN = REPO_ROOT / "tests" / "support" / "prewarm_main.py"
# What `serve` imports before it listens (some of it lazily, inside the command).
PREWARM_IMPORTS = (
    "transship.cli.main",
    "transship.cli.server_commands",
    "transship.cli.server",
    "transship.imports.settings_check",
    "transship.api.app",
)


def stall_guard_on() -> bool:
    """Whether the test run's stall guard (tests/support/loop_stall.py) asks servers to
    watch their loops: it sets these variables; the benchmarks do not."""
    return bool(os.environ.get(STALL_BOUND_ENV) and os.environ.get(STALL_DIR_ENV))


class TransshipServer(Peer):
    """A Transship server process. Context manager, or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        ready_timeout: float = 20.0,
        python: str = sys.executable,
        tls: bool = False,
        data_plane_auth: bool = False,
        prewarm: bool = False,
    ) -> None:
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.database_url = database_url
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.python = python
        self.tls = tls
        self.data_plane_auth = data_plane_auth
        self._port = port or 0
        self.starts = 0
        self.prewarm = prewarm
        self._proc: ManagedProcess | None = None
        self._spare: _SpareProcess | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The command line (the port must be chosen already)."""
        argv = [
            self.python,
            "-m",
            "transship",
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        if self.tls:
            argv.append("--tls")
        return argv + self.extra_args

    @property
    def port(self) -> int:
        """The loopback port (0 until the first start)."""
        return self._port

    def start(self) -> Self:
        """Start the server and wait for ``GET /v2/`` → 200; raise with the log otherwise."""
        if self._proc is not None and self._proc.running:
            raise RuntimeError("transship already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._port:
            self._port = free_port()
        pythonpath = os.pathsep.join(
            p
            for p in (
                str(SRC_DIR),
                # While the test run's stall guard is on, the server's loops are watched too.
                *((str(STALL_SITE), str(REPO_ROOT)) if stall_guard_on() else ()),
                self.extra_env.get("PYTHONPATH", os.environ.get("PYTHONPATH", "")),
            )
            if p
        )
        env = peer_env(
            {
                "TRANSSHIP_DATA_PLANE_AUTH": "true" if self.data_plane_auth else "false",
                **self.extra_env,
                "PYTHONPATH": pythonpath,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.starts += 1
        argv, log_path = self.argv(), self.workdir / f"transship-{self.starts}.log"
        spare, self._spare = self._spare, None
        if spare is not None and spare.serves(argv, env, log_path):
            self._proc = spare.release()
        else:
            if spare is not None:
                spare.stop()
            self._proc = ManagedProcess(argv, log_path=log_path, env=env, cwd=self.workdir).start()
        proc = self._proc
        try:
            if self.tls:
                self._wait_for_https(f"{self.url}/healthz", alive=lambda: proc.running)
            else:
                wait_for_http(
                    f"{self.url}/healthz",
                    self.ready_timeout,
                    statuses={200},
                    alive=lambda: proc.running,
                )
        except (TimeoutError, RuntimeError) as exc:
            detail = proc.describe()
            proc.stop()
            raise RuntimeError(f"transship did not become ready: {exc}\n{detail}") from None
        if self.prewarm:
            # Started once this one is ready, so the two do not share the CPU at start-up.
            next_log = self.workdir / f"transship-{self.starts + 1}.log"
            self._spare = _SpareProcess(argv, log_path=next_log, env=env, cwd=self.workdir)
            self._spare.start()
        return self

    def stop(self, grace: float = 10.0) -> int | None:
        """Graceful stop (SIGTERM, then SIGKILL after ``grace`` s) of the server and of its
        spare (``prewarm``); return the server's exit code."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.stop()
        return self._proc.stop(grace) if self._proc is not None else None

    def kill9(self) -> int:
        """Crash it: SIGKILL the process group."""
        if self._proc is None:
            raise RuntimeError("transship not started")
        return self._proc.kill9()

    def restart(self, *, graceful: bool = True) -> Self:
        """Stop (SIGTERM, or SIGKILL when ``graceful`` is False) if running, then start.

        The new process uses the same port and data dir.
        """
        if self._proc is not None and self._proc.running:
            if graceful:
                self.stop()
            else:
                self.kill9()
        return self.start()

    def _wait_for_https(self, url: str, *, alive: Callable[[], bool]) -> None:
        """Poll ``GET url`` trusting only the server's CA (it appears once the server has
        created it) until 200; TimeoutError / RuntimeError like :func:`wait_for_http`."""
        deadline = time.monotonic() + self.ready_timeout
        last: object = None
        while True:
            if self.ca_certificate.exists():
                opener = urllib.request.build_opener(
                    urllib.request.ProxyHandler({}),
                    urllib.request.HTTPSHandler(context=self.client_ssl_context()),
                )
                try:
                    with opener.open(url, timeout=2.0) as response:
                        if response.status == 200:
                            return
                        last = response.status
                except urllib.error.HTTPError as exc:
                    last = exc.code
                except (OSError, ssl.SSLError) as exc:
                    last = exc
            if not alive():
                raise RuntimeError(f"server behind {url} exited before it was ready ({last})")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url} not ready after {self.ready_timeout:.1f}s ({last})")
            time.sleep(0.05)

    # -- public properties -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, or ``https://…`` with ``tls`` (no trailing slash)."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_certificate(self) -> Path:
        """The local CA certificate a ``tls`` server creates, for clients to trust."""
        return self.data_dir / "tls" / "ca.pem"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only :attr:`ca_certificate`."""
        return ssl.create_default_context(cafile=str(self.ca_certificate))

    @property
    def pid(self) -> int:
        """The server's pid (for CPU/RSS measurement)."""
        if self._proc is None:
            raise RuntimeError("transship not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.running

    def log_text(self) -> str:
        """The current run's log."""
        return self._proc.log_text() if self._proc is not None else ""


class _SpareProcess(ManagedProcess):
    """``argv`` (``python -m MODULE …``) started as ``python prewarm_main.py IMPORTS MODULE …``:
    it imports, then waits on its stdin for :meth:`release` (see the module docstring)."""

    def __init__(
        self, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path
    ) -> None:
        python, dash_m, module, *args = (str(a) for a in argv)
        assert dash_m == "-m", argv
        super().__init__(
            [python, str(PREWARM_MAIN), ",".join(PREWARM_IMPORTS), module, *args],
            log_path=log_path,
            env=env,
            cwd=cwd,
        )
        self.target = (list(argv), dict(env), log_path)

    def serves(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> bool:
        """Whether releasing it gives the same process as starting ``argv`` in ``env``."""
        return self.running and self.target == (list(argv), dict(env), log_path)

    def start(self) -> Self:
        """Start it with a pipe on stdin (the only difference from a ManagedProcess)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    def release(self) -> Self:
        """Let it become the server; from now on it is an ordinary running server process.

        Its priority is put back here, before the ``go``: a spare released before it finished
        its imports (a kill soon after the last start, or a busy machine, where nice 19 gets
        next to no CPU) would otherwise do the rest of them at nice 19, on the restart's
        critical path (the spare itself restores it only once its imports are done)."""
        popen = self._require()
        stdin = popen.stdin
        assert stdin is not None
        if os.geteuid() == 0:  # only root may lower a nice value
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, popen.pid, os.getpriority(os.PRIO_PROCESS, 0))
        stdin.write(b"go\n")
        stdin.close()
        return self
