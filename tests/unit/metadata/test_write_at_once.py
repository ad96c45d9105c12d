"""`MetadataStore.write_at_once`: a short write transaction that, on SQLite, runs all its
statements in one step on the database's write thread (so SQLite's write lock is never held
across turns of a busy loop), and otherwise behaves as `writing()`: commit or roll back as a
whole, commit callbacks after the commit only, Conflict for a taken key."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select, update

from transship.errors import Conflict
from transship.metadata import schema as s
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore, Transaction


async def _jobs(meta: MetadataStore) -> int:
    async with meta.reading() as q:
        return int((await q._exec(select(func.count()).select_from(s.import_jobs))).scalar_one())


async def _registry_id(meta: MetadataStore) -> int:
    async with meta.reading() as q:
        return int((await q._exec(select(s.registries.c.id))).scalar_one())


async def test_the_work_commits_and_its_callbacks_run_after(meta: MetadataStore) -> None:
    registry_id = await _registry_id(meta)
    published: list[str] = []
    meta.changes.subscribe(Topic.IMPORTS, lambda: published.append("imports"))

    async def create(q: Transaction) -> str | None:
        await q.jobs.create_job("a" * 32, registry_id, "{}", None)
        job = await q.jobs.job("a" * 32)
        assert published == [], "nothing is announced before the commit"
        return None if job is None else job.state

    assert await meta.write_at_once(create) == "queued"
    assert published == ["imports"]
    assert await _jobs(meta) == 1


async def test_an_error_rolls_back_every_statement_and_runs_no_callback(
    meta: MetadataStore,
) -> None:
    registry_id = await _registry_id(meta)
    published: list[str] = []
    meta.changes.subscribe(Topic.IMPORTS, lambda: published.append("imports"))

    async def create_then_fail(q: Transaction) -> None:
        await q.jobs.create_job("b" * 32, registry_id, "{}", None)
        raise ValueError("refused after the insert")

    with pytest.raises(ValueError, match="refused after the insert"):
        await meta.write_at_once(create_then_fail)
    assert await _jobs(meta) == 0
    assert published == []


async def test_a_taken_key_is_a_conflict_and_leaves_the_first_row(meta: MetadataStore) -> None:
    registry_id = await _registry_id(meta)

    async def create(q: Transaction) -> None:
        await q.jobs.create_job("c" * 32, registry_id, '{"first": true}', None)

    await meta.write_at_once(create)
    with pytest.raises(Conflict):
        await meta.write_at_once(create)
    async with meta.reading() as q:
        job = await q.jobs.job("c" * 32)
    assert job is not None and job.request == '{"first": true}'


async def test_work_that_waits_on_anything_else_is_refused_and_rolled_back(
    meta: MetadataStore,
) -> None:
    if not meta.db.writes_in_thread:
        pytest.skip("PostgreSQL runs the work as writing() would: it may wait")
    registry_id = await _registry_id(meta)

    async def create_then_sleep(q: Transaction) -> None:
        await q.jobs.create_job("d" * 32, registry_id, "{}", None)
        await asyncio.sleep(0)  # suspends without asking for a loop

    with pytest.raises(RuntimeError, match="waited on something other"):
        await meta.write_at_once(create_then_sleep)
    assert await _jobs(meta) == 0


async def test_on_sqlite_every_statement_runs_on_the_write_thread(meta: MetadataStore) -> None:
    if not meta.db.writes_in_thread:
        pytest.skip("SQLite only")
    threads: set[str] = set()
    r = s.registries

    async def bump(q: Transaction) -> int:
        for _ in range(3):
            threads.add(threading.current_thread().name)
            await q._exec(update(r).values(retention_days=r.c.retention_days + 1))
        threads.add(threading.current_thread().name)
        return int((await q._exec(select(r.c.retention_days))).scalar_one())

    before = await meta.write_at_once(bump)
    assert threads and all(name.startswith("transship-sqlite-write") for name in threads)
    assert await meta.write_at_once(bump) == before + 3


async def test_concurrent_writes_of_both_kinds_all_land(meta: MetadataStore) -> None:
    """One-step writes and `writing()` transactions queue for the same lock without
    failing (busy waits happen on the drivers' threads) and lose no update."""
    r = s.registries

    async def bump(q: Transaction) -> None:
        await q._exec(update(r).values(retention_days=r.c.retention_days + 1))

    async def bump_in_transaction() -> None:
        async with meta.writing() as q:
            await bump(q)
            await asyncio.sleep(0)  # holds the lock across a turn of the loop
            await bump(q)

    async with meta.reading() as q:
        before = int((await q._exec(select(r.c.retention_days))).scalar_one())
    async with asyncio.timeout(30):
        await asyncio.gather(
            *(meta.write_at_once(bump) for _ in range(30)),
            *(bump_in_transaction() for _ in range(10)),
        )
    async with meta.reading() as q:
        after = int((await q._exec(select(r.c.retention_days))).scalar_one())
    assert after == before + 30 + 20


async def test_a_cancelled_caller_does_not_cut_the_write_short(meta: MetadataStore) -> None:
    registry_id = await _registry_id(meta)

    async def create(q: Transaction) -> None:
        await q.jobs.create_job("e" * 32, registry_id, "{}", None)

    task = asyncio.create_task(meta.write_at_once(create))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # All or nothing, and the database stays writable at once.
    assert await _jobs(meta) in (0, 1)
    async with asyncio.timeout(5):
        await meta.write_at_once(lambda q: q.jobs.create_job("f" * 32, registry_id, "{}", None))


async def test_a_savepoint_rolls_back_alone_and_the_rest_commits(meta: MetadataStore) -> None:
    """A savepoint works in the one step too (a pin or link that finds its blob gone): its
    failure undoes its own statements, the transaction goes on and commits the rest."""
    registry_id = await _registry_id(meta)

    async def create_then_refuse_a_pin(q: Transaction) -> bool:
        await q.jobs.create_job("c" * 32, registry_id, "{}", None)
        # A pin of a blob with no row: the foreign key refuses it inside its savepoint.
        return await q.jobs.pin_blob("c" * 32, "sha256:" + "0" * 64)

    assert await meta.write_at_once(create_then_refuse_a_pin) is False
    assert await _jobs(meta) == 1
