"""Real clients pull through a cache rule on their first pull: skopeo copies the whole
multi-arch image, podman pulls one platform, the docker CLI inspects the index and each
platform's manifest, the oras SDK pulls a file artifact; each byte-exact, each upstream
blob fetched once; the content is then an ordinary repository."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import oras.client  # type: ignore[import-untyped]
import pytest

from tests.e2e.content import descriptors
from tests.integration.conftest import (  # noqa: F401  (fixtures used by name)
    TARGET,
    ImportEnv,
    ProxyFactory,
    small_index,
    upstream_proxy,
)
from tests.peers.clients import DockerCli, Podman, Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, OciLayout, push_layout_http
from tests.support.cache_rules import CacheEnvFactory, cache_env  # noqa: F401
from tests.support.imports import docker_ref
from tests.support.upstream_proxy import UpstreamProxy

pytestmark = pytest.mark.timeout(180)


async def upstream_image(
    tmp_path: Path, distribution: DistributionRegistry, proxies: ProxyFactory
) -> tuple[BuiltIndex, UpstreamProxy]:
    def build() -> BuiltIndex:
        index = small_index(tmp_path, layer_sizes=(300_000, 200_000), shared_layer_size=500_000)
        push_layout_http(index, distribution.url, "team/app", "v1")
        return index

    index = await asyncio.to_thread(build)
    return index, await proxies(distribution.url)


def fetched_once(proxy: UpstreamProxy, digests: tuple[str, ...]) -> None:
    for digest in digests:
        assert len(proxy.requests_to(f"/blobs/{digest}")) <= 1, digest


async def test_skopeo_copies_a_multi_arch_image_through_a_cache_rule(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,  # noqa: F811
    skopeo: Skopeo,
) -> None:
    index, proxy = await upstream_image(tmp_path, distribution_anon, upstream_proxy)
    env = await cache_env(proxy.host)
    out = OciLayout(tmp_path / "out")

    await asyncio.to_thread(
        skopeo.copy,
        docker_ref(env.login_server, "cache/app", "v1"),
        out.skopeo_ref("v1"),
        all=True,
        preserve_digests=True,
    )

    assert out.resolve("v1").digest == index.digest
    for digest in index.blob_digests:
        blob = out.root / "blobs" / "sha256" / digest.split(":", 1)[1]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    fetched_once(proxy, index.blob_digests)
    raw = await asyncio.to_thread(
        skopeo.inspect_raw, docker_ref(env.login_server, "cache/app", "v1")
    )
    assert raw == index.index_bytes
    await wait_tagged(env, "cache/app", "v1")


async def test_podman_pulls_one_platform_through_a_cache_rule(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,  # noqa: F811
    podman: Podman,
) -> None:
    index, proxy = await upstream_image(tmp_path, distribution_anon, upstream_proxy)
    env = await cache_env(proxy.host)
    arm64 = index.child("linux/arm64")

    image_id = await asyncio.to_thread(
        podman.pull, f"{env.login_server}/cache/app:v1", platform="linux/arm64"
    )

    assert f"sha256:{image_id}" == arm64.config.digest
    fetched_once(proxy, index.blob_digests)
    # The background import copies every platform, not only the one pulled.
    await wait_tagged(env, "cache/app", "v1")
    amd64 = index.child("linux/amd64")
    before = len(proxy.seen)
    image_id = await asyncio.to_thread(
        podman.pull, f"{env.login_server}/cache/app:v1", platform="linux/amd64"
    )
    assert f"sha256:{image_id}" == amd64.config.digest
    assert len(proxy.seen) == before  # served locally now


async def test_docker_cli_inspects_a_multi_arch_image_through_a_cache_rule(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,  # noqa: F811
    docker_cli: DockerCli,
) -> None:
    index, proxy = await upstream_image(tmp_path, distribution_anon, upstream_proxy)
    env = await cache_env(proxy.host)
    ref = f"{env.login_server}/cache/app:v1"

    entries = await asyncio.to_thread(docker_cli.manifest_inspect, ref, verbose=True)

    # One entry per platform, its descriptor as upstream's index says and its exact bytes.
    assert [entry["Descriptor"] for entry in entries] == descriptors(index)
    for entry, child in zip(entries, index.children, strict=True):
        raw = base64.b64decode(entry["Raw"])
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == child.digest
    printed = await asyncio.to_thread(docker_cli.manifest_inspect, ref)
    assert printed["mediaType"] == index.media_type
    assert printed["manifests"] == descriptors(index)
    # The CLI read manifests only; the fill behind them copies every blob, each once.
    await wait_tagged(env, "cache/app", "v1")
    fetched_once(proxy, index.blob_digests)


async def test_oras_pulls_a_file_artifact_through_a_cache_rule(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "oras-docker-config"))  # no host creds
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(300_000))
    upstream = oras.client.OrasClient(hostname=distribution_anon.host, insecure=True)
    pushed = await asyncio.to_thread(
        upstream.push,
        target=f"{distribution_anon.host}/team/files:v1",
        files=[str(payload)],
        disable_path_validation=True,
    )
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    client = oras.client.OrasClient(hostname=env.login_server, insecure=True)

    files = await asyncio.to_thread(
        client.pull, target=f"{env.login_server}/cache/files:v1", outdir=str(tmp_path / "out")
    )

    assert [Path(f).name for f in files] == [payload.name]
    assert Path(files[0]).read_bytes() == payload.read_bytes()
    manifest = await asyncio.to_thread(client.get_manifest, f"{env.login_server}/cache/files:v1")
    (layer,) = manifest["layers"]
    fetched_once(proxy, (layer["digest"],))
    await wait_tagged(env, "cache/files", "v1")
    cached = await env.manifest("cache/files", "v1")
    digest = "sha256:" + hashlib.sha256(cached.body).hexdigest()
    assert cached.status == 200 and digest == pushed.headers["Docker-Content-Digest"]


async def wait_tagged(env: ImportEnv, repository: str, tag: str, timeout: float = 30.0) -> None:
    """Until the pull-through's import job has committed the tag."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        operations = await env.admin.operations(TARGET)
        if operations and all(op["status"] == "Succeeded" for op in operations):
            break
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the pull-through import did not succeed: {operations}")
        await asyncio.sleep(0.3)
    assert tag in (await env.tags(repository) or [])
