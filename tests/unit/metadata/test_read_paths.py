"""`transship.metadata`: which reads may run on the event loop, and the keyed queries that
replaced scans. On SQLite and PostgreSQL (the `database_url` fixture of tests/conftest.py).

- `MetadataStore.reading()` goes through the async driver: a long query does not hold the
  loop (on SQLite every read used to run inline);
- `MetadataStore.fast_read()` offers the pull path's keyed lookups and nothing else;
- registries by id, one or several, without loading them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import event, text

from transship.metadata.db import Database
from transship.metadata.pull import PullQueries
from transship.metadata.queries import MetadataStore
from transship.metadata.records import ManifestReference
from transship.oci.digest import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# A statement that runs for a while on either database, whatever the data.
_LONG_QUERY = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
    "SELECT count(*) FROM c"
)


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    database = Database(database_url or f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        yield MetadataStore(database)
    finally:
        await database.close()


async def test_a_long_read_does_not_hold_the_loop(store: MetadataStore) -> None:
    lags: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - started - 0.002)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    try:
        async with store.reading() as q:
            assert (await q.conn.execute(_LONG_QUERY)).scalar() == 3000000
    finally:
        done.set()
        await ticker
    took = time.perf_counter() - started
    assert took > 0.2, "the statement must run long enough to tell"
    # Inline, the loop would not have ticked for the whole statement (`took`).
    # Inline, the loop would not have ticked during the statement: one lag as long as the
    # statement. Async, it keeps ticking; the bound is relative (a loaded machine delays
    # each tick by tens of ms, but never by half a statement that takes > 0.2 s).
    assert len(lags) >= 3, f"the loop ran {len(lags)} times during the {took:.3f} s statement"
    assert max(lags) < took / 2, (max(lags), took)


async def test_the_fast_path_offers_keyed_lookups_only(store: MetadataStore) -> None:
    async with store.writing() as q:
        registry = await q.ensure_default_registry("default")
        repo_id = await q.ensure_repository(registry.id, "app")
        content = b'{"schemaVersion":2}'
        digest = Digest.of(content)
        layer = Digest.parse("sha256:" + "1" * 64)
        await q.record_blob(layer, 7)
        await q.link_blob(repo_id, layer)
        await q.insert_manifest(
            repo_id,
            digest,
            OCI_MANIFEST,
            content,
            None,
            None,
            None,
            [ManifestReference(layer, False)],
        )
        await q.set_tag(repo_id, "v1", digest)
    async with store.fast_read() as fast:
        assert isinstance(fast, PullQueries)
        assert not hasattr(fast, "tags_of") and not hasattr(fast, "registries")
        by_tag = await fast.manifest(registry.id, "app", "v1")
        by_digest = await fast.manifest(registry.id, "app", digest)
        assert by_tag is not None and by_tag == by_digest and by_tag.content == content
        assert await fast.manifest(registry.id, "app", "v2") is None
        assert await fast.repository_blob_size(registry.id, "app", layer) == 7
        assert await fast.repository_blob_size(registry.id, "other", layer) is None


async def test_registries_by_id(store: MetadataStore) -> None:
    async with store.writing() as q:
        default = await q.ensure_default_registry("default")
        one = await q.create_registry("one", "one.example")
        two = await q.create_registry("two", "two.example")
    async with store.reading() as q:
        assert await q.registry_by_id(one.id) == one
        assert await q.registry_by_id(two.id + 100) is None
        assert await q.registries_by_id([two.id, default.id, two.id, 999]) == {
            two.id: two,
            default.id: default,
        }
        assert await q.registries_by_id([]) == {}


async def test_bursts_of_concurrent_reads_reuse_the_pool_s_connections(tmp_path: Path) -> None:
    """On SQLite each read connection is a thread of aiosqlite's: a pool smaller than a
    busy process's bursts (an import reading its manifests, several imports) opened and
    closed connections past its size on every burst."""
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    opened: list[int] = []
    event.listen(database._reader.sync_engine, "connect", lambda *_: opened.append(1))
    held = asyncio.Event()
    reading = 0

    async def read() -> None:
        nonlocal reading
        async with database.read() as conn:
            await conn.execute(text("SELECT 1"))
            reading += 1
            if reading == 8:
                held.set()
            await held.wait()  # all eight hold a connection at once

    try:
        for _ in range(3):
            held.clear()
            reading = 0
            await asyncio.gather(*(read() for _ in range(8)))
        assert len(opened) == 8
    finally:
        await database.close()


async def test_reads_end_without_a_rollback_unless_one_began_a_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's read pool runs in autocommit: the ROLLBACK SQLAlchemy sends as a connection
    is closed was one more hop to aiosqlite's thread per read, for nothing. A connection
    that is in a transaction all the same is still rolled back."""
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    rollbacks: list[int] = []
    plain = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        rollbacks.append(1)
        await plain(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    try:
        store = MetadataStore(database)
        for _ in range(3):
            async with store.reading() as q:
                assert await q.registries_by_id([1]) == {}
        assert rollbacks == []
        async with database.read() as conn:
            await conn.exec_driver_sql("BEGIN")
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None and driver.in_transaction
        assert rollbacks == [1]
        assert not driver.in_transaction
    finally:
        await database.close()
