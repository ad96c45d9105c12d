"""Blob GET bodies moved from an object store's socket to the client's inside the kernel.

When the store can sign a read URL (`RedirectableBlobs`) that is plain `http://` (an
in-cluster SeaweedFS or MinIO) and the client's connection is plain TCP on the default
event loop, the blob's bytes need not pass through Python at all: one HTTP/1.1 GET of the
signed URL is opened on a raw socket, and Linux `splice(2)` moves its body through a pipe
into the client's socket. The registry then costs about a third of the CPU per GiB of
streaming the body through an S3 client (docs/performance.md, "Object storage").

Python holds no more of the body than what arrived with the store's headers, and nothing
blocks: the splices are non-blocking and driven by the event loop's readiness callbacks,
each moving at most one pipe's worth (1 MiB) without copying, and the copy lets other
callbacks in at least every 5 ms. Every failure before the status line goes out (no
signature, an https store, a refused connection, an unexpected answer, a 404) makes the
caller stream through the store as before, which then maps the error as usual; a failure
after it aborts the client's connection, as a store failing mid-stream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import urllib.parse
from dataclasses import dataclass

from aiohttp import web

_log = logging.getLogger(__name__)

# Bound on the store's status line and headers (S3 and Azure send well under 2 KiB).
_MAX_HEAD_BYTES = 64 * 1024
# Connecting and reading the answer's headers; a slower store is left to the S3 client's
# own timeouts and retries.
_OPEN_TIMEOUT_SECONDS = 30.0
# How long the store may send nothing while the pipe is empty before the copy is abandoned.
_IDLE_TIMEOUT_SECONDS = 60.0
# Bytes a pipe may hold (F_SETPIPE_SZ, Linux's default maximum): the most one splice moves.
_PIPE_BYTES = 1024 * 1024
# The longest the copy runs on the loop before letting other callbacks in.
_SLICE_SECONDS = 0.005
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SPLICE = getattr(os, "splice", None)


class SpliceError(ConnectionError):
    """The store's body ended early or the copy stalled, after the client got its headers."""


@dataclass(frozen=True, slots=True)
class SourceAnswer:
    """A store's answer to a blob GET whose body is next on `sock`: `head` is the body's
    beginning that came with the headers."""

    sock: socket.socket
    head: bytes


def client_fd(request: web.Request) -> int | None:
    """The client connection's socket descriptor when bytes can be spliced into it: plain
    TCP (no TLS) on an asyncio selector loop, on a system with splice(2). None otherwise."""
    transport = request.transport
    if _SPLICE is None or transport is None or transport.is_closing():
        return None
    if not isinstance(asyncio.get_running_loop(), asyncio.selector_events.BaseSelectorEventLoop):
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return None
    fd: int = sock.fileno()
    return fd if fd >= 0 else None


async def open_source(url: str, start: int, count: int, whole: bool) -> SourceAnswer | None:
    """GET `count` bytes from `start` of the object a signed `url` reads (no `Range` when
    `whole`), and read the answer up to its body.

    Returns None, having closed what it opened, unless the URL is `http://` and the store
    answers 200 (whole) or 206 with exactly `count` bytes of `Content-Length` and no
    transfer coding: the caller then reads through its store client, which reports the
    error (a 404, a refusal) properly. Never raises for the store's behaviour.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or count <= 0:
        return None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    if not whole:
        lines.append(f"Range: bytes={start}-{start + count - 1}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(_OPEN_TIMEOUT_SECONDS):
            sock = await _connect(parts.hostname, parts.port or 80)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(sock, request)
            received = b""
            while b"\r\n\r\n" not in received:
                if len(received) > _MAX_HEAD_BYTES:
                    raise ValueError("headers too long")
                more = await loop.sock_recv(sock, 65536)
                if not more:
                    raise ValueError("closed before the headers ended")
                received += more
    except (OSError, ValueError, TimeoutError) as exc:
        # The signed URL is a bearer secret: only the host goes to the log.
        _log.debug("blob splice from %s not opened: %s", parts.hostname, exc)
        if sock is not None:
            sock.close()
        return None
    assert sock is not None
    head, _, body = received.partition(b"\r\n\r\n")
    if not _acceptable(head, count, whole):
        sock.close()
        return None
    if len(body) > count:
        sock.close()
        return None
    return SourceAnswer(sock, body)


def _acceptable(head: bytes, count: int, whole: bool) -> bool:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/1."):
        return False
    if fields[1] != ("200" if whole else "206"):
        return False
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep:
            return False
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        return False
    return headers.get("content-length") == str(count)


async def _connect(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def splice_body(source: socket.socket, client: int, count: int) -> None:
    """Move `count` bytes from `source` into the client socket `client` (a descriptor the
    caller owns for the duration), through a pipe, without copying them into Python.

    The caller must have flushed everything it wrote to the client before, and must not
    write to it (nor read from it) until this returns. Raises SpliceError when the source
    ends early or sends nothing for `_IDLE_TIMEOUT_SECONDS`; OSError (EPIPE, ECONNRESET…)
    when the client goes away.
    """
    assert _SPLICE is not None
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        try:
            capacity = fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            # Over the per-user pipe budget: the default pipe works, in smaller steps.
            capacity = 65536
        # Both ends move pages, not bytes.
        flags = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE
        left, in_pipe = count, 0
        source_fd = source.fileno()
        turn_ends = loop.time() + _SLICE_SECONDS
        while left or in_pipe:
            progress = False
            if left and in_pipe < capacity:
                with contextlib.suppress(BlockingIOError):
                    moved = _SPLICE(
                        source_fd, write_end, min(left, capacity - in_pipe), None, None, flags
                    )
                    if moved == 0:
                        raise SpliceError(f"the store's body ended {left} bytes short")
                    left -= moved
                    in_pipe += moved
                    progress = True
            if in_pipe:
                with contextlib.suppress(BlockingIOError):
                    # MORE lets TCP wait for a full segment; never on the last bytes,
                    # which it would hold back for up to 200 ms.
                    more = os.SPLICE_F_MORE if left else 0
                    sent = _SPLICE(read_end, client, in_pipe, None, None, flags | more)
                    in_pipe -= sent
                    progress = progress or sent > 0
            if progress:
                # While both ends keep up, going on at once is cheapest (a loop turn per
                # pass costs a fifth more CPU); but other callbacks get their turn at
                # least every `_SLICE_SECONDS`, not after the blob.
                if loop.time() >= turn_ends:
                    await asyncio.sleep(0)
                    turn_ends = loop.time() + _SLICE_SECONDS
            else:
                await _ready(
                    loop,
                    source_fd if left and in_pipe < capacity else None,
                    client if in_pipe else None,
                )
                turn_ends = loop.time() + _SLICE_SECONDS
    finally:
        os.close(read_end)
        os.close(write_end)


async def _ready(
    loop: asyncio.AbstractEventLoop, readable: int | None, writable: int | None
) -> None:
    """Until `readable` can be read or `writable` written (whichever comes first)."""
    woken = loop.create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    if readable is not None:
        loop.add_reader(readable, wake)
    if writable is not None:
        loop.add_writer(writable, wake)
    try:
        if writable is None:
            # Waiting on the store alone: a store that stops sending must not hold the
            # client (and this request) forever. A slow client is the client's business.
            try:
                async with asyncio.timeout(_IDLE_TIMEOUT_SECONDS):
                    await woken
            except TimeoutError:
                raise SpliceError("the store sent nothing for too long") from None
        else:
            await woken
    finally:
        if readable is not None:
            loop.remove_reader(readable)
        if writable is not None:
            loop.remove_writer(writable)
