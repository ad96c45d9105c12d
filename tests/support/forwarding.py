"""The part every test reverse proxy in front of a registry shares: an aiohttp server on a
free loopback port (on the test's own event loop) that hands each request to `_handle`, and
`forward`, which sends a request on to the upstream as received (no redirects followed, so
401 challenges and redirects reach the client as the upstream made them)."""

from __future__ import annotations

import socket
from typing import Self

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset(
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


class ForwardingServer:
    """``await start()`` / ``await close()``; subclasses implement `_handle`."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url.rstrip("/")
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

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def forward(self, request: web.Request) -> tuple[int, bytes, dict[str, str]]:
        """The upstream's answer to `request`: status, body and end-to-end headers."""
        assert self._session is not None, "start() the proxy first"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
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
            # A HEAD's Content-Length is the length a GET would send: kept (no body is re-sent).
            keep = {"content-length"} if request.method == "HEAD" else set()
            answer = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in HOP_BY_HOP or k.lower() in keep
            }
            return upstream.status, body, answer


def answer(request: web.Request, status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    """A forwarded answer as a response to `request` (no body for a HEAD)."""
    if request.method == "HEAD":
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, body=body, headers=headers)
