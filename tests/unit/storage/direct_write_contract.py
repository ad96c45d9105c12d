"""The contract of `transship.storage.base.DirectBlobWrites`: a blob written straight to
its place is invisible until `complete`, and an abort leaves nothing.

Reuse it by subclassing and providing a `store` fixture (a `BlobStore` that also
implements `DirectBlobWrites`); `leftover_uploads` may be overridden where the store can
list incomplete multipart uploads.
"""

from __future__ import annotations

import pytest

from transship.oci.digest import Digest
from transship.storage.base import BlobStore, DirectBlobWrites

from .blobstore_contract import (
    FailingChunks,
    RecordingSink,
    chunked,
    collect,
    failing_after,
    just,
    random_blob,
)

# Over S3's 5 MiB minimum part, so a real store's write is a multipart upload of several.
LARGE = 11 * 1024 * 1024 + 17


class DirectWriteContract:
    @pytest.fixture
    def store(self) -> BlobStore:
        raise NotImplementedError

    async def leftover_uploads(self, store: BlobStore) -> list[str]:
        """Incomplete multipart uploads the store still holds (none known: [])."""
        return []

    @staticmethod
    def writes(store: BlobStore) -> DirectBlobWrites:
        assert isinstance(store, DirectBlobWrites)
        return store

    async def test_appends_are_invisible_until_complete(self, store: BlobStore) -> None:
        data, digest = await random_blob(LARGE, seed=1)
        write = self.writes(store).open_blob_write(digest)
        sink = RecordingSink()
        half = len(data) // 2
        assert await write.append(chunked(data[:half], [65536, 3, 1 << 20]), sink) == half
        assert await write.append(chunked(data[half:], [100_000]), sink) == len(data) - half
        assert sink.data == data  # every byte, in order
        assert await store.size(digest) is None
        await write.complete()
        assert await store.size(digest) == len(data)
        assert await collect(store.read(digest)) == data
        await write.abort()  # after complete: nothing to drop, the blob stays
        assert await store.size(digest) == len(data)
        assert await self.leftover_uploads(store) == []

    async def test_an_abort_leaves_nothing(self, store: BlobStore) -> None:
        data, digest = await random_blob(LARGE, seed=2)
        write = self.writes(store).open_blob_write(digest)
        await write.append(just(data), RecordingSink())
        await write.abort()
        await write.abort()  # idempotent
        assert await store.size(digest) is None
        assert [d async for d, _ in store.iter_blobs()] == []
        assert await self.leftover_uploads(store) == []

    async def test_a_write_starts_again_from_zero_after_an_abort(self, store: BlobStore) -> None:
        data, digest = await random_blob(LARGE, seed=3)
        write = self.writes(store).open_blob_write(digest)
        await write.append(just(b"not the blob" * 1000), RecordingSink())
        await write.abort()
        sink = RecordingSink()
        await write.append(just(data), sink)
        await write.complete()
        assert sink.data == data
        assert await collect(store.read(digest)) == data
        assert await self.leftover_uploads(store) == []

    async def test_bytes_before_a_failed_source_are_kept(self, store: BlobStore) -> None:
        """An upstream that drops mid-body: what arrived is kept, the fetch resumes."""
        data, digest = await random_blob(3 * 1024 * 1024 + 5, seed=4)
        write = self.writes(store).open_blob_write(digest)
        sink = RecordingSink()
        arrived = 2_000_000
        with pytest.raises(FailingChunks):
            await write.append(failing_after(data[:arrived], 700_000), sink)
        kept = len(sink.data)
        assert kept == arrived and sink.data == data[:kept]
        await write.append(just(data[kept:]), sink)
        await write.complete()
        assert await collect(store.read(digest)) == data

    async def test_the_empty_blob(self, store: BlobStore) -> None:
        digest = Digest.of(b"")
        write = self.writes(store).open_blob_write(digest)
        await write.complete()
        assert await store.size(digest) == 0
        assert await collect(store.read(digest)) == b""

    async def test_rewriting_a_present_blob_keeps_it_whole(self, store: BlobStore) -> None:
        data, digest = await random_blob(LARGE, seed=5)
        for _ in range(2):
            write = self.writes(store).open_blob_write(digest)
            await write.append(just(data), RecordingSink())
            await write.complete()
        assert await collect(store.read(digest)) == data
