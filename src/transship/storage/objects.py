"""A small path-keyed object driver (the seam under `ObjectBlobStore`), and its obstore
implementation for S3-compatible stores, Azure Blob storage and memory (tests).

Keys are `/`-separated paths relative to the driver's root (bucket + prefix); the driver
never interprets them. Every operation is async and streams: no call holds a whole object
in memory except `put` of a `bytes` value the caller already holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import AzureStore, GCSStore, S3Store

from transship.storage.base import StorageError

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ObjectStore

# Parts of a streamed multipart put: S3's minimum is 5 MiB (except the last part); a larger
# part means fewer requests at the cost of that much memory per put in flight.
MULTIPART_PART_BYTES = 8 * 1024 * 1024
# obstore raises the builtin FileNotFoundError for a missing object (its NotFoundError
# class exists for typing); both are caught.
_MISSING = (NotFoundError, FileNotFoundError)
# Everything else it raises (its own classes, or builtins such as TimeoutError) is a
# storage failure; _MISSING is always caught first.
_FAILED = (BaseError, OSError)
# Chunks handed back by `get`: large enough to amortise the hop into Python.
_GET_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object as listed or headed: its key (relative to the driver root), size and
    last-modified time (POSIX seconds)."""

    key: str
    size: int
    mtime: float


class ObjectDriver(Protocol):
    """Path-keyed objects. Errors other than a missing object raise `StorageError`."""

    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> None:
        """Store `data` at `key`, replacing any object there. An iterable is streamed (as a
        multipart upload when large). Atomic for readers: the key shows the old object or
        the complete new one, never a part."""

    def get(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream `length` bytes (None: to the end) from `offset`, in one request made on
        the first `anext`. A length past the end is cut at the end; an `offset` at or past
        the end is refused with StorageError (S3 answers 416), as is `length` 0. Raises
        FileNotFoundError when absent."""

    async def head(self, key: str) -> ObjectInfo | None:
        """The object's size and mtime, or None when absent."""

    async def delete(self, keys: list[str]) -> None:
        """Remove the objects; absent ones are not an error."""

    async def copy(self, source: str, target: str) -> None:
        """Server-side copy (no bytes pass through this process). Raises FileNotFoundError
        when `source` is absent."""

    def list_prefix(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a `/`-terminated directory), in
        pages, without blocking the event loop."""

    async def list_dirs(self, prefix: str) -> list[str]:
        """The names of the "directories" right under `prefix` (one listing level)."""

    async def presign_get(self, key: str, expires: timedelta) -> str | None:
        """A URL that lets anyone GET the object until `expires` passes, or None when this
        store cannot sign (memory, anonymous or token credentials)."""


class ObstoreDriver:
    """`ObjectDriver` over an obstore store (S3Store, AzureStore, MemoryStore…).

    obstore runs the HTTP work on its own Rust threads; only the handing over of chunks
    happens on the event loop.
    """

    def __init__(self, store: ObjectStore, *, can_sign: bool = True) -> None:
        self._store = store
        self._can_sign = can_sign

    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> None:
        try:
            if isinstance(data, bytes):
                await obstore.put_async(self._store, key, data, use_multipart=False)
            else:
                await obstore.put_async(
                    self._store,
                    key,
                    data,
                    chunk_size=MULTIPART_PART_BYTES,
                    max_concurrency=4,
                )
        except _FAILED as exc:
            raise _storage_error("put", key, exc) from None

    async def get(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        if length == 0:
            return
        options: dict[str, object] = {}
        if length is not None:
            options["range"] = (offset, offset + length)
        elif offset:
            options["range"] = {"offset": offset}
        try:
            result = await obstore.get_async(self._store, key, options=options)  # type: ignore[arg-type]
            stream = result.stream(min_chunk_size=_GET_CHUNK_BYTES)
            async for chunk in stream:
                yield bytes(chunk)
        except _MISSING:
            raise FileNotFoundError(key) from None
        except _FAILED as exc:
            raise _storage_error("get", key, exc) from None

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = await obstore.head_async(self._store, key)
        except _MISSING:
            return None
        except _FAILED as exc:
            raise _storage_error("head", key, exc) from None
        return _info(meta)

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            await obstore.delete_async(self._store, keys)
        except _MISSING:
            return
        except _FAILED as exc:
            raise _storage_error("delete", keys[0], exc) from None

    async def copy(self, source: str, target: str) -> None:
        try:
            await obstore.copy_async(self._store, source, target)
        except _MISSING:
            raise FileNotFoundError(source) from None
        except _FAILED as exc:
            raise _storage_error("copy", source, exc) from None

    async def list_prefix(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        try:
            async for page in obstore.list(self._store, prefix, chunk_size=1000):
                for meta in page:
                    yield _info(meta)
        except _FAILED as exc:
            raise _storage_error("list", prefix, exc) from None

    async def list_dirs(self, prefix: str) -> list[str]:
        try:
            result = await obstore.list_with_delimiter_async(self._store, prefix)
        except _FAILED as exc:
            raise _storage_error("list", prefix, exc) from None
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in result["common_prefixes"]]

    async def presign_get(self, key: str, expires: timedelta) -> str | None:
        store = self._store
        if not self._can_sign or not isinstance(store, S3Store | AzureStore | GCSStore):
            return None
        try:
            return await obstore.sign_async(store, "GET", key, expires)
        except _FAILED as exc:
            raise _storage_error("sign", key, exc) from None


def _info(meta: ObjectMeta) -> ObjectInfo:
    return ObjectInfo(meta["path"], meta["size"], meta["last_modified"].timestamp())


def _storage_error(operation: str, key: str, exc: Exception) -> StorageError:
    # obstore's messages name the request URL and the service's answer, never credentials;
    # they are kept short (the first line) since some quote whole response bodies.
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(f"object store {operation} {key!r} failed: {first_line}")
