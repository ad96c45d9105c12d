"""Batch rows: a batch and its jobs written together, read back in order, canceled as a
whole, and gone with their registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.metadata import migrated_store
from transship.errors import Conflict
from transship.metadata import schema as s
from transship.metadata.batches import NewBatchItem
from transship.metadata.queries import MetadataStore
from transship.oci.digest import Digest

DIGEST = Digest.parse("sha256:" + "b" * 64)


@pytest.fixture
async def meta(tmp_path: Path, database_url: str | None) -> AsyncIterator[MetadataStore]:
    async with migrated_store(database_url, tmp_path) as store:
        async with store.writing() as q:
            await q.create_registry("second", "second.localhost")
        yield store


def _items(*ids: str) -> list[NewBatchItem]:
    return [NewBatchItem(i * 32, "{}", b"sealed", DIGEST if i == "2" else None) for i in ids]


async def test_a_batch_and_its_jobs_are_written_and_read_in_order(meta: MetadataStore) -> None:
    async with meta.writing() as q:
        await q.batches.create_batch("f" * 32, 1, _items("3", "1", "2"))
    async with meta.reading() as q:
        batch = await q.batches.batch("f" * 32)
        assert await q.batches.batch("e" * 32) is None
    assert batch is not None and batch.registry_id == 1 and not batch.cancel_requested
    assert [i.position for i in batch.items] == [0, 1, 2]
    assert [i.job.id for i in batch.items] == ["3" * 32, "1" * 32, "2" * 32]
    assert [i.job.state for i in batch.items] == ["queued"] * 3
    assert [i.prior_digest for i in batch.items] == [None, None, DIGEST]


async def test_a_failed_write_leaves_neither_batch_nor_jobs(meta: MetadataStore) -> None:
    async with meta.writing() as q:
        await q.jobs.create_job("2" * 32, 1, "{}", None)
    with pytest.raises(Conflict):
        async with meta.writing() as q:
            await q.batches.create_batch("f" * 32, 1, _items("1", "2"))  # job 2 exists
    async with meta.reading() as q:
        assert await q.batches.batch("f" * 32) is None
        assert await q.jobs.job("1" * 32) is None


async def test_cancel_cancels_queued_items_and_asks_running_ones_to_stop(
    meta: MetadataStore,
) -> None:
    async with meta.writing() as q:
        await q.batches.create_batch("f" * 32, 1, _items("1", "2"))
        await q.jobs.create_job("9" * 32, 1, "{}", None)  # not in the batch
        running = await q.jobs.claim_job(
            "o" * 32, timedelta(seconds=30), max_running=10, max_running_per_registry=10
        )
    assert running is not None and running.id == "1" * 32
    async with meta.writing() as q:
        await q.batches.request_cancel("f" * 32)
    async with meta.reading() as q:
        batch = await q.batches.batch("f" * 32)
        outside = await q.jobs.job("9" * 32)
    assert batch is not None and batch.cancel_requested
    first, second = batch.items
    assert first.job.state == "running" and first.job.cancel_requested
    assert second.job.state == "canceled" and second.job.credentials is None
    assert outside is not None and outside.state == "queued" and not outside.cancel_requested


async def test_batches_go_with_their_registry(meta: MetadataStore) -> None:
    async with meta.writing() as q:
        await q.batches.create_batch("f" * 32, 2, _items("1"))
    async with meta.writing() as q:
        assert await q.delete_registry(2)
    async with meta.reading() as q:
        assert await q.batches.batch("f" * 32) is None
        for table in (s.import_batches, s.import_batch_items):
            count = await q.conn.execute(select(func.count()).select_from(table))
            assert count.scalar_one() == 0
