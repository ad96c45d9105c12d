"""Test doubles for the import engine's ports: an in-memory BlobWriter and a recording sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from transship.oci.digest import Digest, new_hasher


class MemoryWriter:
    """A BlobWriter that keeps bytes in memory and hashes exactly what it keeps."""

    def __init__(self, algorithm: str = "sha256", prefill: bytes = b"") -> None:
        self.algorithm = algorithm
        self.data = bytearray()
        self._hasher = new_hasher(algorithm)
        self.resets = 0
        self.append_offsets: list[int] = []
        self.chunk_sizes: list[int] = []
        self.on_progress: Callable[[int], None] | None = None
        if prefill:
            self.data += prefill
            self._hasher.update(prefill)

    @property
    def offset(self) -> int:
        return len(self.data)

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        self.append_offsets.append(self.offset)
        async for chunk in chunks:
            self.data += chunk
            self._hasher.update(chunk)
            self.chunk_sizes.append(len(chunk))
            if self.on_progress is not None:
                self.on_progress(self.offset)

    async def reset(self) -> None:
        self.data.clear()
        self._hasher = new_hasher(self.algorithm)
        self.resets += 1

    @property
    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hasher.hexdigest())


class Sleeps:
    """An injected sleep that records delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
