"""The blob store contract every driver implements (and the shared contract tests check)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from transship.oci.digest import Digest


class StorageError(Exception):
    """A storage operation failed for a reason other than a missing object."""


class StagingUnknown(StorageError):
    """No staging area exists for that upload id."""


class BlobStore(Protocol):
    """Content-addressed blobs plus per-upload staging areas.

    Blobs are immutable once committed; a blob is visible only after `commit_staging`
    returns, and a crash at any moment leaves either no blob or a complete one.
    """

    async def size(self, digest: Digest) -> int | None:
        """The committed blob's size, or None when absent."""

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a committed blob's bytes. Raises FileNotFoundError when absent."""

    async def delete(self, digest: Digest) -> bool:
        """Remove a committed blob; True when something was removed."""

    async def create_staging(self, upload_id: str) -> None:
        """Create an empty staging area for an upload."""

    async def staging_size(self, upload_id: str) -> int:
        """Bytes held in the staging area. Raises StagingUnknown."""

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        """Drop bytes past `size` (left by a crash mid-write). Raises StagingUnknown."""

    def read_staging(self, upload_id: str) -> AsyncIterator[bytes]:
        """Stream the staged bytes (to rebuild hash state after a restart).

        Raises StagingUnknown.
        """

    async def append_staging(
        self,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        sink: ChunkSink,
        *,
        create: bool = False,
        sync: bool = False,
    ) -> int:
        """Append chunks to the staging area, passing each to `sink` as it is written.

        `create`: make the area first if it does not exist, as `create_staging` would.
        `sync`: once everything is written, make the area durable, as `sync_staging` would.
        A store does either in the same step as the writes where it can (local files: the
        same hop to a thread), which is why they are options here.

        Returns the number of bytes appended. Raises StagingUnknown (not with `create`).
        """

    async def sync_staging(self, upload_id: str) -> None:
        """Make the staged bytes durable (before `commit_staging`, outside any transaction)."""

    async def commit_staging(self, upload_id: str, digest: Digest) -> None:
        """Atomically place the staged bytes as blob `digest`. The staging area stays until
        `delete_staging`, so a crash before the caller's commit loses nothing.

        Raises StagingUnknown."""

    async def delete_staging(self, upload_id: str) -> None:
        """Remove a staging area; absent is not an error."""

    async def staging_mtime(self, upload_id: str) -> float | None:
        """When the staging area was last written, or None when absent."""

    async def list_staging(self) -> list[str]:
        """Upload ids that have a staging area (for garbage collection)."""

    def iter_blobs(self) -> AsyncIterator[tuple[Digest, float]]:
        """Every committed blob with its modification time (for garbage collection)."""


@runtime_checkable
class LocalBlobFiles(Protocol):
    """An optional capability, apart from `BlobStore`: a driver whose committed blobs are
    files on this machine, which the serving layer may hand to sendfile (zero copy).

    Object-store drivers do not implement it; their blobs are served through
    `BlobStore.read`. Checked with `isinstance` where blobs are served, so nothing else
    depends on a local path.
    """

    def local_path(self, digest: Digest) -> Path:
        """Where the committed blob `digest` is (or would be) stored. The file may be absent
        (never committed, or deleted since); opening it then raises FileNotFoundError."""


@runtime_checkable
class LocalStagingFiles(Protocol):
    """An optional capability, apart from `BlobStore`: a driver whose staging areas are
    files on this machine, appended to in order as bytes arrive, so that a reader may
    follow one while it is written (a pull through a cache rule sends what a fetch has
    written so far). Checked with `isinstance`; object-store drivers do not implement it.
    """

    def staging_path(self, upload_id: str) -> Path:
        """Where the staging area `upload_id` is. The file may be absent (not created yet,
        or deleted since). Raises StagingUnknown for an id that cannot name one."""


@runtime_checkable
class BlockingStagingCommit(Protocol):
    """An optional capability, apart from `BlobStore`: a driver whose `commit_staging` can
    run as a plain blocking call in a thread the caller already holds (local files), so the
    blob's whole commit, rows and bytes, takes one step on SQLite's write thread (see
    `transship.registry.blob_commit`). Checked with `isinstance`."""

    def commit_staging_blocking(
        self, upload_id: str, digest: Digest, *, keep_staging: bool = True
    ) -> None:
        """`commit_staging`, run in the calling thread, which may block (never the event
        loop's). With `keep_staging` False the staging area is deleted once the bytes are in
        place, in the same call: only for a caller that deletes it whatever the outcome (a
        session that must survive a failed commit keeps it). Raises StagingUnknown."""


@runtime_checkable
class RedirectableBlobs(Protocol):
    """An optional capability, apart from `BlobStore`: a driver whose blobs clients may
    fetch straight from the storage service through a short-lived signed URL (an S3
    presigned URL, an Azure SAS URL), so blob bytes need not pass through the registry.

    Checked with `isinstance` where blobs are served, after access control.
    """

    async def presign_read(self, digest: Digest, expires_seconds: int) -> str | None:
        """A URL reading the committed blob `digest` for `expires_seconds`, or None when the
        store cannot sign (the caller then streams the blob itself). The URL is a bearer
        secret: never log it. Raises StorageError when the store fails."""


class BlobWrite(Protocol):
    """One blob being written straight to its final place (see `DirectBlobWrites`).

    After any method raises `StorageError` the write is unusable: `abort` it.
    """

    async def append(self, chunks: AsyncIterator[bytes], sink: ChunkSink) -> int:
        """Append chunks, passing each to `sink` once it is held by the write. Returns the
        number of bytes appended; when `chunks` raises, what was read before is kept and
        the error is raised. Raises StorageError when the store fails."""

    async def complete(self) -> None:
        """Make the bytes appended so far visible as the blob (atomically: readers see no
        blob or the whole one). The caller has verified them. Raises StorageError."""

    async def abort(self) -> None:
        """Drop everything appended, leaving nothing behind in the store; idempotent. The
        write may be appended to again afterwards, from zero."""


@runtime_checkable
class DirectBlobWrites(Protocol):
    """An optional capability, apart from `BlobStore`: a driver that can write a blob whose
    digest is known in advance (an import) straight to its final place, with no staging
    area to copy from afterwards — on an object store, one multipart upload that completes
    only when the caller says so.

    Checked with `isinstance` where imported blobs are written; a store without it (the
    filesystem, whose commit is a rename) is written through its staging areas.
    """

    def open_blob_write(self, digest: Digest) -> BlobWrite:
        """A write of blob `digest`; nothing is visible until `BlobWrite.complete`."""


class ChunkSink(Protocol):
    """Receives each chunk as it is written (an incremental hasher, a size check…)."""

    def update(self, data: bytes | memoryview, /) -> None: ...


class BlockingSource(Protocol):
    """Bytes read with blocking calls by a worker thread (an upstream's connection handed
    over by the event loop), so that they never cross the loop."""

    def read_into(self, view: memoryview, /) -> int:
        """Fill the start of `view`: the number of bytes read, 0 at the end. Raises
        OSError (TimeoutError when nothing arrived in time)."""
        ...

    def interrupt(self) -> None:
        """Make a blocked `read_into`, and every later one, end at once (called from the
        event loop's thread when the reading is abandoned)."""
        ...


@runtime_checkable
class StagingFromSource(Protocol):
    """A store whose staged uploads can be appended to from a BlockingSource in one worker
    thread (local files)."""

    async def append_staging_from(
        self,
        upload_id: str,
        source: BlockingSource,
        count: int,
        sink: ChunkSink,
        *,
        create: bool = False,
        sync: bool = False,
    ) -> int:
        """Append `count` bytes of `source` to the staged upload, read, written and given
        to `sink` in one worker thread; returns `count`. `create` and `sync` as for
        `BlobStore.append_staging`, in the same thread. Raises StagingUnknown (not with
        `create`), OSError from `source`, or EOFError when it ends first: the bytes read
        before are written and given to `sink` either way (and not synced). Cancelled, it
        interrupts `source` and raises once the thread has stopped."""
        ...
