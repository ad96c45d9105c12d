"""The object-store blob store over obstore's in-memory store: the shared contract, plus
what is particular to staging in parts (racing writers, truncation inside a part)."""

from __future__ import annotations

import hashlib

import pytest
from obstore.store import MemoryStore

from transship.oci.digest import Digest
from transship.storage.base import BlobStore, RedirectableBlobs
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
