"""Connection timeouts and the per-client connection cap (issue 10, item 9), on the real
application served in-process, driven by raw asyncio streams."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.app import (
    AppTestServer,
    RunningRegistry,
    make_settings,
    running_registry,
    sha256,
)
from transship.api.connections import WARN_INTERVAL, ClientConnections, client_address
from transship.config import Settings

# Upper bounds are generous: they only have to be far below "held forever" (the bug).
CLOSE_WITHIN = 10.0


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_after(reader: asyncio.StreamReader, within: float = CLOSE_WITHIN) -> float:
    """Seconds until the server closes the connection (EOF or reset); fails the test if it
    stays open `within` seconds. Anything the server sends first (a response) is skipped."""
    start = time.monotonic()

    async def until_eof() -> None:
        try:
            while await reader.read(65536):
                pass
        except ConnectionResetError:
            pass

    await asyncio.wait_for(until_eof(), within)
    return time.monotonic() - start


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLOSE_WITHIN)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), CLOSE_WITHIN)
    return status, body


def healthz() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@asynccontextmanager
async def registry(tmp_path: Path, **overrides: Any) -> AsyncIterator[RunningRegistry]:
    overrides.setdefault("http_header_timeout_seconds", 30.0)
    overrides.setdefault("http_body_idle_timeout_seconds", 30.0)
    overrides.setdefault("http_keepalive_timeout_seconds", 30.0)
    async with running_registry(make_settings(tmp_path / "data", None, **overrides)) as reg:
        yield reg


def port_of(reg: RunningRegistry) -> int:
    port = reg.server.port
    assert port is not None
    return port


async def test_a_stalled_request_line_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    async with registry(tmp_path, http_header_timeout_seconds=1.0) as reg:
        reader, writer = await connect(port_of(reg))
        writer.write(b"GET /heal")
        await writer.drain()
        elapsed = await closed_after(reader)
        assert elapsed >= 0.5  # the timeout, not an immediate refusal
        writer.close()


async def test_stalled_headers_are_closed_even_while_bytes_trickle(tmp_path: Path) -> None:
    """The header timeout is a deadline, not an idle timer: a byte every 0.2 s does not
    keep a request whose headers never end alive."""
    async with registry(tmp_path, http_header_timeout_seconds=1.0) as reg:
        reader, writer = await connect(port_of(reg))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        eof = asyncio.create_task(closed_after(reader))
        try:
            while not eof.done():
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                await asyncio.wait({eof}, timeout=0.2)
        except ConnectionError:
            pass
        assert await eof < CLOSE_WITHIN
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(tmp_path: Path) -> None:
    async with registry(tmp_path, http_header_timeout_seconds=1.0) as reg:
        reader, writer = await connect(port_of(reg))
        assert await closed_after(reader) >= 0.5
        writer.close()


async def test_a_body_that_stalls_is_closed_after_the_body_idle_timeout(tmp_path: Path) -> None:
    async with registry(tmp_path, http_body_idle_timeout_seconds=1.0) as reg:
        body = b"b" * 1000
        reader, writer = await connect(port_of(reg))
        writer.write(
            f"POST /v2/app/blobs/uploads/?digest={sha256(body)} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:100]
        )
        await writer.drain()
        assert await closed_after(reader) >= 0.5
        writer.close()
        # Nothing of the half-sent blob is visible.
        async with reg.request("HEAD", f"/v2/app/blobs/{sha256(body)}") as r:
            assert r.status == 404


async def test_a_slow_but_steady_upload_succeeds(tmp_path: Path) -> None:
    """A chunk every 0.2 s for ~2.4 s, with a body-idle timeout of 1 s and a header timeout
    of 1 s: neither trips while the body progresses."""
    async with registry(
        tmp_path, http_body_idle_timeout_seconds=1.0, http_header_timeout_seconds=1.0
    ) as reg:
        chunks = [bytes([65 + n]) * 1000 for n in range(12)]
        body = b"".join(chunks)
        reader, writer = await connect(port_of(reg))
        writer.write(
            f"POST /v2/app/blobs/uploads/?digest={sha256(body)} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        start = time.monotonic()
        for chunk in chunks:
            await asyncio.sleep(0.2)  # the client's pace, not synchronisation
            writer.write(chunk)
            await writer.drain()
        status, _ = await read_response(reader)
        assert status == 201
        assert time.monotonic() - start > 2.0  # longer than both timeouts in total
        writer.close()
        async with reg.request("GET", f"/v2/app/blobs/{sha256(body)}") as r:
            assert r.status == 200 and await r.read() == body


async def test_an_idle_keepalive_connection_is_closed(tmp_path: Path) -> None:
    async with registry(tmp_path, http_keepalive_timeout_seconds=1.0) as reg:
        reader, writer = await connect(port_of(reg))
        for _ in range(2):  # keep-alive works: two requests on one connection
            writer.write(healthz())
            await writer.drain()
            status, _ = await read_response(reader)
            assert status == 200
        elapsed = await closed_after(reader)
        assert 0.5 <= elapsed < CLOSE_WITHIN
        writer.close()


async def test_the_per_client_cap_closes_the_extra_connection_and_frees_a_slot(
    tmp_path: Path,
) -> None:
    async with registry(tmp_path, http_max_connections_per_client=3) as reg:
        port = port_of(reg)
        held = [await connect(port) for _ in range(3)]
        # The three first are served …
        for reader, writer in held:
            writer.write(healthz())
            await writer.drain()
            assert (await read_response(reader))[0] == 200
        # … the fourth is closed at once (far sooner than the 30 s header timeout) …
        extra_reader, extra_writer = await connect(port)
        assert await closed_after(extra_reader, within=5.0) < 5.0
        extra_writer.close()
        # … and once one of the three goes, a new connection is served again.
        held[0][1].close()
        await held[0][1].wait_closed()
        status = await _first_served_connection(port, within=5.0)
        assert status == 200
        for _, writer in held[1:]:
            writer.close()


async def _first_served_connection(port: int, within: float) -> int:
    """The status of /healthz on the first new connection the server keeps: the server
    notices the freed slot when its loop reads the FIN, so earlier tries may be refused."""
    deadline = time.monotonic() + within
    while True:
        reader, writer = await connect(port)
        try:
            writer.write(healthz())
            await writer.drain()
            return (await read_response(reader))[0]
        except (asyncio.IncompleteReadError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        finally:
            writer.close()


# -- backpressure: time the server itself stops reading is not idle time ------------------


async def _slow_consumer(request: web.Request) -> web.Response:
    # Read nothing for 3 body-idle periods: the request buffer fills, the server pauses
    # reading, and the client's remaining bytes wait in the kernel.
    await asyncio.sleep(1.5)
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    return web.Response(text=str(total))


async def test_time_the_server_pauses_reading_does_not_count_as_idle(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_post("/sink", _slow_consumer)
    settings = Settings(data_dir=tmp_path, http_body_idle_timeout_seconds=0.5)
    server = AppTestServer(app, settings, host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        reader, writer = await connect(server.port)
        body = b"z" * (4 << 20)
        writer.write(
            (
                f"POST /sink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        writer.write(body)
        await writer.drain()
        status, answer = await read_response(reader)
        assert status == 200 and int(answer) == len(body)
        writer.close()
    finally:
        await server.close()


# -- the bookkeeping, directly ---------------------------------------------------------------


def test_the_cap_counts_per_address_and_warns_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clients = ClientConnections(cap=2)
    caplog.set_level(logging.WARNING, logger="transship.api.connections")
    assert clients.acquire("192.0.2.1", now=0.0) and clients.acquire("192.0.2.1", now=0.0)
    assert clients.acquire("192.0.2.2", now=0.0)  # another address has its own share
    assert not clients.acquire("192.0.2.1", now=1.0)
    assert not clients.acquire("192.0.2.1", now=2.0)
    assert clients.open_count("192.0.2.1") == 2  # refusals are not counted
    assert [r.getMessage().count("192.0.2.1") for r in caplog.records] == [1]
    assert not clients.acquire("192.0.2.1", now=WARN_INTERVAL + 1.0)
    assert len(caplog.records) == 2  # a minute later, one more line
    clients.release("192.0.2.1")
    assert clients.acquire("192.0.2.1", now=WARN_INTERVAL + 2.0)
    for _ in range(3):
        clients.release("192.0.2.2")  # releasing more than acquired never goes negative
    assert clients.open_count("192.0.2.2") == 0


@pytest.mark.parametrize(
    ("peername", "expected"),
    [
        (("203.0.113.9", 5000), "203.0.113.9"),
        (("::ffff:203.0.113.9", 5000, 0, 0), "203.0.113.9"),
        (("2001:db8::1", 5000, 0, 0), "2001:db8::1"),
        (("fe80::1%eth0", 5000, 0, 2), "fe80::1"),
        (None, ""),
        ("/run/transship.sock", ""),
    ],
)
def test_client_addresses_are_canonical(peername: object, expected: str) -> None:
    assert client_address(asyncio.BaseTransport(extra={"peername": peername})) == expected
