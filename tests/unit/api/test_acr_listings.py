"""`/acr/v1` listings (`az acr repository show-tags|show-manifests|show`) answered by keyed and
paginated queries: pages in every order with their Link chain, one item by key, counts; and
with 20,000 manifests in one repository, listings do not hold the event loop, so a manifest
GET served meanwhile is not delayed."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from tests.support.app import OCI_MANIFEST, RunningRegistry, make_settings, running_registry, sha256
from transship.metadata import schema as s


async def _get(reg: RunningRegistry, path: str) -> tuple[int, Any, str | None]:
    async with reg.request("GET", path) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None), r.headers.get("Link")


async def _walk(reg: RunningRegistry, path: str, field: str) -> list[list[Any]]:
    """Every page of a listing, following its Link headers."""
    pages = []
    while True:
        status, body, link = await _get(reg, path)
        assert status == 200, body
        pages.append(body[field])
        if link is None:
            return pages
        found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert found is not None, link
        path = found[1]


async def test_tags_and_manifests_page_in_every_order(
    tmp_path: Path, database_url: str | None
) -> None:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as reg:
        images = [
            await reg.push_image("app", tag, seed=tag.encode()) for tag in ("c", "a", "d", "b", "e")
        ]
        pushed = [digest for digest, _, _ in images]  # in creation order
        status, _, _ = await _get(reg, "/acr/v1/app")
        assert status == 200

        pages = await _walk(reg, "/acr/v1/app/_tags?n=2", "tags")
        assert [[t["name"] for t in page] for page in pages] == [["a", "b"], ["c", "d"], ["e"]]
        pages = await _walk(reg, "/acr/v1/app/_tags?n=2&orderby=timedesc", "tags")
        assert [[t["name"] for t in page] for page in pages] == [["e", "b"], ["d", "a"], ["c"]]
        pages = await _walk(reg, "/acr/v1/app/_tags?n=3&orderby=timeasc", "tags")
        assert [[t["name"] for t in page] for page in pages] == [["c", "a", "d"], ["b", "e"]]

        pages = await _walk(reg, "/acr/v1/app/_manifests?n=2", "manifests")
        assert [m["digest"] for page in pages for m in page] == sorted(pushed)
        assert [len(page) for page in pages] == [2, 2, 1]
        pages = await _walk(reg, "/acr/v1/app/_manifests?n=2&orderby=timedesc", "manifests")
        assert [m["digest"] for page in pages for m in page] == pushed[::-1]
        listed = {m["digest"]: m for page in pages for m in page}
        assert listed[pushed[0]]["tags"] == ["c"]
        assert (listed[pushed[0]]["architecture"], listed[pushed[0]]["os"]) == ("amd64", "linux")
        assert listed[pushed[0]]["imageSize"] > len(images[0][1])

        # A `last` that vanished since: the page continues after its position.
        status, body, _ = await _get(reg, "/acr/v1/app/_tags?last=bb")
        assert [t["name"] for t in body["tags"]] == ["c", "d", "e"]

        status, body, _ = await _get(reg, f"/acr/v1/app/_manifests/{pushed[2]}")
        assert status == 200 and body["manifest"]["tags"] == ["d"]
        assert body["manifest"] == listed[pushed[2]]
        status, body, _ = await _get(reg, "/acr/v1/app/_tags/b")
        assert status == 200 and body["tag"]["digest"] == pushed[3]
        status, body, _ = await _get(reg, f"/acr/v1/app/_manifests/{sha256(b'absent')}")
        assert status == 404

        status, body, _ = await _get(reg, "/acr/v1/app")
        assert (body["manifestCount"], body["tagCount"]) == (5, 5)
        assert body["createdTime"] == listed[pushed[0]]["createdTime"]
        assert body["lastUpdateTime"] >= listed[pushed[-1]]["createdTime"]


_MANIFESTS = 20_000


# Rows per executemany: SQLAlchemy prepares a batch's parameters on the event loop, so a
# batch stays well under the stall guard's bound.
_BATCH = 1_000


def _manifest_rows(
    repo_id: int, config: tuple[str, int], layer: tuple[str, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The manifests, manifest_references and tags rows of `_MANIFESTS` tagged manifests,
    as `insert_manifest` and `set_tag` would write them; a microsecond apart, so the time
    orders of the listings are as if pushed one by one. Pure CPU: run on a thread."""
    base = datetime.now(UTC)
    manifests, references, tags = [], [], []
    for i in range(_MANIFESTS):
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config[0],
                    "size": config[1],
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer[0],
                        "size": layer[1],
                    }
                ],
                "annotations": {"n": str(i)},
            }
        ).encode()
        digest = sha256(body)
        created = base + timedelta(microseconds=i)
        manifests.append(
            {
                "repository_id": repo_id,
                "digest": digest,
                "media_type": OCI_MANIFEST,
                "size": len(body),
                "content": body,
                "artifact_type": None,
                "subject_digest": None,
                "annotations": None,
                "created_at": created,
            }
        )
        references += [
            {
                "repository_id": repo_id,
                "manifest_digest": digest,
                "child_digest": child,
                "is_manifest": False,
            }
            for child in (config[0], layer[0])
        ]
        tags.append(
            {
                "repository_id": repo_id,
                "name": f"t{i:05d}",
                "digest": digest,
                "created_at": created,
                "updated_at": created,
            }
        )
    return manifests, references, tags


async def _fill(reg: RunningRegistry, config: tuple[str, int], layer: tuple[str, int]) -> None:
    """`_MANIFESTS` tagged manifests in repository "big", inserted through the metadata
    layer's connection in batches (pushing them over HTTP would take minutes; one INSERT
    per row took over a minute too)."""
    registry = await reg.services.resolver.for_host(None)
    async with reg.services.meta.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "big")
    rows = await asyncio.to_thread(_manifest_rows, repo_id, config, layer)
    for table, values in zip((s.manifests, s.manifest_references, s.tags), rows, strict=True):
        async with reg.services.meta.writing() as q:
            for at in range(0, len(values), _BATCH):
                await q._exec(insert(table), values[at : at + _BATCH])


_LISTINGS = (
    "/acr/v1/big/_manifests",
    "/acr/v1/big/_manifests?orderby=timedesc",
    "/acr/v1/big/_tags?orderby=timedesc",
    "/acr/v1/big",
)


@pytest.mark.slow
async def test_listings_of_20000_manifests_do_not_delay_a_manifest_get(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        digest, body, _ = await reg.push_image("big", "v0")
        config, layer = json.loads(body)["config"], json.loads(body)["layers"][0]
        await _fill(reg, (config["digest"], config["size"]), (layer["digest"], layer["size"]))

        async def slowest_get_during(path: str) -> float:
            """The slowest of manifest GETs issued back to back while one listing runs."""
            listing = asyncio.create_task(_get(reg, path))
            slowest = 0.0
            while True:
                started = time.perf_counter()
                async with reg.request("GET", f"/v2/big/manifests/{digest}") as r:
                    assert r.status == 200
                    await r.read()
                slowest = max(slowest, time.perf_counter() - started)
                if listing.done():
                    break
            status, _, _ = await listing
            assert status == 200
            return slowest

        delays = {path: [await slowest_get_during(path) for _ in range(3)] for path in _LISTINGS}
        typical = {path: statistics.median(times) for path, times in delays.items()}
        print(
            "slowest manifest GET during each listing (ms):",
            {p: [round(t * 1000, 1) for t in ts] for p, ts in delays.items()},
        )
        # Before the listings were paged in SQL and read through the async driver, a GET
        # waited for the whole listing query: 150 ms (tags) to 400 ms (manifests) here. It
        # now waits a few ms idle, up to ~120 ms with the suite's workers on both cores: the
        # bound (a median of three, so one scheduling hiccup does not fail it) sits between
        # that and the old 400 ms of the manifests listing. A regression guard, not a figure.
        assert max(typical.values()) < 0.250, typical
