"""A small scripted registry on loopback for the `UpstreamClient` listing tests: one GET
route answered from a queue of (status, body, headers), each request's query recorded; and
an `UpstreamClient` of `library/app` pointed at it, with fast retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.unit.imports.doubles import Sleeps
from transship.config import UpstreamHost
from transship.imports.endpoints import resolve_endpoint
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import UpstreamClient

HOST = "upstream.test:5000"


class Scripted:
    """Answers its route from `answers` (status, body, headers; popped in order), with
    `content_type` unless the headers name another; records each request's query."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        self.answers: list[tuple[int, bytes, dict[str, str]]] = []
        self.queries: list[dict[str, str]] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        status, body, headers = self.answers.pop(0)
        return web.Response(
            status=status, body=body, headers={"Content-Type": self.content_type, **headers}
        )


@asynccontextmanager
async def scripted_registry(route: str, content_type: str) -> AsyncIterator[Scripted]:
    """A Scripted registry answering GET `route` on a free loopback port, stopped at exit."""
    registry = Scripted(content_type)
    app = web.Application()
    app.router.add_get(route, registry.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    registry.port = server.port
    try:
        yield registry
    finally:
        await server.close()


@asynccontextmanager
async def upstream_client(registry: Scripted) -> AsyncIterator[UpstreamClient]:
    """An UpstreamClient of `library/app` on `HOST`, routed to `registry`: 3 attempts
    without real sleeps, manifests up to 4 KiB."""
    url = f"http://127.0.0.1:{registry.port}"
    endpoint = resolve_endpoint(HOST, {HOST: UpstreamHost(endpoint=url, insecure=True)})
    retry = RetryPolicy(
        attempts=3, base_delay=0.1, max_delay=1.0, jitter=0.0, max_retry_after=5.0, sleep=Sleeps()
    )
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield UpstreamClient(
            session, endpoint, "library/app", None, retry=retry, max_manifest_bytes=4096
        )
