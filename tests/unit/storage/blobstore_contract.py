"""The contract every `transship.storage.base.BlobStore` driver passes.

Reuse it for a new driver by subclassing and providing a `store` fixture::

    class TestMyDriver(BlobStoreContract):
        @pytest.fixture
        def store(self, tmp_path: Path) -> BlobStore:
            return MyDriver(...)

Everything here goes through the protocol only; driver-specific checks (paths, files on disk)
belong in the driver's own test module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Iterable

import pytest

from transship.oci.digest import Digest
from transship.storage.base import BlobStore, LocalBlobFiles, StagingUnknown


def new_upload_id() -> str:
    return uuid.uuid4().hex


_BLOCK = 64 * 1024


def random_bytes(size: int, seed: int = 0) -> bytes:
    """`size` bytes no two 64 KiB blocks of which are alike (each starts with its own index,
    so a chunk written twice, dropped or out of order changes the digest), from `seed`.

    One random block repeated with its index, not `size` random bytes: generating 12 MiB
    takes over 100 ms on a loaded machine, and the tests build their data on the loop."""
    block = random.Random(seed).randbytes(min(size, _BLOCK))
    blocks = (i.to_bytes(8, "big") + block[8:] for i in range(-(-size // _BLOCK)))
    return b"".join(blocks)[:size]


async def random_blob(size: int, seed: int = 0) -> tuple[bytes, Digest]:
    """`random_bytes(size, seed)` and its digest, made on a thread: hashing 11 MiB holds the
    loop of a loaded machine for over 100 ms, which the stall guard counts against the test."""

    def make() -> tuple[bytes, Digest]:
        data = random_bytes(size, seed)
        return data, Digest.of(data)

    return await asyncio.to_thread(make)


async def chunked(
    data: bytes, sizes: Iterable[int], *, yield_between: bool = False
) -> AsyncIterator[bytes]:
    """Yield `data` in chunks whose sizes cycle through `sizes`."""
    sizes = list(sizes)
    offset, i = 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        i += 1
        yield data[offset : offset + size]
        offset += size
        if yield_between:
            await asyncio.sleep(0)


async def just(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


class RecordingSink:
    """A sink that keeps every chunk it is given, in order."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def update(self, data: bytes, /) -> None:
        self.chunks.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class FailingChunks(Exception):
    """Raised by a chunk iterator midway."""


async def failing_after(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), chunk_size):
        yield data[offset : offset + chunk_size]
    raise FailingChunks("connection reset by peer")


class BlobStoreContract:
    """Behaviour shared by every BlobStore driver. Subclasses provide the `store` fixture."""

    @pytest.fixture
    def store(self) -> BlobStore:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    async def put(store: BlobStore, data: bytes, algorithm: str = "sha256") -> Digest:
        """Stage, append, sync and commit `data`; return its digest."""
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(data), hashlib.new(algorithm))
        await store.sync_staging(upload_id)
        digest = Digest.of(data, algorithm)
        await store.commit_staging(upload_id, digest)
        await store.delete_staging(upload_id)
        return digest

    # -- staging lifecycle -----------------------------------------------------------------
    async def test_create_staging_is_empty(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        assert await store.staging_size(upload_id) == 0
        assert await collect(store.read_staging(upload_id)) == b""
        assert upload_id in await store.list_staging()
        assert await store.staging_mtime(upload_id) is not None

    async def test_append_returns_bytes_appended_and_accumulates(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        sink = RecordingSink()
        assert await store.append_staging(upload_id, just(b"hello", b"", b" "), sink) == 6
        assert await store.append_staging(upload_id, just(b"world"), sink) == 5
        assert await store.append_staging(upload_id, just(), sink) == 0
        assert await store.append_staging(upload_id, just(b""), sink) == 0
        assert await store.staging_size(upload_id) == 11
        assert await collect(store.read_staging(upload_id)) == b"hello world"
        assert sink.data == b"hello world"

    async def test_an_append_with_create_makes_a_missing_area_then_appends(
        self, store: BlobStore
    ) -> None:
        upload_id = new_upload_id()
        sink = RecordingSink()
        written = await store.append_staging(
            upload_id, just(b"made ", b"here"), sink, create=True, sync=True
        )
        assert written == 9
        assert upload_id in await store.list_staging()
        # On an area that exists, `create` makes nothing new: the bytes go after the others.
        await store.append_staging(upload_id, just(b"!"), sink, create=True, sync=True)
        assert await collect(store.read_staging(upload_id)) == b"made here!"
        assert sink.data == b"made here!"
        await store.commit_staging(upload_id, Digest.of(b"made here!"))
        assert await collect(store.read(Digest.of(b"made here!"))) == b"made here!"

    async def test_an_empty_append_with_create_leaves_an_empty_area(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        assert await store.append_staging(upload_id, just(), RecordingSink(), create=True) == 0
        assert await store.staging_size(upload_id) == 0

    async def test_create_staging_again_does_not_destroy_staged_bytes(
        self, store: BlobStore
    ) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(b"keep me"), RecordingSink())
        with contextlib.suppress(Exception):
            await store.create_staging(upload_id)
        assert await collect(store.read_staging(upload_id)) == b"keep me"

    async def test_truncate_drops_the_tail(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(b"0123456789"), RecordingSink())
        await store.truncate_staging(upload_id, 4)
        assert await store.staging_size(upload_id) == 4
        # A later append continues after the truncation point, not at the old end.
        await store.append_staging(upload_id, just(b"xy"), RecordingSink())
        assert await collect(store.read_staging(upload_id)) == b"0123xy"
        await store.truncate_staging(upload_id, 0)
        assert await store.staging_size(upload_id) == 0
        assert await collect(store.read_staging(upload_id)) == b""

    async def test_truncate_to_current_size_is_a_no_op(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(b"abc"), RecordingSink())
        await store.truncate_staging(upload_id, 3)
        assert await collect(store.read_staging(upload_id)) == b"abc"

    async def test_read_staging_streams_large_content(self, store: BlobStore) -> None:
        data = random_bytes(3 * 1024 * 1024 + 17, seed=1)
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, chunked(data, [65536]), RecordingSink())
        assert await collect(store.read_staging(upload_id)) == data

    async def test_sync_then_commit(self, store: BlobStore) -> None:
        data = b"some layer bytes"
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(data), RecordingSink())
        await store.sync_staging(upload_id)
        digest = Digest.of(data)
        assert await store.size(digest) is None  # invisible before commit
        await store.commit_staging(upload_id, digest)
        assert await store.size(digest) == len(data)
        assert await collect(store.read(digest)) == data
        # The staging area stays until delete_staging (a crash before the caller's metadata
        # commit loses nothing)…
        assert upload_id in await store.list_staging()
        assert await collect(store.read_staging(upload_id)) == data
        # …and deleting it leaves the blob in place.
        await store.delete_staging(upload_id)
        assert await store.size(digest) == len(data)
        assert await collect(store.read(digest)) == data
        assert upload_id not in await store.list_staging()
        assert await store.staging_mtime(upload_id) is None
        with pytest.raises(StagingUnknown):
            await store.staging_size(upload_id)
        with pytest.raises(StagingUnknown):
            await collect(store.read_staging(upload_id))

    @pytest.mark.parametrize("rewrite", ["append", "truncate", "truncate-and-append"])
    async def test_committed_blob_is_immutable_when_its_staging_area_is_written(
        self, store: BlobStore, rewrite: str
    ) -> None:
        """Blobs are immutable once committed. The staging area outlives the commit (until
        delete_staging), and a session whose metadata commit rolled back can be resumed
        (truncate to the saved offset, then append): that must never reach the blob."""
        data = b"committed content"
        digest = Digest.of(data)
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(data), RecordingSink())
        await store.sync_staging(upload_id)
        await store.commit_staging(upload_id, digest)
        if "truncate" in rewrite:
            await store.truncate_staging(upload_id, 3)
        if "append" in rewrite:
            await store.append_staging(upload_id, just(b"more bytes"), RecordingSink())
        assert await store.size(digest) == len(data)
        assert await collect(store.read(digest)) == data
        await store.delete_staging(upload_id)
        assert await collect(store.read(digest)) == data

    async def test_commit_same_content_twice(self, store: BlobStore) -> None:
        data = b"dedup me"
        first = await self.put(store, data)
        second = await self.put(store, data)
        assert first == second
        assert await store.size(first) == len(data)
        assert await collect(store.read(first)) == data

    async def test_commit_empty_blob(self, store: BlobStore) -> None:
        digest = await self.put(store, b"")
        assert await store.size(digest) == 0
        assert await collect(store.read(digest)) == b""

    async def test_sha512_blob(self, store: BlobStore) -> None:
        data = b"sha512 content"
        digest = await self.put(store, data, "sha512")
        assert digest.algorithm == "sha512"
        assert await store.size(digest) == len(data)
        assert await collect(store.read(digest)) == data
        # Same bytes under sha256 is another blob.
        assert await store.size(Digest.of(data, "sha256")) is None
        assert digest in {d async for d, _ in store.iter_blobs()}

    async def test_delete_staging(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(b"bytes"), RecordingSink())
        await store.delete_staging(upload_id)
        assert upload_id not in await store.list_staging()
        with pytest.raises(StagingUnknown):
            await store.staging_size(upload_id)
        await store.delete_staging(upload_id)  # absent is not an error
        await store.delete_staging(new_upload_id())

    async def test_staging_mtime_moves_forward_on_append(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        before = await store.staging_mtime(upload_id)
        assert before is not None
        await asyncio.sleep(0.02)
        await store.append_staging(upload_id, just(b"x"), RecordingSink())
        after = await store.staging_mtime(upload_id)
        assert after is not None and after >= before
        assert await store.staging_mtime(new_upload_id()) is None

    async def test_list_staging(self, store: BlobStore) -> None:
        ids = {new_upload_id() for _ in range(3)}
        for upload_id in ids:
            await store.create_staging(upload_id)
        assert ids <= set(await store.list_staging())

    # -- unknown staging areas ---------------------------------------------------------------
    async def test_unknown_upload_raises_staging_unknown(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        with pytest.raises(StagingUnknown):
            await store.staging_size(upload_id)
        with pytest.raises(StagingUnknown):
            await store.truncate_staging(upload_id, 0)
        with pytest.raises(StagingUnknown):
            await collect(store.read_staging(upload_id))
        with pytest.raises(StagingUnknown):
            await store.append_staging(upload_id, just(b"x"), RecordingSink())
        with pytest.raises(StagingUnknown):
            await store.commit_staging(upload_id, Digest.of(b""))
        # Nothing was created by the failed calls.
        assert upload_id not in await store.list_staging()
        assert await store.size(Digest.of(b"")) is None

    async def test_append_to_unknown_upload_does_not_consume_or_sink(
        self, store: BlobStore
    ) -> None:
        sink = RecordingSink()
        with pytest.raises(StagingUnknown):
            await store.append_staging(new_upload_id(), just(b"data"), sink)
        assert sink.chunks == []

    # -- committed blobs ---------------------------------------------------------------------
    async def test_size_none_when_absent(self, store: BlobStore) -> None:
        assert await store.size(Digest.of(b"never stored")) is None
        assert await store.size(Digest.of(b"never stored", "sha512")) is None

    async def test_read_absent_blob_raises_file_not_found(self, store: BlobStore) -> None:
        with pytest.raises(FileNotFoundError):
            await collect(store.read(Digest.of(b"never stored")))

    @pytest.mark.parametrize(
        ("offset", "length"),
        [
            (0, None),
            (0, 0),
            (0, 1),
            (1, None),
            (1024 * 1024 - 3, 10),  # across the first 1 MiB read boundary
            (1024 * 1024 - 3, 1024 * 1024 + 10),
            (5, 2 * 1024 * 1024),  # length past the end is cut at the end
            (2 * 1024 * 1024 + 511, None),  # the last byte only
            (2 * 1024 * 1024 + 512, None),  # at the end: nothing
            (3 * 1024 * 1024, 5),  # past the end: nothing
        ],
    )
    async def test_read_with_offset_and_length(
        self, store: BlobStore, offset: int, length: int | None
    ) -> None:
        data = random_bytes(2 * 1024 * 1024 + 512, seed=2)
        digest = await self.put(store, data)
        expected = data[offset:] if length is None else data[offset : offset + length]
        assert await collect(store.read(digest, offset, length)) == expected

    async def test_read_can_be_abandoned(self, store: BlobStore) -> None:
        data = random_bytes(3 * 1024 * 1024, seed=3)
        digest = await self.put(store, data)
        stream = store.read(digest)
        first = await anext(stream)
        assert data.startswith(first)
        await stream.aclose()  # type: ignore[attr-defined]
        # The store is unaffected.
        assert await collect(store.read(digest)) == data

    async def test_local_files_capability_holds_the_bytes(self, store: BlobStore) -> None:
        """A driver may also offer local files (for zero-copy serving); if it does, the
        file holds exactly the committed bytes."""
        data = b"zero copy"
        digest = await self.put(store, data)
        if isinstance(store, LocalBlobFiles):
            assert store.local_path(digest).read_bytes() == data

    async def test_delete(self, store: BlobStore) -> None:
        digest = await self.put(store, b"delete me")
        other = await self.put(store, b"keep me")
        assert await store.delete(digest) is True
        assert await store.size(digest) is None
        with pytest.raises(FileNotFoundError):
            await collect(store.read(digest))
        assert await store.delete(digest) is False
        assert await store.delete(Digest.of(b"never stored")) is False
        assert await store.size(other) == len(b"keep me")

    async def test_iter_blobs(self, store: BlobStore) -> None:
        assert [d async for d, _ in store.iter_blobs()] == []
        stored = {
            await self.put(store, f"blob {i}".encode(), alg)
            for i in range(4)
            for alg in ("sha256", "sha512")
        }
        seen = [(d, mtime) async for d, mtime in store.iter_blobs()]
        assert {d for d, _ in seen} == stored
        assert len(seen) == len(stored)  # each once
        assert all(isinstance(mtime, float) and mtime > 0 for _, mtime in seen)
        # Staged but uncommitted bytes are not blobs.
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        await store.append_staging(upload_id, just(b"pending"), RecordingSink())
        assert {d async for d, _ in store.iter_blobs()} == stored

    # -- append: streaming, sinks, failures ------------------------------------------------
    @pytest.mark.parametrize(
        "sizes",
        [
            pytest.param([1, 7, 4093, 65537, 1024 * 1024 + 1, 3], id="odd-mixed"),
            pytest.param([1024 * 1024 - 1], id="just-under-batch"),
            pytest.param([1024 * 1024], id="exact-batch"),
            pytest.param([5 * 1024 * 1024], id="one-chunk"),
            pytest.param([333_333], id="third-of-a-mib"),
        ],
    )
    async def test_append_passes_every_byte_to_the_sink_in_order(
        self, store: BlobStore, sizes: list[int]
    ) -> None:
        data = random_bytes(5 * 1024 * 1024 + 11, seed=4)
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        hasher = hashlib.sha256()
        recorder = RecordingSink()

        class Both:
            def update(self, chunk: bytes, /) -> None:
                hasher.update(chunk)
                recorder.update(chunk)

        appended = await store.append_staging(upload_id, chunked(data, sizes), Both())
        assert appended == len(data)
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
        assert recorder.data == data
        assert await store.staging_size(upload_id) == len(data)
        assert await collect(store.read_staging(upload_id)) == data

    async def test_append_in_several_calls_hashes_like_one(self, store: BlobStore) -> None:
        data = random_bytes(2 * 1024 * 1024 + 5, seed=5)
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        hasher = hashlib.sha256()
        for start in range(0, len(data), 700_001):
            await store.append_staging(
                upload_id, chunked(data[start : start + 700_001], [9999]), hasher
            )
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
        digest = Digest.of(data)
        await store.commit_staging(upload_id, digest)
        assert await collect(store.read(digest)) == data

    @pytest.mark.parametrize("fail_after", [10, 1024 * 1024 + 7, 3 * 1024 * 1024])
    async def test_append_whose_iterator_raises_propagates(
        self, store: BlobStore, fail_after: int
    ) -> None:
        data = random_bytes(fail_after, seed=6)
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        sink = RecordingSink()
        with pytest.raises(FailingChunks, match="connection reset"):
            await store.append_staging(upload_id, failing_after(data, 4096), sink)
        # Whatever reached the staging area reached the sink too, in order, and is a prefix
        # of what was sent; the caller can truncate back and resume.
        staged = await collect(store.read_staging(upload_id))
        assert data.startswith(staged)
        assert sink.data == staged
        await store.truncate_staging(upload_id, 0)
        hasher = hashlib.sha256()
        assert await store.append_staging(upload_id, just(b"resumed"), hasher) == 7
        assert await collect(store.read_staging(upload_id)) == b"resumed"
        assert hasher.hexdigest() == hashlib.sha256(b"resumed").hexdigest()

    async def test_sink_error_propagates(self, store: BlobStore) -> None:
        class Refusing:
            def update(self, data: bytes, /) -> None:
                raise OverflowError("too big")

        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        with pytest.raises(OverflowError, match="too big"):
            await store.append_staging(
                upload_id, chunked(random_bytes(3 * 1024 * 1024), [65536]), Refusing()
            )
        # The store is still usable for this upload.
        await store.truncate_staging(upload_id, 0)
        assert await store.append_staging(upload_id, just(b"ok"), RecordingSink()) == 2

    async def test_concurrent_appends_to_different_uploads(self, store: BlobStore) -> None:
        payloads = {
            new_upload_id(): random_bytes(1024 * 1024 + 1000 * i, seed=10 + i) for i in range(6)
        }
        for upload_id in payloads:
            await store.create_staging(upload_id)
        sinks = {upload_id: hashlib.sha256() for upload_id in payloads}

        async def upload(upload_id: str, data: bytes) -> int:
            # Two appends each, interleaved with the other uploads at every chunk.
            half = len(data) // 2
            total = await store.append_staging(
                upload_id, chunked(data[:half], [4093, 70001], yield_between=True), sinks[upload_id]
            )
            total += await store.append_staging(
                upload_id, chunked(data[half:], [333_333], yield_between=True), sinks[upload_id]
            )
            return total

        totals = await asyncio.gather(*(upload(u, d) for u, d in payloads.items()))
        assert totals == [len(d) for d in payloads.values()]
        for upload_id, data in payloads.items():
            assert sinks[upload_id].hexdigest() == hashlib.sha256(data).hexdigest()
            assert await collect(store.read_staging(upload_id)) == data
        await asyncio.gather(*(store.commit_staging(u, Digest.of(d)) for u, d in payloads.items()))
        for data in payloads.values():
            assert await collect(store.read(Digest.of(data))) == data

    async def test_concurrent_reads_of_one_blob(self, store: BlobStore) -> None:
        data = random_bytes(2 * 1024 * 1024 + 3, seed=20)
        digest = await self.put(store, data)
        results = await asyncio.gather(
            *(collect(store.read(digest, offset, None)) for offset in (0, 1, 1024 * 1024))
        )
        assert results == [data, data[1:], data[1024 * 1024 :]]
