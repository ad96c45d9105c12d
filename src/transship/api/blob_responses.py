"""Blob GET answers: zero-copy from a driver with local files, spliced from an object store
reachable over plain HTTP, streamed from any other.

The choice is made here, where bytes meet HTTP, by asking whether the store also has the
optional `LocalBlobFiles` or `RedirectableBlobs` capability; the `BlobStore` protocol itself
carries no path, so object-store drivers fit under it unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO

from aiohttp import hdrs, web
from aiohttp.helpers import ETag

from transship.api.blob_splice import SpliceError, client_fd, open_source, splice_body
from transship.api.errors import DISTRIBUTION_VERSION_HEADER
from transship.oci.digest import Digest
from transship.registry.blobs import BlobLocation
from transship.storage.base import BlobStore, LocalBlobFiles, RedirectableBlobs, StorageError

_log = logging.getLogger(__name__)

# Lifetime of the URL a spliced GET signs for itself: it is used at once, by this process.
_SPLICE_URL_SECONDS = 60
# How long the store may send nothing while a spliced body is relayed through the loop.
_RELAY_IDLE_SECONDS = 60.0


def _blob_headers(digest: Digest) -> dict[str, str]:
    return {
        hdrs.CONTENT_TYPE: "application/octet-stream",
        "Docker-Content-Digest": str(digest),
        **DISTRIBUTION_VERSION_HEADER,
    }


class BlobFileResponse(web.FileResponse):
    """FileResponse (sendfile, Range, 416) whose ETag is the blob digest."""

    def __init__(self, digest: Digest, path: Path) -> None:
        super().__init__(path, chunk_size=1 << 20)
        self._digest_etag = str(digest)
        self.headers.update(_blob_headers(digest))

    @property
    def etag(self) -> ETag | None:
        return ETag(value=self._digest_etag)

    @etag.setter
    def etag(self, value: object) -> None:
        self.headers[hdrs.ETAG] = f'"{self._digest_etag}"'


async def serve_blob(
    request: web.Request, store: BlobStore, location: BlobLocation, *, redirect_seconds: int = 0
) -> web.StreamResponse:
    """Answer a blob GET (whole, or one `Range`) for a blob the caller may read.

    With `redirect_seconds` > 0 and a store that can sign, the answer is a 307 to a URL
    reading the blob from the storage service for that long (the client sends its `Range`
    there); a store that cannot sign just now (no signing credential) streams instead.

    Raises web.HTTPNotFound when the bytes are gone although the metadata still links them
    (as FileResponse does for a missing file).
    """
    if redirect_seconds > 0 and isinstance(store, RedirectableBlobs):
        try:
            url = await store.presign_read(location.digest, redirect_seconds)
        except StorageError as exc:
            _log.warning("cannot sign a blob URL, streaming instead: %s", exc)
            url = None
        if url is not None:
            # The URL is a bearer secret: it goes to this client only, never to a log.
            return web.Response(
                status=307,
                headers={
                    hdrs.LOCATION: url,
                    "Docker-Content-Digest": str(location.digest),
                    hdrs.CACHE_CONTROL: "no-store",
                    **DISTRIBUTION_VERSION_HEADER,
                },
            )
    if isinstance(store, LocalBlobFiles):
        return BlobFileResponse(location.digest, store.local_path(location.digest))
    return await _stream(request, store, location)


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, count) of the one range asked for, the whole blob when none was, or None
    when the range cannot be satisfied — the semantics FileResponse gives the fast path."""
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return 0, size
    if start < 0:  # a suffix: the last -start bytes
        first = max(size + start, 0)
        return first, size - first
    if start >= size:
        return None
    end = size if stop is None else min(stop, size)
    return start, end - start


async def _stream(
    request: web.Request, store: BlobStore, location: BlobLocation
) -> web.StreamResponse:
    size = location.size
    headers = {
        **_blob_headers(location.digest),
        hdrs.ETAG: f'"{location.digest}"',
        hdrs.ACCEPT_RANGES: "bytes",
    }
    span = byte_range(request, size)
    if span is None:
        headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    start, count = span
    partial = hdrs.RANGE in request.headers
    if partial:
        headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{start + count - 1}/{size}"
    status = 206 if partial else 200
    if isinstance(store, RedirectableBlobs) and count > 0:
        spliced = await _splice(request, store, location, headers, status, start, count)
        if spliced is not None:
            return spliced
    chunks = store.read(location.digest, start, count)
    try:
        # The first chunk is read before the status line goes out, so that bytes gone
        # missing answer 404 rather than a truncated 200.
        try:
            first = await anext(chunks, b"")
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        # A client that goes away must not leave the driver's reader (a file, a
        # connection) open until the generator is collected.
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


async def _splice(
    request: web.Request,
    store: RedirectableBlobs,
    location: BlobLocation,
    headers: dict[str, str],
    status: int,
    start: int,
    count: int,
) -> web.StreamResponse | None:
    """The answer with its body spliced from the store's socket into the client's (see
    `blob_splice`), or None, before anything was sent, when that cannot be done here.

    Raises ConnectionResetError (the connection aborted) when the copy fails after the
    status line went out, as a client that goes away mid-body does.
    """
    client = client_fd(request)
    if client is None:
        return None
    try:
        url = await store.presign_read(location.digest, _SPLICE_URL_SECONDS)
    except StorageError:
        return None
    if url is None:
        return None
    source = await open_source(url, start, count, whole=status == 200)
    if source is None:
        return None
    with source.sock:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        if source.head:
            await response.write(source.head)
        rest = count - len(source.head)
        transport = request.transport
        if rest and transport is not None and transport.get_write_buffer_size() == 0:
            # A descriptor of its own: the transport may close its one meanwhile, and that
            # number could then name another file.
            target = os.dup(client)
            pause = transport.is_reading()
            if pause:
                transport.pause_reading()
            try:
                await splice_body(source.sock, target, rest)
            except (SpliceError, OSError) as exc:
                if isinstance(exc, SpliceError):
                    _log.warning("blob %s: %s", location.digest, exc)
                transport.abort()
                raise ConnectionResetError(str(exc)) from None
            finally:
                os.close(target)
                if pause and not transport.is_closing():
                    transport.resume_reading()
        elif rest:
            # The client has not taken the headers yet (rare: a full socket buffer), so
            # nothing may be spliced behind them: relay through the loop instead.
            try:
                await _relay(source.sock, response, rest)
            except (SpliceError, OSError) as exc:
                if transport is not None:
                    transport.abort()
                raise ConnectionResetError(str(exc)) from None
        await response.write_eof()
        return response


async def _relay(source: socket.socket, response: web.StreamResponse, count: int) -> None:
    """Copy `count` bytes from `source` into `response`, 256 KiB at a time. Raises
    SpliceError when the source ends early or stalls, OSError when a socket fails."""
    loop = asyncio.get_running_loop()
    buffer = bytearray(256 * 1024)
    while count:
        async with asyncio.timeout(_RELAY_IDLE_SECONDS):
            got = await loop.sock_recv_into(source, memoryview(buffer)[: min(count, len(buffer))])
        if not got:
            raise SpliceError(f"the store's body ended {count} bytes short")
        await response.write(bytes(buffer[:got]))
        count -= got


class StreamedBlobAnswer:
    """The answer to a blob GET whose bytes arrive as they are fetched (a pull through a
    cache rule's BlobReceiver): the whole blob, or the one `Range` asked for (206; 416 when
    it cannot be satisfied), as `serve_blob` answers a stored blob.

    The bytes come in order from the blob's first, and the last of them only once the blob
    is verified. A range that ends before the blob does keeps its own last byte until then:
    a client must never see a complete-looking answer of bytes that fail verification."""

    def __init__(self, request: web.Request, digest: Digest) -> None:
        self._request = request
        self._digest = digest
        self.response: web.StreamResponse | None = None
        self._size = 0
        self._at = 0  # bytes of the blob received so far
        self._start = 0
        self._stop = 0  # the range's end (exclusive)
        self._last = b""  # the range's last byte, until the blob is complete

    async def begin(self, size: int) -> None:
        headers = {
            hdrs.CONTENT_TYPE: "application/octet-stream",
            "Docker-Content-Digest": str(self._digest),
            hdrs.ETAG: f'"{self._digest}"',
            hdrs.ACCEPT_RANGES: "bytes",
            **DISTRIBUTION_VERSION_HEADER,
        }
        self._size = size
        span = byte_range(self._request, size)
        status = 200
        if span is None:
            status, span = 416, (0, 0)
            headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
        elif hdrs.RANGE in self._request.headers:
            status = 206
            headers[hdrs.CONTENT_RANGE] = f"bytes {span[0]}-{span[0] + span[1] - 1}/{size}"
        self._start, self._stop = span[0], span[0] + span[1]
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = span[1]
        self.response = response
        await response.prepare(self._request)

    async def send(self, chunk: bytes) -> None:
        position = self._advance(len(chunk))
        start, stop, hold = self._wanted(position, len(chunk))
        if stop > start:
            await self._answer().write(chunk[start - position : stop - position])
        if hold:
            self._last = chunk[stop - position : stop - position + 1]
        await self._release()

    async def send_file(self, file: BinaryIO, offset: int, count: int) -> None:
        """The next `count` bytes of the blob, from `file` at `offset`, by sendfile."""
        position = self._advance(count)
        if offset != position:
            raise ValueError(f"bytes from {offset} sent where the blob is at {position}")
        start, stop, hold = self._wanted(position, count)
        if stop > start:
            transport = self._request.transport
            if transport is None:
                raise ConnectionResetError("the client went away")
            self._answer()
            await asyncio.get_running_loop().sendfile(transport, file, start, stop - start)
        if hold:
            self._last = os.pread(file.fileno(), 1, stop)
        await self._release()

    def _answer(self) -> web.StreamResponse:
        assert self.response is not None, "begin() first"
        return self.response

    def _advance(self, count: int) -> int:
        """Count `count` more bytes of the blob received; where they start."""
        position, self._at = self._at, self._at + count
        return position

    def _wanted(self, position: int, count: int) -> tuple[int, int, bool]:
        """Of the blob's bytes [position, position + count): the ones to send now
        [start, stop), and whether the one at `stop` is the range's last, held back."""
        start = max(self._start, position)
        stop = min(self._stop, position + count)
        if stop <= start:
            return start, start, False
        hold = self._stop < self._size and stop == self._stop
        return start, stop - 1 if hold else stop, hold

    async def _release(self) -> None:
        """The blob is complete: send the range's last byte, if it was held back."""
        if self._last and self._at >= self._size:
            await self._answer().write(self._last)
            self._last = b""

    def abort(self) -> None:
        """Break the connection of an answer already begun: a client must see a failed
        transfer, never a short body that ends like a complete one."""
        transport = self._request.transport
        if self.response is not None and transport is not None:
            transport.abort()
