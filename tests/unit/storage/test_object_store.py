"""The object-store blob store over obstore's in-memory store: the shared contract, plus
what is particular to staging in parts (racing writers, truncation inside a part)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable

import pytest
from obstore.store import MemoryStore

from transship.oci.digest import Digest
from transship.storage.base import BlobStore, RedirectableBlobs, StorageError
from transship.storage.object_store import ObjectBlobStore
from transship.storage.objects import ObstoreDriver

from .blobstore_contract import (
    BlobStoreContract,
    RecordingSink,
    chunked,
    collect,
    just,
    new_upload_id,
    random_bytes,
)


def memory_store(part_bytes: int = 1024 * 1024) -> ObjectBlobStore:
    return ObjectBlobStore(ObstoreDriver(MemoryStore(), can_sign=False), part_bytes=part_bytes)


class TestObjectStoreContract(BlobStoreContract):
    @pytest.fixture
    def store(self) -> BlobStore:
        # Small parts, so the contract's multi-MiB appends span several of them.
        return memory_store()


async def test_one_byte_chunks_become_parts_a_commit_joins() -> None:
    store = memory_store(part_bytes=1)
    upload_id = new_upload_id()
    await store.create_staging(upload_id)
    data = b"tiny chunks"
    for byte in data:
        await store.append_staging(upload_id, just(bytes([byte])), RecordingSink())
    assert await store.staging_size(upload_id) == len(data)
    digest = Digest.of(data)
    await store.commit_staging(upload_id, digest)
    assert await collect(store.read(digest)) == data


async def test_a_second_store_continues_an_upload_the_first_began() -> None:
    """No upload state lives in the process: another replica resumes from the bucket."""
    shared = MemoryStore()
    first = ObjectBlobStore(ObstoreDriver(shared, can_sign=False), part_bytes=1000)
    second = ObjectBlobStore(ObstoreDriver(shared, can_sign=False), part_bytes=1000)
    data = random_bytes(5000, seed=7)
    upload_id = new_upload_id()
    await first.create_staging(upload_id)
    await first.append_staging(upload_id, chunked(data[:2500], [300]), RecordingSink())
    assert await second.staging_size(upload_id) == 2500
    hasher = hashlib.sha256()
    async for chunk in second.read_staging(upload_id):
        hasher.update(chunk)
    await second.append_staging(upload_id, just(data[2500:]), hasher)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    await second.commit_staging(upload_id, Digest.of(data))
    assert await collect(first.read(Digest.of(data))) == data


async def test_racing_appends_keep_both_parts_until_truncated_to_the_recorded_offset() -> None:
    shared = MemoryStore()
    one = ObjectBlobStore(ObstoreDriver(shared, can_sign=False))
    two = ObjectBlobStore(ObstoreDriver(shared, can_sign=False))
    upload_id = new_upload_id()
    await one.create_staging(upload_id)
    await one.append_staging(upload_id, just(b"head-"), RecordingSink())
    # Both replicas saw offset 5 and appended there; neither overwrote the other.
    await one.append_staging(upload_id, just(b"from-one"), RecordingSink())
    await two.truncate_staging(upload_id, 5)  # the database said 5: drop the loser…
    await two.append_staging(upload_id, just(b"two"), RecordingSink())
    assert await collect(one.read_staging(upload_id)) == b"head-two"
    # …and a truncation inside a part keeps that part's head.
    await one.truncate_staging(upload_id, 7)
    assert await collect(two.read_staging(upload_id)) == b"head-tw"


async def test_memory_store_cannot_redirect() -> None:
    store = memory_store()
    assert isinstance(store, RedirectableBlobs)
    data = b"signed?"
    upload_id = new_upload_id()
    await store.create_staging(upload_id)
    await store.append_staging(upload_id, just(data), RecordingSink())
    await store.commit_staging(upload_id, Digest.of(data))
    assert await store.presign_read(Digest.of(data), 60) is None


class FailingPuts(ObstoreDriver):
    """Fails the `fail_at`-th PUT of a part (a store outage mid-append)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__(MemoryStore(), can_sign=False)
        self.fail_at = fail_at
        self.part_puts = 0

    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> None:
        if key.startswith("uploads/") and not key.endswith(".area"):
            self.part_puts += 1
            if self.part_puts == self.fail_at:
                raise StorageError("object store put failed: 503")
        await super().put(key, data)


@pytest.mark.parametrize("fail_at", [1, 2, 4])
async def test_a_failed_part_ends_the_append_and_nothing_follows_it(fail_at: int) -> None:
    """Parts are pipelined (one stored while the next is read), yet what is staged and what
    reached the sink stay the same prefix when the store fails."""
    driver = FailingPuts(fail_at)
    store = ObjectBlobStore(driver, part_bytes=1000)
    data = random_bytes(10_000, seed=8)
    upload_id = new_upload_id()
    await store.create_staging(upload_id)
    sink = RecordingSink()
    with pytest.raises(StorageError, match="503"):
        await store.append_staging(upload_id, chunked(data, [100]), sink)
    staged = await collect(store.read_staging(upload_id))
    assert staged == data[: (fail_at - 1) * 1000]
    assert sink.data == staged
    # Nothing was stored past the failed part (a later truncate would have to drop it).
    names = [info.key async for info in driver.list_prefix(f"uploads/{upload_id}/")]
    assert len(names) == fail_at  # the marker and the parts before the failure
    # The upload resumes from the stored prefix.
    driver.fail_at = 0
    await store.append_staging(upload_id, just(data[len(staged) :]), sink)
    assert await collect(store.read_staging(upload_id)) == data == sink.data
