"""Server-side import from a real upstream (Debian's docker-registry): multi-arch OCI indexes
by tag and by digest, a Docker manifest list with a Windows foreign layer, the Docker Hub
short form, where the image lands (targetTags, untaggedTargetRepositories, the defaults),
and the manifest cap. Each import is checked byte for byte with skopeo, and copied out of
Transship into another registry with the same digests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.integration.conftest import TARGET, ImportEnvFactory, ProxyFactory, insecure, small_index
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import (
    BuiltIndex,
    OciLayout,
    build_docker_list_with_foreign_layer,
    build_image,
    push_layout_http,
    sha256_digest,
)
from tests.support.imports import (
    assert_copies_out,
    assert_failed,
    assert_served_as_built,
    assert_succeeded,
    has_blob_file,
)


async def test_multi_arch_index_by_tag(
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    skopeo: Skopeo,
    spare_registry: DistributionRegistry,
) -> None:
    env = await import_env(database_url, upstreams=insecure(distribution_anon.host))
    final = await env.run_import(
        {
            "source": {"registryUri": distribution_anon.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
            "mode": "NoForce",
        }
    )
    progress = assert_succeeded(final)
    assert progress["manifestsTotal"] == 4
    assert progress["blobsTotal"] == len(upstream_index.blob_digests)  # the shared layer once
    assert progress["bytesTotal"] == progress["bytesFetched"] == upstream_index.blob_bytes
    for digest in upstream_index.blob_digests:
        got = await env.blob("app", digest)
        assert got.status == 200 and sha256_digest(got.body) == digest
    await assert_served_as_built(skopeo, env.login_server, "app", "v1", upstream_index)
    await assert_copies_out(
        skopeo, env.login_server, "app", "v1", spare_registry.host, upstream_index
    )
    await env.assert_consistent()


async def test_multi_arch_index_by_digest_ignores_where_the_tag_moved(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    skopeo: Skopeo,
    spare_registry: DistributionRegistry,
) -> None:
    # The upstream tag now names another image: only the digest identifies what to import.
    other = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "other"), seed="other", layer_sizes=(1000,)
    )
    await asyncio.to_thread(push_layout_http, other, distribution_anon.url, "team/app", "v1")
    env = await import_env(database_url, upstreams=insecure(distribution_anon.host))
    final = await env.run_import(
        {
            "source": {
                "registryUri": distribution_anon.host,
                "sourceImage": f"team/app@{upstream_index.digest}",
            },
            "targetTags": ["app:pinned"],
        }
    )
    assert_succeeded(final)
    assert final["properties"]["source"].endswith(f"team/app@{upstream_index.digest}")
    await assert_served_as_built(skopeo, env.login_server, "app", "pinned", upstream_index)
    await assert_served_as_built(
        skopeo, env.login_server, "app", upstream_index.digest, upstream_index
    )
    assert (await env.manifest("app", other.digest)).status == 404
    await assert_copies_out(
        skopeo, env.login_server, "app", "pinned", spare_registry.host, upstream_index
    )


async def test_docker_manifest_list_with_windows_foreign_layer(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    skopeo: Skopeo,
    spare_registry: DistributionRegistry,
) -> None:
    built = await asyncio.to_thread(
        build_docker_list_with_foreign_layer, OciLayout(tmp_path / "win"), tag="ltsc2019"
    )
    (foreign,) = built.foreign_layers
    await asyncio.to_thread(
        push_layout_http, built, distribution_anon.url, "windows/servercore", "ltsc2019"
    )
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    final = await env.run_import(
        {
            "source": {"registryUri": proxy.host, "sourceImage": "windows/servercore:ltsc2019"},
            "targetTags": ["servercore:ltsc2019"],
        }
    )
    progress = assert_succeeded(final)
    # Recorded (the manifests describe it, byte for byte) but never fetched nor stored.
    assert progress["blobsTotal"] == len(built.blob_digests)
    assert progress["bytesTotal"] == built.blob_bytes
    assert proxy.seen and not [s for s in proxy.seen if foreign.digest in s.path]
    assert len(proxy.blob_requests()) == len(built.blob_digests)
    upstream_log = (distribution_anon.workdir / "registry.log").read_text(errors="replace")
    for digest in built.blob_digests:  # the log does name what was fetched...
        assert f"GET /v2/windows/servercore/blobs/{digest}" in upstream_log
    assert foreign.digest.split(":")[1] not in upstream_log  # ...and never the foreign layer
    assert (await env.blob("servercore", foreign.digest)).status == 404
    assert not has_blob_file(env.data_dir, foreign.digest)
    windows = json.loads((await env.manifest("servercore", built.children[0].digest)).body)
    assert windows["layers"][0]["urls"] == list(foreign.urls)
    await assert_served_as_built(skopeo, env.login_server, "servercore", "ltsc2019", built)
    await assert_copies_out(
        skopeo, env.login_server, "servercore", "ltsc2019", spare_registry.host, built
    )
    await env.assert_consistent()


async def test_docker_hub_short_name_lands_without_library_prefix(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "hello"), seed="hello-world", layer_sizes=(3000,)
    )
    await asyncio.to_thread(
        push_layout_http, image, distribution_anon.url, "library/hello-world", "latest"
    )
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(upstreams={"docker.io": {"endpoint": proxy.url, "insecure": True}})
    final = await env.run_import(
        {"source": {"registryUri": "docker.io", "sourceImage": "hello-world"}}
    )
    assert_succeeded(final)
    assert final["properties"]["targetTags"] == ["hello-world:latest"]
    assert proxy.requests_to("/v2/library/hello-world/manifests/latest")
    got = await env.manifest("hello-world", "latest")
    assert got.status == 200 and got.body == image.manifest_bytes
    assert await env.tags("hello-world") == ["latest"]
    assert await env.tags("library/hello-world") is None


async def test_several_target_tags_and_untagged_repositories(
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
) -> None:
    env = await import_env(upstreams=insecure(distribution_anon.host))
    final = await env.run_import(
        {
            "source": {"registryUri": distribution_anon.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1", "app:stable", "mirror/app:latest", "copy/app"],
            "untaggedTargetRepositories": ["archive/app"],
        }
    )
    assert_succeeded(final)
    assert final["properties"]["targetTags"] == [
        "app:v1",
        "app:stable",
        "mirror/app:latest",
        "copy/app:v1",
    ]
    assert final["properties"]["untaggedTargetRepositories"] == ["archive/app"]
    assert sorted(await env.tags("app") or []) == ["stable", "v1"]
    assert await env.tags("mirror/app") == ["latest"]
    assert await env.tags("copy/app") == ["v1"]  # a target without a tag takes the source's
    assert await env.tags("archive/app") == []
    for repository, reference in (
        ("app", "v1"),
        ("app", "stable"),
        ("mirror/app", "latest"),
        ("copy/app", "v1"),
    ):
        got = await env.manifest(repository, reference)
        assert got.status == 200 and got.body == upstream_index.index_bytes, (repository, reference)
    for repository in ("app", "mirror/app", "copy/app", "archive/app"):
        for child in upstream_index.children:
            assert (await env.manifest(repository, child.digest)).status == 200, (
                repository,
                child.digest,
            )
        for digest in upstream_index.blob_digests:
            assert (await env.blob(repository, digest)).status == 200, (repository, digest)
    archived = await env.manifest("archive/app", upstream_index.digest)
    assert archived.status == 200 and archived.body == upstream_index.index_bytes


@pytest.mark.parametrize("by", ["tag", "digest"])
async def test_default_target_is_the_source_repository(
    by: str,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
) -> None:
    env = await import_env(upstreams=insecure(distribution_anon.host))
    reference = ":v1" if by == "tag" else f"@{upstream_index.digest}"
    final = await env.run_import(
        {"source": {"registryUri": distribution_anon.host, "sourceImage": f"team/app{reference}"}}
    )
    assert_succeeded(final)
    if by == "tag":
        assert final["properties"]["targetTags"] == ["team/app:v1"]
        assert await env.tags("team/app") == ["v1"]
    else:  # no tag to give: the image is copied untagged into the source's repository
        assert final["properties"]["targetTags"] == []
        assert final["properties"]["untaggedTargetRepositories"] == ["team/app"]
        assert await env.tags("team/app") == []
    got = await env.manifest("team/app", upstream_index.digest)
    assert got.status == 200 and got.body == upstream_index.index_bytes


async def test_more_manifests_than_the_limit_fails_before_copying(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path)  # an index and 3 platforms: 4 manifests
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(upstreams=insecure(proxy.host), import_max_manifests=2)
    final = await env.run_import(
        {
            "source": {"registryUri": proxy.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
        }
    )
    assert_failed(final, "TooManyManifests")
    assert final["properties"]["failure"]["step"] == "plan"
    assert proxy.blob_requests() == []
    assert (await env.manifest("app", "v1")).status == 404
    assert (await env.admin.operations(TARGET))[0]["name"] == final["name"]
