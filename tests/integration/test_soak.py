"""Soak: pushes and imports run without pause while the server is `kill -9`ed 25 times at
random (seeded) moments and restarted at once (`TRANSSHIP_SOAK_KILLS=50`, or more, for the
long soak).

- 3 pusher threads push images to `soak/push<w>` in a loop: a config and a small layer as
  monolithic uploads (`POST ?digest=`), a larger layer as a chunked upload (POST, PATCHes
  with Content-Range, PUT) that *resumes* after a crash (GET the session's Range, go on from
  there), then the manifest to one of 4 tags. Everything answered 201 is recorded.
- 3 importer tasks import a small 3-platform index from a local docker-registry, `Force`
  mode, to rotating tags in two target registries (at most 3 new imports per kill, so each
  registry's `importOperations` listing, the newest 100, holds them all), and follow each
  operation across the crashes (`import_lease_seconds = 1`, so a job whose process died is
  taken over by the next process almost at once).

After the last restart: traffic stops, the imports in flight resume and finish, then
`transship check --verify-digests` reports zero problems, every push answered 201 resolves by
digest, every tag resolves (pushed ones to a manifest pushed to that tag, imported ones to
the source index, byte for byte, with every blob), and no import operation of either
registry is left queued or running: each one Succeeded.

The kills must land in every phase, or the run proved little: the test asserts that some
kill cut a request in flight in each of an upload (a chunked upload's POST or PATCH), a blob
commit (its PUT, or a monolithic `POST ?digest=`) and a manifest commit (its PUT), and that
some import needed more than one attempt (a kill mid-import). 25 kills do that with a wide
margin (each kind is cut several times; see the counts the test prints).

Runs on SQLite and on PostgreSQL: mostly the 25 restarts and the uptimes between them
(~25 s in all). Each restart is a fresh process started after the crash, forked from the
test worker's fork server (tests/peers/forked.py): it pays the server's own start-up, not
the second of interpreter start and imports (`TRANSSHIP_TEST_FORK_SERVER=0` starts each one
cold).
`TRANSSHIP_SOAK_DATABASES=sqlite` (or `postgresql`) runs one only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import urllib3

from tests.integration.conftest import small_index
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    BuiltIndex,
    push_layout_http,
    sha256_digest,
)
from tests.peers.transship import TransshipServer
from tests.support.imports import Management, Operation, fetch, run_check

# The longest tests of the suite: started first (tests/conftest.py).
pytestmark = [pytest.mark.slow(seconds=150), pytest.mark.heavy]

_NAMES = os.environ.get("TRANSSHIP_SOAK_DATABASES", "sqlite,postgresql").split(",")
DATABASES = [
    pytest.param(name, marks=pytest.mark.peers) if name == "postgresql" else name
    for name in (n.strip() for n in _NAMES)
    if name
]

# 25 land in every phase several times over (see the module docstring); the long soak
# sets more.
KILLS = int(os.environ.get("TRANSSHIP_SOAK_KILLS", "25"))
# How long the pushes may go on after the last restart to reach KILLS acknowledged pushes.
PUSH_FLOOR_SECONDS = 120.0
SEED = 50_509
LEASE_SECONDS = 1
PUSHERS = 3
IMPORTERS = 3
PUSH_TAGS = 4
IMPORT_TAGS = 4
# `importOperations` lists the newest 100 jobs of a registry (no paging): stay under that
# per registry, so the listing holds every job this test may have created.
MAX_JOBS_PER_REGISTRY = 95
# Imports submitted per kill at most (so the importers keep going through all the kills
# without exceeding that listing: 3 x 51 < 2 x 95); fewer per kill for a longer soak.
IMPORTS_PER_KILL = max(1, min(3, (2 * MAX_JOBS_PER_REGISTRY) // (KILLS + 1)))
# The first is the default registry, reached at the server's own address.
REGISTRIES = ("default", "soaksecond")
SOURCE_REPOSITORY, SOURCE_TAG = "team/app", "v1"
# Time the server is left running between a restart and the next kill: mostly long enough
# for several pushes and an import, sometimes a crash right after the start.
SHORT_UPTIME = (0.02, 0.3)
LONG_UPTIME = (0.5, 2.0)
SHORT_SHARE = 0.25
DRAIN_SECONDS = 90.0
# Each chunk through the source's proxy, either way: ~0.12 s per round trip.
SOURCE_LATENCY_SECONDS = 0.06
REQUEST_TIMEOUT = 10.0
FINAL_STATES = {"Succeeded", "Failed", "Canceled"}


class Retry(Exception):
    """This push cannot go on (the server is down, or answered something unexpected)."""


# The phases of a push a kill must cut short at least once each (see the module docstring).
UPLOAD, BLOB_COMMIT, MANIFEST_COMMIT = "upload", "blob commit", "manifest commit"
PHASES = (UPLOAD, BLOB_COMMIT, MANIFEST_COMMIT)


def cut_in_flight(exc: requests.RequestException) -> bool:
    """Whether the request was sent and the connection then dropped (the server was killed
    while it handled it), not refused (the server was already down)."""
    return isinstance(exc, requests.ConnectionError) and any(
        isinstance(arg, urllib3.exceptions.ProtocolError) for arg in exc.args
    )


# -- pushes (threads) -------------------------------------------------------------------------


@dataclass
class PushLedger:
    """What the server acknowledged with 201, and what was sent to each tag."""

    blobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, digest) → size
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, digest) → body
    tags: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # tag → digests sent
    acked_tags: set[tuple[str, str]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # answers no client should get
    cut: Counter[str] = field(default_factory=Counter)  # requests a kill cut, per phase
    pushes: int = 0
    chunked_resumed: int = 0


class Pusher:
    """Pushes images to `soak/push<worker>` in a loop until told to stop."""

    def __init__(
        self,
        url: str,
        worker: int,
        stop: threading.Event,
        ledger: PushLedger,
        lock: threading.Lock,
    ) -> None:
        self.url = url
        self.worker = worker
        self.repo = f"soak/push{worker}"
        self.stop = stop
        self.ledger = ledger
        self.lock = lock  # guards the shared ledger
        self.rng = random.Random(SEED + worker)
        self.phase = UPLOAD  # of the request in flight
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never through a proxy from the env

    # -- plumbing --------------------------------------------------------------------------
    def _absolute(self, location: str) -> str:
        return location if location.startswith("http") else self.url + location

    def _expect(self, response: requests.Response, *statuses: int) -> requests.Response:
        if response.status_code not in statuses:
            with self.lock:
                self.ledger.errors.append(
                    f"{response.request.method} {response.request.path_url}: "
                    f"{response.status_code} {response.text[:300]}"
                )
            raise Retry(response.status_code)
        return response

    # -- uploads ---------------------------------------------------------------------------
    def _cut(self, exc: requests.RequestException) -> None:
        if cut_in_flight(exc):
            with self.lock:
                self.ledger.cut[self.phase] += 1

    def _monolithic(self, data: bytes) -> None:
        digest = sha256_digest(data)
        self.phase = BLOB_COMMIT
        r = self.http.post(
            f"{self.url}/v2/{self.repo}/blobs/uploads/?digest={digest}",
            data=data,
            timeout=REQUEST_TIMEOUT,
        )
        self._expect(r, 201)
        with self.lock:
            self.ledger.blobs[(self.repo, digest)] = len(data)

    def _chunked(self, data: bytes) -> None:
        """POST, PATCH chunks, PUT; after a failure, ask the session where it stands and go
        on from there (a new session only when the old one is gone)."""
        digest = sha256_digest(data)
        step = max(1, len(data) // self.rng.randint(2, 5))
        location: str | None = None
        offset = 0
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.phase = UPLOAD
                if location is None:
                    r = self._expect(
                        self.http.post(
                            f"{self.url}/v2/{self.repo}/blobs/uploads/", timeout=REQUEST_TIMEOUT
                        ),
                        202,
                    )
                    location, offset = self._absolute(r.headers["Location"]), 0
                else:
                    r = self.http.get(location, timeout=REQUEST_TIMEOUT)
                    if r.status_code == 404:
                        # The session is gone: committed by a PUT whose answer was lost, or
                        # never recorded. The blob is there or it must be sent again.
                        head = self.http.head(
                            f"{self.url}/v2/{self.repo}/blobs/{digest}", timeout=REQUEST_TIMEOUT
                        )
                        if head.status_code == 200:
                            return
                        location = None
                        continue
                    self._expect(r, 204)
                    offset = _range_end(r.headers["Range"])
                    with self.lock:
                        self.ledger.chunked_resumed += 1
                while offset < len(data):
                    chunk = data[offset : offset + step]
                    r = self._expect(
                        self.http.patch(
                            location,
                            data=chunk,
                            headers={
                                "Content-Type": "application/octet-stream",
                                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                            },
                            timeout=REQUEST_TIMEOUT,
                        ),
                        202,
                    )
                    location = self._absolute(r.headers["Location"])
                    offset = _range_end(r.headers["Range"])
                separator = "&" if "?" in location else "?"
                self.phase = BLOB_COMMIT
                r = self._expect(
                    self.http.put(f"{location}{separator}digest={digest}", timeout=REQUEST_TIMEOUT),
                    201,
                )
                with self.lock:
                    self.ledger.blobs[(self.repo, digest)] = len(data)
                return
            except requests.RequestException as exc:
                self._cut(exc)
                self.stop.wait(0.05)  # the server is down: ask the session again
        raise Retry("chunked upload gave up")

    def push_once(self, n: int) -> None:
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "worker": self.worker, "n": n},
            separators=(",", ":"),
        ).encode()
        small = self.rng.randbytes(self.rng.randint(1_000, 100_000))
        large = self.rng.randbytes(self.rng.randint(50_000, 400_000))
        self._monolithic(config)
        self._monolithic(small)
        self._chunked(large)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": sha256_digest(config),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(b), "size": len(b)}
                    for b in (small, large)
                ],
            },
            separators=(",", ":"),
        ).encode()
        digest = sha256_digest(manifest)
        tag = f"t{self.rng.randrange(PUSH_TAGS)}"
        with self.lock:
            self.ledger.tags.setdefault((self.repo, tag), set()).add(digest)
        self.phase = MANIFEST_COMMIT
        r = self.http.put(
            f"{self.url}/v2/{self.repo}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": OCI_MANIFEST},
            timeout=REQUEST_TIMEOUT,
        )
        self._expect(r, 201)
        if r.headers.get("Docker-Content-Digest") != digest:
            raise AssertionError(f"manifest {digest} answered as {r.headers}")
        with self.lock:
            self.ledger.manifests[(self.repo, digest)] = manifest
            self.ledger.acked_tags.add((self.repo, tag))
            self.ledger.pushes += 1

    def run(self) -> None:
        n = 0
        while not self.stop.is_set() and n < 10_000:
            n += 1
            try:
                self.push_once(n)
            except requests.RequestException as exc:
                self._cut(exc)
                self.stop.wait(0.05)  # the server is down: try a new push
            except Retry:
                self.stop.wait(0.05)  # refused: try a new push
            except Exception as exc:  # a wrong answer: fail the test, but keep the load on
                with self.lock:
                    self.ledger.errors.append(f"push {self.repo} #{n}: {exc!r}")
                self.stop.wait(0.05)


def _range_end(header: str) -> int:
    """The next offset from an upload's `Range: 0-<last>` (`0-0` may also mean empty)."""
    last = int(header.rsplit("-", 1)[1])
    return last + 1 if last > 0 else 0


@contextlib.asynccontextmanager
async def pushing(url: str, ledger: PushLedger) -> AsyncIterator[threading.Event]:
    """Pushers running in threads until the block ends (or the returned event is set); the
    join waits on a thread, since a pusher may be mid-request for seconds."""
    stop = threading.Event()
    lock = threading.Lock()
    pushers = [Pusher(url, w, stop, ledger, lock) for w in range(PUSHERS)]
    threads = [
        threading.Thread(target=p.run, daemon=True, name=f"pusher-{p.worker}") for p in pushers
    ]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.to_thread(_join, threads)
        assert not any(t.is_alive() for t in threads), "a pusher thread did not stop"


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=30)


# -- imports (asyncio tasks) ------------------------------------------------------------------


@dataclass
class ImportLedger:
    # id → (registry, operation)
    operations: dict[str, tuple[str, Operation]] = field(default_factory=dict)
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → last status body
    submitted: Counter[str] = field(default_factory=Counter)  # POSTs tried, per registry
    errors: list[str] = field(default_factory=list)


class Importers:
    """Importer tasks: submit an import, follow it to its end across crashes, repeat."""

    def __init__(self, admin: Management, source_host: str, ledger: ImportLedger) -> None:
        self.admin = admin
        self.source_host = source_host
        self.ledger = ledger
        self.submitting = True
        self.kills = 0  # kills so far: paces the submissions
        self.drain_deadline = float("inf")

    async def _status(self, operation: Operation) -> dict[str, Any] | None:
        """The operation's status, or None while the server is down."""
        assert operation.async_operation is not None
        try:
            status, body, _ = await self.admin.call("GET", operation.async_operation.split("?")[0])
        except (aiohttp.ClientError, TimeoutError):
            return None
        if status != 200:
            self.ledger.errors.append(f"status of {operation.id}: {status} {body}")
            return None
        return dict(body)

    async def follow(self, operation: Operation) -> dict[str, Any] | None:
        last: dict[str, Any] | None = None
        while time.monotonic() < self.drain_deadline:
            got = await self._status(operation)
            if got is not None:
                last = got
                self.ledger.finals[operation.id] = got
                if got["status"] in FINAL_STATES:
                    return got
            await asyncio.sleep(0.2)
        return last

    def _may_submit(self) -> bool:
        allowed = min((self.kills + 1) * IMPORTS_PER_KILL, len(REGISTRIES) * MAX_JOBS_PER_REGISTRY)
        return sum(self.ledger.submitted.values()) < allowed

    async def run(self, worker: int) -> None:
        rng = random.Random(SEED * 31 + worker)
        for n in range(10_000):
            while self.submitting and not self._may_submit():
                await asyncio.sleep(0.1)
            if not self.submitting:
                return
            registry = min(
                REGISTRIES,
                key=lambda r: (self.ledger.submitted[r], (REGISTRIES.index(r) + worker + n) % 2),
            )
            body = {
                "source": {
                    "registryUri": self.source_host,
                    "sourceImage": f"{SOURCE_REPOSITORY}:{SOURCE_TAG}",
                },
                "targetTags": [f"imp/app{n % 2}:r{rng.randrange(IMPORT_TAGS)}"],
                "mode": "Force",
            }
            try:
                operation = await self.admin.start_import(registry, body)
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.1)  # the server is down: nothing was sent
                continue
            except (aiohttp.ClientError, TimeoutError):
                # Sent, perhaps, before the crash: a job may exist; the listing will tell.
                self.ledger.submitted[registry] += 1
                await asyncio.sleep(0.1)
                continue
            self.ledger.submitted[registry] += 1
            if operation.status != 202:
                self.ledger.errors.append(f"importImage: {operation.status} {operation.body}")
                await asyncio.sleep(0.1)
                continue
            self.ledger.operations[operation.id] = (registry, operation)
            await self.follow(operation)
            await asyncio.sleep(rng.uniform(0, 0.3))


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def write_config(path: Path, upstream_host: str) -> Path:
    path.write_text(
        f"import_lease_seconds = {LEASE_SECONDS}\n"
        "gc_interval_seconds = 0\n"
        "upstream_read_timeout = 5\n"
        f'[upstreams."{upstream_host}"]\n'
        "insecure = true\n"
    )
    return path


def blob_files_are_complete(data_dir: Path) -> list[str]:
    """Every committed blob file hashes to its name."""
    bad = []
    for path in (data_dir / "blobs" / "sha256").rglob("*"):
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            bad.append(path.name)
    return bad


async def kill_loop(
    server: TransshipServer, rng: random.Random, importers: Importers
) -> list[float]:
    """`kill -9` the server KILLS times at random moments, restarting it each time."""
    uptimes = []
    for kill in range(KILLS):
        span = SHORT_UPTIME if rng.random() < SHORT_SHARE else LONG_UPTIME
        uptime = rng.uniform(*span)
        uptimes.append(uptime)
        await asyncio.sleep(uptime)
        await asyncio.to_thread(server.kill9)
        await asyncio.to_thread(server.start)
        importers.kills = kill + 1
    return uptimes


async def pushes_reach(ledger: PushLedger, floor: int, within: float) -> None:
    """Let the pushers go on after the last restart until `floor` pushes were acknowledged
    in all, or `within` seconds pass: on a loaded machine the pushes trail the kills, which
    come at fixed times. The test then asserts the floor."""
    deadline = time.monotonic() + within
    while ledger.pushes < floor and time.monotonic() < deadline:
        # A poll of a counter the pusher threads bump, not synchronisation.
        await asyncio.sleep(0.5)


async def verify_pushes(http: aiohttp.ClientSession, url: str, ledger: PushLedger) -> None:
    for (repo, digest), body in ledger.manifests.items():
        got = await fetch(http, url, f"/v2/{repo}/manifests/{digest}")
        assert got.status == 200 and got.body == body, (
            f"acknowledged manifest {repo}@{digest} lost: {got.status}"
        )
    for (repo, digest), size in ledger.blobs.items():
        async with http.head(f"{url}/v2/{repo}/blobs/{digest}") as r:
            assert r.status == 200, f"acknowledged blob {repo}@{digest} lost: {r.status}"
            assert int(r.headers["Content-Length"]) == size, (repo, digest, r.headers)
    for (repo, tag), sent in ledger.tags.items():
        got = await fetch(http, url, f"/v2/{repo}/manifests/{tag}")
        if (repo, tag) in ledger.acked_tags:
            assert got.status == 200, (
                f"acknowledged tag {repo}:{tag} does not resolve: {got.status}"
            )
        if got.status == 200:
            digest = sha256_digest(got.body)
            assert digest in sent, f"tag {repo}:{tag} points at {digest}, never pushed to it"
        else:
            assert got.status == 404, (repo, tag, got)


async def verify_imports(
    http: aiohttp.ClientSession,
    admin: Management,
    url: str,
    login_servers: dict[str, str],
    index: BuiltIndex,
    ledger: ImportLedger,
) -> Counter[int]:
    """Every operation of both registries ended Succeeded, and its tags serve the index.
    Returns how many operations needed how many attempts."""
    attempts: Counter[int] = Counter()
    tags: set[tuple[str, str]] = set()
    listed: set[str] = set()
    for registry in REGISTRIES:
        operations = await admin.operations(registry)
        assert len(operations) < 100, "the listing (the newest 100) may be cut short"
        for op in operations:
            listed.add(op["name"])
            assert op["properties"]["state"] not in ("queued", "running"), f"stuck: {op}"
            assert op["status"] == "Succeeded", f"import {op['name']} ended {op['status']}: {op}"
            attempts[op["properties"]["attempts"]] += 1
            tags.update((registry, t) for t in op["properties"]["targetTags"])
    missing = set(ledger.operations) - listed
    assert not missing, f"accepted operations missing from importOperations: {missing}"
    for registry, target in sorted(tags):
        repository, _, tag = target.partition(":")
        host = login_servers[registry]
        got = await fetch(http, url, f"/v2/{repository}/manifests/{tag}", host)
        assert got.status == 200 and got.body == index.index_bytes, (registry, target, got.status)
        for child in index.children:
            got = await fetch(http, url, f"/v2/{repository}/manifests/{child.digest}", host)
            assert got.status == 200 and got.body == child.manifest_bytes, (
                registry,
                target,
                child.digest,
            )
        for digest in index.blob_digests:
            got = await fetch(http, url, f"/v2/{repository}/blobs/{digest}", host)
            assert got.status == 200 and sha256_digest(got.body) == digest, (
                registry,
                target,
                digest,
            )
    return attempts


@pytest.mark.timeout(420)
@pytest.mark.parametrize("database_url", DATABASES, indirect=True)
async def test_soak_kill_9_during_pushes_and_imports(
    tmp_path: Path,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    http: aiohttp.ClientSession,
) -> None:
    began = time.monotonic()
    # The imports' source answers as a remote registry does, not in a millisecond: an
    # import (most only fetch the manifests; the blobs are linked) then spans a few round
    # trips, so kills land mid-import by design (10+ of ~65 imports resumed per run), not
    # by luck of timing (with the source on loopback, a run saw none).
    source = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    source.latency(SOURCE_LATENCY_SECONDS)
    source_host = f"127.0.0.1:{source.port}"
    # Building and pushing the source image are blocking work: off the test's loop.
    index = await asyncio.to_thread(small_index, tmp_path, seed="soak")
    await asyncio.to_thread(
        push_layout_http, index, distribution_anon.url, SOURCE_REPOSITORY, SOURCE_TAG
    )
    config = write_config(tmp_path / "transship.toml", source_host)
    server = TransshipServer(
        tmp_path / "transship",
        database_url=database_url,
        env={"TRANSSHIP_CONFIG": str(config)},
        # A harness bound, not a property under test: with the CPU shared by a whole
        # parallel run (load 10+ seen on 2 cores), one of 50 starts can exceed the default.
        ready_timeout=60.0,
    )
    await asyncio.to_thread(server.start)
    pushes, imports = PushLedger(), ImportLedger()
    try:
        admin = await Management.remote(server.url, http, server.data_dir)
        login_servers = {REGISTRIES[0]: server.host}
        await admin.create_registry(REGISTRIES[0])
        created = await admin.create_registry(REGISTRIES[1])
        login_servers[REGISTRIES[1]] = created["properties"]["loginServer"]

        importers = Importers(admin, source_host, imports)
        tasks = [asyncio.create_task(importers.run(w)) for w in range(IMPORTERS)]
        try:
            async with pushing(server.url, pushes):
                try:
                    uptimes = await kill_loop(server, random.Random(SEED), importers)
                    await pushes_reach(pushes, KILLS, PUSH_FLOOR_SECONDS)
                    # Before `submitting` goes false: after it, every importer returns.
                    stopped_early = [t for t in tasks if t.done()]
                finally:
                    importers.submitting = False
            for task in stopped_early:
                task.result()  # raises what stopped it, if anything did
            assert not stopped_early, f"importers ran out of work early: {imports.submitted}"
            # The last restart is done and pushes have stopped: let the imports in flight
            # finish (they resume in this process), then look at everything.
            importers.drain_deadline = time.monotonic() + DRAIN_SECONDS
            await asyncio.wait_for(asyncio.gather(*tasks), DRAIN_SECONDS + 30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        soaked = time.monotonic() - began

        unfinished = {
            op_id: body["status"]
            for op_id, body in imports.finals.items()
            if body["status"] not in FINAL_STATES
        }
        unfinished.update(
            {op_id: "never seen" for op_id in imports.operations if op_id not in imports.finals}
        )
        assert not unfinished, (
            f"imports still in progress {DRAIN_SECONDS} s after the last restart: {unfinished}"
        )

        check = await run_check(server.data_dir, database_url, timeout=120)
        assert check.returncode == 0 and check.report.get("ok") is True, check.output
        assert check.report["problems"] == [], check.output
        # Hashing every blob file is the harness's work: on a thread, off the test's loop.
        assert await asyncio.to_thread(blob_files_are_complete, server.data_dir) == []

        tracebacks = [
            log.name
            for log in sorted(server.workdir.glob("transship-*.log"))
            if "Traceback" in log.read_text()
        ]
        assert tracebacks == [], (
            f"the server logged exceptions (see {server.workdir}): {tracebacks}"
        )
        assert pushes.errors == [], pushes.errors
        assert imports.errors == [], imports.errors
        assert pushes.pushes >= KILLS, (
            f"only {pushes.pushes} pushes completed: the soak proved little"
        )
        uncut = [phase for phase in PHASES if not pushes.cut[phase]]
        assert uncut == [], f"no kill cut a request of these phases: {uncut} ({pushes.cut})"
        await verify_pushes(http, server.url, pushes)
        attempts = await verify_imports(http, admin, server.url, login_servers, index, imports)
        resumed = sum(count for tries, count in attempts.items() if tries > 1)
        assert resumed, f"no import was interrupted by a kill: {attempts}"
        print(
            f"soak: {KILLS} kills in {soaked:.0f} s "
            f"(mean uptime {sum(uptimes) / len(uptimes):.2f} s); "
            f"{pushes.pushes} pushes acknowledged ({len(pushes.blobs)} blobs, "
            f"{pushes.chunked_resumed} chunked uploads resumed; requests cut per phase "
            f"{dict(pushes.cut)}); "
            f"{sum(attempts.values())} imports, attempts {dict(sorted(attempts.items()))}; "
            f"check: {check.report['blobs']} blobs, {check.report['manifests']} manifests, "
            f"{check.report['tags']} tags"
        )
    finally:
        await asyncio.to_thread(server.stop)
