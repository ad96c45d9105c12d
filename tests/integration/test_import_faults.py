"""Upstream faults during an import.

TCP level (tests.peers.fault_proxy.FaultProxy between Transship and the upstream): a reset
mid-blob, a stall that ends or does not, a refused connection. HTTP level (the recording
proxy of tests.support.upstream_proxy): 429 with Retry-After, 500s, and wrong bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultMode, FaultProxy
from tests.peers.images import BuiltImage, OciLayout, build_image, push_layout_http, sha256_digest
from tests.support.imports import (
    Operation,
    assert_check_clean,
    assert_failed,
    assert_succeeded,
    has_blob_file,
)
from tests.support.upstream_proxy import UpstreamProxy

FaultProxyFactory = Callable[[str, int], FaultProxy]
BIG = 2_000_000


def upstream_image(tmp_path: Path, registry: DistributionRegistry, *, big: int = BIG) -> BuiltImage:
    """`team/app:v1`: a config, a small layer and a big one (the last layer)."""
    image = build_image(OciLayout(tmp_path / "layout"), seed="faults", layer_sizes=(20_000, big))
    push_layout_http(image, registry.url, "team/app", "v1")
    return image


def import_body(host: str) -> dict[str, Any]:
    return {"source": {"registryUri": host, "sourceImage": "team/app:v1"}, "targetTags": ["app:v1"]}


async def assert_imported(env: ImportEnv, image: BuiltImage) -> None:
    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == image.manifest_bytes
    for digest in image.blob_digests:
        blob = await env.blob("app", digest)
        assert blob.status == 200 and sha256_digest(blob.body) == digest


async def assert_nothing_committed(env: ImportEnv, image: BuiltImage) -> None:
    assert (await env.manifest("app", "v1")).status == 404
    assert (await env.manifest("app", image.digest)).status == 404
    assert await env.tags("app") is None
    staging = env.data_dir / "uploads"
    assert not staging.exists() or not any(staging.iterdir()), "staged bytes were left behind"


# -- TCP faults -------------------------------------------------------------------------------


async def chain(
    registry: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    fault_proxy_factory: FaultProxyFactory,
) -> tuple[FaultProxy, UpstreamProxy]:
    """Transship → FaultProxy (TCP faults) → recording proxy (sees every request) → registry."""
    recorder = await upstream_proxy(registry.url)
    return fault_proxy_factory("127.0.0.1", recorder.port), recorder


async def start_slow_copy(env: ImportEnv, tcp: FaultProxy) -> tuple[Operation, int]:
    """Start the import through a 1 MB/s link and return once the big blob is under way
    (with the bytes done by then)."""
    tcp.set_mode(FaultMode.bandwidth(1_000_000))
    operation = await env.admin.start_import(TARGET, import_body(tcp.host))
    status = await env.admin.wait_for(
        operation,
        lambda s: s["properties"]["progress"]["bytesDone"] > 100_000,
        timeout=20,
        what="copy under way",
    )
    return operation, int(status["properties"]["progress"]["bytesDone"])


def resumed_offsets(recorder: UpstreamProxy, digest: str) -> list[int]:
    """The Range offsets of the GETs of `digest` (0 for a GET without Range)."""
    offsets = []
    for seen in recorder.requests_to(f"/blobs/{digest}"):
        offsets.append(
            int(seen.range.removeprefix("bytes=").removesuffix("-")) if seen.range else 0
        )
    return offsets


async def test_connection_reset_mid_blob_resumes_with_range(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    fault_proxy_factory: FaultProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon)
    tcp, recorder = await chain(distribution_anon, upstream_proxy, fault_proxy_factory)
    env = await import_env(upstreams=insecure(tcp.host))
    operation, done = await start_slow_copy(env, tcp)
    tcp.set_mode(FaultMode.reset(1, once=True))  # RST the next chunk towards Transship, then pass
    final = await env.admin.wait(operation, timeout=30)
    assert_succeeded(final)
    await assert_imported(env, image)
    assert tcp.stats.resets == 1
    assert tcp.stats.connections > 1
    offsets = resumed_offsets(recorder, image.layers[-1].digest)
    assert len(offsets) == 2 and offsets[0] == 0, offsets
    assert done - 100_000 <= offsets[1] < BIG, (
        f"resumed from {offsets[1]} after {done} bytes were done"
    )


async def test_stall_mid_blob_resumes_when_the_upstream_recovers(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    fault_proxy_factory: FaultProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon)
    tcp, recorder = await chain(distribution_anon, upstream_proxy, fault_proxy_factory)
    env = await import_env(
        upstreams=insecure(tcp.host), upstream_read_timeout=0.5, upstream_retry_attempts=4
    )
    operation, done = await start_slow_copy(env, tcp)
    tcp.set_mode(FaultMode.blackhole())
    # Waiting out real read timeouts (0.5 s each) is the point: the import must still be
    # in progress, retrying, after three of them.
    await asyncio.sleep(1.5)
    assert (await env.admin.status(operation))["status"] == "InProgress"
    tcp.passthrough()
    final = await env.admin.wait(operation, timeout=30)
    assert_succeeded(final)
    await assert_imported(env, image)
    offsets = resumed_offsets(recorder, image.layers[-1].digest)
    assert len(offsets) >= 2 and offsets[0] == 0, offsets
    assert offsets[-1] >= done - 100_000, f"resumed from {offsets[-1]} after {done} bytes were done"


async def test_stall_that_never_ends_fails_cleanly(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: FaultProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon)
    tcp = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    env = await import_env(
        upstreams=insecure(tcp.host), upstream_read_timeout=0.4, upstream_retry_attempts=2
    )
    operation, _ = await start_slow_copy(env, tcp)
    tcp.set_mode(FaultMode.blackhole())
    final = await env.admin.wait(operation, timeout=30)
    assert_failed(final, "UpstreamUnavailable")
    failure = final["properties"]["failure"]
    assert failure["step"] == "copy" and failure["object"] == image.layers[-1].digest, failure
    await assert_nothing_committed(env, image)


async def test_refused_connection_is_unreachable(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: FaultProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon, big=1000)
    tcp = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    tcp.set_mode(FaultMode.refuse())
    env = await import_env(upstreams=insecure(tcp.host), upstream_retry_attempts=2)
    final = await env.run_import(import_body(tcp.host))
    error = assert_failed(final, "UpstreamUnreachable")
    assert tcp.host in error["message"]
    await assert_nothing_committed(env, image)


# -- HTTP faults ------------------------------------------------------------------------------


async def test_429_retry_after_is_honoured(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon, big=50_000)
    proxy = await upstream_proxy(distribution_anon.url)
    proxy.fail("/blobs/", 429, headers={"Retry-After": "1"})  # the first blob GET, whichever
    env = await import_env(upstreams=insecure(proxy.host))
    final = await env.run_import(import_body(proxy.host))
    assert_succeeded(final)
    await assert_imported(env, image)
    throttled = next(s for s in proxy.seen if s.faulted)
    gets = proxy.requests_to(throttled.path)
    assert [g.status for g in gets] == [429, 200], gets
    waited = gets[1].at - gets[0].at
    assert 0.9 <= waited < 3.0, f"asked again after {waited:.2f} s; Retry-After said 1"


async def test_500_twice_then_success(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon, big=50_000)
    proxy = await upstream_proxy(distribution_anon.url)
    layer = image.layers[-1].digest
    proxy.fail(f"/blobs/{layer}", 500, times=2)
    env = await import_env(upstreams=insecure(proxy.host))
    final = await env.run_import(import_body(proxy.host))
    assert_succeeded(final)
    await assert_imported(env, image)
    assert [g.status for g in proxy.requests_to(f"/blobs/{layer}")] == [500, 500, 200]


async def test_wrong_bytes_fail_with_digest_invalid_and_commit_nothing(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image = await asyncio.to_thread(upstream_image, tmp_path, distribution_anon, big=50_000)
    proxy = await upstream_proxy(distribution_anon.url)
    layer = image.layers[-1].digest
    proxy.corrupt(f"/blobs/{layer}")  # same length, other bytes
    env = await import_env(upstreams=insecure(proxy.host))
    operation = await env.admin.start_import(TARGET, import_body(proxy.host))
    final = await env.admin.wait(operation)
    error = assert_failed(final, "DIGEST_INVALID")
    assert layer in error["message"], error
    failure = final["properties"]["failure"]
    assert failure["step"] == "copy" and failure["object"] == layer, failure
    status, result = await env.admin.result(operation)
    assert status >= 400 and result["error"]["code"] == "DIGEST_INVALID", (status, result)
    await assert_nothing_committed(env, image)
    assert not has_blob_file(env.data_dir, layer)
    await assert_check_clean(env.data_dir, env.database_url)
