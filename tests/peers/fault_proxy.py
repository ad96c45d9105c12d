"""A TCP proxy that injects faults between a client and a loopback server.

:class:`FaultProxy` listens on a free loopback port and forwards each connection to
``upstream_host:upstream_port``, from an asyncio loop in a background thread. The mode can
be switched at any time from the test's thread; chunks in flight follow the new mode.

Modes (:class:`FaultMode`):

- ``pass``      forward as is;
- ``latency``   wait ``latency`` seconds before forwarding each chunk (both directions);
- ``bandwidth`` cap each direction of each connection at ``bytes_per_second``;
- ``reset``     after ``reset_after`` bytes have gone towards the client (``direction="down"``,
  a download) or towards the server (``"up"``, an upload) on one connection, forward exactly
  that many bytes then abort both sockets with a TCP RST. ``once=True``: only the first
  connection that gets there is cut, then the mode reverts to ``pass``; ``once=False``:
  every connection is cut;
- ``blackhole`` accept, read and discard, never answer (a stall); connections already open
  stop forwarding until the mode changes;
- ``refuse``    stop listening and reset every open connection (the server "went away"):
  new connections are refused (ECONNREFUSED); the same port is listened on again when the
  mode changes.

Counters (:attr:`FaultProxy.stats`): connections accepted, bytes forwarded up and down,
resets done; :attr:`FaultProxy.open_connections` counts those still being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar

from .ports import LOOPBACK
from .procs import Peer

ModeKind = Literal["pass", "latency", "bandwidth", "reset", "blackhole", "refuse"]
Direction = Literal["down", "up"]
_T = TypeVar("_T")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FaultMode:
    """A proxy mode; build one with the class methods."""

    kind: ModeKind = "pass"
    latency: float = 0.0
    bytes_per_second: int = 0
    reset_after: int = 0
    once: bool = True
    direction: Direction = "down"

    @classmethod
    def passthrough(cls) -> FaultMode:
        """Forward as is."""
        return cls("pass")

    @classmethod
    def with_latency(cls, seconds: float) -> FaultMode:
        """Delay each chunk by ``seconds``."""
        return cls("latency", latency=seconds)

    @classmethod
    def bandwidth(cls, bytes_per_second: int) -> FaultMode:
        """Cap each direction of each connection."""
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        return cls("bandwidth", bytes_per_second=bytes_per_second)

    @classmethod
    def reset(
        cls, after_bytes: int, *, once: bool = True, direction: Direction = "down"
    ) -> FaultMode:
        """RST a connection after ``after_bytes`` bytes in ``direction``."""
        return cls("reset", reset_after=after_bytes, once=once, direction=direction)

    @classmethod
    def blackhole(cls) -> FaultMode:
        """Accept and stall."""
        return cls("blackhole")

    @classmethod
    def refuse(cls) -> FaultMode:
        """Refuse new connections."""
        return cls("refuse")


@dataclass
class ProxyStats:
    """Counters since start (or the last :meth:`FaultProxy.reset_stats`)."""

    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    resets: int = 0


class _Conn:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter | None) -> None:
        self.client = client
        self.upstream = upstream
        self.sent = {"down": 0, "up": 0}
        self.dead = False


class FaultProxy(Peer):
    """The proxy. Context manager, or start()/stop()."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, mode: FaultMode | None = None
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.stats = ProxyStats()
        self._mode = mode or FaultMode.passthrough()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._port = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conns: set[_Conn] = set()
        self._changed: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the loop thread and listen (unless the initial mode is ``refuse``)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._call(self._init())
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop, join the thread; idempotent."""
        loop = self._loop
        if loop is None:
            return
        self._call(self._shutdown())
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()
        self._loop = None
        self._thread = None

    # -- public API ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port clients connect to (stable across ``refuse``)."""
        return self._port

    @property
    def mode(self) -> FaultMode:
        """The current mode."""
        return self._mode

    @property
    def open_connections(self) -> int:
        """Client connections accepted and not yet closed down (both sides)."""
        return len(self._tasks)

    def set_mode(self, mode: FaultMode) -> None:
        """Switch mode; returns once the listener matches it (closed for refuse, open otherwise)."""
        self._call(self._apply(mode))

    def passthrough(self) -> None:
        """Shortcut for ``set_mode(FaultMode.passthrough())``."""
        self.set_mode(FaultMode.passthrough())

    def latency(self, seconds: float) -> None:
        """Shortcut for ``set_mode(FaultMode.with_latency(seconds))``."""
        self.set_mode(FaultMode.with_latency(seconds))

    def bandwidth(self, bytes_per_second: int) -> None:
        """Shortcut for ``set_mode(FaultMode.bandwidth(bytes_per_second))``."""
        self.set_mode(FaultMode.bandwidth(bytes_per_second))

    def reset_after(
        self, n_bytes: int, *, once: bool = True, direction: Direction = "down"
    ) -> None:
        """Shortcut for ``set_mode(FaultMode.reset(n_bytes, once=once, direction=direction))``."""
        self.set_mode(FaultMode.reset(n_bytes, once=once, direction=direction))

    def blackhole(self) -> None:
        """Shortcut for ``set_mode(FaultMode.blackhole())``."""
        self.set_mode(FaultMode.blackhole())

    def refuse(self) -> None:
        """Shortcut for ``set_mode(FaultMode.refuse())``."""
        self.set_mode(FaultMode.refuse())

    def reset_stats(self) -> None:
        """Zero the counters."""
        self.stats = ProxyStats()

    # -- loop side -------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("fault proxy not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _init(self) -> None:
        self._changed = asyncio.Event()
        await self._listen()
        if self._mode.kind == "refuse":
            await self._unlisten()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, LOOPBACK, self._port, reuse_address=True
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _apply(self, mode: FaultMode) -> None:
        self._mode = mode
        if mode.kind == "refuse":
            await self._unlisten()
            for conn in list(self._conns):
                conn.dead = True
                _abort(conn.client)
                if conn.upstream is not None:
                    _abort(conn.upstream)
        else:
            await self._listen()
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            if self._mode.kind == "blackhole":
                while await reader.read(_CHUNK):
                    pass
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                _abort(writer)
                return
            conn = _Conn(writer, up_writer)
            self._conns.add(conn)
            pumps = [
                asyncio.ensure_future(self._pump(reader, up_writer, conn, "up")),
                asyncio.ensure_future(self._pump(up_reader, writer, conn, "down")),
            ]
            try:
                await asyncio.gather(*pumps)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                up_writer.close()
                self._conns.discard(conn)
        except (ConnectionError, OSError):
            pass  # the peer went away: nothing to forward any more
        finally:
            if not writer.is_closing():
                writer.close()
            self._tasks.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: _Conn,
        direction: Direction,
    ) -> None:
        try:
            while not conn.dead:
                mode = self._mode
                size = _CHUNK
                if mode.kind == "bandwidth":
                    size = max(1, min(_CHUNK, mode.bytes_per_second // 20))
                data = await reader.read(size)
                if not data:
                    if writer.can_write_eof() and not writer.is_closing():
                        writer.write_eof()
                    return
                await self._forward(data, writer, conn, direction)
        except (ConnectionError, OSError):
            conn.dead = True
            _abort(conn.client)
            if conn.upstream is not None:
                _abort(conn.upstream)

    async def _forward(
        self, data: bytes, writer: asyncio.StreamWriter, conn: _Conn, direction: Direction
    ) -> None:
        while self._mode.kind == "blackhole" and self._changed is not None:
            await self._changed.wait()
        mode = self._mode
        if mode.kind == "latency":
            await asyncio.sleep(mode.latency)
        if mode.kind == "reset" and mode.direction == direction:
            left = mode.reset_after - conn.sent[direction]
            if len(data) >= left:
                if left > 0:
                    writer.write(data[:left])
                    await writer.drain()
                    self._count(direction, left)
                    conn.sent[direction] += left
                conn.dead = True
                self.stats.resets += 1
                if mode.once and self._mode is mode:
                    self._mode = FaultMode.passthrough()
                    self._notify()
                _abort(conn.client)
                if conn.upstream is not None:
                    _abort(conn.upstream)
                return
        writer.write(data)
        await writer.drain()
        conn.sent[direction] += len(data)
        self._count(direction, len(data))
        if mode.kind == "bandwidth":
            await asyncio.sleep(len(data) / mode.bytes_per_second)

    def _count(self, direction: Direction, n: int) -> None:
        if direction == "down":
            self.stats.bytes_down += n
        else:
            self.stats.bytes_up += n


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
