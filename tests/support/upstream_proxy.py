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
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from tests.support.forwarding import ForwardingServer, answer

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


class UpstreamProxy(ForwardingServer):
    """Forwards to `upstream_url` (``http://host:port``). ``await start()`` / ``await close()``."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []

    async def close(self) -> None:
        for fault in self.faults:
            if fault.release is not None:
                fault.release.set()
        await super().close()

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
        status, body, answer_headers = await self.forward(request)
        if fault is not None and fault.kind == "corrupt" and status in (200, 206):
            body = body.translate(_FLIP)
        seen.status = status
        return answer(request, status, body, answer_headers)
