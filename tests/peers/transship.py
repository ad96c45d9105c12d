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

In the test run the process is forked from the test worker's fork server
(:mod:`tests.peers.forked`), which has done the server's imports once: a start costs what
the server does, not the ~0.9 s of CPU its imports take. It is a process of its own all the
same (session, pid, log, signals).
"""

from __future__ import annotations

import os
import ssl
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
        self._proc: ManagedProcess | None = None

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
        proc = self._proc = ManagedProcess(
            argv, log_path=log_path, env=env, cwd=self.workdir, fork=True
        ).start()
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
        return self

    def stop(self, grace: float = 10.0) -> int | None:
        """Graceful stop (SIGTERM, then SIGKILL after ``grace`` s); return the server's exit
        code."""
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
