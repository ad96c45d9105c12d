"""The filesystem blob store: `blobs/<algorithm>/<ab>/<encoded>` and `uploads/<id>`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from transship.filemodes import PRIVATE_FILE, open_private, private_dir, private_subdir
from transship.oci.digest import SUPPORTED_ALGORITHMS, Digest, DigestError
from transship.storage.base import BlockingSource, ChunkSink, StagingUnknown
from transship.storage.writeback import EarlyWriteback

T = TypeVar("T")

# Bytes handed to the writer thread at once: large enough to amortise the hop, small enough
# that memory stays flat (at most two batches are alive per upload).
_BATCH_BYTES = 1 << 20
# The buffer a thread reads a BlockingSource into, reused for every read of one append.
_SOURCE_BUFFER_BYTES = 1 << 20
_READ_BYTES = 1 << 20
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def _unshare(path: Path) -> None:
    """Give a staging file an inode of its own before changing it.

    `commit_staging` hard-links the staged bytes into place; if the server died before the
    staging area was dropped, the session may be written again, and that must not reach
    the committed blob through the shared inode. Rare, so a copy is fine.
    """
    if path.stat().st_nlink > 1:
        private = path.with_name(path.name + ".unshare")
        with (
            os.fdopen(open_private(private, os.O_WRONLY | os.O_TRUNC), "wb") as target,
            path.open("rb") as source,
        ):
            os.fchmod(target.fileno(), PRIVATE_FILE)  # a copy left by a crash: any mode
            shutil.copyfileobj(source, target)
        os.replace(private, path)


def _open_for_append(path: Path, upload_id: str, create: bool) -> BinaryIO:
    """The staging file, opened for writing at its end; made (empty, 0600) when absent and
    `create`. Raises StagingUnknown when it is absent and not `create`."""
    try:
        _unshare(path)
        handle: BinaryIO = path.open("r+b")
    except FileNotFoundError:
        if not create:
            raise StagingUnknown(upload_id) from None
        handle = os.fdopen(open_private(path, os.O_RDWR), "r+b")
    handle.seek(0, os.SEEK_END)
    return handle


def _fsync_file(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore:
    """A BlobStore (and LocalBlobFiles, LocalStagingFiles) on a local directory. Blocking
    file work runs in worker threads.

    Only the service's user can read what it stores: directories are created 0700 and files
    0600 (a blob is its staging file, hard-linked), and the two roots are tightened to 0700
    when found looser. Raises OSError when a root cannot be created.
    """

    def __init__(self, blob_dir: Path, staging_dir: Path, *, durable: bool = True) -> None:
        self._blob_dir = blob_dir
        self._staging_dir = staging_dir
        self._durable = durable
        private_dir(blob_dir)
        private_dir(staging_dir)

    # -- paths -------------------------------------------------------------------------------
    def _blob_path(self, digest: Digest) -> Path:
        # Digest values are validated on construction, so these parts cannot escape the root.
        return self._blob_dir / digest.algorithm / digest.encoded[:2] / digest.encoded

    def _staging_path(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise StagingUnknown(f"invalid upload id {upload_id!r}")
        return self._staging_dir / upload_id

    def _early_writeback(self, handle: BinaryIO, end: int) -> EarlyWriteback:
        """With durable writes, the disk starts on a staging file's bytes as they come (the
        commit's fsync then has only the last of them left to wait for)."""
        return EarlyWriteback(handle.fileno(), end, enabled=self._durable)

    def staging_path(self, upload_id: str) -> Path:
        """See `LocalStagingFiles`."""
        return self._staging_path(upload_id)

    @staticmethod
    async def _run(func: Callable[[], T]) -> T:
        return await asyncio.to_thread(func)

    # -- blobs -------------------------------------------------------------------------------
    async def size(self, digest: Digest) -> int | None:
        path = self._blob_path(digest)

        def stat() -> int | None:
            try:
                return path.stat().st_size
            except FileNotFoundError:
                return None

        return await self._run(stat)

    def local_path(self, digest: Digest) -> Path:
        """`LocalBlobFiles`: the blob's file, for zero-copy serving."""
        return self._blob_path(digest)

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        async for chunk in self._read_file(self._blob_path(digest), offset, length):
            yield chunk

    async def _read_file(self, path: Path, offset: int, length: int | None) -> AsyncIterator[bytes]:
        handle: BinaryIO = await self._run(lambda: path.open("rb"))
        try:
            await self._run(lambda: handle.seek(offset))
            remaining = length
            while remaining is None or remaining > 0:
                want = _READ_BYTES if remaining is None else min(_READ_BYTES, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, digest: Digest) -> bool:
        path = self._blob_path(digest)

        def unlink() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await self._run(unlink)

    async def iter_blobs(self) -> AsyncIterator[tuple[Digest, float]]:
        for algorithm in sorted(SUPPORTED_ALGORITHMS):
            root = self._blob_dir / algorithm
            entries = await asyncio.to_thread(_scan, root)
            for name, mtime in entries:
                try:
                    yield Digest.parse(f"{algorithm}:{name}"), mtime
                except DigestError:
                    continue  # not ours (an editor's temp file…): never touch it

    # -- staging -----------------------------------------------------------------------------
    async def create_staging(self, upload_id: str) -> None:
        path = self._staging_path(upload_id)
        await self._run(lambda: os.close(open_private(path, os.O_WRONLY | os.O_EXCL)))

    async def staging_size(self, upload_id: str) -> int:
        path = self._staging_path(upload_id)

        def stat() -> int:
            try:
                return path.stat().st_size
            except FileNotFoundError:
                raise StagingUnknown(upload_id) from None

        return await self._run(stat)

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        path = self._staging_path(upload_id)

        def truncate() -> None:
            try:
                _unshare(path)
                os.truncate(path, size)
            except FileNotFoundError:
                raise StagingUnknown(upload_id) from None

        await self._run(truncate)

    async def read_staging(self, upload_id: str) -> AsyncIterator[bytes]:
        path = self._staging_path(upload_id)
        if not await self._run(path.exists):
            raise StagingUnknown(upload_id)
        async for chunk in self._read_file(path, 0, None):
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
        path = self._staging_path(upload_id)
        # The file, opened (or made) by the first batch's thread and synced and closed by the
        # last one's: a body of one batch (most blobs of an image, most chunks of an upload)
        # costs one hop to a thread, not seven (create, open, seek, write, flush, fsync,
        # close).
        opened: list[tuple[BinaryIO, EarlyWriteback]] = []

        def write(parts: list[bytes], last: bool) -> None:
            if not opened:
                file = _open_for_append(path, upload_id, create)
                opened.append((file, self._early_writeback(file, file.tell())))
            handle, early = opened[0]
            try:
                for part in parts:
                    handle.write(part)
                    sink.update(part)
                    early.wrote(len(part))
                if last and sync and self._durable:
                    _fsync_file(handle)
            finally:
                if last:
                    handle.close()  # flushes: what was written is in the file on return

        # One batch is written (and hashed) in a thread while the next is read from the
        # socket: hashing releases the GIL, so this puts the second core to work. The thread's
        # future is only ever awaited through a shield: a cancelled request must not leave a
        # thread writing into a file that is closed, truncated or resumed behind it.
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Future[None] | None = None
        total = 0
        batch: list[bytes] = []
        batch_bytes = 0

        async def submit(parts: list[bytes], last: bool = False) -> asyncio.Future[None]:
            if in_flight is not None:
                await asyncio.shield(in_flight)
            return loop.run_in_executor(None, write, parts, last)

        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                batch.append(chunk)
                batch_bytes += len(chunk)
                if batch_bytes >= _BATCH_BYTES:
                    in_flight = await submit(batch)
                    total += batch_bytes
                    batch, batch_bytes = [], 0
            # Always one last hop, even with nothing left to write: it closes the file (and
            # opens it first when the body was empty, so a missing staging area is reported).
            in_flight = await submit(batch, last=True)
            total += batch_bytes
            await asyncio.shield(in_flight)
        finally:
            if in_flight is not None and not in_flight.done():
                await asyncio.wait({in_flight})
            if opened and not opened[0][0].closed:
                await asyncio.to_thread(opened[0][0].close)
        return total

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
        """See `StagingFromSource`: one thread reads into one reused buffer, writes and
        hashes from it, with no bytes object per read and no hop through the loop."""
        path = self._staging_path(upload_id)

        def copy() -> int:
            with _open_for_append(path, upload_id, create) as handle:
                early = self._early_writeback(handle, handle.tell())
                view = memoryview(bytearray(min(count, _SOURCE_BUFFER_BYTES)))
                done = 0
                while done < count:
                    got = source.read_into(view[: count - done])
                    if got <= 0:
                        raise EOFError(f"the source ended after {done} of {count} bytes")
                    part = view[:got]
                    handle.write(part)
                    sink.update(part)
                    early.wrote(got)
                    done += got
                if sync and self._durable:
                    _fsync_file(handle)
                return done

        work = asyncio.get_running_loop().run_in_executor(None, copy)
        try:
            # Shielded: the thread must have stopped (interrupted, below) before a cancelled
            # caller goes on to truncate, resume or delete the file behind it.
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            source.interrupt()
            await asyncio.wait({work})
            if not work.cancelled():
                work.exception()  # retrieved: the cancellation is what the caller sees
            raise

    async def sync_staging(self, upload_id: str) -> None:
        if not self._durable:
            return
        source = self._staging_path(upload_id)

        def sync() -> None:
            try:
                fd = os.open(source, os.O_RDONLY)
            except FileNotFoundError:
                raise StagingUnknown(upload_id) from None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        await self._run(sync)

    async def commit_staging(self, upload_id: str, digest: Digest) -> None:
        await self._run(lambda: self.commit_staging_blocking(upload_id, digest))

    def commit_staging_blocking(
        self, upload_id: str, digest: Digest, *, keep_staging: bool = True
    ) -> None:
        """See `BlockingStagingCommit`."""
        source = self._staging_path(upload_id)
        target = self._blob_path(digest)
        try:
            # A fresh mtime keeps garbage collection's orphan-file sweep off a blob whose
            # row is not committed yet.
            os.utime(source)
        except FileNotFoundError:
            raise StagingUnknown(upload_id) from None
        private_subdir(target.parent.parent)  # blobs/<algorithm>
        private_subdir(target.parent)  # blobs/<algorithm>/<ab>
        try:
            # A hard link, not a rename: until the caller's transaction commits, the
            # session's bytes must stay where a restarted server will look for them.
            os.link(source, target)
        except FileExistsError:
            pass  # content-addressed: the same bytes are already in place
        else:
            if self._durable:
                _fsync_dir(target.parent)
        if not keep_staging:
            source.unlink(missing_ok=True)

    async def delete_staging(self, upload_id: str) -> None:
        path = self._staging_path(upload_id)
        await self._run(lambda: path.unlink(missing_ok=True))

    async def staging_mtime(self, upload_id: str) -> float | None:
        path = self._staging_path(upload_id)

        def stat() -> float | None:
            try:
                return path.stat().st_mtime
            except FileNotFoundError:
                return None

        return await self._run(stat)

    async def list_staging(self) -> list[str]:
        def scan() -> list[str]:
            return [p.name for p in self._staging_dir.iterdir() if _UPLOAD_ID.fullmatch(p.name)]

        return await self._run(scan)


def _scan(root: Path) -> list[tuple[str, float]]:
    found: list[tuple[str, float]] = []
    if not root.is_dir():
        return found
    for prefix in os.scandir(root):
        if not prefix.is_dir():
            continue
        for entry in os.scandir(prefix.path):
            if entry.is_file():
                found.append((entry.name, entry.stat().st_mtime))
    return found
