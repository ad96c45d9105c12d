"""`MetadataStore.read_at_once`: reads that, on SQLite, run all their statements in one step
on a read thread of the database's own (one hop instead of four per statement through
aiosqlite), and otherwise behave as `reading()`."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from tests.support.hops import count_hops
from transship.metadata import schema as s
from transship.metadata.queries import MetadataStore, Transaction


async def _registry_id(meta: MetadataStore) -> int:
    async with meta.reading() as q:
        return int((await q._exec(select(s.registries.c.id))).scalar_one())


async def test_the_reads_see_what_is_committed_in_one_hop(
    meta: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_id = await _registry_id(meta)
    async with meta.writing() as q:
        await q.jobs.create_job("a" * 32, registry_id, "{}", None)
    threads: set[str] = set()

    async def look(q: Transaction) -> tuple[str | None, int]:
        threads.add(threading.current_thread().name)
        job = await q.jobs.job("a" * 32)
        threads.add(threading.current_thread().name)
        count = (await q._exec(select(func.count()).select_from(s.import_jobs))).scalar_one()
        return (None if job is None else job.state), int(count)

    hops = count_hops(monkeypatch)
    assert await meta.read_at_once(look) == ("queued", 1)
    if meta.db.reads_in_thread:
        assert len(hops) == 1
        assert threads and all(name.startswith("transship-sqlite-read") for name in threads)
    else:
        assert threads == {threading.current_thread().name}  # PostgreSQL: as reading()


async def test_an_error_in_the_work_propagates(meta: MetadataStore) -> None:
    async def fail(q: Transaction) -> None:
        await q.jobs.job("b" * 32)
        raise LookupError("not what the caller wanted")

    with pytest.raises(LookupError, match="not what the caller wanted"):
        await meta.read_at_once(fail)
    # The thread and its connection are still good.
    assert await meta.read_at_once(lambda q: q.jobs.job("b" * 32)) is None


async def test_work_that_waits_on_anything_else_is_refused(meta: MetadataStore) -> None:
    if not meta.db.reads_in_thread:
        pytest.skip("PostgreSQL runs the work as reading() would: it may wait")

    async def look_then_sleep(q: Transaction) -> None:
        await q.jobs.job("c" * 32)
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="waited on something other"):
        await meta.read_at_once(look_then_sleep)


async def test_many_reads_at_once_beside_writes_all_answer(meta: MetadataStore) -> None:
    """More reads than read threads, while one-step writes commit: each read waits for a
    thread (never for a connection of the loop's fast reads) and sees a committed count."""
    registry_id = await _registry_id(meta)

    async def create(n: int) -> None:
        await meta.write_at_once(lambda q: q.jobs.create_job(f"{n:032x}", registry_id, "{}", None))

    async def count(q: Transaction) -> int:
        return int((await q._exec(select(func.count()).select_from(s.import_jobs))).scalar_one())

    reads = [asyncio.ensure_future(meta.read_at_once(count)) for _ in range(40)]
    await asyncio.gather(*reads, *(create(n) for n in range(10)))
    counts = [read.result() for read in reads]
    assert all(0 <= c <= 10 for c in counts)
    assert await meta.read_at_once(count) == 10
    async with meta.fast_read() as pull:  # the loop's own reads are not starved
        assert await pull.manifest(registry_id, "nothing", "latest") is None
