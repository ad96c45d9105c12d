"""build_plan over an in-memory ImageSource: the manifests and blobs an import copies, in
commit order, and every limit that refuses an image before a blob is fetched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.imports.doubles import OCI_MANIFEST, MemorySource, sha
from transship.imports.errors import ImportFailure, Step
from transship.imports.plan import ImportLimits, build_plan
from transship.imports.ports import BlobWriter
from transship.oci.digest import Digest

FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


class PlanSource(MemorySource):
    """The in-memory source, refusing blob fetches: planning must never fetch a blob."""

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        raise AssertionError(f"planning fetched blob {digest}")


def blob_digests(document: dict[str, Any], source: PlanSource) -> list[str]:
    content = json.loads(source.manifests[document["digest"]][0])
    return [content["config"]["digest"], *(layer["digest"] for layer in content["layers"])]


async def test_single_manifest_by_tag() -> None:
    src = PlanSource()
    image = src.image("a", tag="v1")
    plan = await build_plan(src, "v1", ImportLimits())
    assert str(plan.root.digest) == image["digest"]
    assert [str(m.digest) for m in plan.manifests] == [image["digest"]]
    assert not plan.root.parsed.is_index
    assert [str(b.digest) for b in plan.blobs] == blob_digests(image, src)
    assert plan.foreign == ()
    assert plan.total_bytes == sum(b.size for b in plan.blobs) > 0
    assert src.requests == ["v1"]


async def test_single_manifest_by_digest() -> None:
    src = PlanSource()
    image = src.image("a")
    plan = await build_plan(src, image["digest"], ImportLimits())
    assert [str(m.digest) for m in plan.manifests] == [image["digest"]]


async def test_index_children_are_fetched_by_digest_and_planned_before_the_index() -> None:
    src = PlanSource()
    a, b = src.image("a"), src.image("b")
    root = src.index([a, b], tag="multi")
    plan = await build_plan(src, "multi", ImportLimits())
    assert str(plan.root.digest) == root["digest"] and plan.root.parsed.is_index
    assert [str(m.digest) for m in plan.manifests] == [a["digest"], b["digest"], root["digest"]]
    assert sorted(src.requests[1:]) == sorted([a["digest"], b["digest"]])
    assert {str(d.digest) for d in plan.blobs} == set(blob_digests(a, src) + blob_digests(b, src))


async def test_unknown_root_is_the_sources_failure() -> None:
    src = PlanSource()
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "missing", ImportLimits())
    assert caught.value.code == "ManifestUnknown"


async def test_unknown_child_fails_the_plan() -> None:
    src = PlanSource()
    ghost = {"mediaType": OCI_MANIFEST, "digest": sha(b"not stored"), "size": 10}
    src.index([src.image("a"), ghost], tag="v1")
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "v1", ImportLimits())
    assert caught.value.code == "ManifestUnknown" and caught.value.obj == ghost["digest"]


async def test_invalid_manifest_names_it() -> None:
    src = PlanSource()
    broken = src.manifest(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": "nope"}, OCI_MANIFEST, "bad"
    )
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "bad", ImportLimits())
    assert caught.value.code == "InvalidManifest"
    assert caught.value.step is Step.PLAN and caught.value.obj == broken["digest"]


async def test_nested_index_within_the_depth_limit() -> None:
    src = PlanSource()
    leaf = src.image("a")
    inner = src.index([leaf])
    root = src.index([inner], tag="v1")
    plan = await build_plan(src, "v1", ImportLimits(max_index_depth=2))
    assert [str(m.digest) for m in plan.manifests] == [
        leaf["digest"],
        inner["digest"],
        root["digest"],
    ]


async def test_nested_index_beyond_the_depth_limit_names_the_deep_index() -> None:
    src = PlanSource()
    leaf = src.image("a")
    inner = src.index([leaf])
    src.index([inner], tag="v1")
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "v1", ImportLimits(max_index_depth=1))
    assert caught.value.code == "IndexTooDeep" and caught.value.step is Step.PLAN
    assert caught.value.obj == inner["digest"]
    assert leaf["digest"] not in src.requests  # refused before fetching below it


async def test_too_many_children_refused_before_any_child_is_fetched() -> None:
    src = PlanSource()
    root = src.index([src.image(str(i)) for i in range(3)], tag="v1")
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "v1", ImportLimits(max_index_children=2))
    assert caught.value.code == "TooManyChildren" and caught.value.obj == root["digest"]
    assert "3" in caught.value.message and "2" in caught.value.message
    assert src.requests == ["v1"]
    # Exactly at the limit is allowed.
    assert len((await build_plan(src, "v1", ImportLimits(max_index_children=3))).manifests) == 4


async def test_max_manifests_counts_the_root_and_every_distinct_child() -> None:
    src = PlanSource()
    root = src.index([src.image(str(i)) for i in range(3)], tag="v1")
    assert len((await build_plan(src, "v1", ImportLimits(max_manifests=4))).manifests) == 4
    src.requests.clear()
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "v1", ImportLimits(max_manifests=3))
    assert caught.value.code == "TooManyManifests" and caught.value.obj == root["digest"]
    assert src.requests == ["v1"]


async def test_a_child_of_two_indexes_is_fetched_and_planned_once() -> None:
    src = PlanSource()
    a = src.image("a")
    inner = src.index([a])
    root = src.index([a, inner], tag="v1")
    plan = await build_plan(src, "v1", ImportLimits(max_manifests=3))
    assert [str(m.digest) for m in plan.manifests] == [a["digest"], inner["digest"], root["digest"]]
    assert src.requests.count(a["digest"]) == 1


async def test_a_child_listed_twice_in_one_index_is_fetched_and_planned_once() -> None:
    src = PlanSource()
    a = src.image("a")
    root = src.index([a, a], tag="v1")
    plan = await build_plan(src, "v1", ImportLimits())
    assert [str(m.digest) for m in plan.manifests] == [a["digest"], root["digest"]]
    assert src.requests.count(a["digest"]) == 1


async def test_max_bytes_counts_distinct_blobs_once() -> None:
    src = PlanSource()
    shared = src.blob(b"shared" * 1000)
    a, b = src.image("a", extra_layers=[shared]), src.image("b", extra_layers=[shared])
    src.index([a, b], tag="v1")
    plan = await build_plan(src, "v1", ImportLimits())
    digests = [str(d.digest) for d in plan.blobs]
    assert digests.count(shared["digest"]) == 1 and len(digests) == len(set(digests)) == 5
    exact = plan.total_bytes
    assert exact < 2 * 6000  # the shared layer is counted once
    assert (await build_plan(src, "v1", ImportLimits(max_bytes=exact))).total_bytes == exact
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "v1", ImportLimits(max_bytes=exact - 1))
    assert caught.value.code == "ImageTooLarge" and str(exact) in caught.value.message


async def test_foreign_layers_are_recorded_not_counted_and_not_fetched() -> None:
    src = PlanSource()
    far = {
        "mediaType": FOREIGN,
        "digest": sha(b"far away"),
        "size": 10**9,
        "urls": ["https://example.invalid/l"],
    }
    a, b = src.image("a", extra_layers=[far]), src.image("b", extra_layers=[far])
    src.index([a, b], tag="win")
    plan = await build_plan(
        src, "win", ImportLimits(max_bytes=10**6)
    )  # the foreign size does not count
    assert [str(d.digest) for d in plan.foreign] == [far["digest"]]
    assert plan.foreign[0].urls == ("https://example.invalid/l",)
    assert far["digest"] not in {str(d.digest) for d in plan.blobs}
    assert plan.total_bytes < 10**6
    # PlanSource.fetch_blob raises: reaching here shows no blob, foreign or not, was fetched.


async def test_a_child_whose_bytes_do_not_match_its_digest_fails_the_plan() -> None:
    src = PlanSource()
    a, b = src.image("a"), src.image("b")
    src.index([a], tag="v1")
    src.swapped[a["digest"]] = src.manifests[b["digest"]][0]  # valid bytes, wrong digest
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "v1", ImportLimits())
    assert caught.value.obj == a["digest"]
