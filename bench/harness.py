"""What every benchmark shares: the two servers side by side, a run context, the machine.

:class:`ServerPair` starts Debian's ``docker-registry`` (anonymous, filesystem storage) and
Transship (``python -m transship serve``, SQLite, its durable defaults), each on a free
loopback port in its own temp dir, as children of this process (each in its own process
group), and stops both on exit whatever happened. :meth:`ServerPair.alternating` gives the
order T R T R … so machine drift falls on both alike.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.procstat import process_alive  # noqa: E402
from bench.profiling import profiled  # noqa: E402
from bench.regclient import Endpoint  # noqa: E402
from tests.peers.distribution import DistributionRegistry  # noqa: E402
from tests.peers.object_stores import SeaweedFS  # noqa: E402
from tests.peers.procs import peer_env  # noqa: E402
from tests.peers.transship import TransshipServer  # noqa: E402

TRANSSHIP = "transship"
REGISTRY = "docker-registry"
MiB = 1 << 20
GiB = 1 << 30
STORAGES = ("filesystem", "s3", "s3-redirect")  # --storage
REDIRECT_SECONDS = 600  # presigned URLs' lifetime with --storage s3-redirect


@dataclass(frozen=True)
class Target:
    """One running server under test."""

    name: str  # TRANSSHIP or REGISTRY
    url: str
    host: str  # HOST:PORT, for image references
    pid: int  # the server process (also its process-group id)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.from_url(self.url)


@dataclass
class Context:
    """Options and a scratch dir for one benchmark run."""

    name: str
    quick: bool
    workdir: Path
    profile_dir: Path | None = None
    storage: str = "filesystem"  # or "s3": both servers on one SeaweedFS (--storage s3)
    started: float = field(default_factory=time.monotonic)
    _profiles: Counter[str] = field(default_factory=Counter)

    def profile(self, target: Target, phase: str) -> AbstractContextManager[None]:
        """py-spy on Transship over a phase when --profile is on; otherwise nothing."""
        if self.profile_dir is None or target.name != TRANSSHIP:
            return contextlib.nullcontext()
        self._profiles[phase] += 1
        label = f"{self.name}-{phase}-{self._profiles[phase]}"
        return profiled(self.profile_dir, target.pid, label)

    def log(self, message: str) -> None:
        """Progress to stderr (the table goes to stdout)."""
        elapsed = time.monotonic() - self.started
        print(f"  [{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class S3Bucket:
    """One SeaweedFS bucket that several servers share, each under a key prefix of its own
    (a new SeaweedFS bucket is a collection that needs volumes of its own)."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    pid: int | None = None  # the object store's server process, when it is ours

    @classmethod
    def of(cls, weed: SeaweedFS) -> S3Bucket:
        env = weed.environ
        return cls(
            weed.endpoint,
            weed.bucket,
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            weed.pid,
        )

    def transship_env(self, prefix: str) -> dict[str, str]:
        """Environment for a Transship keeping its blobs under ``prefix`` (streaming: no
        ``storage_redirect_seconds``)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "TRANSSHIP_STORAGE_URL": f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}",
        }

    def registry_storage(self, prefix: str, *, redirect: bool = False) -> dict[str, object]:
        """docker-registry's ``storage`` section: its S3 driver under ``prefix``; redirects
        to presigned URLs only with ``redirect`` (its own default is to redirect)."""
        return {
            "s3": {
                "accesskey": self.access_key,
                "secretkey": self.secret_key,
                "region": "us-east-1",
                "regionendpoint": self.endpoint,
                "bucket": self.bucket,
                "rootdirectory": f"/{prefix}",
                "secure": False,
                "v4auth": True,
                "forcepathstyle": True,
            },
            "redirect": {"disable": not redirect},
        }

    @staticmethod
    def registry_env() -> dict[str, str]:
        # This machine sets AWS_CA_BUNDLE, on which the registry's S3 driver panics.
        return {k: v for k, v in peer_env().items() if k != "AWS_CA_BUNDLE"}

    def usage(self, prefix: str) -> tuple[int, int]:
        """(objects, bytes) stored under ``prefix``."""
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            self.bucket,
            endpoint=self.endpoint,
            virtual_hosted_style_request=False,
            region="us-east-1",
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            client_options={"allow_http": True},
        )
        objects = size = 0
        for batch in obstore.list(store, prefix=prefix, chunk_size=1000):
            objects += len(batch)
            size += sum(int(meta["size"]) for meta in batch)
        return objects, size


class ServerPair:
    """Transship and docker-registry, started together under ``workdir``; a context manager.

    With ``storage="s3"`` a SeaweedFS server starts first and both keep their blobs in its
    S3 API (Transship: ``storage_url``, streaming, no redirects; docker-registry: its S3
    driver, ``redirect: disable``), in one bucket under prefixes of their own (a new
    SeaweedFS bucket is a collection that needs volumes of its own). ``storage="s3-redirect"``
    is the same with both answering a blob GET by a 307 to a presigned URL (Transship:
    ``storage_redirect_seconds``; docker-registry: its S3 driver's default).
    """

    def __init__(
        self, workdir: Path, transship_args: Sequence[str] = (), storage: str = "filesystem"
    ) -> None:
        self.workdir = workdir
        self.seaweedfs: SeaweedFS | None = None
        registry_storage: dict[str, object] | None = None
        registry_env: dict[str, str] | None = None
        transship_env: dict[str, str] = {}
        if storage in STORAGES[1:]:
            redirect = storage == "s3-redirect"
            weed = self.seaweedfs = SeaweedFS().start()
            bucket = S3Bucket.of(weed)
            registry_storage = bucket.registry_storage("registry", redirect=redirect)
            registry_env = bucket.registry_env()
            transship_env = bucket.transship_env("transship")
            if redirect:
                transship_env["TRANSSHIP_STORAGE_REDIRECT_SECONDS"] = str(REDIRECT_SECONDS)
        elif storage != "filesystem":
            raise ValueError(f"unknown storage {storage!r} ({', '.join(STORAGES)})")
        self.registry = DistributionRegistry(
            workdir / "docker-registry", storage=registry_storage, env=registry_env
        )
        self.transship = TransshipServer(
            workdir / "transship",
            ready_timeout=60.0,
            extra_args=transship_args,
            env=transship_env,
        )
        self._started: list[DistributionRegistry | TransshipServer] = []

    def start(self) -> Self:
        try:
            for server in (self.registry, self.transship):
                server.start()
                self._started.append(server)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in reversed(self._started):
            with contextlib.suppress(Exception):
                server.stop()
        self._started.clear()
        if self.seaweedfs is not None:
            self.seaweedfs.stop()

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
    def targets(self) -> tuple[Target, Target]:
        """(Transship, docker-registry)."""
        t, r = self.transship, self.registry
        return (
            Target(TRANSSHIP, t.url, t.host, t.pid),
            Target(REGISTRY, r.url, r.host, r.pid),
        )

    def alternating(self, rounds: int) -> Iterator[tuple[int, Target]]:
        """(round, target) in the order T R T R … for ``rounds`` rounds."""
        for index in range(rounds):
            for target in self.targets:
                yield index, target

    def check_alive(self) -> None:
        """Raise with the log tail when a server has died."""
        for target in self.targets:
            if not process_alive(target.pid):
                raise RuntimeError(f"{target.name} exited:\n{self._log(target.name)[-3000:]}")

    def _log(self, name: str) -> str:
        return self.transship.log_text() if name == TRANSSHIP else self.registry.log_text()


@contextlib.contextmanager
def scratch_dir(name: str, keep: bool = False) -> Iterator[Path]:
    """A temp dir for one benchmark, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"transship-bench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"  kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _mem_total_gib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    return 0.0


def _mem_available_bytes() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# Fresh memory each timed phase may need: page cache for a copy of the 1 GiB image on each
# side of a transfer, with room to spare.
PREFAULT_BYTES = 4 << 30


def prefault_memory(size: int = PREFAULT_BYTES) -> None:
    """Write `size` bytes of fresh memory (at most half of what is available) and free
    them, right before a timed phase; both arms of a comparison call it.

    The bench machines are VMs that hand the memory their guest frees back to the host, so
    the first write to such a page costs a fault into the host. Without this, whether a
    phase gets resident pages or pays those faults (for the page cache it fills: the blobs
    a copier writes) depends on what ran before it: the 1 GiB import measured 1.27 s with
    resident pages and 2.0 s without, on the same code and an idle machine."""
    size = min(size, _mem_available_bytes() // 2)
    if size > 0:
        buffer = bytearray(size)  # zero-filled: every page written
        del buffer


def transship_revision() -> str:
    """The commit under test, and how many files under src/ differ from it."""
    head = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    try:
        status = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return head
    changed = len(status.splitlines())
    return f"{head} + {changed} changed file(s) in src/" if changed else head


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    import aiohttp

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": f"{_mem_total_gib():.1f} GiB",
        "kernel": platform.release(),
        "loadavg": load,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "docker-registry": _first_line(["docker-registry", "--version"]),
        "skopeo": _first_line(["skopeo", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
        "transship": transship_revision(),
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
