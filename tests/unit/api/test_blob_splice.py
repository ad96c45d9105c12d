"""The splice path's edges, against a scripted HTTP source on loopback: answers it must
decline before anything is sent (so the caller streams instead), a body that ends early or
stalls after the headers went out (the client's connection is cut, never left hanging),
and a TLS client connection or a system without splice(2) streaming without signing
anything."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.unit.api.test_blob_redirects import SigningStore
from tests.unit.imports.tls import write_self_signed
from tests.unit.storage.blobstore_contract import BlobStoreContract
from transship.api import blob_splice
from transship.api.blob_responses import serve_blob
from transship.api.blob_splice import SpliceError, open_source, splice_body
from transship.oci.digest import Digest
from transship.registry.blobs import BlobLocation

BODY = os.urandom(300_000)
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def source() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """`start(script)` → the URL of a loopback server running `script` per connection."""
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            try:
                await script(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/bucket/blob?X-Amz-Signature=secret"

    try:
        yield start
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def answer(head: bytes, body: bytes = b"", *, then_wait: float = 0) -> Script:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        if then_wait:
            await asyncio.sleep(then_wait)

    return script


@pytest.mark.parametrize(
    ("head", "whole"),
    [
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0", True),
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 300000", False),  # a range was asked
        (b"HTTP/1.1 206 Partial Content\r\nContent-Length: 300000", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 299999", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 300000", True),
        (b"HTTP/1.1 200 OK\r\nno colon here", True),
        (b"SPDY 200 OK\r\nContent-Length: 300000", True),
    ],
)
async def test_an_unexpected_answer_is_declined(
    source: Callable[[Script], Awaitable[str]], head: bytes, whole: bool
) -> None:
    url = await source(answer(head))
    assert await open_source(url, 0, len(BODY), whole) is None


async def test_what_cannot_be_spliced_is_declined_without_a_request(
    source: Callable[[Script], Awaitable[str]],
) -> None:
    url = await source(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", BODY))
    assert await open_source(url.replace("http:", "https:"), 0, len(BODY), True) is None
    assert await open_source(url, 0, 0, True) is None
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/b"
    assert await open_source(refused, 0, len(BODY), True) is None


async def test_headers_that_never_end_are_declined(
    source: Callable[[Script], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_splice, "_OPEN_TIMEOUT_SECONDS", 0.3)
    url = await source(_endless_head)
    assert await open_source(url, 0, len(BODY), True) is None


async def _endless_head(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n")
    await writer.drain()
    await asyncio.sleep(5)


async def test_a_source_that_ends_early_raises(
    source: Callable[[Script], Awaitable[str]],
) -> None:
    url = await source(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", BODY[:-10]))
    opened = await open_source(url, 0, len(BODY), True)
    assert opened is not None
    left, right = socket.socketpair()
    left.setblocking(False)
    drained = asyncio.create_task(_drain(right))
    try:
        with opened.sock, pytest.raises(SpliceError, match="10 bytes short"):
            await splice_body(opened.sock, left.fileno(), len(BODY) - len(opened.head))
    finally:
        left.close()
        got = await drained
        right.close()
    assert got == BODY[len(opened.head) : -10]


async def test_a_source_that_stalls_raises(
    source: Callable[[Script], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_splice, "_IDLE_TIMEOUT_SECONDS", 0.3)
    url = await source(
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", BODY[:1000], then_wait=5)
    )
    opened = await open_source(url, 0, len(BODY), True)
    assert opened is not None
    left, right = socket.socketpair()
    left.setblocking(False)
    try:
        with opened.sock, pytest.raises(SpliceError, match="nothing for too long"):
            await splice_body(opened.sock, left.fileno(), len(BODY) - len(opened.head))
    finally:
        left.close()
        right.close()


async def _drain(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    received = bytearray()
    while chunk := await loop.sock_recv(sock, 65536):
        received += chunk
    return bytes(received)


async def _serve(store: SigningStore, size: int, tls: ssl.SSLContext | None = None) -> TestServer:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_blob(request, store, BlobLocation(Digest.of(BODY), size))

    app = web.Application()
    app.router.add_get("/blob", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=tls)
    return server


async def test_a_body_cut_short_by_the_store_cuts_the_client_off(
    source: Callable[[Script], Awaitable[str]],
) -> None:
    url = await source(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", BODY[:200_000]))
    store = SigningStore(url)
    await BlobStoreContract.put(store, BODY)
    server = await _serve(store, len(BODY))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url("/blob")) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            # Only that connection was cut: the server goes on answering.
            async with session.get(server.make_url("/blob")) as response:
                assert response.status == 200
    finally:
        await server.close()


async def test_a_declined_splice_streams_from_the_store(
    source: Callable[[Script], Awaitable[str]],
) -> None:
    url = await source(answer(b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0"))
    store = SigningStore(url)
    await BlobStoreContract.put(store, BODY)
    server = await _serve(store, len(BODY))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/blob")) as response,
        ):
            assert response.status == 200
            assert await response.read() == BODY
    finally:
        await server.close()


async def test_without_splice_nothing_is_signed_and_the_blob_is_streamed(
    source: Callable[[Script], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_splice, "_SPLICE", None)
    url = await source(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", BODY))
    store = SigningStore(url)
    await BlobStoreContract.put(store, BODY)
    server = await _serve(store, len(BODY))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/blob")) as response,
        ):
            assert await response.read() == BODY
    finally:
        await server.close()
    assert store.asked == []


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut-short"])
async def test_headers_still_queued_make_the_body_relayed_not_spliced(
    source: Callable[[Script], Awaitable[str]], monkeypatch: pytest.MonkeyPatch, cut: bool
) -> None:
    # As if the client's socket had not taken the status line yet: splicing behind it
    # would put body bytes before the headers.
    monkeypatch.setattr(
        asyncio.selector_events._SelectorSocketTransport, "get_write_buffer_size", lambda _: 1
    )
    body = BODY[:123_456] if cut else BODY
    url = await source(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", body))
    store = SigningStore(url)
    await BlobStoreContract.put(store, BODY)
    server = await _serve(store, len(BODY))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/blob")) as response,
        ):
            assert response.status == 200
            if cut:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            else:
                assert await response.read() == BODY
    finally:
        await server.close()
    assert len(store.asked) == 1


def _tls_context(directory: Path) -> ssl.SSLContext:
    cert_path, key_path = write_self_signed(directory, "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


async def test_a_tls_client_connection_is_never_spliced(
    source: Callable[[Script], Awaitable[str]], tmp_path: Path
) -> None:
    # Plain bytes spliced under TLS would corrupt the connection: the store must not even
    # be asked for a URL, and the answer comes from the store's stream.
    url = await source(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 300000", BODY[::-1]))
    store = SigningStore(url)
    await BlobStoreContract.put(store, BODY)
    server = await _serve(store, len(BODY), tls=_tls_context(tmp_path))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/blob"), ssl=False) as response,
        ):
            assert response.status == 200
            assert await response.read() == BODY
    finally:
        await server.close()
    assert store.asked == []
