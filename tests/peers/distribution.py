"""Debian's ``docker-registry`` (CNCF distribution 2.8) as an independent test registry.

:class:`DistributionRegistry` writes a config into its work dir and runs
``docker-registry serve CONFIG`` on a free loopback port. Modes:

- ``anonymous``: no auth at all;
- ``htpasswd``: HTTP Basic with one user (file made by ``htpasswd -Bbn``);
- ``token``: Docker-Hub-style bearer tokens from a :class:`~tests.peers.token_server.TokenServer`
  (started and owned by the registry unless one is passed in), where the same user gets
  pull, push and delete and anonymous callers get pull only.

Always on: ``storage.delete.enabled`` (manifest/blob DELETE works) and
``validation.manifests.urls.allow: ['^https?://']`` (manifests with foreign layers push).
Upload purging is off, so nothing runs in the background on its own.

The config is written as JSON, which is valid YAML.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from .ports import LOOPBACK, free_port, wait_for_http
from .procs import ManagedProcess, Peer, peer_env, require_binary
from .token_server import TokenServer, TokenUser

AuthMode = Literal["anonymous", "htpasswd", "token"]


class DistributionRegistry(Peer):
    """One ``docker-registry`` process. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        mode: AuthMode = "anonymous",
        *,
        username: str = "tester",
        password: str | None = None,
        token_server: TokenServer | None = None,
        ready_timeout: float = 15.0,
        storage: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in ("anonymous", "htpasswd", "token"):
            raise ValueError(f"unknown mode {mode!r}")
        self.workdir = workdir
        self.mode: AuthMode = mode
        self.username: str | None = None if mode == "anonymous" else username
        self.password: str | None = (
            None if mode == "anonymous" else (password or secrets.token_urlsafe(12))
        )
        self.ready_timeout = ready_timeout
        # Another storage driver's section (e.g. {"s3": {...}}) instead of the filesystem.
        self.storage = dict(storage) if storage is not None else None
        self.env = dict(env) if env is not None else None
        self.storage_dir = workdir / "storage"
        self.config_path = workdir / "config.yml"
        self._owns_token_server = mode == "token" and token_server is None
        self.token_server: TokenServer | None = token_server
        self._port = 0
        self._proc: ManagedProcess | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port (0 until the first start)."""
        return self._port

    def start(self) -> Self:
        """Write config (and auth files), start the registry, and wait until ``/v2/`` answers."""
        binary = require_binary("docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        if self.mode == "token":
            if self.token_server is None:
                self.token_server = TokenServer(self.workdir / "token")
            assert self.username is not None and self.password is not None
            self.token_server.users.setdefault(self.username, TokenUser(self.password))
            if self._owns_token_server:
                self.token_server.start()
        self._port = free_port()
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        self._proc = ManagedProcess(
            [binary, "serve", str(self.config_path)],
            log_path=self.workdir / "registry.log",
            env=self.env if self.env is not None else peer_env(),
            cwd=self.workdir,
        ).start()
        try:
            wait_for_http(f"{self.url}/v2/", self.ready_timeout, alive=lambda: self._alive())
        except Exception as exc:
            detail = self._proc.describe()
            self.stop()
            raise RuntimeError(f"docker-registry did not start:\n{detail}") from exc
        return self

    def stop(self) -> None:
        """Stop the registry (and the token server it owns); idempotent."""
        if self._proc is not None:
            self._proc.stop()
        if self._owns_token_server and self.token_server is not None:
            self.token_server.stop()

    def kill9(self) -> None:
        """SIGKILL the registry process group."""
        if self._proc is not None:
            self._proc.kill9()

    # -- public properties -----------------------------------------------------------------

    @property
    def creds(self) -> str | None:
        """``user:pass`` for skopeo's ``--src-creds/--dest-creds``, or None when anonymous."""
        if self.username is None or self.password is None:
            return None
        return f"{self.username}:{self.password}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """``(user, pass)`` for ``requests`` / :mod:`tests.peers.oci_http`, or None."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    @property
    def pid(self) -> int:
        """The registry's pid (for CPU/RSS measurement)."""
        if self._proc is None:
            raise RuntimeError("registry not started")
        return self._proc.pid

    def ref(self, repo: str, tag_or_digest: str) -> str:
        """``HOST/REPO:TAG`` or ``HOST/REPO@sha256:…``."""
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def log_text(self) -> str:
        """The registry's log so far."""
        return self._proc.log_text() if self._proc is not None else ""

    # -- internals -------------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.running

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                **(self.storage or {"filesystem": {"rootdirectory": str(self.storage_dir)}}),
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {
                "addr": f"{LOOPBACK}:{self.port}",
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
        }
        if self.mode == "htpasswd":
            assert self.username is not None and self.password is not None
            htpasswd_path = self.workdir / "htpasswd"
            htpasswd_path.write_text(_htpasswd_line(self.username, self.password))
            config["auth"] = {"htpasswd": {"realm": "transship-test", "path": str(htpasswd_path)}}
        elif self.mode == "token":
            assert self.token_server is not None
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.cert_path),
                    "autoredirect": False,
                }
            }
        return config


def _htpasswd_line(username: str, password: str) -> str:
    """One bcrypt line from ``htpasswd -Bbn`` (apache2-utils)."""
    binary = require_binary("htpasswd")
    done = subprocess.run(
        [binary, "-Bbn", username, password],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"htpasswd failed ({done.returncode}): {done.stderr}")
    return done.stdout.strip() + "\n"
