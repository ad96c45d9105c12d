"""Large plain-HTTP blob answers read from the connection's socket by the writer's thread
(`UpstreamClient` handing the socket to a `SourceReceiver`): the whole blob through one
`receive`, small or chunked answers through the event loop as before, a connection cut or
stalled mid-blob resumed with Range from what was kept, and a cancelled fetch that stops
its thread at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.unit.imports.doubles import Sleeps
from transship.config import UpstreamHost
from transship.imports.endpoints import resolve_endpoint
from transship.imports.errors import ImportFailure
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import SOCKET_READ_MIN_BYTES, UpstreamClient
from transship.oci.digest import CountingHasher, Digest
from transship.storage.base import BlockingSource
from transship.storage.filesystem import FilesystemBlobStore

HOST = "upstream.test:5000"
REPO = "library/app"
BIG = os.urandom(3 * (1 << 20) + 12345)
UPLOAD = uuid.uuid4().hex


class RawBlobs:
    """A raw HTTP/1.1 server answering every blob GET with `data` (Content-Length; Range
    honoured), keeping each request's head. `cut_after`: the first answer's connection is
    closed after that many body bytes; `stall_after`: the first answer stops sending after
    that many and keeps the connection open."""

    def __init__(
        self, data: bytes, *, cut_after: int | None = None, stall_after: int | None = None
    ) -> None:
        self.data = data
        self.cut_after = cut_after
        self.stall_after = stall_after
        self.requests: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._stalled: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawBlobs:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._stalled:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                self.requests.append(head)
                first = len(self.requests) == 1
                start = 0
                for line in head.split("\r\n"):
                    if line.lower().startswith("range: bytes="):
                        start = int(line.split("=", 1)[1].split("-", 1)[0])
                body = self.data[start:]
                status = "206 Partial Content" if start else "200 OK"
                ranged = f"Content-Range: bytes {start}-{len(self.data) - 1}/{len(self.data)}\r\n"
                extra = ranged if start else ""
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
                )
                if first and self.cut_after is not None:
                    writer.write(body[: self.cut_after])
                    await writer.drain()
                    writer.close()
                    return
                if first and self.stall_after is not None:
                    writer.write(body[: self.stall_after])
                    await writer.drain()
                    self._stalled.append(writer)
                    return
                writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


class StagedFile:
    """A BlobWriter over a real staged upload of the filesystem store, recording which way
    the bytes came (`receive` from a socket, or `append` through the loop)."""

    def __init__(self, store: FilesystemBlobStore, upload_id: str) -> None:
        self.store = store
        self.upload_id = upload_id
        self.counter = CountingHasher()
        self.received: list[int] = []  # the offset of each `receive`
        self.appended: list[int] = []  # the offset of each `append`

    @property
    def offset(self) -> int:
        return self.counter.count

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        self.appended.append(self.offset)
        await self.store.append_staging(self.upload_id, chunks, self.counter)

    async def reset(self) -> None:
        await self.store.truncate_staging(self.upload_id, 0)
        self.counter = CountingHasher()

    def receives_from_source(self) -> bool:
        return True

    async def receive(self, source: BlockingSource, count: int) -> None:
        self.received.append(self.offset)
        await self.store.append_staging_from(self.upload_id, source, count, self.counter)

    def content(self) -> bytes:
        return self.store._staging_path(self.upload_id).read_bytes()


@pytest.fixture
async def staged(tmp_path: Path) -> StagedFile:
    store = FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)
    await store.create_staging(UPLOAD)
    return StagedFile(store, UPLOAD)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


def _client(session: aiohttp.ClientSession, url: str, read_timeout: float = 5.0) -> UpstreamClient:
    endpoint = resolve_endpoint(HOST, {HOST: UpstreamHost(endpoint=url, insecure=True)})
    retry = RetryPolicy(
        attempts=3, base_delay=0.05, max_delay=0.1, jitter=0.0, max_retry_after=1.0, sleep=Sleeps()
    )
    return UpstreamClient(
        session, endpoint, REPO, None, retry=retry, max_manifest_bytes=1 << 20,
        read_timeout=read_timeout,
    )  # fmt: skip


def _digest(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


async def test_a_large_blob_is_read_from_the_socket_in_one_receive(
    session: aiohttp.ClientSession, staged: StagedFile
) -> None:
    async with RawBlobs(BIG) as registry:
        await _client(session, registry.url).fetch_blob(_digest(BIG), len(BIG), staged)
    assert staged.content() == BIG
    assert staged.counter.hasher.hexdigest() == _digest(BIG).encoded
    assert (staged.received, staged.appended) == ([0], [])
    assert len(registry.requests) == 1


async def test_a_small_blob_goes_through_the_loop_and_keeps_its_connection(
    session: aiohttp.ClientSession, staged: StagedFile
) -> None:
    small = BIG[: SOCKET_READ_MIN_BYTES - 1]
    async with RawBlobs(small) as registry:
        client = _client(session, registry.url)
        await client.fetch_blob(_digest(small), len(small), staged)
        assert (staged.received, staged.appended) == ([], [0])
        await staged.reset()
        await client.fetch_blob(_digest(small), len(small), staged)
    assert staged.content() == small
    assert len(registry.requests) == 2


async def test_a_connection_cut_mid_blob_resumes_from_what_was_kept(
    session: aiohttp.ClientSession, staged: StagedFile
) -> None:
    cut = 1_500_000
    async with RawBlobs(BIG, cut_after=cut) as registry:
        await _client(session, registry.url).fetch_blob(_digest(BIG), len(BIG), staged)
    assert staged.content() == BIG
    assert staged.counter.hasher.hexdigest() == _digest(BIG).encoded
    assert staged.received == [0, cut]  # the rest, from the socket too
    assert f"Range: bytes={cut}-" in registry.requests[1]


async def test_a_stalled_connection_times_out_and_resumes(
    session: aiohttp.ClientSession, staged: StagedFile
) -> None:
    stall = 1_200_000
    async with RawBlobs(BIG, stall_after=stall) as registry:
        await _client(session, registry.url, read_timeout=0.5).fetch_blob(
            _digest(BIG), len(BIG), staged
        )
    assert staged.content() == BIG
    assert staged.received == [0, stall]


async def test_a_connection_that_keeps_failing_is_upstream_unavailable(
    session: aiohttp.ClientSession, staged: StagedFile
) -> None:
    class AlwaysCut(RawBlobs):
        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            self.requests.append(head)
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.data)}\r\n\r\n".encode())
            if len(self.requests) == 1:
                writer.write(self.data[:1000])  # after that, not a byte: no progress
            await writer.drain()
            writer.close()

    async with AlwaysCut(BIG) as registry:
        with pytest.raises(ImportFailure) as failed:
            await _client(session, registry.url).fetch_blob(_digest(BIG), len(BIG), staged)
    assert failed.value.code == "UpstreamUnavailable", failed.value
    assert str(_digest(BIG)) in failed.value.message or failed.value.obj == str(_digest(BIG))


async def test_a_cancelled_fetch_stops_its_reading_thread_at_once(
    session: aiohttp.ClientSession, staged: StagedFile
) -> None:
    async with RawBlobs(BIG, stall_after=1_100_000) as registry:
        client = _client(session, registry.url, read_timeout=30.0)
        fetch = asyncio.create_task(client.fetch_blob(_digest(BIG), len(BIG), staged))
        while staged.offset < 1_100_000:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        fetch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetch
        assert time.monotonic() - started < 5.0  # not the 30 s read timeout
    kept = staged.offset
    await asyncio.sleep(0.1)
    assert staged.offset == kept and len(staged.content()) == kept
