"""The reference deployment (``deploy/local/up``) as a peer: HAProxy, Transship replicas and
workers, PostgreSQL (and SeaweedFS when object storage is there), all on loopback.

:class:`LocalDeployment` runs ``deploy/local/up --detach --dir WORKDIR`` with this test
run's Python (``-m transship`` with ``src/`` first on ``PYTHONPATH``; the stall guard's
site directory too while it is on), so the test drives exactly what a user starts, then
reads the ``state.json`` the script writes.

- :meth:`stop` runs ``deploy/local/down`` and, when that fails, SIGKILLs every process
  group the state names (idempotent; safe after a failed start, which `up` cleans up);
- :meth:`kill9` crashes one process (a replica or a worker) by name;
- :meth:`check` runs ``transship check --verify-digests -o json`` with the deployment's
  settings file, off the event loop's thread when awaited through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from .procs import Peer, PeerUnavailable, peer_env, require_binary
from .transship import REPO_ROOT, SRC_DIR, STALL_SITE, stall_guard_on

UP = REPO_ROOT / "deploy" / "local" / "up"
DOWN = REPO_ROOT / "deploy" / "local" / "down"


@dataclass(frozen=True)
class Member:
    """One process of the deployment, as state.json describes it."""

    name: str
    role: str  # postgres, seaweedfs, replica, worker, haproxy
    pid: int
    log: Path
    port: int | None
    url: str | None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connected_to(self, port: int) -> bool:
        """Whether a process of this member's group holds a TCP connection to loopback
        `port` (e.g. which worker is fetching through a test's proxy), from /proc."""
        inodes = set()
        for pid in _group_pids(self.pid):
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        target = os.readlink(f"/proc/{pid}/fd/{fd}")
                        if target.startswith("socket:["):
                            inodes.add(target[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as handle:
                for line in list(handle)[1:]:
                    fields = line.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if remote_port == port and fields[9] in inodes:
                        return True
        return False


def _group_pids(pgid: int) -> list[int]:
    """Every live process of process group `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat") as handle:
                after_name = handle.read().rsplit(")", 1)[1].split()
            if int(after_name[2]) == pgid:  # state, ppid, pgrp
                found.append(int(entry))
    return found


class LocalDeployment(Peer):
    """``deploy/local/up`` in ``workdir``. Context manager, or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        replicas: int = 3,
        workers: int = 2,
        extra_settings: str = "",
        lease_seconds: float = 15.0,
        timeout: float = 240.0,
    ) -> None:
        self.workdir = workdir
        self.replicas = replicas
        self.workers = workers
        self.extra_settings = extra_settings
        self.lease_seconds = lease_seconds
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self.output = ""

    # -- lifecycle -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment the script (hence every process it starts) runs with."""
        pythonpath = os.pathsep.join(
            p
            for p in (
                str(SRC_DIR),
                *((str(STALL_SITE), str(REPO_ROOT)) if stall_guard_on() else ()),
                os.environ.get("PYTHONPATH", ""),
            )
            if p
        )
        return peer_env({"PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"})

    def start(self) -> Self:
        """Run ``up --detach``; raise RuntimeError with its output when it fails (it has
        stopped what it started by then)."""
        require_binary("haproxy")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            str(UP),
            "--detach",
            "--dir",
            str(self.workdir),
            "--replicas",
            str(self.replicas),
            "--workers",
            str(self.workers),
            "--lease-seconds",
            str(self.lease_seconds),
            "--transship",
            f"{sys.executable} -m transship",
        ]
        if self.extra_settings:
            extra = self.workdir.parent / f"{self.workdir.name}-extra.toml"
            extra.write_text(self.extra_settings)
            argv += ["--extra-settings", str(extra)]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, env=self.env(), timeout=self.timeout
            )
        except subprocess.TimeoutExpired as exc:
            self._load_state()
            self.stop()
            raise RuntimeError(f"deploy/local/up did not finish in {self.timeout} s") from exc
        self.output = result.stdout + result.stderr
        if result.returncode != 0:
            if "PostgreSQL server binaries not found" in self.output:
                raise PeerUnavailable(self.output)
            raise RuntimeError(f"deploy/local/up failed ({result.returncode}):\n{self.output}")
        self._load_state()
        return self

    def stop(self) -> None:
        """``deploy/local/down``; when it fails, SIGKILL every process group the state
        names (not after a clean stop: their ids may belong to others by then).
        Idempotent."""
        if not (self.workdir / "state.json").exists():
            return
        try:
            result = subprocess.run(
                [sys.executable, str(DOWN), "--dir", str(self.workdir)],
                capture_output=True,
                env=self.env(),
                timeout=120,
                check=False,
            )
            stopped = result.returncode == 0
        except subprocess.TimeoutExpired:
            stopped = False
        if not stopped:
            for member in self.members():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(member.pid, signal.SIGKILL)

    def _load_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state = json.loads((self.workdir / "state.json").read_text())

    # -- what it is ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """HAProxy's port."""
        return int(self.member("haproxy").port or 0)

    @property
    def split(self) -> bool:
        """Whether replicas run without background work and workers run it (the Transship
        under test has `transship worker`)."""
        return bool(self.state.get("split_background_work"))

    @property
    def storage(self) -> str:
        return str(self.state.get("storage", ""))

    @property
    def login_server_suffix(self) -> str:
        return str(self.state["login_server_suffix"])

    @property
    def owner_credential_file(self) -> Path:
        return Path(self.state["owner_credential"])

    @property
    def settings_file(self) -> Path:
        return Path(self.state["settings_file"])

    @property
    def stats_url(self) -> str:
        return str(self.state["stats_url"])

    def members(self, role: str | None = None) -> list[Member]:
        return [
            Member(
                p["name"],
                p["role"],
                int(p["pid"]),
                Path(p["log"]),
                p.get("port"),
                p.get("url"),
            )
            for p in self.state.get("processes", [])
            if role is None or p["role"] == role
        ]

    def member(self, name: str) -> Member:
        for member in self.members():
            if member.name == name or (name == "haproxy" and member.role == "haproxy"):
                return member
        raise KeyError(name)

    # -- faults and checks -----------------------------------------------------------------
    def kill9(self, name: str) -> None:
        """SIGKILL the process group of member `name` (a crash, as a machine sees it)."""
        member = self.member(name)
        os.killpg(member.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(member.pid, 0)

    def transship(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """``python -m transship ARGS`` with the deployment's settings file and environment
        (what an operator's shell on one of its machines has)."""
        return subprocess.run(
            [sys.executable, "-m", "transship", *args],
            capture_output=True,
            text=True,
            env={**self.env(), **self.state.get("env", {}), **(env or {})},
            timeout=timeout,
            check=False,
        )

    def check(self) -> dict[str, Any]:
        """``transship check --verify-digests -o json`` over the whole deployment (a data
        directory of its own: it needs none besides scratch space); the report, with
        ``returncode`` and ``output`` added."""
        scratch = self.workdir / "check-data"
        result = self.transship(
            [
                "check",
                "--verify-digests",
                "-o",
                "json",
                "--data-dir",
                str(self.data_dir_for_tools(scratch)),
            ]
        )
        start = result.stdout.find("{")
        report: dict[str, Any] = json.loads(result.stdout[start:]) if start >= 0 else {}
        report["returncode"] = result.returncode
        report["output"] = result.stdout + result.stderr
        return report

    def data_dir_for_tools(self, scratch: Path) -> Path:
        """Where an operator's command points --data-dir: with filesystem storage the
        shared data directory (the blobs are there), else any scratch directory."""
        if self.storage == "filesystem":
            return Path(self.state["dir"]) / "data"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch
