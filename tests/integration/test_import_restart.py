"""An import interrupted by a restart of the server resumes and succeeds: after a graceful
stop at once, after `kill -9` once the lease has expired. Blobs committed before the
interruption are not fetched again, and `transship check --verify-digests` is clean."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import SLOW_SMALL, TARGET, SlowUpstreamFactory
from tests.peers.images import sha256_digest
from tests.peers.procs import wait_until
from tests.peers.transship import TransshipServer
from tests.support.imports import (
    Management,
    assert_check_clean,
    assert_succeeded,
    fetch,
    has_blob_file,
)

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2
# What may cross the proxy after the restart besides the missing blobs: manifests and
# headers, and chunks the proxy still pushed towards the dead process. Less than one small
# layer, so fetching any committed blob again shows.
OVERHEAD = 128 * 1024


def config_toml(path: Path, upstream_host: str) -> Path:
    path.write_text(
        f"import_lease_seconds = {LEASE_SECONDS}\n"
        "gc_interval_seconds = 0\n"
        "upstream_read_timeout = 5\n"
        f'[upstreams."{upstream_host}"]\n'
        "insecure = true\n"
    )
    return path


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("crash", [False, True], ids=["graceful", "kill9"])
async def test_import_resumes_after_a_restart(
    crash: bool,
    tmp_path: Path,
    database_url: str | None,
    slow_upstream: SlowUpstreamFactory,
    transship_factory: Callable[..., TransshipServer],
    http: aiohttp.ClientSession,
) -> None:
    # Transship → FaultProxy (1 MB/s per connection) → recording proxy → docker-registry
    upstream = await slow_upstream("restart")
    image, sizes, recorder, tcp = upstream.image, upstream.sizes, upstream.recorder, upstream.tcp
    config = config_toml(tmp_path / "transship.toml", tcp.host)
    server = await asyncio.to_thread(
        transship_factory, database_url=database_url, env={"TRANSSHIP_CONFIG": str(config)}
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
    # Interrupt once the small blobs are in and the large ones are under way.
    running = await admin.wait_for(
        operation,
        lambda s: (
            s["properties"]["progress"]["blobsDone"] >= 1 + len(SLOW_SMALL)
            and s["status"] == "InProgress"
        ),
        timeout=30,
        what="the small blobs committed",
    )
    assert (
        running["properties"]["progress"]["blobsDone"]
        < running["properties"]["progress"]["blobsTotal"]
    ), running
    committed = {d for d in sizes if has_blob_file(server.data_dir, d)}
    assert set(image.blob_digests[: 1 + len(SLOW_SMALL)]) <= committed, (
        "the config and the small layers are not committed"
    )
    seen_before = len(recorder.seen)

    await asyncio.to_thread(server.kill9 if crash else server.stop)
    # The proxy has closed the old process's connections (so it counts only the new ones).
    await asyncio.to_thread(
        wait_until, lambda: tcp.open_connections == 0, 30, what="old connections closed"
    )
    tcp.reset_stats()
    await asyncio.to_thread(server.start)
    final = await admin.wait(operation, timeout=60)
    progress = assert_succeeded(final)
    assert final["properties"]["attempts"] == 2, final["properties"]
    assert progress["bytesTotal"] == sum(sizes.values())

    again = [s.path for s in recorder.seen[seen_before:] if any(d in s.path for d in committed)]
    assert again == [], f"committed blobs were fetched again after the restart: {again}"
    assert min(SLOW_SMALL) > OVERHEAD
    missing = sum(size for digest, size in sizes.items() if digest not in committed)
    assert tcp.stats.bytes_down <= missing + OVERHEAD, (tcp.stats, missing)

    got = await fetch(http, server.url, "/v2/app/manifests/v1")
    assert got.status == 200 and got.body == image.manifest_bytes
    for digest in image.blob_digests:
        blob = await fetch(http, server.url, f"/v2/app/blobs/{digest}")
        assert blob.status == 200 and sha256_digest(blob.body) == digest
    await assert_check_clean(server.data_dir, database_url)
