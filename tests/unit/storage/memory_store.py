"""An in-memory BlobStore: a driver with no local files, standing in for the object-store
drivers (S3, Azure Blob) wherever a test must show that nothing above the protocol needs a
path. It passes the shared contract (test_memory_store.py)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

from transship.oci.digest import Digest
from transship.storage.base import ChunkSink, StagingUnknown

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_READ_BYTES = 1 << 20


class MemoryBlobStore:
    """Blobs and staging areas in dictionaries; committed bytes are copied, so a staging
    area written after its commit never reaches the blob."""

    def __init__(self) -> None:
        self._blobs: dict[Digest, tuple[bytes, float]] = {}
        self._staging: dict[str, tuple[bytearray, float]] = {}

    def _area(self, upload_id: str) -> bytearray:
        if not _UPLOAD_ID.fullmatch(upload_id) or upload_id not in self._staging:
            raise StagingUnknown(upload_id)
        return self._staging[upload_id][0]

    def _touch(self, upload_id: str) -> None:
        self._staging[upload_id] = (self._staging[upload_id][0], time.time())

    async def size(self, digest: Digest) -> int | None:
        held = self._blobs.get(digest)
        return None if held is None else len(held[0])

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        held = self._blobs.get(digest)
        if held is None:
            raise FileNotFoundError(str(digest))
        end = len(held[0]) if length is None else min(len(held[0]), offset + length)
        for start in range(offset, end, _READ_BYTES):
            await asyncio.sleep(0)  # a network driver yields between chunks
            yield held[0][start : min(start + _READ_BYTES, end)]

    async def delete(self, digest: Digest) -> bool:
        return self._blobs.pop(digest, None) is not None

    async def create_staging(self, upload_id: str) -> None:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise StagingUnknown(f"invalid upload id {upload_id!r}")
        if upload_id in self._staging:
            raise FileExistsError(upload_id)
        self._staging[upload_id] = (bytearray(), time.time())

    async def staging_size(self, upload_id: str) -> int:
        return len(self._area(upload_id))

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        del self._area(upload_id)[size:]

    async def read_staging(self, upload_id: str) -> AsyncIterator[bytes]:
        data = bytes(self._area(upload_id))
        for start in range(0, len(data), _READ_BYTES):
            yield data[start : start + _READ_BYTES]

    async def append_staging(
        self,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        sink: ChunkSink,
        *,
        create: bool = False,
        sync: bool = False,
    ) -> int:
        if create and upload_id not in self._staging:
            await self.create_staging(upload_id)
        area = self._area(upload_id)
        total = 0
        async for chunk in chunks:
            if not chunk:
                continue
            area += chunk
            sink.update(chunk)
            total += len(chunk)
            self._touch(upload_id)
            # A real driver awaits its writes: yield as one would, so a stream of many small
            # chunks does not hold the loop.
            await asyncio.sleep(0)
        return total

    async def sync_staging(self, upload_id: str) -> None:
        self._area(upload_id)

    async def commit_staging(self, upload_id: str, digest: Digest) -> None:
        data = bytes(self._area(upload_id))
        self._blobs.setdefault(digest, (data, time.time()))

    async def delete_staging(self, upload_id: str) -> None:
        self._staging.pop(upload_id, None)

    async def staging_mtime(self, upload_id: str) -> float | None:
        held = self._staging.get(upload_id)
        return None if held is None else held[1]

    async def list_staging(self) -> list[str]:
        return list(self._staging)

    async def iter_blobs(self) -> AsyncIterator[tuple[Digest, float]]:
        for digest, (_, mtime) in list(self._blobs.items()):
            yield digest, mtime
