"""The retention policy of untagged manifests: which manifests it removes (a pure decision on
a repository's graph), and garbage collection applying it on SQLite and PostgreSQL, driven
through the real HTTP API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.app import RunningRegistry, descriptor, make_settings, running_registry, sha256
from transship.errors import Invalid
from transship.metadata.records import ManifestGraph, ManifestNode
from transship.metadata.scope import utcnow
from transship.oci.digest import Digest
from transship.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from transship.registry.gc import expired_untagged

LATER = timedelta(hours=2)  # past the one-hour grace period
NOW = datetime(2030, 1, 10, tzinfo=UTC)
OLD = NOW - timedelta(days=30)


def d(name: str) -> Digest:
    return Digest.parse(sha256(name.encode()))


def node(name: str, created: datetime = OLD, subject: str | None = None) -> ManifestNode:
    return ManifestNode(d(name), created, None if subject is None else d(subject))


def graph(
    nodes: list[ManifestNode],
    tagged: set[str],
    edges: Sequence[tuple[str, str]] = (),
    locked: Sequence[str] = (),
) -> ManifestGraph:
    return ManifestGraph(
        tuple(nodes),
        frozenset(d(t) for t in tagged),
        tuple((d(p), d(c)) for p, c in edges),
        frozenset(d(x) for x in locked),
    )


# -- the decision ---------------------------------------------------------------------------------


def test_old_untagged_manifests_expire_and_young_or_tagged_ones_stay() -> None:
    g = graph([node("tagged"), node("old"), node("young", NOW - timedelta(days=1))], {"tagged"})
    assert expired_untagged(g, NOW - timedelta(days=7)) == {d("old")}


def test_the_children_of_a_kept_index_stay_and_those_of_an_expired_one_go() -> None:
    g = graph(
        [node("index"), node("amd64"), node("arm64"), node("oldindex"), node("oldchild")],
        {"index"},
        [("index", "amd64"), ("index", "arm64"), ("oldindex", "oldchild"), ("oldindex", "amd64")],
    )
    # amd64 is shared by both indexes: the tagged one keeps it.
    assert expired_untagged(g, NOW) == {d("oldindex"), d("oldchild")}


def test_a_locked_untagged_index_stays_with_its_children() -> None:
    g = graph([node("index"), node("child"), node("loose")], set(), [("index", "child")], {"index"})
    assert expired_untagged(g, NOW) == {d("loose")}


def test_a_young_index_keeps_its_old_children() -> None:
    g = graph([node("index", NOW), node("child")], set(), [("index", "child")])
    assert expired_untagged(g, NOW - timedelta(days=1)) == set()


def test_referrers_stay_with_a_kept_subject_and_go_with_an_expired_one() -> None:
    g = graph(
        [
            node("image"),
            node("signature", subject="image"),
            node("sbom-signature", subject="signature"),
            node("gone"),
            node("gone-signature", subject="gone"),
        ],
        {"image"},
    )
    assert expired_untagged(g, NOW) == {d("gone"), d("gone-signature")}


def test_a_kept_referrer_does_not_keep_its_subject() -> None:
    """A tagged (or young) signature of an untagged old image keeps only itself: the image
    was not asked for."""
    g = graph([node("image"), node("signature", subject="image")], {"signature"})
    assert expired_untagged(g, NOW) == {d("image")}


def test_nothing_expires_in_an_empty_repository() -> None:
    assert expired_untagged(graph([], set()), NOW) == set()


# -- garbage collection ---------------------------------------------------------------------------


@pytest.fixture
async def reg(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningRegistry]:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as running:
        yield running


async def retention(reg: RunningRegistry, enabled: bool, days: int = 0) -> None:
    registry = await reg.services.registries.get(reg.services.settings.default_registry)
    assert registry is not None
    await reg.services.registries.update_properties(
        registry, retention_enabled=enabled, retention_days=days
    )


async def exists(reg: RunningRegistry, repository: str, reference: str) -> bool:
    async with reg.request("HEAD", f"/v2/{repository}/manifests/{reference}") as r:
        assert r.status in (200, 404)
        return r.status == 200


async def push_index(reg: RunningRegistry, repository: str, tag: str, children: list[bytes]) -> str:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, c) for c in children],
        }
    ).encode()
    answer = await reg.push_manifest(repository, tag, body, OCI_INDEX)
    assert answer.status == 201, answer.body
    return sha256(body)


async def test_gc_removes_old_untagged_manifests_and_their_blobs(reg: RunningRegistry) -> None:
    await retention(reg, True, days=0)
    old, _, old_blobs = await reg.push_image("app", "v1", seed=b"old")
    new, _, new_blobs = await reg.push_image("app", "v1", seed=b"new")  # v1 moves: old untagged
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert [str(x) for _, x in report.expired_manifests] == [old]
    assert not await exists(reg, "app", old)
    assert await exists(reg, "app", new) and await exists(reg, "app", "v1")
    # Its blobs were collected in the same run; the tagged image's stay.
    assert {str(x) for x in report.deleted_blobs} == set(old_blobs)
    for blob in new_blobs:
        async with reg.request("HEAD", f"/v2/app/blobs/{blob}") as r:
            assert r.status == 200
    assert (await reg.services.checker.run(verify_digests=True)).ok


async def test_gc_keeps_untagged_manifests_younger_than_the_days(reg: RunningRegistry) -> None:
    await retention(reg, True, days=3)
    old, _, _ = await reg.push_image("app", "v1", seed=b"old")
    await reg.push_image("app", "v1", seed=b"new")
    report = await reg.services.gc.run(now=utcnow() + timedelta(days=2))
    assert report.expired_manifests == [] and await exists(reg, "app", old)
    report = await reg.services.gc.run(now=utcnow() + timedelta(days=4))
    assert [str(x) for _, x in report.expired_manifests] == [old]


async def test_days_zero_still_respects_the_grace_period(reg: RunningRegistry) -> None:
    """A push in progress (children first, then the index that lists them) is safe."""
    await retention(reg, True, days=0)
    old, _, _ = await reg.push_image("app", "v1", seed=b"old")
    await reg.push_image("app", "v1", seed=b"new")
    report = await reg.services.gc.run()
    assert report.expired_manifests == [] and await exists(reg, "app", old)


async def test_gc_keeps_the_untagged_children_of_a_tagged_index(reg: RunningRegistry) -> None:
    await retention(reg, True, days=0)
    first, first_body, _ = await reg.push_image("multi", "amd64-only", seed=b"amd64")
    second, second_body, _ = await reg.push_image("multi", "arm64-only", seed=b"arm64")
    # The children lose their own tags; the index keeps them.
    for tag in ("amd64-only", "arm64-only"):
        async with reg.request("DELETE", f"/v2/multi/manifests/{tag}") as r:
            assert r.status == 202
    index = await push_index(reg, "multi", "v1", [first_body, second_body])
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert report.expired_manifests == []
    for digest in (index, first, second):
        assert await exists(reg, "multi", digest)
    # Untag the index: it and its children go in one run.
    async with reg.request("DELETE", "/v2/multi/manifests/v1") as r:
        assert r.status == 202
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert {str(x) for _, x in report.expired_manifests} == {index, first, second}
    assert not await exists(reg, "multi", first)


async def lock(reg: RunningRegistry, path: str, attributes: dict[str, bool]) -> None:
    async with reg.request("PATCH", path, data=json.dumps(attributes)) as r:
        assert r.status == 200, await r.text()


async def test_retention_keeps_a_locked_index_with_its_children(reg: RunningRegistry) -> None:
    await retention(reg, True, days=0)
    first, first_body, _ = await reg.push_image("multi", "amd64-only", seed=b"amd64")
    second, second_body, _ = await reg.push_image("multi", "arm64-only", seed=b"arm64")
    for tag in ("amd64-only", "arm64-only"):
        async with reg.request("DELETE", f"/v2/multi/manifests/{tag}") as r:
            assert r.status == 202
    index = await push_index(reg, "multi", "v1", [first_body, second_body])
    loose, _, _ = await reg.push_image("multi", "loose", seed=b"loose")
    async with reg.request("DELETE", "/v2/multi/manifests/loose") as r:
        assert r.status == 202
    await lock(reg, f"/acr/v1/multi/_manifests/{index}", {"deleteEnabled": False})
    async with reg.request("DELETE", "/v2/multi/manifests/v1") as r:
        assert r.status == 202  # the tag is not locked: untagging works
    report = await reg.services.gc.run(now=utcnow() + LATER)
    # The locked index and the children it lists stay; only the loose manifest goes.
    assert [str(x) for _, x in report.expired_manifests] == [loose]
    for digest in (index, first, second):
        assert await exists(reg, "multi", digest)
    assert (await reg.services.checker.run(verify_digests=True)).ok


async def test_retention_skips_a_locked_repository(reg: RunningRegistry) -> None:
    await retention(reg, True, days=0)
    old, _, _ = await reg.push_image("app", "v1", seed=b"old")
    await reg.push_image("app", "v1", seed=b"new")
    await lock(reg, "/acr/v1/app", {"writeEnabled": False})
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert report.expired_manifests == [] and await exists(reg, "app", old)
    await lock(reg, "/acr/v1/app", {"writeEnabled": True})
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert [str(x) for _, x in report.expired_manifests] == [old]


async def test_a_dry_run_reports_and_removes_nothing(reg: RunningRegistry) -> None:
    await retention(reg, True, days=0)
    old, _, _ = await reg.push_image("app", "v1", seed=b"old")
    await reg.push_image("app", "v1", seed=b"new")
    report = await reg.services.gc.run(dry_run=True, now=utcnow() + LATER)
    assert [str(x) for _, x in report.expired_manifests] == [old]
    assert await exists(reg, "app", old)


async def test_without_retention_untagged_manifests_are_never_collected(
    reg: RunningRegistry,
) -> None:
    old, _, _ = await reg.push_image("app", "v1", seed=b"old")
    await reg.push_image("app", "v1", seed=b"new")
    await retention(reg, True, days=0)
    await retention(reg, False)
    report = await reg.services.gc.run(now=utcnow() + timedelta(days=400))
    assert report.expired_manifests == [] and await exists(reg, "app", old)


async def test_retention_days_out_of_range_are_refused(reg: RunningRegistry) -> None:
    registry = await reg.services.registries.get(reg.services.settings.default_registry)
    assert registry is not None
    for days in (-1, 366):
        with pytest.raises(Invalid) as caught:
            await reg.services.registries.update_properties(registry, retention_days=days)
        assert caught.value.field == "properties.policies.retentionPolicy.days"
    after = await reg.services.registries.get(registry.name)
    assert after is not None and after.retention == registry.retention


async def test_concurrent_changes_of_status_and_days_keep_both(reg: RunningRegistry) -> None:
    registry = await reg.services.registries.get(reg.services.settings.default_registry)
    assert registry is not None
    registries = reg.services.registries
    for days in range(20, 25):
        await registries.update_properties(registry, retention_enabled=False, retention_days=7)
        await asyncio.gather(
            registries.update_properties(registry, retention_enabled=True),
            registries.update_properties(registry, retention_days=days),
        )
        after = await registries.get(registry.name)
        assert after is not None
        assert (after.retention.enabled, after.retention.days) == (True, days)
