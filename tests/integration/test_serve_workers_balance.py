"""`serve --workers 2` spreads connections over its processes: each HTTP process accepts on
a socket of its own (SO_REUSEPORT), so a burst of new connections (a load generator opening
64 keep-alive connections at once) lands on both, not all on whichever process woke first;
and a child that is gone leaves no connection waiting for it: its socket went with it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.peers.procs import children_of, wait_until
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.slow

BURST = 64


async def answered_by(url: str, count: int, timeout: float) -> Counter[bool]:
    """Open `count` connections at once, all held open until each has answered `/readyz`:
    how many the master (True) and its child (False) answered."""
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        for _ in range(count)
    ]

    async def ask(session: aiohttp.ClientSession) -> bool:
        async with session.get(f"{url}/readyz") as r:
            body: dict[str, Any] = await r.json()
            return bool(body["backgroundWork"])

    try:
        return Counter(await asyncio.gather(*(ask(session) for session in sessions)))
    finally:
        await asyncio.gather(*(session.close() for session in sessions))


async def test_a_burst_of_connections_is_spread_and_a_dead_child_holds_none(
    transship_factory: Callable[..., TransshipServer],
) -> None:
    server = await asyncio.to_thread(transship_factory, extra_args=["--workers", "2"])
    master = server.pid
    await asyncio.to_thread(
        wait_until, lambda: len(children_of(master)) == 1, 20, what="one HTTP child"
    )
    (child,) = children_of(master)
    # The child binds its socket once it can serve: until then the master answers all.
    for _ in range(600):
        if (await answered_by(server.url, 4, 10))[False]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the child never answered")

    by = await answered_by(server.url, BURST, 30)
    # The kernel hashes each connection to one of the two sockets: 64 fair coin flips give
    # either process fewer than 12 with a probability of about 1e-7. (On one shared socket,
    # one process took 63 of 64 in a measurement.)
    assert by[True] >= 12 and by[False] >= 12, by

    # A child killed outright: every new connection is answered at once while the child is
    # away, well before its successor (restarted after the supervisor's backoff, then its
    # start-up) could serve: its socket closed with it, so none waits for the successor.
    os.kill(child, signal.SIGKILL)
    # Reaped, not only a zombie: a thread group's leader turns zombie while its other threads
    # may still be exiting with the socket open, and a connection hashed to a socket as it
    # closes is reset.
    await asyncio.to_thread(
        wait_until, lambda: not Path(f"/proc/{child}").exists(), 10, what="the child reaped"
    )
    by = await answered_by(server.url, 16, 1.5)
    assert by[True] == 16, by
