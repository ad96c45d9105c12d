"""Referrer discovery (`add_referrers`) over an in-memory source: the referrers API, the
fallback tag, cosign's tags, the artifact-type filter, recursion and its bounds, and
errors that are not "missing"."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.imports.doubles import OCI_INDEX, OCI_MANIFEST, MemorySource, sha
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import ReferrerSelection
from transship.imports.plan import ImportLimits, build_plan
from transship.imports.referrers import add_referrers
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor

SPDX = "application/spdx+json"
CDX = "application/vnd.cyclonedx+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


class ReferrerSource(MemorySource):
    """A MemorySource with a referrers API (`api=True`) or without one (404: None)."""

    def __init__(self, *, api: bool) -> None:
        super().__init__()
        self.api = api
        self.listed: list[tuple[str, str | None]] = []
        self.failing: dict[str, ImportFailure] = {}

    async def list_referrers(
        self, subject: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...] | None:
        self.listed.append((str(subject), artifact_type))
        if not self.api:
            return None
        found = []
        for digest, (content, media_type) in self.manifests.items():
            document = json.loads(content)
            if (document.get("subject") or {}).get("digest") == str(subject):
                found.append(
                    Descriptor(
                        media_type,
                        Digest.parse(digest),
                        len(content),
                        artifact_type=document.get("artifactType"),
                    )
                )
        return tuple(found)

    async def get_manifest(self, reference: Digest | str) -> Any:
        failure = self.failing.get(str(reference))
        if failure is not None:
            raise failure
        return await super().get_manifest(reference)

    def artifact(self, subject: dict[str, Any], artifact_type: str, seed: str) -> dict[str, Any]:
        config = self.blob(b"{}")
        payload = self.blob(f"payload {seed}".encode())
        return self.manifest(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {**config, "mediaType": "application/vnd.oci.empty.v1+json"},
                "layers": [payload],
                "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
            },
            OCI_MANIFEST,
        )

    def fallback_index(self, subject: dict[str, Any], *referrers: dict[str, Any]) -> None:
        self.index(list(referrers), tag=subject["digest"].replace(":", "-"))

    def cosign(self, subject: dict[str, Any], suffix: str = "sig") -> dict[str, Any]:
        config = self.blob(b'{"os":"","architecture":""}')
        payload = self.blob(json.dumps({"digest": subject["digest"]}).encode())
        return self.manifest(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {**config, "mediaType": "application/vnd.oci.image.config.v1+json"},
                "layers": [{**payload, "mediaType": SIMPLESIGNING}],
            },
            OCI_MANIFEST,
            tag=f"{subject['digest'].replace(':', '-')}.{suffix}",
        )


async def planned(
    src: ReferrerSource,
    selection: ReferrerSelection | None = None,
    limits: ImportLimits | None = None,
) -> Any:
    limits = limits or ImportLimits()
    plan = await build_plan(src, "v1", limits)
    return await add_referrers(src, plan, selection or ReferrerSelection(), limits)


async def test_referrers_api_recursive_and_cosign_tags() -> None:
    src = ReferrerSource(api=True)
    image = src.image("a", tag="v1")
    sbom = src.artifact(image, SPDX, "sbom")
    sig_of_sbom = src.artifact(sbom, "application/vnd.example.sig", "sig")
    cosign = src.cosign(image)
    plan = await planned(src)
    assert {str(d) for d in plan.referrers} == {
        sbom["digest"],
        sig_of_sbom["digest"],
        cosign["digest"],
    }
    manifests = [str(m.digest) for m in plan.manifests]
    assert manifests[0] == image["digest"], "the image first, its referrers after it"
    assert manifests.index(sbom["digest"]) < manifests.index(sig_of_sbom["digest"])
    tag = image["digest"].replace(":", "-") + ".sig"
    assert [(t, str(d)) for t, d in plan.referrer_tags] == [(tag, cosign["digest"])]
    assert sha(b"payload sbom") in {str(b.digest) for b in plan.blobs}
    # The fallback tag is not asked for when the API answers.
    assert image["digest"].replace(":", "-") not in src.requests


async def test_fallback_tag_when_there_is_no_referrers_api() -> None:
    src = ReferrerSource(api=False)
    image = src.image("a", tag="v1")
    spdx = src.artifact(image, SPDX, "s")
    cdx = src.artifact(image, CDX, "c")
    src.fallback_index(image, {**spdx, "artifactType": SPDX}, {**cdx, "artifactType": CDX})
    plan = await planned(src)
    assert {str(d) for d in plan.referrers} == {spdx["digest"], cdx["digest"]}
    assert image["digest"].replace(":", "-") in src.requests


async def test_nothing_found_is_normal() -> None:
    src = ReferrerSource(api=False)
    image = src.image("a", tag="v1")
    plan = await planned(src)
    assert plan.referrers == () and plan.referrer_tags == ()
    assert [str(m.digest) for m in plan.manifests] == [image["digest"]]


async def test_artifact_type_filter_client_side_and_passed_on() -> None:
    src = ReferrerSource(api=True)
    image = src.image("a", tag="v1")
    spdx = src.artifact(image, SPDX, "s")
    src.artifact(image, CDX, "c")
    cosign = src.cosign(image)
    plan = await planned(src, ReferrerSelection((SPDX,)))
    # The fake ignores the filter (as an upstream may): it is applied here anyway.
    assert [str(d) for d in plan.referrers] == [spdx["digest"]]
    assert (image["digest"], SPDX) in src.listed
    both = await planned(src, ReferrerSelection((SPDX, SIMPLESIGNING)))
    assert {str(d) for d in both.referrers} == {spdx["digest"], cosign["digest"]}
    # Two types: no server-side filter (it takes one).
    assert (image["digest"], None) in src.listed


async def test_every_child_of_an_index_is_a_subject() -> None:
    src = ReferrerSource(api=True)
    a, b = src.image("a"), src.image("b")
    src.index([a, b], tag="v1")
    sbom_b = src.artifact(b, SPDX, "b")
    plan = await planned(src)
    assert [str(d) for d in plan.referrers] == [sbom_b["digest"]]


async def test_depth_bound_fails_clearly() -> None:
    src = ReferrerSource(api=True)
    subject = src.image("a", tag="v1")
    for level in range(3):
        subject = src.artifact(subject, SPDX, f"level {level}")
    with pytest.raises(ImportFailure) as caught:
        await planned(src, limits=ImportLimits(max_referrer_depth=2))
    assert caught.value.code == "ReferrersTooDeep" and caught.value.step is Step.PLAN
    assert "2 levels" in caught.value.message
    assert src.fetches == []
    # Exactly at the bound: fine.
    plan = await planned(src, limits=ImportLimits(max_referrer_depth=3))
    assert len(plan.referrers) == 3


async def test_count_bound_fails_clearly() -> None:
    src = ReferrerSource(api=True)
    image = src.image("a", tag="v1")
    for n in range(4):
        src.artifact(image, SPDX, f"n{n}")
    with pytest.raises(ImportFailure) as caught:
        await planned(src, limits=ImportLimits(max_referrers=3))
    assert caught.value.code == "TooManyReferrers"


async def test_a_cosign_tag_error_other_than_missing_fails_the_plan() -> None:
    src = ReferrerSource(api=True)
    image = src.image("a", tag="v1")
    tag = image["digest"].replace(":", "-") + ".att"
    src.failing[tag] = ImportFailure(
        "UpstreamUnavailable", "gave up", step=Step.PLAN, retryable=True
    )
    with pytest.raises(ImportFailure) as caught:
        await planned(src)
    assert caught.value.code == "UpstreamUnavailable"


async def test_an_invalid_fallback_index_fails_naming_the_tag() -> None:
    src = ReferrerSource(api=False)
    image = src.image("a", tag="v1")
    bogus = src.image("not-an-index")
    src.tags[image["digest"].replace(":", "-")] = bogus["digest"]
    with pytest.raises(ImportFailure) as caught:
        await planned(src)
    assert caught.value.code == "InvalidReferrers"
    assert caught.value.obj == image["digest"].replace(":", "-")


async def test_a_referrer_listed_twice_is_copied_once() -> None:
    src = ReferrerSource(api=False)
    image = src.image("a", tag="v1")
    spdx = src.artifact(image, SPDX, "s")
    src.fallback_index(image, {**spdx, "artifactType": SPDX}, {**spdx, "artifactType": SPDX})
    plan = await planned(src)
    assert [str(d) for d in plan.referrers] == [spdx["digest"]]
    assert len({str(m.digest) for m in plan.manifests}) == len(plan.manifests)


def test_index_media_type_constant() -> None:
    assert OCI_INDEX.endswith("index.v1+json")
