"""A write transaction cancelled at any point (checkout, BEGIN, a statement, the commit)
leaves the database writable: the next write goes through at once, and what the cancelled
one did is either all committed or all rolled back.

Before the fix, SQLAlchemy abandoned the connection whose statement a cancellation cut
short while aiosqlite's thread went on with it: the abandoned connection kept SQLite's
write lock, and the next write waited out the 60 s busy timeout and failed (a shutdown that
cancelled a heartbeat mid-write could then not hand its jobs back to the queue)."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import select, update

from transship.metadata import schema as s
from transship.metadata.db import finish_then_cancel
from transship.metadata.queries import MetadataStore

ROUNDS = 120


async def _bump(meta: MetadataStore, by: int) -> None:
    """Two statements in one transaction: both count, or neither. They return rows (as the
    import heartbeat's UPDATE … RETURNING does): a cancelled statement that returns rows is
    the one that left SQLite's write lock behind."""
    r = s.registries
    async with meta.writing() as q:
        for _ in range(2):
            await q._exec(
                update(r).values(retention_days=r.c.retention_days + by).returning(r.c.id)
            )


async def _counter(meta: MetadataStore) -> int:
    async with meta.reading() as q:
        return int((await q._exec(select(s.registries.c.retention_days))).scalar_one())


async def test_a_write_cancelled_anywhere_leaves_the_database_writable_and_consistent(
    meta: MetadataStore,
) -> None:
    rng = random.Random(7)
    cancelled_before_the_end = 0
    for _ in range(ROUNDS):
        before = await _counter(meta)
        write = asyncio.create_task(_bump(meta, 1))
        # Anywhere from before the checkout to after the commit.
        await asyncio.sleep(rng.random() * 0.004)
        write.cancel()
        try:
            await write
        except asyncio.CancelledError:
            cancelled_before_the_end += 1
        # The next write gets the database at once (not after a 60 s busy timeout).
        async with asyncio.timeout(10):
            await _bump(meta, 1000)
        after = await _counter(meta)
        assert after - before in (2000, 2002), "a cancelled transaction was half committed"
    assert cancelled_before_the_end > ROUNDS // 4  # the cancellations did land mid-write


async def test_an_operation_that_connected_for_a_cancelled_caller_is_undone() -> None:
    undone: list[str] = []
    connected = asyncio.Event()

    async def connect() -> str:
        await connected.wait()
        return "connection"

    async def close(connection: str) -> None:
        undone.append(connection)

    caller = asyncio.create_task(finish_then_cancel(connect(), undo=close))
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0)
    assert not caller.done()  # still waiting for the operation to end
    connected.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert undone == ["connection"]
