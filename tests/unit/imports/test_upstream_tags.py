"""`UpstreamClient.list_tags` (what a sync run lists) against a small scripted registry on
loopback: pages followed by `Link` with `n` passed on, tags that are no valid tag skipped,
404 as ManifestUnknown, 5xx retried, and refusals of bad answers (not a tag list, a page on
another host)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.unit.imports.doubles import Sleeps
from transship.config import UpstreamHost
from transship.imports.endpoints import resolve_endpoint
from transship.imports.errors import ImportFailure
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import UpstreamClient

HOST = "upstream.test:5000"


def page(*tags: str) -> bytes:
    return json.dumps({"name": "library/app", "tags": list(tags)}).encode()


class Scripted:
    """Answers GET /v2/library/app/tags/list from a list of (status, body, headers);
    records each request's query."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes, dict[str, str]]] = []
        self.queries: list[dict[str, str]] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        status, body, headers = self.answers.pop(0)
        return web.Response(
            status=status, body=body, headers={"Content-Type": "application/json", **headers}
        )


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    registry = Scripted()
    app = web.Application()
    app.router.add_get("/v2/library/app/tags/list", registry.handle)
    registry.server = TestServer(app, host="127.0.0.1")
    await registry.server.start_server()
    try:
        yield registry
    finally:
        await registry.server.close()


@pytest.fixture
async def client(scripted: Scripted) -> AsyncIterator[UpstreamClient]:
    assert scripted.server is not None
    url = f"http://127.0.0.1:{scripted.server.port}"
    endpoint = resolve_endpoint(HOST, {HOST: UpstreamHost(endpoint=url, insecure=True)})
    retry = RetryPolicy(
        attempts=3, base_delay=0.1, max_delay=1.0, jitter=0.0, max_retry_after=5.0, sleep=Sleeps()
    )
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield UpstreamClient(
            session, endpoint, "library/app", None, retry=retry, max_manifest_bytes=4096
        )


async def test_pages_are_followed_and_bad_names_skipped(
    scripted: Scripted, client: UpstreamClient
) -> None:
    scripted.answers = [
        (200, page("1.0", "1.1"), {"Link": '</v2/library/app/tags/list?n=2&last=1.1>; rel="next"'}),
        (200, page("2.0", "bad tag!", "1.0"), {}),
    ]
    assert await client.list_tags(page_size=2) == ("1.0", "1.1", "2.0")
    assert scripted.queries == [{"n": "2"}, {"n": "2", "last": "1.1"}]


async def test_an_empty_repository_has_no_tags(scripted: Scripted, client: UpstreamClient) -> None:
    scripted.answers = [(200, json.dumps({"name": "library/app", "tags": None}).encode(), {})]
    assert await client.list_tags() == ()
    assert scripted.queries == [{}]


async def test_404_is_manifest_unknown(scripted: Scripted, client: UpstreamClient) -> None:
    scripted.answers = [(404, b'{"errors":[]}', {})]
    with pytest.raises(ImportFailure) as caught:
        await client.list_tags()
    assert caught.value.code == "ManifestUnknown" and caught.value.upstream_status == 404


async def test_5xx_is_retried_then_fails(scripted: Scripted, client: UpstreamClient) -> None:
    scripted.answers = [(503, b"", {}), (200, page("1.0"), {})]
    assert await client.list_tags() == ("1.0",)
    scripted.answers = [(500, b"", {})] * 3
    with pytest.raises(ImportFailure) as caught:
        await client.list_tags()
    assert (
        caught.value.code == "UpstreamUnavailable" and "tags of library/app" in caught.value.message
    )


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ((200, b"not json", {}), "something other than a tag list"),
        ((200, b'{"tags": [1, 2]}', {}), "something other than a tag list"),
        (
            (200, page("1.0"), {"Link": '<http://elsewhere.test/v2/x/tags/list>; rel="next"'}),
            "to another host",
        ),
    ],
)
async def test_bad_answers_are_refused(
    scripted: Scripted,
    client: UpstreamClient,
    answer: tuple[int, bytes, dict[str, str]],
    fragment: str,
) -> None:
    scripted.answers = [answer]
    with pytest.raises(ImportFailure) as caught:
        await client.list_tags()
    assert caught.value.code == "InvalidTagList" and fragment in caught.value.message
