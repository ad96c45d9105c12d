"""Direct blob writes of the object-store blob store over obstore's in-memory store: the
shared contract, plus bounded memory, a failing store and a cancelled transfer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import pytest
from obstore.store import MemoryStore

from transship.oci.digest import Digest
from transship.storage.base import BlobStore, StorageError
from transship.storage.object_store import ObjectBlobStore
from transship.storage.objects import ObstoreDriver

from .blobstore_contract import RecordingSink, collect, just, random_blob
from .direct_write_contract import DirectWriteContract

MIB = 1024 * 1024


class TestMemoryDirectWrites(DirectWriteContract):
    @pytest.fixture
    def store(self) -> BlobStore:
        return ObjectBlobStore(ObstoreDriver(MemoryStore(), can_sign=False))


class SlowUploads(ObstoreDriver):
    """Streams puts through a consumer that stops on `gate` (a store slower than the
    upstream), and can fail a streamed put after `fail_after` bytes."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(MemoryStore(), can_sign=False)
        self.gate = asyncio.Event()
        self.consumed = 0
        self.fail_after = fail_after
        self.ended_by: BaseException | None = None

    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> None:
        if isinstance(data, bytes):
            await super().put(key, data)
            return

        async def metered() -> AsyncIterator[bytes]:
            async for chunk in data:
                await self.gate.wait()
                self.consumed += len(chunk)
                if self.fail_after is not None and self.consumed > self.fail_after:
                    raise StorageError("object store put failed: 503 Slow Down")
                yield chunk

        try:
            await super().put(key, metered())
        except BaseException as exc:
            self.ended_by = exc
            raise


async def endless(produced: list[int]) -> AsyncIterator[bytes]:
    piece = bytes(256 * 1024)
    while True:
        produced[0] += len(piece)
        yield piece


async def test_a_slow_store_holds_the_source_back() -> None:
    """Memory stays bounded: with the store stalled, the write reads only a few MiB ahead
    of it, however long the source goes on."""
    driver = SlowUploads()
    write = ObjectBlobStore(driver).open_blob_write(Digest.of(b"x"))
    produced = [0]
    task = asyncio.ensure_future(write.append(endless(produced), RecordingSink()))
    await asyncio.sleep(0.5)
    assert driver.consumed == 0
    assert 0 < produced[0] <= 6 * MIB
    task.cancel()
    driver.gate.set()  # a cancelled append still hands over the piece it was sending
    await asyncio.wait({task})
    await write.abort()
    # Ended by the abort's error (so S3 would drop the multipart upload), not cancelled.
    assert isinstance(driver.ended_by, Exception)


async def test_a_failing_store_fails_the_write_and_leaves_nothing() -> None:
    driver = SlowUploads(fail_after=3 * MIB)
    driver.gate.set()
    store = ObjectBlobStore(driver)
    data, digest = await random_blob(12 * MIB, seed=9)
    write = store.open_blob_write(digest)
    with pytest.raises(StorageError, match="503"):
        await write.append(
            just(*[data[i : i + MIB] for i in range(0, len(data), MIB)]), RecordingSink()
        )
        await write.complete()
    await write.abort()
    assert await store.size(digest) is None
    # The same write works again once the store does.
    driver.fail_after = None
    await write.append(just(data), RecordingSink())
    await write.complete()
    assert await collect(store.read(digest)) == data


async def test_an_abort_reaches_the_upload_as_an_error_not_a_cancellation() -> None:
    """Cancelling obstore's put leaves an incomplete multipart upload in S3; an error from
    its body makes it abort the upload instead."""
    driver = SlowUploads()
    write = ObjectBlobStore(driver).open_blob_write(Digest.of(b"x"))
    await write.append(just(bytes(3 * MIB)), RecordingSink())
    driver.gate.set()
    await write.abort()
    assert driver.ended_by is not None
    assert not isinstance(driver.ended_by, asyncio.CancelledError)
