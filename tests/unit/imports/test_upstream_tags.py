"""`UpstreamClient.list_tags` (what a sync run lists) against a small scripted registry on
loopback: pages followed by `Link` with `n` passed on, tags that are no valid tag skipped,
404 as ManifestUnknown, 5xx retried, and refusals of bad answers (not a tag list, a page on
another host)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.unit.imports.scripted_upstream import (
    Scripted,
    scripted_registry,
    upstream_client,
)
from transship.imports.errors import ImportFailure
from transship.imports.upstream import UpstreamClient


def page(*tags: str) -> bytes:
    return json.dumps({"name": "library/app", "tags": list(tags)}).encode()


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    async with scripted_registry("/v2/library/app/tags/list", "application/json") as registry:
        yield registry


@pytest.fixture
async def client(scripted: Scripted) -> AsyncIterator[UpstreamClient]:
    async with upstream_client(scripted) as made:
        yield made


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
