"""Connection hygiene for the HTTP server: header, body-idle and keep-alive timeouts, and a
cap on concurrent connections per client address (slow-client denial of service).

aiohttp bounds none of this by itself: it has a keep-alive timer, but no deadline for the
request headers and none for a request body that stops arriving, so a client that sends
half a request line (or half a body) holds its connection, and a task, forever.

Where the hook is, and why there:

- A :class:`GuardedRequestHandler` (a subclass of aiohttp's per-connection protocol,
  ``web.RequestHandler``) sees every received chunk in ``data_received`` and the
  server's own flow control in ``pause_reading``/``resume_reading`` (public protocol
  methods), and the end of each response in ``finish_response``. A wrapper around the
  server's ``request_factory`` (a documented ``web.Server`` parameter) tells it when a
  request's headers are complete and hands it the body stream. Nothing else of aiohttp's
  parsing is touched, so it keeps its own limits, pipelining and lingering close.
- A :class:`GuardedServer` (``web.Server`` subclass) builds those handlers and holds the
  per-address counts; :class:`GuardedAppRunner` (``web.AppRunner`` subclass) returns it
  from ``_make_server``, the runner's one construction hook. It rebuilds the server aiohttp
  made with the same arguments, so the application's startup, cleanup, debug and access-log
  wiring stay aiohttp's. The sites (``TCPSite`` in ``serve``, aiohttp's ``TestServer`` in
  tests) are unchanged.
- A wrapper protocol around aiohttp's would also see the bytes, but not the server's
  backpressure (aiohttp pauses the transport directly) nor request boundaries without
  parsing HTTP a second time: more fragile, not less.

Timers are cheap: a chunk only records ``loop.time()``; each connection has at most one
``call_at`` handle, re-armed when it fires (to the deadline the current state implies) or
when a request boundary brings a deadline earlier. Nothing blocks the loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from transship.config import Settings

log = logging.getLogger(__name__)

#: A refused address is named in a warning at most this often (seconds).
WARN_INTERVAL = 60.0
#: Bounds the memory of warning times (one per refused address): past this many entries,
#: those older than WARN_INTERVAL are dropped.
_WARNED_PRUNE_AT = 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection timeouts (seconds) and the per-address connection cap."""

    header_timeout: float
    body_idle_timeout: float
    keepalive_timeout: float
    max_per_client: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_idle_timeout=settings.http_body_idle_timeout_seconds,
            keepalive_timeout=settings.http_keepalive_timeout_seconds,
            max_per_client=settings.http_max_connections_per_client,
        )


class ClientConnections:
    """Open connections per client address, capped; a refusal is logged at most once per
    address per :data:`WARN_INTERVAL`."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: dict[str, int] = {}
        self._warned: dict[str, float] = {}

    def open_count(self, address: str) -> int:
        return self._open.get(address, 0)

    def acquire(self, address: str, now: float) -> bool:
        """Count one more connection from `address`; False (and nothing counted) when the
        address already holds the cap."""
        count = self._open.get(address, 0)
        if count >= self._cap:
            self._warn(address, now)
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def _warn(self, address: str, now: float) -> None:
        last = self._warned.get(address)
        if last is not None and now - last < WARN_INTERVAL:
            return
        if len(self._warned) >= _WARNED_PRUNE_AT:
            self._warned = {a: t for a, t in self._warned.items() if now - t < WARN_INTERVAL}
        self._warned[address] = now
        log.warning(
            "refusing connections from %s: it holds %d already (http_max_connections_per_client)",
            address,
            self._cap,
        )


def client_address(transport: asyncio.BaseTransport) -> str:
    """The peer's IP address in canonical form (an IPv4-mapped IPv6 address as IPv4, so
    one client is one key whichever socket family accepted it); "" when there is none."""
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple | list) or not peer:
        return ""
    host = str(peer[0])
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection protocol with the deadlines of :class:`ConnectionLimits`.

    A connection is either *waiting* for request headers (since it opened, or since the
    previous response was written) or *busy* with a request. Waiting, it is closed
    `header_timeout` after the wait began, or `keepalive_timeout` after a response if not
    one byte has come since. Busy, it is closed only while the request body is incomplete
    and no byte of it has arrived for `body_idle_timeout`; time during which the server
    itself stopped reading (the handler is slower than the client: backpressure) does not
    count. A busy connection whose body is complete has no deadline here: the handler's
    work and the response are not the client's to hurry.
    """

    __slots__ = (
        "_guard_body",
        "_guard_body_clock",
        "_guard_client",
        "_guard_counted",
        "_guard_keepalive_applies",
        "_guard_last_rx",
        "_guard_limits",
        "_guard_timer",
        "_guard_wait_start",
        "_guard_waiting",
    )

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard_limits = manager.limits
        self._guard_client = ""
        self._guard_counted = False
        self._guard_timer: asyncio.TimerHandle | None = None
        self._guard_waiting = True
        self._guard_keepalive_applies = False
        self._guard_wait_start = 0.0
        self._guard_last_rx = 0.0
        self._guard_body: StreamReader | None = None
        self._guard_body_clock = 0.0

    # -- protocol events ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        assert isinstance(manager, GuardedServer)
        now = self._loop.time()
        self._guard_client = client_address(transport)
        if not manager.clients.acquire(self._guard_client, now):
            self.force_close()
            return
        self._guard_counted = True
        self._guard_wait_start = now
        self._arm(now + self._guard_limits.header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._guard_timer is not None:
            self._guard_timer.cancel()
            self._guard_timer = None
        manager = self._manager
        if self._guard_counted and isinstance(manager, GuardedServer):
            self._guard_counted = False
            manager.clients.release(self._guard_client)
        self._guard_body = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data:
            self._guard_last_rx = self._loop.time()
        super().data_received(data)

    def resume_reading(self, resume_parser: bool = True) -> None:
        super().resume_reading(resume_parser)
        # The body-idle clock restarts when the server reads again: the client could not
        # send while we were not reading.
        if not self._guard_waiting and self._guard_body is not None:
            now = self._loop.time()
            self._guard_body_clock = now
            self._arm(now + self._guard_limits.body_idle_timeout)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        now = self._loop.time()
        self._guard_waiting = True
        self._guard_keepalive_applies = True
        self._guard_wait_start = now
        self._guard_body = None
        limits = self._guard_limits
        self._arm(now + min(limits.header_timeout, limits.keepalive_timeout))
        return result

    def request_started(self, payload: StreamReader) -> None:
        """Called (by :class:`GuardedServer`'s request factory) once a request's headers are
        parsed and its handler is about to run."""
        now = self._loop.time()
        self._guard_waiting = False
        self._guard_body = None if payload.is_eof() else payload
        self._guard_body_clock = now
        if self._guard_body is not None:
            self._arm(now + self._guard_limits.body_idle_timeout)

    # -- the one timer -----------------------------------------------------------------

    def _deadline(self, now: float) -> tuple[float, str] | None:
        """When the connection must be closed in its current state, and why; None: never."""
        limits = self._guard_limits
        if self._guard_waiting:
            deadline = self._guard_wait_start + limits.header_timeout
            reason = "request headers incomplete"
            if self._guard_keepalive_applies and self._guard_last_rx <= self._guard_wait_start:
                idle_end = self._guard_wait_start + limits.keepalive_timeout
                if idle_end < deadline:
                    deadline, reason = idle_end, "keep-alive idle"
            return deadline, reason
        body = self._guard_body
        if body is None or body.is_eof():
            self._guard_body = None
            return None
        transport = self.transport
        if transport is not None and not transport.is_reading():
            # Paused by the server (backpressure, or a pipelined queue it has not drained):
            # the client is not the one idling. Look again one period later.
            self._guard_body_clock = now
        return max(self._guard_last_rx, self._guard_body_clock) + limits.body_idle_timeout, (
            "request body idle"
        )

    def _arm(self, deadline: float) -> None:
        """Make sure the timer fires no later than `deadline` (it re-evaluates when it does)."""
        timer = self._guard_timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._guard_timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._guard_timer = None
        if self.transport is None:
            return
        now = self._loop.time()
        due = self._deadline(now)
        if due is None:
            return
        deadline, reason = due
        if now >= deadline:
            log.debug("closing connection from %s: %s", self._guard_client or "?", reason)
            self.force_close()
            return
        self._guard_timer = self._loop.call_at(deadline, self._on_timer)


class GuardedServer(web.Server):
    """aiohttp's low-level server making :class:`GuardedRequestHandler` connections, and
    keeping the per-address connection counts of all its listening sockets."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ConnectionLimits,
        request_factory: Callable[..., web.BaseRequest] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, request_factory=request_factory, **kwargs)
        self.limits = limits
        self.clients = ClientConnections(limits.max_per_client)
        inner = self.request_factory

        def started(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.request_started(payload)
            return inner(message, payload, protocol, writer, task)

        self.request_factory = started

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a :class:`GuardedServer`."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        # aiohttp's own keep-alive timer only backs ours up: set it past every deadline of
        # ours so it never closes a connection ours would keep (it also runs from
        # connection open, where our header timeout applies).
        kwargs.setdefault(
            "keepalive_timeout", max(limits.header_timeout, limits.keepalive_timeout) + 60.0
        )
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return GuardedServer(
            made.request_handler,
            limits=self._limits,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **made._kwargs,
        )


def app_runner(app: web.Application, settings: Settings, **kwargs: Any) -> web.AppRunner:
    """The runner `serve` (and the in-process test server) runs `app` with: connection
    timeouts and the per-client cap from `settings`; `kwargs` go to ``web.AppRunner``."""
    return GuardedAppRunner(app, ConnectionLimits.from_settings(settings), **kwargs)
