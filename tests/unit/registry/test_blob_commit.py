"""`commit_staged_blob`, the one commit of verified staged bytes (uploads and imports use
it): the row before the bytes, the holder in the same transaction, nothing on failure."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.metadata import migrated_store
from tests.unit.storage.blobstore_contract import RecordingSink, collect, just
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.metadata.queries import BlobMissing, MetadataStore, Transaction
from transship.oci.digest import Digest
from transship.registry.blob_commit import commit_staged_blob
from transship.storage.base import BlobStore, StagingUnknown
from transship.storage.filesystem import FilesystemBlobStore

DATA = b"verified layer bytes"
DIGEST = Digest.of(DATA)


@pytest.fixture
async def meta(tmp_path: Path, database_url: str | None) -> AsyncIterator[MetadataStore]:
    """SQLite (with the filesystem store, the commit takes one step on its write thread)
    and PostgreSQL (through `writing()`)."""
    async with migrated_store(database_url, tmp_path) as store:
        yield store


@pytest.fixture(params=["filesystem", "memory"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


@pytest.fixture
async def staged(store: BlobStore) -> str:
    staging_id = uuid.uuid4().hex
    await store.create_staging(staging_id)
    await store.append_staging(staging_id, just(DATA), RecordingSink())
    return staging_id


@pytest.fixture
async def registry_id(meta: MetadataStore) -> int:
    async with meta.writing() as q:
        return (await q.ensure_default_registry("default")).id


async def blob_row(meta: MetadataStore) -> int | None:
    async with meta.reading() as q:
        return await q.blob_size(str(DIGEST))


async def stored_size(store: BlobStore) -> int | None:
    """The blob's size in the store, looked up without waiting on anything when the store
    keeps local files: a holder may run on SQLite's write thread, where nothing can be
    awaited but its own statements."""
    if isinstance(store, FilesystemBlobStore):
        path = store.local_path(DIGEST)
        return path.stat().st_size if path.exists() else None
    return await store.size(DIGEST)


async def test_the_blob_row_is_written_and_held_before_the_bytes_move(
    meta: MetadataStore, store: BlobStore, staged: str, registry_id: int
) -> None:
    seen: list[tuple[int | None, int | None]] = []

    async def hold(q: Transaction) -> None:
        repo_id = await q.ensure_repository(registry_id, "app")
        await q.link_blob(repo_id, str(DIGEST))
        seen.append((await q.blob_size(str(DIGEST)), await stored_size(store)))

    await commit_staged_blob(meta, store, staged, DIGEST, len(DATA), hold)
    assert seen == [(len(DATA), None)]
    assert await collect(store.read(DIGEST)) == DATA
    async with meta.reading() as q:
        assert await q.repository_blob_size(registry_id, "app", str(DIGEST)) == len(DATA)
    # The staging area is the caller's to drop.
    assert staged in await store.list_staging()


async def test_a_failing_holder_leaves_no_row_and_no_blob(
    meta: MetadataStore, store: BlobStore, staged: str
) -> None:
    class Refused(Exception):
        pass

    async def hold(q: Transaction) -> None:
        raise Refused

    with pytest.raises(Refused):
        await commit_staged_blob(meta, store, staged, DIGEST, len(DATA), hold)
    assert await blob_row(meta) is None
    assert await store.size(DIGEST) is None
    assert await collect(store.read_staging(staged)) == DATA


async def test_a_lost_staging_area_rolls_back_the_row_and_the_holder(
    meta: MetadataStore, store: BlobStore, registry_id: int
) -> None:
    held: list[int] = []

    async def hold(q: Transaction) -> None:
        held.append(await q.ensure_repository(registry_id, "app"))

    with pytest.raises(StagingUnknown):
        await commit_staged_blob(meta, store, uuid.uuid4().hex, DIGEST, len(DATA), hold)
    assert await blob_row(meta) is None
    async with meta.reading() as q:
        assert await q.repository_id(registry_id, "app") is None


async def test_on_sqlite_with_local_files_the_commit_is_one_step_on_the_write_thread(
    meta: MetadataStore, tmp_path: Path, registry_id: int
) -> None:
    store = FilesystemBlobStore(tmp_path / "own-blobs", tmp_path / "own-uploads", durable=True)
    staging_id = uuid.uuid4().hex
    await store.create_staging(staging_id)
    await store.append_staging(staging_id, just(DATA), RecordingSink())
    threads: list[str] = []

    async def hold(q: Transaction) -> None:
        threads.append(threading.current_thread().name)
        await q.link_blob(await q.ensure_repository(registry_id, "app"), str(DIGEST))

    await commit_staged_blob(meta, store, staging_id, DIGEST, len(DATA), hold)
    loop_thread = threading.current_thread().name
    expected = "transship-sqlite-write" if meta.db.is_sqlite else loop_thread
    assert [name.rsplit("_", 1)[0] for name in threads] == [expected]
    assert await collect(store.read(DIGEST)) == DATA
    async with meta.reading() as q:
        assert await q.repository_blob_size(registry_id, "app", str(DIGEST)) == len(DATA)


async def test_a_blob_gone_from_the_holder_s_savepoint_rolls_the_one_step_commit_back(
    meta: MetadataStore, store: BlobStore, staged: str, registry_id: int
) -> None:
    """A holder's savepoint (a link that finds no blob row) works in either kind of
    transaction, and its error undoes the whole commit."""
    other = Digest.of(b"never stored")

    async def hold(q: Transaction) -> None:
        await q.link_blob(await q.ensure_repository(registry_id, "app"), str(other))

    with pytest.raises(BlobMissing):
        await commit_staged_blob(meta, store, staged, DIGEST, len(DATA), hold)
    assert await blob_row(meta) is None
    assert await store.size(DIGEST) is None
    async with meta.reading() as q:
        assert await q.repository_id(registry_id, "app") is None


class _CountingSyncs(FilesystemBlobStore):
    """Counts the separate `sync_staging` calls (a hop each)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root / "blobs", root / "uploads", durable=True)
        self.syncs = 0

    async def sync_staging(self, upload_id: str) -> None:
        self.syncs += 1
        await super().sync_staging(upload_id)


@pytest.mark.parametrize("synced", [True, False])
async def test_bytes_synced_by_their_append_are_not_synced_again(
    meta: MetadataStore, tmp_path: Path, registry_id: int, synced: bool
) -> None:
    store = _CountingSyncs(tmp_path / "counted")
    staging_id = uuid.uuid4().hex
    await store.append_staging(staging_id, just(DATA), RecordingSink(), create=True, sync=synced)

    async def hold(q: Transaction) -> None:
        await q.link_blob(await q.ensure_repository(registry_id, "app"), str(DIGEST))

    await commit_staged_blob(meta, store, staging_id, DIGEST, len(DATA), hold, synced=synced)
    assert store.syncs == (0 if synced else 1)
    assert await collect(store.read(DIGEST)) == DATA


async def test_the_staging_area_goes_in_the_commit_s_step_only_where_it_can(
    meta: MetadataStore, store: BlobStore, staged: str, registry_id: int
) -> None:
    async def hold(q: Transaction) -> None:
        await q.link_blob(await q.ensure_repository(registry_id, "app"), str(DIGEST))

    dropped = await commit_staged_blob(
        meta, store, staged, DIGEST, len(DATA), hold, keep_staging=False
    )
    # SQLite and local files: one step, the staging file deleted in it. Elsewhere the
    # caller is told to drop the area itself.
    one_step = meta.db.writes_in_thread and isinstance(store, FilesystemBlobStore)
    assert dropped is one_step
    assert (staged in await store.list_staging()) is not one_step
    assert await collect(store.read(DIGEST)) == DATA
    async with meta.reading() as q:
        assert await q.repository_blob_size(registry_id, "app", str(DIGEST)) == len(DATA)
