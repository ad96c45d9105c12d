"""How `UpstreamClient` streams a chunked blob body (kept from the issue 14 experiments,
which tried reading the pieces as the socket delivered them): every byte arrives in one
request whatever the HTTP chunk boundaries, in bounded pieces, never more than the blob."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.unit.imports.doubles import MemoryWriter, Sleeps
from transship.config import UpstreamHost
from transship.imports.endpoints import resolve_endpoint
from transship.imports.errors import ImportFailure
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import CHUNK_SIZE, UpstreamClient
from transship.oci.digest import Digest

HOST = "upstream.test:5000"
REPO = "library/app"


class ChunkedBlobs:
    """A registry whose blob GETs answer with chunked transfer encoding, one HTTP chunk per
    `piece` bytes, pausing after each so that the client sees every chunk boundary."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data = data
        self.piece = piece
        self.gets = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/", self._base)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _base(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        self.gets += 1
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(self.data), self.piece):
            await response.write(self.data[start : start + self.piece])
            await asyncio.sleep(0.005)
        await response.write_eof()
        return response


class SplitChunks:
    """A raw HTTP server whose blob answer is chunked with each chunk's data and its closing
    CRLF in separate TCP segments: the client consumes a chunk's bytes before it learns
    that the chunk ended, so the boundary surfaces as an empty read of its own."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.requests: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            for piece in self.pieces:
                writer.write(b"%x\r\n" % len(piece) + piece)
                await writer.drain()
                await asyncio.sleep(0.02)
                writer.write(b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


def _client(session: aiohttp.ClientSession, url: str) -> UpstreamClient:
    endpoint = resolve_endpoint(HOST, {HOST: UpstreamHost(endpoint=url, insecure=True)})
    retry = RetryPolicy(
        attempts=2, base_delay=0.25, max_delay=1.0, jitter=0.0, max_retry_after=1.0, sleep=Sleeps()
    )
    return UpstreamClient(
        session, endpoint, REPO, None, retry=retry, max_manifest_bytes=1 << 20, read_timeout=5.0
    )


def _digest(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


async def test_a_chunked_body_arrives_whole_in_one_request(
    session: aiohttp.ClientSession,
) -> None:
    # Chunk boundaries surface as empty reads; taking one for the end of the body would
    # cut the blob short (and then fetch the rest again with Range).
    data = bytes(range(256)) * 2000  # 512,000 bytes in 40 HTTP chunks
    registry = ChunkedBlobs(data, piece=12_800)
    await registry.start()
    try:
        writer = MemoryWriter()
        await _client(session, registry.url).fetch_blob(_digest(data), len(data), writer)
    finally:
        await registry.close()
    assert bytes(writer.data) == data
    assert writer.digest == _digest(data)
    assert registry.gets == 1
    assert writer.append_offsets == [0]
    assert max(writer.chunk_sizes) <= CHUNK_SIZE


async def test_a_chunk_boundary_seen_on_its_own_does_not_end_the_body(
    session: aiohttp.ClientSession,
) -> None:
    pieces = [b"first piece " * 10, b"second piece " * 10, b"third"]
    data = b"".join(pieces)
    registry = SplitChunks(pieces)
    await registry.start()
    try:
        writer = MemoryWriter()
        await _client(session, registry.url).fetch_blob(_digest(data), len(data), writer)
    finally:
        await registry.close()
    assert bytes(writer.data) == data
    assert len(registry.requests) == 1  # not cut short and continued with Range
    assert b"Range" not in registry.requests[0]


async def test_a_chunked_body_longer_than_the_blob_is_size_invalid(
    session: aiohttp.ClientSession,
) -> None:
    data = bytes(range(256)) * 100
    registry = ChunkedBlobs(data + b"more", piece=1000)
    await registry.start()
    try:
        writer = MemoryWriter()
        with pytest.raises(ImportFailure) as failure:
            await _client(session, registry.url).fetch_blob(_digest(data), len(data), writer)
    finally:
        await registry.close()
    assert failure.value.code == "SIZE_INVALID"
    assert writer.offset <= len(data)
