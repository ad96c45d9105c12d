"""`transship worker` as a real subprocess, for tests of the background work in its own
processes.

:class:`TransshipWorker` runs::

    python -m transship worker --health-port PORT --data-dir DATA_DIR
        [--database-url URL] [EXTRA_ARGS…]

with the same environment, log and lifecycle as :class:`TransshipServer` (stop, kill9,
restart), and is ready once its health endpoint answers ``GET /healthz`` with 200. Give it
the data directory (and database) of the server it works for.
"""

from __future__ import annotations

from .ports import LOOPBACK
from .transship import TransshipServer


class TransshipWorker(TransshipServer):
    """A Transship worker process; :attr:`url` is its health endpoint's base URL."""

    def argv(self) -> list[str]:
        argv = [
            self.python,
            "-m",
            "transship",
            "worker",
            "--health-host",
            LOOPBACK,
            "--health-port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        return argv + self.extra_args
