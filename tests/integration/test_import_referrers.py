"""Referrers and signatures (`includeReferrers`, a Transship extension of importImage):
a cosign-format signature made upstream verifies downstream; OCI 1.1 referrers come from a
second Transship (referrers API) and from docker-registry (fallback tag scheme), and are
found downstream through the referrers API with its artifactType filter; failures (a 500
from the referrers API, a referrer's blob missing upstream) leave nothing partial; the
recursion bound; a re-import fetches no blob again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltImage, OciLayout, build_artifact, build_image, sha256_digest
from tests.peers.transship import TransshipServer
from tests.support.imports import assert_failed, assert_succeeded, push_built
from tests.support.referrers import (
    artifact_descriptor,
    cosign_tag,
    push_fallback_index,
    push_referrer,
    sign_cosign,
    verify_cosign,
)

SPDX = "application/spdx+json"
CYCLONEDX = "application/vnd.cyclonedx+json"


def body(host: str, target: str = "app:v1", **extension: object) -> dict[str, object]:
    return {
        "source": {"registryUri": host, "sourceImage": "team/app:v1"},
        "targetTags": [target],
        **extension,
    }


async def referrers_of(env: ImportEnv, repository: str, digest: str, **query: str) -> Any:
    path = f"/v2/{repository}/referrers/{digest}"
    if query:
        path += "?" + urlencode(query)
    async with env.reg.http.get(env.reg.url + path) as response:
        assert response.status == 200, await response.text()
        return json.loads(await response.read())


async def image_with_sboms(
    tmp_path: Path, base_url: str, *, fallback: bool
) -> tuple[BuiltImage, BuiltImage, BuiltImage]:
    """An image at `team/app:v1` with an SPDX and a CycloneDX SBOM referring to it; with
    `fallback`, their referrers index is pushed under the fallback tag too (a registry
    without the referrers API)."""

    def build() -> tuple[BuiltImage, BuiltImage, BuiltImage]:
        layout = OciLayout(tmp_path / "layout")
        image = build_image(layout, seed="refs", layer_sizes=(20_000,))
        push_referrer(image, base_url, "team/app", "v1")
        spdx = build_artifact(layout, subject=image, artifact_type=SPDX, payload=b'{"spdx":1}')
        cdx = build_artifact(layout, subject=image, artifact_type=CYCLONEDX, payload=b'{"cdx":1}')
        for artifact in (spdx, cdx):
            push_referrer(artifact, base_url, "team/app")
        if fallback:
            push_fallback_index(
                base_url,
                "team/app",
                image.digest,
                [artifact_descriptor(spdx, SPDX), artifact_descriptor(cdx, CYCLONEDX)],
            )
        return image, spdx, cdx

    return await asyncio.to_thread(build)


async def test_cosign_signature_made_upstream_verifies_downstream(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    def build() -> tuple[BuiltImage, Any]:
        layout = OciLayout(tmp_path / "layout")
        image = build_image(layout, seed="signed", layer_sizes=(30_000,))
        push_referrer(image, distribution_anon.url, "team/app", "v1")
        signature = sign_cosign(layout, image.digest, "upstream.example/team/app")
        push_referrer(signature.image, distribution_anon.url, "team/app", cosign_tag(image.digest))
        return image, signature

    image, signature = await asyncio.to_thread(build)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))

    final = await env.run_import(body(proxy.host, includeReferrers=True))
    assert_succeeded(final)
    assert final["properties"]["includeReferrers"] is True
    sig_tag = cosign_tag(image.digest)
    assert final["properties"]["referrers"] == {
        "count": 1,
        "digests": [signature.image.digest],
        "tags": [{"tag": sig_tag, "digest": signature.image.digest}],
    }

    assert sig_tag in (await env.tags("app") or [])
    manifest = await env.manifest("app", sig_tag)
    assert manifest.status == 200 and manifest.body == signature.image.manifest_bytes
    layer = json.loads(manifest.body)["layers"][0]
    payload = await env.blob("app", layer["digest"])
    assert payload.status == 200
    claims = verify_cosign(manifest.body, payload.body, signature.public_key_pem)
    imported = await env.manifest("app", "v1")
    assert sha256_digest(imported.body) == image.digest
    assert claims["critical"]["image"]["docker-manifest-digest"] == image.digest
    # Nothing else was asked for: the .att and .sbom tags are simply absent.
    # One HEAD each, and no pull (manifest GET) is spent on a tag that is not there.
    for suffix in ("att", "sbom"):
        assert [r.status for r in proxy.requests_to(cosign_tag(image.digest, suffix), "HEAD")] == [
            404
        ]
        assert not proxy.requests_to(cosign_tag(image.digest, suffix), "GET")
    await env.assert_consistent()


async def test_without_include_referrers_nothing_but_the_image_is_copied(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image, spdx, _ = await image_with_sboms(tmp_path, distribution_anon.url, fallback=True)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(upstreams=insecure(proxy.host))
    final = await env.run_import(body(proxy.host))
    assert_succeeded(final)
    for field in ("includeReferrers", "referrerArtifactTypes", "referrers"):
        assert field not in final["properties"]
    assert not proxy.requests_to("/referrers/")
    assert (await env.manifest("app", spdx.digest)).status == 404
    assert (await referrers_of(env, "app", image.digest))["manifests"] == []


async def test_docker_registry_fallback_tag_referrers_are_found_downstream_with_the_filter(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image, spdx, cdx = await image_with_sboms(tmp_path, distribution_anon.url, fallback=True)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))

    final = await env.run_import(body(proxy.host, includeReferrers=True))
    assert_succeeded(final)
    # docker-registry 2.8 has no referrers API: the import fell back to the tag.
    assert any(s.status == 404 for s in proxy.requests_to(f"/referrers/{image.digest}"))
    assert proxy.requests_to(f"/manifests/{image.digest.replace(':', '-')}")

    listed = await referrers_of(env, "app", image.digest)
    assert {m["digest"] for m in listed["manifests"]} == {spdx.digest, cdx.digest}
    only_spdx = await referrers_of(env, "app", image.digest, artifactType=SPDX)
    assert [m["digest"] for m in only_spdx["manifests"]] == [spdx.digest]
    assert only_spdx["manifests"][0]["artifactType"] == SPDX
    served = await env.manifest("app", spdx.digest)
    assert served.status == 200 and served.body == spdx.manifest_bytes
    await env.assert_consistent()


async def test_artifact_type_filter_copies_only_the_wanted_referrers(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image, spdx, cdx = await image_with_sboms(tmp_path, distribution_anon.url, fallback=True)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(upstreams=insecure(proxy.host))
    final = await env.run_import(
        body(proxy.host, includeReferrers=True, referrerArtifactTypes=[SPDX])
    )
    assert_succeeded(final)
    assert final["properties"]["referrerArtifactTypes"] == [SPDX]
    listed = await referrers_of(env, "app", image.digest)
    assert [m["digest"] for m in listed["manifests"]] == [spdx.digest]
    assert (await env.manifest("app", cdx.digest)).status == 404
    assert not proxy.requests_to(f"/manifests/{cdx.digest}")


async def test_second_transship_referrers_api_recursively(
    tmp_path: Path,
    transship_factory: Callable[..., TransshipServer],
    import_env: ImportEnvFactory,
    database_url: str | None,
    upstream_proxy: ProxyFactory,
) -> None:
    other = await asyncio.to_thread(transship_factory)

    def build() -> tuple[BuiltImage, BuiltImage, BuiltImage]:
        layout = OciLayout(tmp_path / "layout")
        image = build_image(layout, seed="api", layer_sizes=(25_000,))
        push_referrer(image, other.url, "team/app", "v1")
        sbom = build_artifact(layout, subject=image, artifact_type=SPDX, payload=b'{"s":2}')
        push_referrer(sbom, other.url, "team/app")
        # A signature of the SBOM: a referrer of a referrer.
        sig = build_artifact(
            layout,
            subject=sbom,
            artifact_type="application/vnd.example.signature",
            payload=b"sig-of-sbom",
        )
        push_referrer(sig, other.url, "team/app")
        return image, sbom, sig

    image, sbom, sig = await asyncio.to_thread(build)
    proxy = await upstream_proxy(other.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    final = await env.run_import(body(proxy.host, includeReferrers=True))
    assert_succeeded(final)
    copied = final["properties"]["referrers"]
    assert copied["count"] == 2 and set(copied["digests"]) == {sbom.digest, sig.digest}
    assert copied["tags"] == []

    # The upstream answered its referrers API: no fallback tag was asked for.
    assert [s.status for s in proxy.requests_to(f"/referrers/{image.digest}")] == [200]
    fallback = f"/manifests/{image.digest.replace(':', '-')}"
    assert not [s for s in proxy.seen if s.path.endswith(fallback)]
    listed = await referrers_of(env, "app", image.digest, artifactType=SPDX)
    assert [m["digest"] for m in listed["manifests"]] == [sbom.digest]
    nested = await referrers_of(env, "app", sbom.digest)
    assert [m["digest"] for m in nested["manifests"]] == [sig.digest]
    await env.assert_consistent()

    # A re-import (untagged: NoForce does not refuse it) fetches no blob and no manifest
    # body twice: everything is present.
    before = len(proxy.seen)
    again = await env.run_import(
        {
            "source": {"registryUri": proxy.host, "sourceImage": "team/app:v1"},
            "untaggedTargetRepositories": ["app"],
            "includeReferrers": True,
        }
    )
    assert assert_succeeded(again)["bytesFetched"] == 0
    assert again["properties"]["referrers"]["count"] == 2
    later = proxy.seen[before:]
    assert not [r for r in later if "/blobs/" in r.path], later
    # Manifests the target holds are read there: only HEADs and referrer lists go upstream.
    assert not [r for r in later if "/manifests/" in r.path and r.method == "GET"], later


async def test_a_referrers_api_500_fails_the_import_and_nothing_is_visible(
    tmp_path: Path,
    transship_factory: Callable[..., TransshipServer],
    import_env: ImportEnvFactory,
    upstream_proxy: ProxyFactory,
) -> None:
    other = await asyncio.to_thread(transship_factory)

    def build() -> BuiltImage:
        layout = OciLayout(tmp_path / "layout")
        image = build_image(layout, seed="err", layer_sizes=(10_000,))
        push_referrer(image, other.url, "team/app", "v1")
        return image

    image = await asyncio.to_thread(build)
    proxy = await upstream_proxy(other.url)
    proxy.fail("/referrers/", 500, times=None)
    env = await import_env(upstreams=insecure(proxy.host), upstream_retry_attempts=2)
    final = await env.run_import(body(proxy.host, includeReferrers=True))
    assert_failed(final, "UpstreamUnavailable")
    assert "referrers" in final["error"]["message"]
    assert await env.tags("app") is None
    assert (await env.manifest("app", image.digest)).status == 404


async def test_a_referrer_whose_blob_is_missing_upstream_fails_clearly(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image, spdx, _ = await image_with_sboms(tmp_path, distribution_anon.url, fallback=True)
    payload = json.loads(spdx.manifest_bytes)["layers"][0]["digest"]
    proxy = await upstream_proxy(distribution_anon.url)
    proxy.fail(f"/blobs/{payload}", 404, times=None)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    final = await env.run_import(body(proxy.host, includeReferrers=True))
    failed = assert_failed(final, "BlobUnknown")
    assert payload in json.dumps(failed)
    assert await env.tags("app") is None
    assert (await env.manifest("app", image.digest)).status == 404
    await env.assert_consistent()


async def test_referrers_deeper_than_the_bound_fail_the_import(
    tmp_path: Path,
    transship_factory: Callable[..., TransshipServer],
    import_env: ImportEnvFactory,
    upstream_proxy: ProxyFactory,
) -> None:
    other = await asyncio.to_thread(transship_factory)

    def build() -> BuiltImage:
        layout = OciLayout(tmp_path / "layout")
        image = build_image(layout, seed="deep", layer_sizes=(5_000,))
        push_referrer(image, other.url, "team/app", "v1")
        subject: BuiltImage = image
        for level in range(3):
            subject = build_artifact(layout, subject=subject, payload=f"level {level}".encode())
            push_referrer(subject, other.url, "team/app")
        return image

    await asyncio.to_thread(build)
    proxy = await upstream_proxy(other.url)
    env = await import_env(upstreams=insecure(proxy.host), import_max_referrer_depth=2)
    final = await env.run_import(body(proxy.host, includeReferrers=True))
    assert_failed(final, "ReferrersTooDeep")
    assert "2 levels" in final["error"]["message"]
    assert not proxy.blob_requests(), "the bound fails the plan before any blob is fetched"
    assert await env.tags("app") is None


async def test_a_bad_artifact_type_is_refused_naming_the_field(
    import_env: ImportEnvFactory,
) -> None:
    env = await import_env()
    status, answer, _ = await env.admin.call(
        "POST",
        f"{env.admin.base}/{TARGET}/importImage",
        body(
            "registry.example",
            includeReferrers=True,
            referrerArtifactTypes=[SPDX, "not a media type"],
        ),
    )
    assert status == 400, answer
    assert "referrerArtifactTypes[1]" in json.dumps(answer)
    status, answer, _ = await env.admin.call(
        "POST",
        f"{env.admin.base}/{TARGET}/importImage",
        body("registry.example", referrerArtifactTypes=[SPDX]),
    )
    assert status == 400, answer
    assert "includeReferrers" in json.dumps(answer)


async def test_noforce_refuses_a_cosign_tag_naming_another_signature_and_force_moves_it(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    layout = OciLayout(tmp_path / "layout")

    def sign(image: BuiltImage, who: str) -> BuiltImage:
        signature = sign_cosign(layout, image.digest, who)
        push_referrer(signature.image, distribution_anon.url, "team/app", cosign_tag(image.digest))
        return signature.image

    def build() -> tuple[BuiltImage, BuiltImage]:
        image = build_image(layout, seed="resign", layer_sizes=(8_000,))
        push_referrer(image, distribution_anon.url, "team/app", "v1")
        return image, sign(image, "first.example/app")

    image, first = await asyncio.to_thread(build)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(upstreams=insecure(proxy.host))
    untagged = {
        "source": {"registryUri": proxy.host, "sourceImage": "team/app:v1"},
        "untaggedTargetRepositories": ["app"],
        "includeReferrers": True,
    }
    assert_succeeded(await env.run_import(untagged))
    sig_tag = cosign_tag(image.digest)
    # The same signature again: the tag already names it, no conflict.
    assert_succeeded(await env.run_import(untagged))

    second = await asyncio.to_thread(sign, image, "second.example/app")
    assert second.digest != first.digest
    refused = await env.run_import(untagged)
    error = assert_failed(refused, "TagAlreadyExists")
    assert sig_tag in error["message"]
    kept = await env.manifest("app", sig_tag)
    assert sha256_digest(kept.body) == first.digest

    assert_succeeded(await env.run_import({**untagged, "mode": "Force"}))
    moved = await env.manifest("app", sig_tag)
    assert sha256_digest(moved.body) == second.digest
    await env.assert_consistent()


async def test_dry_run_plans_the_referrers_and_writes_nothing(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image, spdx, cdx = await image_with_sboms(tmp_path, distribution_anon.url, fallback=True)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(upstreams=insecure(proxy.host))
    status, plan, _ = await env.admin.call(
        "POST",
        f"{env.admin.base}/{TARGET}/importImage",
        body(proxy.host, includeReferrers=True, dryRun=True),
    )
    assert status == 200, plan
    assert {r["digest"] for r in plan["referrers"]} == {spdx.digest, cdx.digest}
    assert {m["digest"] for m in plan["manifests"]} == {image.digest, spdx.digest, cdx.digest}
    # The lookups are counted: the referrers API (404), the fallback tag and cosign's tags.
    spent = plan["spentRequests"]
    assert spent["total"] == len(proxy.seen)
    assert spent["other"] >= 1  # the referrers API
    # HEADs of the tag, the fallback tag and the three cosign tags; GETs of what exists.
    assert spent["manifestHeads"] >= 5 and spent["manifestGets"] >= 4
    assert plan["blobs"]["toFetch"] == 5  # the image's config and layer, the SBOMs' blobs
    assert await env.tags("app") is None
    assert not proxy.blob_requests()
    # Without includeReferrers the plan has no referrers field at all.
    status, plain, _ = await env.admin.call(
        "POST", f"{env.admin.base}/{TARGET}/importImage", body(proxy.host, dryRun=True)
    )
    assert status == 200 and "referrers" not in plain


async def test_same_service_source_links_the_referrers(
    tmp_path: Path, import_env: ImportEnvFactory, database_url: str | None
) -> None:
    env = await import_env(database_url)
    source = await env.admin.create_registry("sourcereg")
    login_server = source["properties"]["loginServer"]

    def build() -> tuple[BuiltImage, BuiltImage]:
        layout = OciLayout(tmp_path / "layout")
        image = build_image(layout, seed="local", layer_sizes=(12_000,))
        sbom = build_artifact(layout, subject=image, artifact_type=SPDX, payload=b'{"l":1}')
        return image, sbom

    image, sbom = await asyncio.to_thread(build)
    await push_built(env.reg.http, env.reg.url, login_server, "team/app", "v1", image)
    await push_built(env.reg.http, env.reg.url, login_server, "team/app", None, sbom)
    final = await env.run_import(
        {
            "source": {"resourceId": source["id"], "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
            "includeReferrers": True,
        }
    )
    progress = assert_succeeded(final)
    assert progress["bytesFetched"] == 0, "a same-service import links, never copies"
    assert final["properties"]["referrers"]["digests"] == [sbom.digest]
    listed = await referrers_of(env, "app", image.digest, artifactType=SPDX)
    assert [m["digest"] for m in listed["manifests"]] == [sbom.digest]
    await env.assert_consistent()
