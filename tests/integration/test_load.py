"""Load: 100 concurrent pulls and 10 concurrent imports against one server subprocess, with
no error anywhere.

A 3-platform OCI index is pushed to Transship; 10 other small 3-platform indexes sit in a
local docker-registry. Then, at the same moment, 100 aiohttp tasks (one connection each)
pull the index — the index by tag, each child manifest by digest, every blob — checking
every byte, and 10 imports into distinct target repositories are submitted; the pullers go
on pulling until every import has ended (at most 30 pulls each), so the imports run under
the full pull load.
Every pull must be byte-correct and every import must succeed, and afterwards each target
serves its source image and `transship check --verify-digests` is clean. No timing is
asserted.

:func:`run_load` is the scenario; ``bench/load.py`` times the same one (benchmark ``load``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.peers.distribution import DistributionRegistry
from tests.peers.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltIndex,
    OciLayout,
    build_index,
    push_layout_http,
    sha256_digest,
)
from tests.peers.transship import TransshipServer
from tests.support.imports import Management, assert_check_clean, describe_failure

PULLERS = 100
IMPORTS = 10
TARGET_REGISTRY = "default"  # reached at the server's own address
PULL_REPOSITORY, PULL_TAG = "load/pulled", "v1"
SOURCE_TAG = "v1"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
# ~2 MB per pull (index, 3 manifests, 3 configs, 7 layers); ~0.7 MB per imported image.
PULL_LAYERS = (100_000, 400_000)
PULL_SHARED_LAYER = 500_000
IMPORT_LAYERS = (50_000, 150_000)
IMPORT_SHARED_LAYER = 100_000
# Imports are followed as `transship import` follows them: the long poll answers when the
# operation changes (its end at once), with one request per change instead of a poll's
# steady stream through the server the pullers load.
FOLLOW_WAIT_SECONDS = 5.0
TEST_ROUNDS = 30


class LoadError(Exception):
    """A wrong answer during the load."""


# -- images and setup -------------------------------------------------------------------------


def pull_image(workdir: Path) -> BuiltIndex:
    """The index everybody pulls."""
    return build_index(
        OciLayout(workdir / "layout-pull"),
        seed="load-pull",
        layer_sizes=PULL_LAYERS,
        shared_layer_size=PULL_SHARED_LAYER,
    )


@dataclass(frozen=True)
class ImportSpec:
    """One import: a source image on the docker-registry and its distinct target."""

    source_host: str
    source_repository: str
    target: str  # repository:tag in the target registry
    image: BuiltIndex

    def body(self) -> dict[str, Any]:
        return {
            "source": {
                "registryUri": self.source_host,
                "sourceImage": f"{self.source_repository}:{SOURCE_TAG}",
            },
            "targetTags": [self.target],
        }


def import_sources(
    workdir: Path, registry: DistributionRegistry, count: int = IMPORTS, prefix: str = "load"
) -> list[ImportSpec]:
    """`count` distinct small indexes pushed to the docker-registry, one target each."""
    specs = []
    for i in range(count):
        image = build_index(
            OciLayout(workdir / f"layout-{prefix}-import-{i}"),
            seed=f"{prefix}-import-{i}",
            layer_sizes=IMPORT_LAYERS,
            shared_layer_size=IMPORT_SHARED_LAYER,
        )
        repository = f"{prefix}/source{i}"
        push_layout_http(image, registry.url, repository, SOURCE_TAG)
        specs.append(ImportSpec(registry.host, repository, f"{prefix}/imported{i}:v1", image))
    return specs


def write_config(path: Path, upstream_host: str) -> Path:
    """The server's TOML: the docker-registry is reached over plain HTTP."""
    path.write_text(f'gc_interval_seconds = 0\n[upstreams."{upstream_host}"]\ninsecure = true\n')
    return path


async def prepare_target(
    http: aiohttp.ClientSession, server: TransshipServer, index: BuiltIndex
) -> Management:
    """The target registry (the default one, at the server's address) holding the pulled
    index."""
    admin = await Management.remote(server.url, http, server.data_dir)
    await admin.create_registry(TARGET_REGISTRY)
    await asyncio.to_thread(push_layout_http, index, server.url, PULL_REPOSITORY, PULL_TAG)
    return admin


# -- the scenario -----------------------------------------------------------------------------


@dataclass
class LoadReport:
    pull_seconds: list[float] = field(default_factory=list)  # each whole pull that succeeded
    request_seconds: list[float] = field(default_factory=list)  # each request of those
    import_seconds: list[float] = field(default_factory=list)  # POST → seen ended, per import
    import_finals: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pulled_bytes: int = 0
    wall_seconds: float = 0.0
    pulls_ended_at: float = 0.0  # seconds after the start
    imports_ended_at: float = 0.0


async def _get(
    http: aiohttp.ClientSession, url: str, accept: str | None, latencies: list[float]
) -> bytes:
    began = time.perf_counter()
    async with http.get(url, headers={"Accept": accept} if accept else None) as r:
        body = await r.read()
        status, content_type = r.status, r.headers.get("Content-Type")
    latencies.append(time.perf_counter() - began)
    if status != 200:
        raise LoadError(f"GET {url}: {status} {body[:200]!r}")
    if accept is not None and (content_type is None or content_type not in accept):
        raise LoadError(f"GET {url}: Content-Type {content_type}")
    return body


async def pull_once(
    http: aiohttp.ClientSession, url: str, repository: str, tag: str, index: BuiltIndex
) -> tuple[list[float], int]:
    """Pull the index, its manifests and every blob, one request after the other, checking
    every byte. Returns each request's latency and the bytes read."""
    latencies: list[float] = []
    base = f"{url}/v2/{repository}"
    body = await _get(http, f"{base}/manifests/{tag}", ACCEPT, latencies)
    if body != index.index_bytes:
        raise LoadError(f"{repository}:{tag}: {len(body)} bytes, not the index")
    size = len(body)
    for child in index.children:
        body = await _get(http, f"{base}/manifests/{child.digest}", ACCEPT, latencies)
        if body != child.manifest_bytes:
            raise LoadError(f"manifest {child.digest}: {len(body)} bytes of something else")
        size += len(body)
    for digest in index.blob_digests:
        body = await _get(http, f"{base}/blobs/{digest}", None, latencies)
        if sha256_digest(body) != digest:
            raise LoadError(f"blob {digest}: {len(body)} bytes hashing to {sha256_digest(body)}")
        size += len(body)
    return latencies, size


async def run_load(
    url: str,
    admin: Management,
    index: BuiltIndex,
    imports: Sequence[ImportSpec],
    *,
    pullers: int = PULLERS,
    min_rounds: int = 1,
    max_rounds: int = 50,
    timeout: float = 240.0,
    log: Callable[[str], None] | None = None,
) -> LoadReport:
    """`pullers` tasks pull `index` (at least `min_rounds` times each, and on until every
    import has ended, at most `max_rounds`) while `imports` are submitted all at once and
    followed to their end. Wrong answers land in `report.errors`; nothing raises."""
    report = LoadReport()
    go = asyncio.Event()
    imports_done = asyncio.Event()
    deadline = time.monotonic() + timeout
    began = 0.0

    async def puller(http: aiohttp.ClientSession, worker: int) -> None:
        await go.wait()
        for rounds in range(max_rounds):
            if rounds >= min_rounds and imports_done.is_set():
                break
            if time.monotonic() > deadline:
                report.errors.append(f"puller {worker}: out of time after {rounds} pulls")
                break
            start = time.perf_counter()
            try:
                latencies, size = await pull_once(http, url, PULL_REPOSITORY, PULL_TAG, index)
            except (aiohttp.ClientError, TimeoutError, LoadError) as exc:
                report.errors.append(f"puller {worker}, pull {rounds}: {exc!r}")
                continue
            report.pull_seconds.append(time.perf_counter() - start)
            report.request_seconds.extend(latencies)
            report.pulled_bytes += size
        report.pulls_ended_at = max(report.pulls_ended_at, time.perf_counter() - began)

    async def importer(spec: ImportSpec) -> None:
        await go.wait()
        start = time.perf_counter()
        try:
            operation = await admin.start_import(TARGET_REGISTRY, spec.body())
            if operation.status != 202:
                raise LoadError(f"importImage {spec.target}: {operation.status} {operation.body}")
            seen = None
            while True:
                seen = await admin.follow(operation, seen, FOLLOW_WAIT_SECONDS)
                status = seen[0]
                if status["status"] != "InProgress":
                    break
                if time.monotonic() > deadline:
                    raise LoadError(f"import {spec.target} still running: {status}")
        except (aiohttp.ClientError, TimeoutError, AssertionError, LoadError) as exc:
            report.errors.append(f"import {spec.target}: {exc!r}")
            return
        report.import_seconds.append(time.perf_counter() - start)
        report.import_finals.append(status)
        if status["status"] != "Succeeded":
            report.errors.append(f"import {spec.target}: {describe_failure(status)}")
        report.imports_ended_at = max(report.imports_ended_at, time.perf_counter() - began)

    async def all_imports() -> None:
        try:
            await asyncio.gather(*(importer(spec) for spec in imports))
        finally:
            imports_done.set()

    connector = aiohttp.TCPConnector(limit=pullers)
    timeouts = aiohttp.ClientTimeout(total=120, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeouts) as http:
        tasks = [asyncio.create_task(all_imports())]
        tasks += [asyncio.create_task(puller(http, w)) for w in range(pullers)]
        began = time.perf_counter()
        go.set()
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout + 30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        report.wall_seconds = time.perf_counter() - began
    if log is not None:
        log(
            f"{len(report.pull_seconds)} pulls, {len(report.request_seconds)} requests, "
            f"{report.pulled_bytes / 1e6:.0f} MB in {report.wall_seconds:.1f} s; "
            f"imports ended at {report.imports_ended_at:.1f} s; {len(report.errors)} errors"
        )
    return report


async def verify_imported(
    http: aiohttp.ClientSession, url: str, imports: Sequence[ImportSpec]
) -> list[str]:
    """Each target serves its source index, every child and every blob (HEAD, by size)."""
    problems: list[str] = []
    for spec in imports:
        repository, _, tag = spec.target.partition(":")
        base = f"{url}/v2/{repository}"
        async with http.get(f"{base}/manifests/{tag}", headers={"Accept": ACCEPT}) as r:
            if r.status != 200 or await r.read() != spec.image.index_bytes:
                problems.append(f"{spec.target}: {r.status}, not the source index")
        for child in spec.image.children:
            async with http.get(
                f"{base}/manifests/{child.digest}", headers={"Accept": ACCEPT}
            ) as r:
                if r.status != 200 or await r.read() != child.manifest_bytes:
                    problems.append(f"{spec.target}: child {child.digest} answered {r.status}")
        sizes = {
            d.digest: d.size
            for c in spec.image.children
            for d in (c.config, *(layer.descriptor for layer in c.layers))
        }
        for digest, size in sizes.items():
            async with http.head(f"{base}/blobs/{digest}") as r:
                if r.status != 200 or r.headers.get("Content-Length") != str(size):
                    problems.append(f"{spec.target}: blob {digest} answered {r.status}")
    return problems


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.slow(seconds=50)
@pytest.mark.timeout(400)
async def test_100_pulls_and_10_imports_at_once(
    tmp_path: Path,
    distribution_anon: DistributionRegistry,
    transship_factory: Callable[..., TransshipServer],
    http: aiohttp.ClientSession,
) -> None:
    # Built on threads: compressing and pushing images would hold the test's loop.
    index = await asyncio.to_thread(pull_image, tmp_path)
    specs = await asyncio.to_thread(import_sources, tmp_path, distribution_anon)
    config = write_config(tmp_path / "transship.toml", distribution_anon.host)
    server = await asyncio.to_thread(
        transship_factory, env={"TRANSSHIP_CONFIG": str(config)}, ready_timeout=60.0
    )
    admin = await prepare_target(http, server, index)

    # The pullers go on until the imports end (at most TEST_ROUNDS pulls each).
    report = await run_load(server.url, admin, index, specs, max_rounds=TEST_ROUNDS)

    assert report.errors == [], report.errors[:20]
    assert len(report.import_finals) == IMPORTS
    assert all(final["status"] == "Succeeded" for final in report.import_finals)
    assert len(report.pull_seconds) >= PULLERS
    assert await verify_imported(http, server.url, specs) == []
    await assert_check_clean(server.data_dir, None)
    assert server.running, server.log_text()
    print(
        f"load: {len(report.pull_seconds)} pulls ({len(report.request_seconds)} requests, "
        f"{report.pulled_bytes / 1e6:.0f} MB) and {IMPORTS} imports in "
        f"{report.wall_seconds:.1f} s (imports ended at {report.imports_ended_at:.1f} s), "
        "no errors"
    )
