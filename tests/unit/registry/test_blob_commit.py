"""`commit_staged_blob`, the one commit of verified staged bytes (uploads and imports use
it): the row before the bytes, the holder in the same transaction, nothing on failure."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.unit.storage.blobstore_contract import RecordingSink, collect, just
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.metadata.queries import MetadataStore, Transaction
from transship.oci.digest import Digest
from transship.registry.blob_commit import commit_staged_blob
from transship.storage.base import BlobStore, StagingUnknown
from transship.storage.filesystem import FilesystemBlobStore

DATA = b"verified layer bytes"
DIGEST = Digest.of(DATA)


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


async def test_the_blob_row_is_written_and_held_before_the_bytes_move(
    meta: MetadataStore, store: BlobStore, staged: str, registry_id: int
) -> None:
    seen: list[tuple[int | None, int | None]] = []

    async def hold(q: Transaction) -> None:
        repo_id = await q.ensure_repository(registry_id, "app")
        await q.link_blob(repo_id, str(DIGEST))
        seen.append((await q.blob_size(str(DIGEST)), await store.size(DIGEST)))

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
