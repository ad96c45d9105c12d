"""ImportEngine.fetch_once: the single-flight blob fetch pull-through shares with imports
(one fetch per registry and blob; a waiter learns whether it worked)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.unit.imports.doubles import MemorySink
from transship.imports.engine import ImportEngine, RunningFetch
from transship.imports.plan import ImportLimits
from transship.oci.digest import Digest

DIGEST = Digest.of(b"layer")


def engine() -> ImportEngine:
    # No import runs here: the sink and the source are never used.
    return ImportEngine(MemorySink(), None, blob_concurrency=2, limits=ImportLimits())  # type: ignore[arg-type]


async def test_a_second_caller_waits_for_the_first_fetch_and_learns_it_worked() -> None:
    shared = engine()
    gate = asyncio.Event()
    runs = 0

    async def fetch(_: RunningFetch) -> None:
        nonlocal runs
        runs += 1
        await gate.wait()

    first = asyncio.create_task(shared.fetch_once(1, DIGEST, fetch))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared.fetch_once(1, DIGEST, fetch))
    await asyncio.sleep(0)
    assert not second.done()
    gate.set()
    assert await first is True and await second is True
    assert runs == 1


async def test_a_waiter_learns_that_the_fetch_failed_and_the_next_call_fetches_again() -> None:
    shared = engine()
    gate = asyncio.Event()

    async def failing(_: RunningFetch) -> None:
        await gate.wait()
        raise RuntimeError("upstream died")

    first = asyncio.create_task(shared.fetch_once(1, DIGEST, failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared.fetch_once(1, DIGEST, failing))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second is False
    ran = False

    async def working(_: RunningFetch) -> None:
        nonlocal ran
        ran = True

    assert await shared.fetch_once(1, DIGEST, working) is True and ran


async def test_fetches_into_different_registries_are_not_shared() -> None:
    shared = engine()
    gate = asyncio.Event()
    runs: list[int] = []

    def fetch_for(registry: int) -> Callable[[RunningFetch], Awaitable[None]]:
        async def fetch(_: RunningFetch) -> None:
            runs.append(registry)
            await gate.wait()

        return fetch

    tasks = [asyncio.create_task(shared.fetch_once(r, DIGEST, fetch_for(r))) for r in (1, 2)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [True, True]
    assert sorted(runs) == [1, 2]


async def test_the_running_fetch_is_visible_with_its_writer_until_it_ends() -> None:
    shared = engine()
    gate = asyncio.Event()
    writer = object()

    async def fetch(running: RunningFetch) -> None:
        running.writer = writer  # type: ignore[assignment]
        await gate.wait()

    assert shared.running(1, DIGEST) is None
    task = asyncio.create_task(shared.fetch_once(1, DIGEST, fetch))
    await asyncio.sleep(0)
    running = shared.running(1, DIGEST)
    assert running is not None and running.writer is writer and not running.done.is_set()
    assert shared.running(2, DIGEST) is None  # another registry's fetch is its own
    gate.set()
    assert await task is True
    assert running.done.is_set() and running.succeeded
    assert shared.running(1, DIGEST) is None
