"""Slow clients against the real server process (issue 10, item 9): half-open connections
are closed by the header timeout, one address cannot hold more than its share, and the
server keeps serving everyone else meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from tests.peers.transship import TransshipServer

HEADER_TIMEOUT = 3.0
MARGIN = 7.0
CONNECTIONS = 300
CAP = 256  # the default of http_max_connections_per_client
ATTACKER = "127.0.0.2"  # another loopback address: another client as far as the cap goes


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from ATTACKER that sends part of a request's headers, then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    try:
        writer.write(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
    except ConnectionError:
        pass  # refused before we wrote: the read below sees it
    return reader, writer


async def _closed_at(reader: asyncio.StreamReader, start: float) -> float:
    """Seconds from `start` until the server closed this connection."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


async def test_half_open_connections_are_closed_and_others_are_still_served(
    transship_factory: Callable[..., TransshipServer],
) -> None:
    server = await asyncio.to_thread(
        transship_factory,
        env={
            "TRANSSHIP_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "TRANSSHIP_HTTP_KEEPALIVE_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        },
    )
    start = time.monotonic()
    connections = [await _half_open(server.port) for _ in range(CONNECTIONS)]
    closes = [asyncio.create_task(_closed_at(reader, start)) for reader, _ in connections]
    try:
        # While the attacker's connections are held, another client is served at once.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{server.url}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r,
        ):
            assert r.status == 200
        held_at_request = sum(not task.done() for task in closes)
        assert held_at_request >= CAP // 2, "the probe should run while connections are held"

        done, pending = await asyncio.wait(closes, timeout=HEADER_TIMEOUT + MARGIN)
        assert not pending, f"{len(pending)} of {CONNECTIONS} half-open connections still open"
        times = sorted(task.result() for task in done)
        # Beyond the cap the server closes at once; the rest wait for the header timeout
        # (never less: it is a timeout, not a refusal) and no more than the margin beyond.
        refused = [t for t in times if t < HEADER_TIMEOUT * 0.8]
        assert len(refused) == CONNECTIONS - CAP
        assert times[-1] <= HEADER_TIMEOUT + MARGIN
    finally:
        for task in closes:
            task.cancel()
        for _, writer in connections:
            writer.close()

    # One warning names the refused address, however many connections it tried.
    assert server.log_text().count(f"refusing connections from {ATTACKER}") == 1
