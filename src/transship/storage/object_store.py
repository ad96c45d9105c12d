"""The object-store blob store: a `BlobStore` over any `ObjectDriver` (S3, Azure Blob…).

Layout under the driver's root:

- `blobs/<algorithm>/<ab>/<encoded>`: committed blobs, one object each;
- `uploads/<id>/.area`: the marker that a staging area exists (its mtime: creation);
- `uploads/<id>/<offset:016x>-<unique>`: one staged part per append (or per
  `part_bytes` of an append), named by the offset of its first byte.

Nothing about an upload lives in this process between calls: any replica can continue an
upload another one started, since the parts and their offsets are all in the bucket. Two
replicas racing on one upload each write their own part objects (the unique suffix), so
neither overwrites the other's bytes; the upload row's offset in the database is the truth,
and `truncate_staging` drops whatever lies past it.

The staged bytes are the chain of parts from offset 0: at each offset the longest part
starting there is taken, and a part starting past the chain's end (a gap) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import timedelta

from transship.oci.digest import SUPPORTED_ALGORITHMS, Digest, DigestError
from transship.storage.base import BlobWrite, ChunkSink, StagingUnknown, StorageError
from transship.storage.objects import ObjectDriver

# Bytes buffered before an append writes a part: the memory one append holds at most. Parts
# are plain PUTs, so they may be small (an OCI chunked upload may send 1-byte chunks); the
# commit streams them into one multipart upload, which is where S3's 5 MiB minimum applies.
DEFAULT_PART_BYTES = 8 * 1024 * 1024

# A direct blob write hands the upload its bytes in pieces of this size, each hashed in a
# thread first; with `_DIRECT_QUEUE` pieces waiting, that bounds what one write holds in
# Python (the multipart upload buffers its own parts on top).
_DIRECT_PIECE_BYTES = 1024 * 1024
_DIRECT_QUEUE = 2
# How long an abort waits for the store to drop its multipart upload before giving up on
# it (the bucket's lifecycle rule then removes the parts).
_ABORT_SECONDS = 30.0

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART = re.compile(r"([0-9a-f]{16})-([0-9a-f]{32})")
_MARKER = ".area"


class _Part:
    __slots__ = ("end", "key", "start")

    def __init__(self, key: str, start: int, end: int) -> None:
        self.key = key
        self.start = start
        self.end = end


class _Area:
    """One listing of a staging area: its parts, the chain they form, and its mtime."""

    def __init__(self, parts: list[_Part], mtime: float) -> None:
        self.parts = parts
        self.mtime = mtime
        chain: list[_Part] = []
        position = 0
        # Longest first at each offset; ties by key keep the choice stable across replicas.
        for part in sorted(parts, key=lambda p: (p.start, -p.end, p.key)):
            if part.start == position and part.end > position:
                chain.append(part)
                position = part.end
        self.chain = chain
        self.size = position


class _Aborted(Exception):
    """Fed to a direct write's upload so the store drops its multipart upload."""


class _DirectBlobWrite:
    """`BlobWrite`: one blob streamed into a single upload at its final key, completed
    only on `complete` (an object store shows a multipart upload's object only when it
    completes).

    The upload runs as a task reading a bounded queue; `append` fills the queue, `complete`
    ends it, `abort` ends it with an error so the driver aborts the multipart upload
    rather than leave its parts behind (cancelling the task would leave them).
    """

    def __init__(self, driver: ObjectDriver, key: str) -> None:
        self._driver = driver
        self._key = key
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(_DIRECT_QUEUE)
        self._upload: asyncio.Future[None] | None = None

    async def _body(self) -> AsyncIterator[bytes]:
        while (item := await self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def _send(self, item: bytes | None) -> None:
        """Queue `item` for the upload (None: the end). Raises StorageError when the
        upload has failed."""
        if self._upload is None:
            self._upload = asyncio.ensure_future(self._driver.put(self._key, self._body()))
        sending = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({sending, self._upload}, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done():
            sending.cancel()
            self._upload.result()  # its StorageError
            raise StorageError(f"object store upload of {self._key!r} ended early")

    async def append(self, chunks: AsyncIterator[bytes], sink: ChunkSink) -> int:
        total = 0

        async def store(piece: bytes) -> None:
            nonlocal total
            # Hashed in a thread (hashlib lets go of the GIL), while the next piece is read.
            await asyncio.to_thread(sink.update, piece)
            await self._send(piece)
            total += len(piece)

        await _store_in_parts(chunks, _DIRECT_PIECE_BYTES, store)
        return total

    async def complete(self) -> None:
        if self._upload is None:
            await self._driver.put(self._key, b"")  # nothing appended: the empty blob
            return
        await self._send(None)
        upload, self._upload = self._upload, None
        await upload

    async def abort(self) -> None:
        upload, self._upload = self._upload, None
        if upload is None:
            return
        if not upload.done():
            # No append runs now, so the queue only drains: room for the error is certain.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_Aborted(self._key))
            done, _ = await asyncio.wait({upload}, timeout=_ABORT_SECONDS)
            if not done:
                upload.cancel()
                await asyncio.wait({upload})
        if not upload.cancelled():
            upload.exception()  # the abort's own error, or a failure already raised
        self._queue = asyncio.Queue(_DIRECT_QUEUE)


class ObjectBlobStore:
    """A `BlobStore` (and `RedirectableBlobs`, `DirectBlobWrites`) on an object store.

    `part_bytes` bounds the memory an append holds. Raises `StorageError` (from the driver)
    when the object store fails.
    """

    def __init__(self, driver: ObjectDriver, *, part_bytes: int = DEFAULT_PART_BYTES) -> None:
        if part_bytes <= 0:
            raise ValueError("part_bytes must be positive")
        self._driver = driver
        self._part_bytes = part_bytes

    # -- keys --------------------------------------------------------------------------------
    @staticmethod
    def _blob_key(digest: Digest) -> str:
        # Digest values are validated on construction, so these parts are safe path segments.
        return f"blobs/{digest.algorithm}/{digest.encoded[:2]}/{digest.encoded}"

    @staticmethod
    def _area_prefix(upload_id: str) -> str:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise StagingUnknown(f"invalid upload id {upload_id!r}")
        return f"uploads/{upload_id}/"

    async def _area(self, upload_id: str) -> _Area | None:
        """The staging area as listed now, or None when it has no marker."""
        prefix = self._area_prefix(upload_id)
        parts: list[_Part] = []
        marker = False
        mtime = 0.0
        async for info in self._driver.list_prefix(prefix):
            name = info.key[len(prefix) :] if info.key.startswith(prefix) else ""
            if name == _MARKER:
                marker = True
            elif match := _PART.fullmatch(name):
                start = int(match.group(1), 16)
                parts.append(_Part(info.key, start, start + info.size))
            else:
                continue
            mtime = max(mtime, info.mtime)
        return _Area(parts, mtime) if marker else None

    async def _require_area(self, upload_id: str) -> _Area:
        area = await self._area(upload_id)
        if area is None:
            raise StagingUnknown(upload_id)
        return area

    def _part_key(self, upload_id: str, start: int) -> str:
        return f"{self._area_prefix(upload_id)}{start:016x}-{uuid.uuid4().hex}"

    async def _stream_parts(self, parts: list[_Part]) -> AsyncIterator[bytes]:
        for part in parts:
            try:
                async for chunk in self._driver.get(part.key):
                    yield chunk
            except FileNotFoundError:
                # Dropped under us (a concurrent truncate or delete): the area changed.
                raise StagingUnknown(f"a staged part vanished: {part.key}") from None

    async def probe(self) -> None:
        """One listing request (the first page of blobs), so an absent bucket, a wrong
        endpoint or refused credentials show at startup. Raises StorageError."""
        async for _ in self._driver.list_prefix("blobs/"):
            break

    # -- blobs -------------------------------------------------------------------------------
    async def size(self, digest: Digest) -> int | None:
        info = await self._driver.head(self._blob_key(digest))
        return None if info is None else info.size

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        key = self._blob_key(digest)
        if length == 0:
            # No request can ask for nothing: only whether the blob exists is left to tell.
            if await self._driver.head(key) is None:
                raise FileNotFoundError(str(digest))
            return
        # One GET, no HEAD first: a GET is answered with the bytes or the error, so the
        # usual read (from 0, or a range within the blob) costs one round trip.
        chunks = self._driver.get(key, offset, length)
        try:
            try:
                first = await anext(chunks, None)
            except FileNotFoundError:
                raise FileNotFoundError(str(digest)) from None
            except StorageError:
                # A range starting at or past the end is refused (S3 answers 416): only
                # then does a HEAD tell "nothing to read" from a failing store.
                info = await self._driver.head(key)
                if info is None:
                    raise FileNotFoundError(str(digest)) from None
                if offset >= info.size:
                    return
                raise
            if first is None:
                return
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            # A reader that stops early must not leave the store's connection to the
            # collector.
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()

    async def delete(self, digest: Digest) -> bool:
        key = self._blob_key(digest)
        if await self._driver.head(key) is None:
            return False
        await self._driver.delete([key])
        return True

    async def iter_blobs(self) -> AsyncIterator[tuple[Digest, float]]:
        for algorithm in sorted(SUPPORTED_ALGORITHMS):
            prefix = f"blobs/{algorithm}/"
            async for info in self._driver.list_prefix(prefix):
                name = info.key.rsplit("/", 1)[-1]
                try:
                    digest = Digest.parse(f"{algorithm}:{name}")
                except DigestError:
                    continue  # not ours: never touch it
                if info.key == self._blob_key(digest):
                    yield digest, info.mtime

    async def presign_read(self, digest: Digest, expires_seconds: int) -> str | None:
        """`RedirectableBlobs`: a short-lived URL that reads the blob straight from the
        object store, or None when the store cannot sign (the caller streams instead)."""
        return await self._driver.presign_get(
            self._blob_key(digest), timedelta(seconds=expires_seconds)
        )

    def open_blob_write(self, digest: Digest) -> BlobWrite:
        """`DirectBlobWrites`: the blob goes straight to its key as one multipart upload
        (a single write of each byte, where staging writes it twice: parts, then the
        commit's upload). A process killed mid-write leaves an incomplete multipart upload,
        which the bucket's lifecycle rule removes (docs/deployment.md)."""
        return _DirectBlobWrite(self._driver, self._blob_key(digest))

    # -- staging -----------------------------------------------------------------------------
    async def create_staging(self, upload_id: str) -> None:
        marker = self._area_prefix(upload_id) + _MARKER
        if await self._driver.head(marker) is None:
            await self._driver.put(marker, b"")

    async def staging_size(self, upload_id: str) -> int:
        return (await self._require_area(upload_id)).size

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        area = await self._require_area(upload_id)
        in_chain = {id(part) for part in area.chain}
        drop = [p.key for p in area.parts if id(p) not in in_chain or p.start >= size]
        straddling = [p for p in area.chain if p.start < size < p.end]
        for part in straddling:
            # Rare (a crash mid-append leaves whole parts): rewrite the kept head as a new
            # part, bounded by part_bytes in memory, before the old one goes.
            head = b"".join([c async for c in self._driver.get(part.key, 0, size - part.start)])
            await self._driver.put(self._part_key(upload_id, part.start), head)
            drop.append(part.key)
        await self._driver.delete(drop)

    async def read_staging(self, upload_id: str) -> AsyncIterator[bytes]:
        area = await self._require_area(upload_id)
        async for chunk in self._stream_parts(area.chain):
            yield chunk

    async def append_staging(
        self,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        sink: ChunkSink,
        *,
        create: bool = False,
        sync: bool = False,
    ) -> int:
        # `sync` asks nothing more: a completed PUT is durable in every object store.
        if create:
            await self.create_staging(upload_id)
        area = await self._require_area(upload_id)
        next_offset = area.size
        total = 0

        async def store(part: bytes) -> None:
            nonlocal next_offset, total
            key = self._part_key(upload_id, next_offset)
            next_offset += len(part)
            await self._driver.put(key, part)
            # Hashed once stored (so the sink never sees bytes the staging area lacks), in
            # a thread (hashing 8 MiB takes tens of ms).
            await asyncio.to_thread(sink.update, part)
            total += len(part)

        await _store_in_parts(chunks, self._part_bytes, store)
        return total

    async def sync_staging(self, upload_id: str) -> None:
        # A completed PUT is durable in every object store.
        await self._require_area(upload_id)

    async def commit_staging(self, upload_id: str, digest: Digest) -> None:
        area = await self._require_area(upload_id)
        key = self._blob_key(digest)
        if await self._driver.head(key) is not None:
            return  # content-addressed: the same bytes are already in place
        if not area.chain:
            await self._driver.put(key, b"")
        elif len(area.chain) == 1:
            await self._driver.copy(area.chain[0].key, key)
        else:
            # One multipart upload fed from the parts; the key appears when it completes.
            await self._driver.put(key, self._stream_parts(area.chain))

    async def delete_staging(self, upload_id: str) -> None:
        prefix = self._area_prefix(upload_id)
        keys = [info.key async for info in self._driver.list_prefix(prefix)]
        # The marker last: an area interrupted half-way stays listed for GC to finish.
        keys.sort(key=lambda k: k.endswith(_MARKER))
        parts = [k for k in keys if not k.endswith(_MARKER)]
        await self._driver.delete(parts)
        await self._driver.delete([k for k in keys if k.endswith(_MARKER)])

    async def staging_mtime(self, upload_id: str) -> float | None:
        area = await self._area(upload_id)
        return None if area is None else area.mtime

    async def list_staging(self) -> list[str]:
        # The markers, not the "directories": some stores (SeaweedFS's filer) keep an empty
        # directory listed after its last object is gone.
        found: list[str] = []
        async for info in self._driver.list_prefix("uploads/"):
            upload_id, _, name = info.key[len("uploads/") :].partition("/")
            if name == _MARKER and _UPLOAD_ID.fullmatch(upload_id):
                found.append(upload_id)
        return found


async def _store_in_parts(
    chunks: AsyncIterator[bytes], part_bytes: int, store: Callable[[bytes], Awaitable[None]]
) -> None:
    """Gather `chunks` into parts of at least `part_bytes` (the last may be shorter) and
    hand each to `store`, in order, one at a time, while the next part is read: the
    client's (or upstream's) bytes and the store's requests overlap, and at most two parts
    are in memory.

    When `chunks` raises (a client gone mid-body), what was read is still stored, as a
    file would keep it, so the transfer can resume from there — unless storing itself
    failed (nothing may follow a missing part); the error is then raised. Raises what
    `store` raises.
    """
    batch: list[bytes] = []
    batch_bytes = 0
    in_flight: asyncio.Future[None] | None = None
    store_failed = False

    async def guarded(part: bytes) -> None:
        nonlocal store_failed
        try:
            await store(part)
        except BaseException:
            store_failed = True
            raise

    async def settle() -> None:
        nonlocal in_flight
        if in_flight is not None:
            # Shielded: a cancelled transfer still waits for its part in the finally
            # below, rather than leaving a request and a hash running behind it.
            await asyncio.shield(in_flight)
            in_flight = None

    async def launch() -> None:
        nonlocal in_flight, batch, batch_bytes
        part = b"".join(batch)
        batch, batch_bytes = [], 0  # one copy of the part alive, not two
        await settle()  # parts are stored, and reach the sink, in order
        in_flight = asyncio.ensure_future(guarded(part))

    try:
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                batch.append(chunk)
                batch_bytes += len(chunk)
                if batch_bytes >= part_bytes:
                    await launch()
        except Exception:
            if not store_failed:
                with contextlib.suppress(Exception):
                    if batch_bytes:
                        await launch()
                    await settle()
            raise
        if batch_bytes:
            await launch()
        await settle()
    finally:
        if in_flight is not None:
            await asyncio.wait({in_flight})
            if not in_flight.cancelled():
                in_flight.exception()  # raised above, or superseded by what is raised
