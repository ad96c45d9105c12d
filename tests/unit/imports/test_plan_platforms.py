"""build_plan with a platform subset: which children are fetched and planned, the sparse
root's bytes kept, the rewritten root's contents, attestations, and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.imports.doubles import OCI_INDEX, MemorySource
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import ImportRequest, PlatformMode, PlatformSubset, SourceSpec
from transship.imports.plan import ImportLimits, build_plan
from transship.oci.digest import Digest
from transship.oci.platforms import PlatformSpec


class PlatformSource(MemorySource):
    """The in-memory source with images of a given platform, recording blob fetches."""

    def platform_image(self, os_: str, arch: str, variant: str | None = None) -> dict[str, Any]:
        config: dict[str, Any] = {"architecture": arch, "os": os_}
        if variant:
            config["variant"] = variant
        config_desc = self.blob(json.dumps(config).encode())
        layer = self.blob(f"layer {os_}/{arch}/{variant}".encode() * 40)
        document = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {**config_desc, "mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [layer],
        }
        descriptor = self.manifest(document, "application/vnd.oci.image.manifest.v1+json")
        platform = {"os": os_, "architecture": arch}
        if variant:
            platform["variant"] = variant
        return {**descriptor, "platform": platform}

    def attestation(self, subject: dict[str, Any]) -> dict[str, Any]:
        layer = self.blob(b'{"predicate": "' + subject["digest"].encode() + b'"}')
        document = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.blob(b"{}"),
            "layers": [layer],
        }
        descriptor = self.manifest(document, "application/vnd.oci.image.manifest.v1+json")
        return {
            **descriptor,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": subject["digest"],
            },
        }


def subset(
    *platforms: str, mode: PlatformMode = PlatformMode.SPARSE, att: bool = False
) -> PlatformSubset:
    return PlatformSubset(tuple(PlatformSpec.parse(p) for p in platforms), mode, att)


def four(src: PlatformSource) -> list[dict[str, Any]]:
    return [
        src.platform_image("linux", "amd64"),
        src.platform_image("linux", "arm64", "v8"),
        src.platform_image("linux", "arm", "v7"),
        src.platform_image("linux", "s390x"),
    ]


async def test_sparse_keeps_the_index_bytes_and_plans_only_the_selected_children() -> None:
    src = PlatformSource()
    children = four(src)
    root = src.index(children, tag="multi")
    plan = await build_plan(
        src, "multi", ImportLimits(), subset("linux/amd64", "linux/arm64/v8"), "up/app:multi"
    )
    assert str(plan.root.digest) == root["digest"]
    assert plan.root.fetched.content == src.manifests[root["digest"]][0]
    assert [str(d.digest) for d in plan.root.parsed.manifests] == [
        children[0]["digest"],
        children[1]["digest"],
    ]
    assert [str(m.digest) for m in plan.manifests] == [
        children[0]["digest"],
        children[1]["digest"],
        root["digest"],
    ]
    assert [str(d.digest) for d in plan.absent] == [children[2]["digest"], children[3]["digest"]]
    # Only the selected children were asked for, none of the others' blobs is planned, and
    # planning an index fetched no blob.
    assert children[2]["digest"] not in src.requests and children[3]["digest"] not in src.requests
    assert len(plan.blobs) == 4
    assert src.fetches == []


async def test_rewritten_lists_only_the_selected_children_with_the_source_annotations() -> None:
    src = PlatformSource()
    children = four(src)
    root = src.index(children, tag="multi")
    plan = await build_plan(
        src,
        "multi",
        ImportLimits(),
        subset("linux/s390x", mode=PlatformMode.REWRITTEN),
        "up.example/app:multi",
    )
    document = json.loads(plan.root.fetched.content)
    assert document["mediaType"] == OCI_INDEX and plan.root.fetched.media_type == OCI_INDEX
    assert document["manifests"] == [children[3]]  # the descriptor copied unchanged
    assert document["annotations"] == {
        "io.transship.import.source-index": root["digest"],
        "io.transship.import.source": "up.example/app:multi",
    }
    assert plan.root.digest == Digest.of(plan.root.fetched.content)
    assert str(plan.root.digest) != root["digest"]
    assert plan.absent == ()
    assert [m.digest for m in plan.manifests][-1] == plan.root.digest


async def test_platform_without_variant_matches_every_variant_and_arm64_defaults_to_v8() -> None:
    src = PlatformSource()
    plain_arm64 = src.platform_image("linux", "arm64")
    v6, v7 = src.platform_image("linux", "arm", "v6"), src.platform_image("linux", "arm", "v7")
    src.index([plain_arm64, v6, v7], tag="t")
    plan = await build_plan(src, "t", ImportLimits(), subset("linux/arm64/v8", "linux/arm"))
    assert {str(d.digest) for d in plan.root.parsed.manifests} == {
        plain_arm64["digest"],
        v6["digest"],
        v7["digest"],
    }
    plan = await build_plan(src, "t", ImportLimits(), subset("linux/arm/v7"))
    assert [str(d.digest) for d in plan.root.parsed.manifests] == [v7["digest"]]


async def test_attestations_follow_their_platform_only_when_asked() -> None:
    src = PlatformSource()
    amd, arm = src.platform_image("linux", "amd64"), src.platform_image("linux", "arm64", "v8")
    att_amd, att_arm = src.attestation(amd), src.attestation(arm)
    src.index([amd, arm, att_amd, att_arm], tag="t")
    plan = await build_plan(src, "t", ImportLimits(), subset("linux/amd64", att=True))
    assert [str(d.digest) for d in plan.root.parsed.manifests] == [
        amd["digest"],
        att_amd["digest"],
    ]
    plan = await build_plan(src, "t", ImportLimits(), subset("linux/amd64"))
    assert [str(d.digest) for d in plan.root.parsed.manifests] == [amd["digest"]]
    assert att_amd["digest"] in [str(d.digest) for d in plan.absent]


async def test_unknown_platform_fails_naming_it_and_what_the_index_offers() -> None:
    src = PlatformSource()
    src.index(four(src), tag="t")
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "t", ImportLimits(), subset("linux/amd64", "windows/amd64"))
    failure = caught.value
    assert failure.code == "PlatformNotFound" and failure.step is Step.PLAN
    assert failure.obj == "windows/amd64"
    assert "windows/amd64" in failure.message
    assert "linux/amd64, linux/arm64/v8, linux/arm/v7, linux/s390x" in failure.message


async def test_single_image_of_the_platform_is_imported_and_of_another_refused() -> None:
    src = PlatformSource()
    image = src.platform_image("linux", "arm64", "v8")
    src.tags["one"] = image["digest"]
    plan = await build_plan(src, "one", ImportLimits(), subset("linux/arm64/v8"))
    assert [str(m.digest) for m in plan.manifests] == [image["digest"]]
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "one", ImportLimits(), subset("linux/amd64"))
    assert caught.value.code == "PlatformMismatch"
    assert "linux/arm64/v8" in caught.value.message and "linux/amd64" in caught.value.message


async def test_nested_index_is_refused_with_platforms() -> None:
    src = PlatformSource()
    inner = src.index([src.platform_image("linux", "amd64")])
    src.index([{**inner, "platform": {"os": "linux", "architecture": "amd64"}}], tag="t")
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "t", ImportLimits(), subset("linux/amd64"))
    assert caught.value.code == "PlatformSubsetUnsupported"
    assert inner["digest"] in caught.value.message
    # Without platforms the nested index imports as before.
    plan = await build_plan(src, "t", ImportLimits())
    assert len(plan.manifests) == 3


async def test_config_that_is_not_its_digest_is_refused() -> None:
    src = PlatformSource()
    image = src.platform_image("linux", "amd64")
    src.tags["one"] = image["digest"]
    config = json.loads(src.manifests[image["digest"]][0])["config"]["digest"]
    src.blobs[config] = b'{"os": "linux", "architecture": "amd64", "x": 1}'
    with pytest.raises(ImportFailure) as caught:
        await build_plan(src, "one", ImportLimits(), subset("linux/amd64"))
    assert caught.value.code in {"DIGEST_INVALID", "SIZE_INVALID"}


def test_request_json_round_trips_the_subset_and_reads_old_jobs() -> None:
    source = SourceSpec("up.example", None, "app", "v1")
    request = ImportRequest(
        source, (), ("app",), False, subset("linux/amd64", mode=PlatformMode.REWRITTEN, att=True)
    )
    assert ImportRequest.from_json(request.to_json()) == request
    old = json.loads(request.to_json())
    del old["platformSubset"]
    assert ImportRequest.from_json(json.dumps(old)).platform_subset is None
    assert "platformSubset" not in json.loads(ImportRequest(source, (), ("app",), False).to_json())
