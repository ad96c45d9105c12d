"""A throwaway PostgreSQL cluster on loopback.

:class:`PostgresCluster` runs ``initdb`` (``-A trust --no-sync``) into a fresh directory
under the system temp dir owned by the ``postgres`` OS user (when we are root; initdb refuses
to run as root), starts it with ``pg_ctl`` on a free port with ``listen_addresses=127.0.0.1``,
``fsync=off`` and the unix socket inside that directory, and creates one database.

- :attr:`PostgresCluster.url` is ``postgresql://postgres@127.0.0.1:PORT/DBNAME``.
- :meth:`PostgresCluster.new_database` creates another empty database and returns its URL,
  so each test can have a fresh one for the price of a ``CREATE DATABASE``; with
  ``template=`` it is a copy of that database (``CREATE DATABASE … TEMPLATE``: a file copy,
  much cheaper than running the migrations again). A template must have no open session.
- :meth:`PostgresCluster.stop` runs ``pg_ctl -m immediate stop`` (SIGKILL of the postmaster
  as a fallback) and removes the directory.

Binaries come from the newest ``/usr/lib/postgresql/*/bin`` (PostgreSQL 15 on Debian 12).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from .ports import LOOPBACK, free_port
from .procs import PeerUnavailable, peer_env

_SUPERUSER = "postgres"
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_postgres_bin() -> Path:
    """Return the newest ``/usr/lib/postgresql/<v>/bin`` holding ``initdb``;
    PeerUnavailable if none."""
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path.parent.name))

    if not candidates:
        raise PeerUnavailable(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
        )
    return max(candidates, key=version)


class PostgresCluster:
    """A PostgreSQL cluster owned by a test session. Context manager, or start()/stop()."""

    def __init__(self, *, database: str = "transship", start_timeout: float = 60.0) -> None:
        if not _NAME_RE.match(database):
            raise ValueError(f"bad database name {database!r}")
        self.database = database
        self.start_timeout = start_timeout
        self.bin_dir: Path | None = None
        self.root: Path | None = None
        self.port = 0
        self._counter = itertools.count(1)
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """initdb, start, create :attr:`database`; on any failure clean up and raise with the
        log."""
        self.bin_dir = find_postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="transship-pg-"))
        run_as = self._os_user()
        if run_as is not None:
            os.chown(self.root, run_as.pw_uid, run_as.pw_gid)
        try:
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-A",
                    "trust",
                    "-U",
                    _SUPERUSER,
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                timeout=self.start_timeout,
            )
            self.port = free_port()
            options = " ".join(
                [
                    f"-c listen_addresses={LOOPBACK}",
                    f"-p {self.port}",
                    f"-c unix_socket_directories={self.root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                ]
            )
            self._run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "start",
                ],
                timeout=self.start_timeout + 10,
            )
            self._started = True
            self._psql(f'CREATE DATABASE "{self.database}"')
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server immediately and delete the cluster directory; idempotent."""
        if self.root is None:
            return
        if self._started and self.bin_dir is not None:
            try:
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "immediate",
                        "stop",
                    ],
                    timeout=30,
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                self._kill_postmaster()
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- public API ------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._root() / "data"

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self._root() / "postgres.log"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """URL of the database made at start: ``postgresql://postgres@127.0.0.1:PORT/DBNAME``."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """URL of database ``database`` on this cluster."""
        return f"postgresql://{_SUPERUSER}@{self.host}/{database}"

    @property
    def pid(self) -> int:
        """The postmaster's pid."""
        first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first_line)

    def new_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database (named ``name`` or ``test_<n>``) and return its URL: empty, or
        a copy of database ``template`` when given (which must have no open session, or
        PostgreSQL refuses the copy)."""
        name = name or f"test_{next(self._counter)}"
        for checked in (name, template):
            if checked is not None and not _NAME_RE.match(checked):
                raise ValueError(f"bad database name {checked!r}")
        copy = f' TEMPLATE "{template}"' if template else ""
        self._psql(f'CREATE DATABASE "{name}"{copy}')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions."""
        if not _NAME_RE.match(name):
            raise ValueError(f"bad database name {name!r}")
        self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with ``psql`` (unaligned, tuples only) and return its output."""
        return self._psql(sql, database)

    def log_text(self) -> str:
        """The server log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, RuntimeError):
            return ""

    # -- internals -------------------------------------------------------------------------

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("cluster not started")
        return self.root

    @staticmethod
    def _os_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(_SUPERUSER)
        except KeyError as exc:
            raise PeerUnavailable(
                "no 'postgres' OS user (is the postgresql package installed?)"
            ) from exc

    def _run(self, argv: list[str], timeout: float) -> str:
        run_as = self._os_user()
        env = {k: v for k, v in peer_env().items() if not k.startswith("PG")}
        if run_as is not None:
            env.update(HOME=run_as.pw_dir, USER=run_as.pw_name, LOGNAME=run_as.pw_name)
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            cwd=self._root(),
            timeout=timeout,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
            check=False,
            start_new_session=True,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{self.log_text()[-4000:]}"
            )
        return done.stdout

    def _psql(self, sql: str, database: str = "postgres") -> str:
        assert self.bin_dir is not None
        return self._run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                _SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            timeout=60,
        )

    def _kill_postmaster(self) -> None:
        try:
            pid = self.pid
        except (OSError, ValueError, IndexError):
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
