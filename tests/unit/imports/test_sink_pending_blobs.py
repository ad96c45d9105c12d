"""`RegistrySink.pending_blob`: on an object store a blob is written straight to its key and
appears only once verified and pinned; on the filesystem it is staged. Either way a size or
digest mismatch leaves no blob, no row and no pin."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from obstore.store import MemoryStore

from tests.support.hops import count_hops
from transship.imports.errors import ImportFailure
from transship.imports.sink import DirectBlob, RegistrySink, StagedBlob
from transship.metadata.queries import MetadataStore
from transship.oci.digest import Digest
from transship.storage.base import BlobStore, ChunkSink
from transship.storage.filesystem import FilesystemBlobStore
from transship.storage.object_store import ObjectBlobStore
from transship.storage.objects import ObstoreDriver

DATA = b"layer bytes " * 100_000
DIGEST = Digest.of(DATA)


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


@pytest.fixture(params=["object", "filesystem"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "object":
        return ObjectBlobStore(ObstoreDriver(MemoryStore(), can_sign=False))
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


async def new_job(meta: MetadataStore) -> str:
    job_id = uuid.uuid4().hex
    async with meta.writing() as q:
        registry = await q.ensure_default_registry("default")
        await q.jobs.create_job(job_id, registry.id, "{}", None)
    return job_id


async def test_the_store_decides_how_a_blob_is_written(
    meta: MetadataStore, store: BlobStore
) -> None:
    job_id = await new_job(meta)
    pending = RegistrySink(meta, store).pending_blob(job_id, DIGEST, len(DATA))
    expected = DirectBlob if isinstance(store, ObjectBlobStore) else StagedBlob
    assert type(pending) is expected
    await pending.append(chunks(DATA[:300_000]))
    await pending.append(chunks(DATA[300_000:]))  # a resumed fetch
    assert pending.offset == len(DATA)
    assert await store.size(DIGEST) is None  # nothing visible before the commit
    await pending.commit()
    await pending.discard()  # after a commit: nothing to drop
    assert await store.size(DIGEST) == len(DATA)
    async with meta.reading() as q:
        assert await q.blob_size(DIGEST) == len(DATA)
    assert b"".join([c async for c in store.read(DIGEST)]) == DATA


@pytest.mark.parametrize(
    ("sent", "code"),
    [(DATA[:-1], "SIZE_INVALID"), (DATA[:-1] + b"!", "DIGEST_INVALID")],
    ids=["short", "corrupt"],
)
async def test_a_mismatch_leaves_nothing(
    meta: MetadataStore, store: BlobStore, sent: bytes, code: str
) -> None:
    job_id = await new_job(meta)
    pending = RegistrySink(meta, store).pending_blob(job_id, DIGEST, len(DATA))
    await pending.append(chunks(sent))
    with pytest.raises(ImportFailure) as caught:
        await pending.commit()
    assert caught.value.code == code and caught.value.obj == str(DIGEST)
    await pending.discard()
    assert await store.size(DIGEST) is None
    assert [d async for d, _ in store.iter_blobs()] == []
    async with meta.reading() as q:
        assert await q.blob_size(DIGEST) is None


async def test_a_reset_starts_the_blob_again(meta: MetadataStore, store: BlobStore) -> None:
    """An upstream that ignored a Range request: what was received is dropped."""
    job_id = await new_job(meta)
    pending = RegistrySink(meta, store).pending_blob(job_id, DIGEST, len(DATA))
    await pending.append(chunks(b"a first attempt that went wrong"))
    await pending.reset()
    assert pending.offset == 0
    await pending.append(chunks(DATA))
    await pending.commit()
    assert b"".join([c async for c in store.read(DIGEST)]) == DATA


class _SlowToCreate(FilesystemBlobStore):
    """Makes the staging file in the append's first write, then keeps the caller waiting: a
    cancel lands after the file exists but before the append returns (as when it lands
    while the thread making the file runs)."""

    async def append_staging(
        self,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        sink: ChunkSink,
        *,
        create: bool = False,
        sync: bool = False,
    ) -> int:
        written = await super().append_staging(upload_id, chunks, sink, create=create, sync=sync)
        await asyncio.Event().wait()
        return written


class _SlowToDelete(FilesystemBlobStore):
    async def delete_staging(self, upload_id: str) -> None:
        await asyncio.sleep(0.05)
        await super().delete_staging(upload_id)


async def test_a_cancel_while_the_staging_file_is_created_leaves_nothing(
    meta: MetadataStore, tmp_path: Path
) -> None:
    staging = tmp_path / "uploads"
    store = _SlowToCreate(tmp_path / "blobs", staging, durable=False)
    pending = RegistrySink(meta, store).pending_blob(await new_job(meta), DIGEST, len(DATA))
    appending = asyncio.create_task(pending.append(chunks(DATA)))
    while not any(staging.iterdir()):
        await asyncio.sleep(0.005)
    appending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await appending
    await pending.discard()
    assert list(staging.iterdir()) == []


async def test_a_cancelled_discard_still_deletes_before_it_returns(
    meta: MetadataStore, tmp_path: Path
) -> None:
    staging = tmp_path / "uploads"
    store = _SlowToDelete(tmp_path / "blobs", staging, durable=False)
    pending = RegistrySink(meta, store).pending_blob(await new_job(meta), DIGEST, len(DATA))
    await pending.append(chunks(DATA[:1000]))
    discarding = asyncio.create_task(pending.discard())
    await asyncio.sleep(0)
    discarding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await discarding
    assert list(staging.iterdir()) == []  # gone by the time the cancelled caller goes on


async def test_a_small_staged_blob_takes_two_hops_and_leaves_no_staging_file(
    meta: MetadataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made, written, hashed and synced in the append's one hop; recorded, pinned, linked
    into place and its staging file deleted in the commit's one step on SQLite's write
    thread. With PostgreSQL the commit takes the general path, and `discard` deletes."""
    small = DATA[:500_000]
    staging = tmp_path / "uploads"
    store = FilesystemBlobStore(tmp_path / "blobs", staging, durable=True)
    job_id = await new_job(meta)
    pending = RegistrySink(meta, store).pending_blob(job_id, Digest.of(small), len(small))
    hops = count_hops(monkeypatch)
    await pending.append(chunks(small))
    await pending.commit()
    await pending.discard()
    if meta.db.writes_in_thread:
        assert len(hops) == 2
    assert list(staging.iterdir()) == []
    assert b"".join([c async for c in store.read(Digest.of(small))]) == small
    async with meta.writing() as q:
        registry_id = (await q.ensure_default_registry("default")).id
        pinned = await q.jobs.linked_blobs([Digest.of(small)], registry_id, pinned_by=job_id)
    assert pinned == {Digest.of(small)}
