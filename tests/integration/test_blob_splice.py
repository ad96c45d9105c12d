"""Blob GETs spliced from a real object store (S3 on SeaweedFS, Azure Blob on Azurite) into
the client's socket: byte-exact whole and ranged bodies without the store client's read,
parallel GETs, a client that leaves mid-body (no descriptor left behind, the next GET
served), and bytes gone from the store answered 404 through the streamed path."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.integration.test_object_store_contract import azure_store, s3_store
from tests.peers.object_stores import Azurite, SeaweedFS
from tests.unit.storage.blobstore_contract import BlobStoreContract
from transship.api.blob_responses import serve_blob
from transship.oci.digest import Digest
from transship.registry.blobs import BlobLocation
from transship.storage.object_store import ObjectBlobStore

pytestmark = pytest.mark.timeout(120)

# Past one pipe's worth (1 MiB), so a body takes several splices.
DATA = os.urandom(3 * 1024 * 1024 + 517)
DIGEST = Digest.of(DATA)


class Served:
    """A test server answering `GET /blob` from `store`, counting the store reads (the
    streamed path) that `serve_blob` falls back to."""

    def __init__(self, store: ObjectBlobStore, location: BlobLocation) -> None:
        self.store = store
        self.reads = 0
        read = store.read

        def counting_read(*args: Any) -> AsyncIterator[bytes]:
            self.reads += 1
            return read(*args)

        store.read = counting_read  # type: ignore[method-assign]

        async def handler(request: web.Request) -> web.StreamResponse:
            return await serve_blob(request, store, location)

        app = web.Application()
        app.router.add_get("/blob", handler)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self) -> str:
        return str(self.server.make_url("/blob"))


StoreMaker = Callable[[], ObjectBlobStore]


@pytest.fixture(params=["s3", "azure"])
def make_store(request: pytest.FixtureRequest) -> StoreMaker:
    if request.param == "s3":
        weed: SeaweedFS = request.getfixturevalue("seaweedfs")
        return lambda: s3_store(weed, weed.new_prefix())
    azurite: Azurite = request.getfixturevalue("azurite")
    return lambda: azure_store(azurite, azurite.new_container())


@pytest.fixture
async def served(make_store: StoreMaker) -> AsyncIterator[Served]:
    store = make_store()
    await BlobStoreContract.put(store, DATA)
    served = Served(store, BlobLocation(DIGEST, len(DATA)))
    await served.server.start_server()
    try:
        yield served
    finally:
        await served.server.close()


async def _get(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


async def test_a_whole_blob_is_spliced_byte_exact(served: Served) -> None:
    status, headers, body = await _get(served.url())
    assert status == 200
    assert body == DATA
    assert headers["Content-Length"] == str(len(DATA))
    assert headers["Docker-Content-Digest"] == str(DIGEST)
    assert served.reads == 0  # never through the store client


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=5-1048580", 5, 1048581),
        ("bytes=1048570-", 1048570, len(DATA)),
        ("bytes=-10", len(DATA) - 10, len(DATA)),
        ("bytes=0-0", 0, 1),
    ],
)
async def test_a_range_is_spliced(served: Served, header: str, start: int, stop: int) -> None:
    status, headers, body = await _get(served.url(), {"Range": header})
    assert status == 206
    assert body == DATA[start:stop]
    assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(DATA)}"
    assert served.reads == 0


async def test_an_unsatisfiable_range_is_416(served: Served) -> None:
    status, headers, _ = await _get(served.url(), {"Range": f"bytes={len(DATA)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(DATA)}"


async def test_parallel_gets_each_get_their_own_bytes(served: Served) -> None:
    ranges = [(0, len(DATA)), (1, 2 * 1024 * 1024), (1024 * 1024, len(DATA)), (7, 8)]

    async def one(start: int, stop: int) -> bytes:
        header = {"Range": f"bytes={start}-{stop - 1}"} if (start, stop) != ranges[0] else {}
        _, _, body = await _get(served.url(), header)
        return body

    bodies = await asyncio.gather(*(one(a, b) for a, b in ranges * 2))
    assert bodies == [DATA[a:b] for a, b in ranges * 2]
    assert served.reads == 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_client_leaving_mid_body_leaves_nothing_behind(served: Served) -> None:
    await _get(served.url())  # the warm-up: connection pools, the store's first request
    before = _open_fds()
    port = served.server.port
    assert port is not None
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /blob HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(64 * 1024)
        writer.transport.abort()  # a reset, mid-body
    # The server notices at its next splice; then the pipe and sockets are closed.
    for _ in range(100):
        if _open_fds() <= before:
            break
        await asyncio.sleep(0.05)
    assert _open_fds() <= before
    status, _, body = await _get(served.url())
    assert (status, body == DATA) == (200, True)


async def test_bytes_gone_from_the_store_answer_404(make_store: StoreMaker) -> None:
    store = make_store()
    absent = Digest.of(b"linked in the metadata, absent from the bucket")
    served = Served(store, BlobLocation(absent, 46))
    await served.server.start_server()
    try:
        status, _, _ = await _get(served.url())
    finally:
        await served.server.close()
    assert status == 404
    assert served.reads == 1  # the splice declined; the streamed path mapped the error
