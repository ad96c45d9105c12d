"""Platform subsets (a Transship extension of importImage): a 4-platform index from a real
docker-registry imported with two of its platforms, sparse and rewritten, on SQLite and
PostgreSQL; the bytes moved, the digests and annotations stored, the answer for a platform
left out, `transship check`, garbage collection, and a later import of another platform."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.integration.conftest import TARGET, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, OciLayout, build_index, push_layout_http
from tests.support.imports import (
    assert_check_clean,
    assert_failed,
    assert_succeeded,
    has_blob_file,
)

PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/s390x")


async def four_platforms(tmp_path: Path, registry: DistributionRegistry) -> BuiltIndex:
    """A 4-platform index at `team/app:v1` (no layer shared between platforms)."""

    def build() -> BuiltIndex:
        index = build_index(
            OciLayout(tmp_path / "layout"), platforms=PLATFORMS, layer_sizes=(30_000, 50_000)
        )
        push_layout_http(index, registry.url, "team/app", "v1")
        return index

    return await asyncio.to_thread(build)


def body(host: str, target: str, **extension: object) -> dict[str, object]:
    return {
        "source": {"registryUri": host, "sourceImage": "team/app:v1"},
        "targetTags": [target],
        **extension,
    }


async def test_sparse_subset_keeps_the_digest_and_names_absent_platforms(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await four_platforms(tmp_path, distribution_anon)
    amd64, arm64, armv7, s390x = index.children
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host), gc_grace_seconds=0)

    final = await env.run_import(
        body(proxy.host, "app:v1", platforms=["linux/amd64", "linux/arm64/v8"])
    )
    assert_succeeded(final)
    properties = final["properties"]
    assert properties["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert properties["platformMode"] == "sparse" and properties["includeAttestations"] is False
    progress = properties["progress"]
    selected_bytes = amd64.blob_bytes + arm64.blob_bytes
    assert progress["bytesTotal"] == selected_bytes < index.blob_bytes // 2 + 1000

    # Only the selected platforms' blobs crossed the wire, and only they are stored.
    fetched = {s.path.rsplit("/", 1)[-1] for s in proxy.blob_requests()}
    assert fetched == set(amd64.blob_digests) | set(arm64.blob_digests)
    for child in (amd64, arm64):
        assert all(has_blob_file(env.data_dir, d) for d in child.blob_digests)
    for child in (armv7, s390x):
        assert not any(has_blob_file(env.data_dir, d) for d in child.blob_digests)

    # The index is the source's, byte for byte, by tag and by digest.
    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == index.index_bytes
    assert got.headers["Docker-Content-Digest"] == index.digest
    assert (await env.manifest("app", index.digest)).body == index.index_bytes
    for child in (amd64, arm64):
        child_got = await env.manifest("app", child.digest)
        assert child_got.status == 200 and child_got.body == child.manifest_bytes

    # A platform left out: 404 MANIFEST_UNKNOWN naming it, for GET and HEAD.
    absent = await env.manifest("app", s390x.digest)
    assert absent.status == 404, absent
    error = json.loads(absent.body)["errors"][0]
    assert error["code"] == "MANIFEST_UNKNOWN"
    assert "linux/s390x" in error["message"] and "not imported" in error["message"]
    assert index.digest in error["message"]
    async with env.reg.http.head(f"{env.reg.url}/v2/app/manifests/{armv7.digest}") as head:
        assert head.status == 404
    # An unrelated digest keeps the ordinary message.
    other = await env.manifest("app", "sha256:" + "0" * 64)
    assert "not imported" not in json.loads(other.body)["errors"][0]["message"]

    # Neither check nor garbage collection counts the absent children as damage or drops
    # what the index needs.
    await env.assert_consistent()
    report = await env.reg.services.gc.run()
    assert not {str(d) for d in report.deleted_blobs} & set(index.blob_digests)
    await assert_check_clean(env.data_dir, database_url)

    # A later import of another platform fills the same index in.
    proxy.seen.clear()
    final = await env.run_import(
        {**body(proxy.host, "app:v1", platforms=["linux/s390x"]), "mode": "Force"}
    )
    assert_succeeded(final)
    fetched = {s.path.rsplit("/", 1)[-1] for s in proxy.blob_requests()}
    assert fetched == set(s390x.blob_digests)
    filled = await env.manifest("app", s390x.digest)
    assert filled.status == 200 and filled.body == s390x.manifest_bytes
    assert all(has_blob_file(env.data_dir, d) for d in s390x.blob_digests)
    assert (await env.manifest("app", "v1")).body == index.index_bytes
    still_absent = await env.manifest("app", armv7.digest)
    assert "linux/arm/v7" in json.loads(still_absent.body)["errors"][0]["message"]

    # The filled-in child is now needed by the index: it cannot be deleted under it, and GC
    # keeps its blobs.
    async with env.reg.http.delete(f"{env.reg.url}/v2/app/manifests/{s390x.digest}") as deleted:
        # The registry's answer for a child an index lists (as for any pushed index).
        assert deleted.status == 405 and "listed by index" in await deleted.text()
    report = await env.reg.services.gc.run()
    assert not {str(d) for d in report.deleted_blobs} & set(s390x.blob_digests)
    await env.assert_consistent()
    await assert_check_clean(env.data_dir, database_url)


async def test_ordinary_push_of_a_sparse_index_is_still_refused(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
) -> None:
    index = await four_platforms(tmp_path, distribution_anon)
    env = await import_env(database_url)
    # A client push of the index without its children is refused, as before.
    async with env.reg.http.put(
        f"{env.reg.url}/v2/other/manifests/v1",
        data=index.index_bytes,
        headers={"Content-Type": index.media_type},
    ) as put:
        assert put.status == 400, await put.text()
        assert "MANIFEST_BLOB_UNKNOWN" in await put.text() or "not in repository" in (
            await put.text()
        )


async def test_rewritten_subset_lists_only_the_selection_with_its_origin(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await four_platforms(tmp_path, distribution_anon)
    amd64, arm64, armv7, s390x = index.children
    host = (await upstream_proxy(distribution_anon.url)).host
    env = await import_env(database_url, upstreams=insecure(host))
    final = await env.run_import(
        body(
            host,
            "app:small",
            platforms=["linux/arm64/v8", "linux/arm/v7"],
            platformMode="rewritten",
        )
    )
    assert_succeeded(final)
    got = await env.manifest("app", "small")
    assert got.status == 200
    document = json.loads(got.body)
    source = json.loads(index.index_bytes)
    assert document["mediaType"] == source["mediaType"] == got.headers["Content-Type"]
    assert document["manifests"] == [source["manifests"][1], source["manifests"][2]]
    assert document["annotations"]["io.transship.import.source-index"] == index.digest
    assert document["annotations"]["io.transship.import.source"] == f"{host}/team/app:v1"
    assert got.headers["Docker-Content-Digest"] != index.digest
    assert (await env.manifest("app", index.digest)).status == 404
    for child in (arm64, armv7):
        assert (await env.manifest("app", child.digest)).status == 200
    for child in (amd64, s390x):
        missing = await env.manifest("app", child.digest)
        assert missing.status == 404
        assert not any(has_blob_file(env.data_dir, d) for d in child.blob_digests)
    await env.assert_consistent()
    await assert_check_clean(env.data_dir, database_url)


async def test_unknown_platform_fails_listing_what_the_index_offers(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    await four_platforms(tmp_path, distribution_anon)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    final = await env.run_import(body(proxy.host, "app:v1", platforms=["windows/amd64"]))
    error = assert_failed(final, "PlatformNotFound")
    assert "windows/amd64" in error["message"]
    assert ", ".join(PLATFORMS) in error["message"]
    assert proxy.blob_requests() == []
    assert (await env.manifest("app", "v1")).status == 404


async def test_bad_platform_is_refused_naming_the_field(import_env: ImportEnvFactory) -> None:
    env = await import_env(None)
    status, answer, _ = await env.admin.call(
        "POST",
        f"{env.admin.registry_id(TARGET)}/importImage",
        body("registry.example", "app:v1", platforms=["linux/amd64", "linux"]),
    )
    assert status == 400, answer
    assert "platforms[1]" in json.dumps(answer)


async def test_concurrent_sparse_imports_of_one_index_both_land(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await four_platforms(tmp_path, distribution_anon)
    amd64, arm64, armv7, s390x = index.children
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    operations = [
        await env.admin.start_import(TARGET, body(proxy.host, f"app:{name}", platforms=[p]))
        for name, p in (("a", "linux/amd64"), ("b", "linux/s390x"))
    ]
    for final in await asyncio.gather(*(env.admin.wait(op) for op in operations)):
        assert_succeeded(final)
    for child in (amd64, s390x):
        assert (await env.manifest("app", child.digest)).status == 200
        # Each present child is an edge of the index, whichever import stored the index.
        async with env.reg.http.delete(f"{env.reg.url}/v2/app/manifests/{child.digest}") as deleted:
            assert deleted.status == 405 and "listed by index" in await deleted.text()
    for child in (arm64, armv7):
        absent = await env.manifest("app", child.digest)
        assert absent.status == 404 and "not imported" in absent.body.decode()
    await env.assert_consistent()
    await assert_check_clean(env.data_dir, database_url)


def _buildx_style(tmp_path: Path, registry: DistributionRegistry) -> tuple[BuiltIndex, list[str]]:
    """An index as buildx writes it: linux/amd64 and linux/arm64 images, then one attestation
    manifest per image (platform unknown/unknown, the reference annotations), pushed to
    `team/att:v1`. Returns the built images' index and the attestations' digests."""
    layout = OciLayout(tmp_path / "buildx")
    images = build_index(layout, platforms=("linux/amd64", "linux/arm64"), layer_sizes=(9_000,))
    entries = json.loads(images.index_bytes)["manifests"]
    attestations = []
    for child in images.children:
        statement = layout.write_blob(
            json.dumps(
                {"_type": "https://in-toto.io/Statement/v0.1", "for": child.digest}
            ).encode(),
            "application/vnd.in-toto+json",
        )
        config = layout.write_blob(b"{}", "application/vnd.oci.image.config.v1+json")
        descriptor, _ = layout.write_json(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config.to_json(),
                "layers": [statement.to_json()],
            },
            "application/vnd.oci.image.manifest.v1+json",
        )
        attestations.append(descriptor.digest)
        entries.append(
            {
                **descriptor.to_json(),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": child.digest,
                },
            }
        )
    root, data = layout.write_json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        },
        "application/vnd.oci.image.index.v1+json",
    )
    layout.add_ref(root, "buildx")
    push_layout_http(layout, registry.url, "team/att", "v1", source_ref="buildx")
    built = BuiltIndex(layout, root, data, images.children)
    return built, attestations


async def test_attestations_of_the_selected_platforms_come_along_when_asked(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index, (att_amd64, att_arm64) = await asyncio.to_thread(
        _buildx_style, tmp_path, distribution_anon
    )
    amd64, arm64 = index.children
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(None, upstreams=insecure(proxy.host))
    source = {"registryUri": proxy.host, "sourceImage": "team/att:v1"}
    final = await env.run_import(
        {
            "source": source,
            "targetTags": ["att:sparse"],
            "platforms": ["linux/amd64"],
            "includeAttestations": True,
        }
    )
    assert_succeeded(final)
    assert (await env.manifest("att", "sparse")).body == index.index_bytes
    for present in (amd64.digest, att_amd64):
        assert (await env.manifest("att", present)).status == 200
    for absent, what in ((arm64.digest, "linux/arm64"), (att_arm64, "attestation manifest of")):
        answer = await env.manifest("att", absent)
        assert answer.status == 404 and what in answer.body.decode(), answer.body

    # Without the flag, rewritten: the index lists the image alone.
    final = await env.run_import(
        {
            "source": source,
            "targetTags": ["att:plain"],
            "platforms": ["linux/amd64"],
            "platformMode": "rewritten",
        }
    )
    assert_succeeded(final)
    listed = json.loads((await env.manifest("att", "plain")).body)["manifests"]
    assert [m["digest"] for m in listed] == [amd64.digest]
    await env.assert_consistent()


async def test_a_sparse_index_as_the_source_of_a_same_service_import(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await four_platforms(tmp_path, distribution_anon)
    amd64, arm64, armv7, s390x = index.children
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(None, upstreams=insecure(proxy.host))
    mirror = await env.admin.create_registry("mirror")
    final = await env.admin.run_import(
        "mirror", body(proxy.host, "app:v1", platforms=["linux/amd64", "linux/arm64/v8"])
    )
    assert_succeeded(final)
    source = {"resourceId": mirror["id"], "sourceImage": "app:v1"}

    # Every platform: the first absent child stops it, nothing lands.
    final = await env.run_import({"source": source, "targetTags": ["full:v1"]})
    error = assert_failed(final, "ManifestUnknown")
    # Children are fetched in parallel: either absent one may be the first to fail.
    assert any(child.digest in error["message"] for child in (armv7, s390x)), error
    assert (await env.manifest("full", "v1")).status == 404

    # A platform it holds: a sparse copy of the sparse index, linked without fetching.
    final = await env.run_import(
        {"source": source, "targetTags": ["part:v1"], "platforms": ["linux/arm64/v8"]}
    )
    assert assert_succeeded(final)["bytesFetched"] == 0
    assert (await env.manifest("part", "v1")).body == index.index_bytes
    assert (await env.manifest("part", arm64.digest)).status == 200
    assert (await env.manifest("part", amd64.digest)).status == 404
    await env.assert_consistent()
