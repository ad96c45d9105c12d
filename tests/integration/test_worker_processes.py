"""Imports run by `transship worker` processes for a `serve --no-background-work`: a worker
killed with `kill -9` mid-import is taken over by another once the lease expires, and the
import finishes without fetching again the blobs committed before the kill; the import
limits hold across workers. On SQLite and PostgreSQL, from a real docker-registry behind a
slow proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.conftest import SLOW_SMALL, TARGET, SlowUpstreamFactory
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultMode, FaultProxy
from tests.peers.images import OciLayout, build_image, push_layout_http, sha256_digest
from tests.peers.procs import wait_until
from tests.peers.transship import TransshipServer
from tests.peers.transship_worker import TransshipWorker
from tests.support.imports import (
    Management,
    assert_check_clean,
    assert_succeeded,
    fetch,
    has_blob_file,
)
from transship.metadata.db import async_url
from transship.metadata.schema import import_jobs

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2
# What may cross the proxy after the kill besides the missing blobs: manifests, headers and
# chunks the proxy still pushed towards the dead worker. Less than one small layer, so
# fetching any committed blob again shows.
OVERHEAD = 128 * 1024


def config_toml(path: Path, upstream_host: str, extra: str = "") -> Path:
    path.write_text(
        f"import_lease_seconds = {LEASE_SECONDS}\n"
        "gc_interval_seconds = 0\n"
        "upstream_read_timeout = 5\n"
        f"{extra}"
        f'[upstreams."{upstream_host}"]\n'
        "insecure = true\n"
    )
    return path


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., TransshipWorker]]:
    """``make(name, **kwargs)`` → a started :class:`TransshipWorker`; all stopped after."""
    workers: list[TransshipWorker] = []

    def make(name: str, **kwargs: Any) -> TransshipWorker:
        worker = TransshipWorker(tmp_path / name, **kwargs)
        workers.append(worker)
        return worker.start()

    try:
        yield make
    finally:
        for worker in reversed(workers):
            worker.stop()


async def readiness(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/readyz") as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def loop_names(body: dict[str, Any]) -> set[str]:
    return {loop["name"] for loop in body["loops"]}


async def test_a_killed_worker_s_import_is_finished_by_another(
    tmp_path: Path,
    database_url: str | None,
    slow_upstream: SlowUpstreamFactory,
    transship_factory: Callable[..., TransshipServer],
    worker_factory: Callable[..., TransshipWorker],
    http: aiohttp.ClientSession,
) -> None:
    # Workers → FaultProxy (1 MB/s per connection) → recording proxy → docker-registry
    upstream = await slow_upstream("workers")
    image, sizes, recorder, tcp = upstream.image, upstream.sizes, upstream.recorder, upstream.tcp
    env = {"TRANSSHIP_CONFIG": str(config_toml(tmp_path / "transship.toml", tcp.host))}
    server = await asyncio.to_thread(
        transship_factory,
        database_url=database_url,
        env=env,
        extra_args=["--no-background-work"],
    )
    served = await readiness(http, server.url)
    assert served["backgroundWork"] is False
    assert "imports" not in loop_names(served) and "gc" not in loop_names(served)
    first = await asyncio.to_thread(
        worker_factory, "worker-a", data_dir=server.data_dir, database_url=database_url, env=env
    )
    admin = await Management.remote(server.url, http, server.data_dir)
    await admin.create_registry(TARGET)

    operation = await admin.start_import(
        TARGET,
        {
            "source": {"registryUri": tcp.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
        },
    )
    # Only the first worker runs yet, so it holds the job; kill it once the small blobs are
    # in and the large ones under way.
    running = await admin.wait_for(
        operation,
        lambda s: (
            s["properties"]["progress"]["blobsDone"] >= 1 + len(SLOW_SMALL)
            and s["status"] == "InProgress"
        ),
        timeout=30,
        what="the small blobs committed",
    )
    progress = running["properties"]["progress"]
    assert progress["blobsDone"] < progress["blobsTotal"], running
    # Slowed to a trickle while the second worker starts (seconds, on a loaded machine), so
    # the kill lands mid-import.
    await asyncio.to_thread(tcp.bandwidth, 20_000)
    second = await asyncio.to_thread(
        worker_factory, "worker-b", data_dir=server.data_dir, database_url=database_url, env=env
    )
    worker = await readiness(http, second.url)
    assert worker["backgroundWork"] is True
    assert {"imports", "import-heartbeats", "webhooks"} <= loop_names(worker)
    committed = {d for d in sizes if has_blob_file(server.data_dir, d)}
    assert set(image.blob_digests[: 1 + len(SLOW_SMALL)]) <= committed
    seen_before = len(recorder.seen)

    await asyncio.to_thread(first.kill9)
    await asyncio.to_thread(
        wait_until, lambda: tcp.open_connections == 0, 30, what="the dead worker's connections"
    )
    tcp.reset_stats()
    await asyncio.to_thread(tcp.bandwidth, 1_000_000)
    final = await admin.wait(operation, timeout=60)
    progress = assert_succeeded(final)
    assert final["properties"]["attempts"] == 2, final["properties"]
    assert progress["bytesTotal"] == sum(sizes.values())

    again = [s.path for s in recorder.seen[seen_before:] if any(d in s.path for d in committed)]
    assert again == [], f"committed blobs were fetched again after the kill: {again}"
    missing = sum(size for digest, size in sizes.items() if digest not in committed)
    assert tcp.stats.bytes_down <= missing + OVERHEAD, (tcp.stats, missing)

    got = await fetch(http, server.url, "/v2/app/manifests/v1")
    assert got.status == 200 and got.body == image.manifest_bytes
    for digest in image.blob_digests:
        blob = await fetch(http, server.url, f"/v2/app/blobs/{digest}")
        assert blob.status == 200 and sha256_digest(blob.body) == digest
    await asyncio.to_thread(second.stop)
    await assert_check_clean(server.data_dir, database_url)


async def test_import_limits_hold_across_workers(
    tmp_path: Path,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    transship_factory: Callable[..., TransshipServer],
    worker_factory: Callable[..., TransshipWorker],
    http: aiohttp.ClientSession,
) -> None:
    # Each worker could run 4 imports; the service may run 2, one per registry.
    image = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "layout"), seed="limits", layer_sizes=(1_500_000,)
    )
    await asyncio.to_thread(push_layout_http, image, distribution_anon.url, "team/app", "v1")
    host, port = distribution_anon.url.removeprefix("http://").split(":")
    tcp = fault_proxy_factory(host, int(port))
    tcp.set_mode(FaultMode.bandwidth(1_000_000))
    limits = "import_workers = 4\nimport_max_running = 2\nimport_max_running_per_registry = 1\n"
    env = {"TRANSSHIP_CONFIG": str(config_toml(tmp_path / "transship.toml", tcp.host, limits))}
    server = await asyncio.to_thread(
        transship_factory, database_url=database_url, env=env, extra_args=["--no-background-work"]
    )
    for name in ("worker-a", "worker-b"):
        await asyncio.to_thread(
            worker_factory, name, data_dir=server.data_dir, database_url=database_url, env=env
        )
    admin = await Management.remote(server.url, http, server.data_dir)
    registries = [TARGET, "second", "third"]
    await admin.create_registry(TARGET)
    for name in registries[1:]:
        await admin.create_registry(name)
    operations = [
        await admin.start_import(
            registry,
            {
                "source": {"registryUri": tcp.host, "sourceImage": "team/app:v1"},
                "targetTags": [f"app:{n}"],
            },
        )
        for registry in registries
        for n in range(2)
    ]

    # Counted in the database, in one statement: reading each registry's operations in turn
    # would add up jobs that never ran at the same moment.
    engine = create_async_engine(
        async_url(database_url or f"sqlite:///{server.data_dir / 'metadata.db'}")
    )
    running_now = (
        select(import_jobs.c.registry_id, func.count())
        .where(import_jobs.c.state == "running")
        .group_by(import_jobs.c.registry_id)
    )
    most_at_once, most_in_one = 0, 0
    try:
        while True:
            async with engine.connect() as connection:
                running = {r: n for r, n in await connection.execute(running_now)}
            most_at_once = max(most_at_once, sum(running.values()))
            most_in_one = max(most_in_one, *running.values(), 0)
            statuses = [s for r in registries for s in await admin.operations(r)]
            if all(
                s["properties"]["state"] in ("succeeded", "failed", "canceled") for s in statuses
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    assert most_in_one == 1, most_in_one
    assert most_at_once == 2, most_at_once
    for operation in operations:
        assert_succeeded(await admin.wait(operation, timeout=5))
