"""`UpstreamClient.list_referrers` against a small scripted registry on loopback: pages
followed by `Link`, the artifactType filter passed on, 404 as "no referrers API", 5xx
retried then failing, and refusals of bad answers (not an index, a page on another host,
too large)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.imports.scripted_upstream import (
    Scripted,
    scripted_registry,
    upstream_client,
)
from transship.imports.errors import ImportFailure
from transship.imports.upstream import UpstreamClient
from transship.oci.digest import Digest

SUBJECT = Digest("sha256", "1" * 64)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def descriptor(n: int, artifact_type: str = "application/spdx+json") -> dict[str, Any]:
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{n:064x}",
        "size": 100 + n,
        "artifactType": artifact_type,
    }


def index(*descriptors: dict[str, Any]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(descriptors)}
    ).encode()


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    async with scripted_registry("/v2/library/app/referrers/{digest}", OCI_INDEX) as registry:
        yield registry


@pytest.fixture
async def client(scripted: Scripted) -> AsyncIterator[UpstreamClient]:
    async with upstream_client(scripted) as made:
        yield made


async def test_pages_are_followed_and_the_filter_passed_on(
    scripted: Scripted, client: UpstreamClient
) -> None:
    scripted.answers = [
        (
            200,
            index(descriptor(1)),
            {"Link": f'</v2/library/app/referrers/{SUBJECT}?n=2>; rel="next"'},
        ),
        (200, index(descriptor(2), descriptor(3)), {}),
    ]
    found = await client.list_referrers(SUBJECT, "application/spdx+json")
    assert found is not None
    assert [d.digest for d in found] == [Digest("sha256", f"{n:064x}") for n in (1, 2, 3)]
    assert scripted.queries[0] == {"artifactType": "application/spdx+json"}
    assert scripted.queries[1] == {"n": "2"}


async def test_404_means_no_referrers_api(scripted: Scripted, client: UpstreamClient) -> None:
    scripted.answers = [(404, b'{"errors":[]}', {"Content-Type": "application/json"})]
    assert await client.list_referrers(SUBJECT) is None
    assert scripted.queries == [{}]


async def test_5xx_is_retried_then_fails(scripted: Scripted, client: UpstreamClient) -> None:
    scripted.answers = [(500, b"", {}), (503, b"", {}), (200, index(descriptor(7)), {})]
    found = await client.list_referrers(SUBJECT)
    assert found is not None and len(found) == 1
    scripted.answers = [(500, b"", {})] * 3
    with pytest.raises(ImportFailure) as caught:
        await client.list_referrers(SUBJECT)
    assert caught.value.code == "UpstreamUnavailable" and caught.value.retryable
    assert "referrers" in caught.value.message


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ((200, b"not json", {}), "invalid index"),
        (
            (
                200,
                json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": descriptor(1),
                        "layers": [],
                    }
                ).encode(),
                {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ),
            "invalid index",
        ),
        (
            (200, index(), {"Link": '<http://elsewhere.test/v2/x>; rel="next"'}),
            "another host",
        ),
    ],
)
async def test_bad_answers_fail_as_invalid_referrers(
    scripted: Scripted,
    client: UpstreamClient,
    answer: tuple[int, bytes, dict[str, str]],
    fragment: str,
) -> None:
    scripted.answers = [answer]
    with pytest.raises(ImportFailure) as caught:
        await client.list_referrers(SUBJECT)
    assert caught.value.code == "InvalidReferrers"
    assert fragment in caught.value.message


async def test_a_list_larger_than_the_manifest_limit_is_refused(
    scripted: Scripted, client: UpstreamClient
) -> None:
    scripted.answers = [(200, index(*(descriptor(n) for n in range(100))), {})]
    with pytest.raises(ImportFailure) as caught:
        await client.list_referrers(SUBJECT)
    assert caught.value.code == "ManifestTooLarge"


async def test_401_and_403_are_unauthorized(scripted: Scripted, client: UpstreamClient) -> None:
    scripted.answers = [(403, b"", {})]
    with pytest.raises(ImportFailure) as caught:
        await client.list_referrers(SUBJECT)
    assert caught.value.code == "UpstreamUnauthorized"
