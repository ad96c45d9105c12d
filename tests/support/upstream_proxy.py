"""A tiny HTTP proxy between Transship and an upstream registry (aiohttp, on the test's own
event loop): it records every request and can inject HTTP-level faults.

Transship is pointed at it as the upstream host (``upstreams={proxy.host: {"insecure": True}}``)
or as the endpoint of a host name (``{"docker.io": {"endpoint": proxy.url, "insecure": True}}``).

Faults (:class:`Fault`) match a method and a path fragment (e.g. a blob digest) and apply
``times`` times (``None``: always):

- ``status``: answer with that status and headers instead of forwarding (429, 500, …);
- ``corrupt``: forward, but replace the body with other bytes of the same length;
- ``hold``: wait until ``release`` is set, then forward (a transfer kept "in flight").

TCP-level faults (resets, stalls, bandwidth) belong to :class:`tests.peers.fault_proxy.FaultProxy`,
which can sit in front of this proxy.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Literal, Self

import aiohttp
from aiohttp import web

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "host",
        "content-length",
    }
)
_FLIP = bytes((i + 1) % 256 for i in range(256))

FaultKind = Literal["status", "corrupt", "hold"]


@dataclass
class Seen:
    """One request the proxy received (recorded on arrival): what was asked, when (the
    loop's monotonic clock), and what it answered (`status` 0 while unanswered)."""

    method: str
    path: str
    range: str | None
    at: float
    faulted: FaultKind | None
    status: int = 0


@dataclass
class Fault:
    method: str
    path_contains: str
    kind: FaultKind
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    release: asyncio.Event | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            method == self.method
            and self.path_contains in path
            and (self.times is None or self.hits < self.times)
        )


class UpstreamProxy:
    """Forwards to `upstream_url` (``http://host:port``). ``await start()`` / ``await close()``."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    async def start(self) -> Self:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        self._session = aiohttp.ClientSession(auto_decompress=False, trust_env=False)
        return self

    async def close(self) -> None:
        for fault in self.faults:
            if fault.release is not None:
                fault.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- faults ----------------------------------------------------------------------------
    def fail(
        self,
        path_contains: str,
        status: int,
        *,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        return self._add(
            Fault(
                "GET",
                path_contains,
                "status",
                status=status,
                headers=dict(headers or {}),
                times=times,
            )
        )

    def corrupt(self, path_contains: str, *, times: int | None = None) -> Fault:
        return self._add(Fault("GET", path_contains, "corrupt", times=times))

    def hold(self, path_contains: str) -> Fault:
        """Hold every GET matching `path_contains` until the returned fault's `release` is set."""
        return self._add(Fault("GET", path_contains, "hold", times=None, release=asyncio.Event()))

    def _add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    # -- what was seen ---------------------------------------------------------------------
    def requests_to(self, fragment: str, method: str = "GET") -> list[Seen]:
        return [s for s in self.seen if s.method == method and fragment in s.path]

    def blob_requests(self, digest: str | None = None) -> list[Seen]:
        """Requests of any method for blobs (of `digest`, when given)."""
        return [
            s for s in self.seen if "/blobs/" in s.path and (digest is None or digest in s.path)
        ]

    async def wait_for_request(self, fragment: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.requests_to(fragment)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"{count} GET(s) of {fragment} not seen in {timeout} s: {self.seen}"
                )
            await asyncio.sleep(0.02)

    # -- forwarding ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = asyncio.get_running_loop().time()
        fault = next((f for f in self.faults if f.matches(request.method, request.path)), None)
        if fault is not None:
            fault.hits += 1
        seen = Seen(
            request.method,
            request.path,
            request.headers.get("Range"),
            at,
            fault.kind if fault is not None else None,
        )
        self.seen.append(seen)
        if fault is not None and fault.kind == "status":
            seen.status = fault.status
            return web.json_response(
                {"errors": [{"code": "UNAVAILABLE", "message": "injected by the test proxy"}]},
                status=fault.status,
                headers=fault.headers,
            )
        if fault is not None and fault.kind == "hold":
            assert fault.release is not None
            await fault.release.wait()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        data = await request.read() if request.can_read_body else None
        async with self._session.request(
            request.method,
            self.upstream_url + request.path_qs,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as upstream:
            body = await upstream.read()
            status = upstream.status
            answer_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
        if fault is not None and fault.kind == "corrupt" and status in (200, 206):
            body = body.translate(_FLIP)
        seen.status = status
        if request.method == "HEAD":
            return web.Response(status=status, headers=answer_headers)
        return web.Response(status=status, body=body, headers=answer_headers)
