"""Imports running at the same time: a blob two imports need is fetched once; a running
import can be canceled, leaving no tag and nothing pinned (GC then reclaims its blobs)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.integration.conftest import TARGET, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import OciLayout, build_image, build_index, push_layout_http
from tests.support.imports import Operation, assert_succeeded, has_blob_file

SHARED = 3_000_000


def copying_all_but_one(status: dict[str, Any]) -> bool:
    progress = status["properties"]["progress"]
    return bool(progress["blobsTotal"]) and progress["blobsDone"] == progress["blobsTotal"] - 1


def body(source: str, target: str) -> dict[str, Any]:
    return {
        "source": {"registryUri": source.split("/", 1)[0], "sourceImage": source.split("/", 1)[1]},
        "targetTags": [target],
    }


async def test_two_imports_needing_the_same_blob_fetch_it_once(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    layout = OciLayout(tmp_path / "layout")
    # Two different images whose first layer is the same large blob. (Built and pushed on a
    # thread: compressing 3 MB and blocking HTTP would hold the test's loop, which the stall
    # guard rightly reports.)
    first = await asyncio.to_thread(
        build_index,
        layout,
        platforms=("linux/amd64",),
        seed="base",
        shared_layer_size=SHARED,
        layer_sizes=(5000,),
    )
    second = await asyncio.to_thread(
        build_index,
        layout,
        platforms=("linux/arm64",),
        seed="base",
        shared_layer_size=SHARED,
        layer_sizes=(6000,),
    )
    shared = first.children[0].layers[0].digest
    assert second.children[0].layers[0].digest == shared and first.digest != second.digest
    await asyncio.to_thread(push_layout_http, first, distribution_anon.url, "team/first", "v1")
    await asyncio.to_thread(push_layout_http, second, distribution_anon.url, "team/second", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    held = proxy.hold(f"/blobs/{shared}")
    env = await import_env(upstreams=insecure(proxy.host))

    one = await env.admin.start_import(TARGET, body(f"{proxy.host}/team/first:v1", "first:v1"))
    await proxy.wait_for_request(f"/blobs/{shared}")
    two = await env.admin.start_import(TARGET, body(f"{proxy.host}/team/second:v1", "second:v1"))
    # The second import has fetched everything else and now needs the shared blob too.
    own = second.children[0].layers[1].digest
    await proxy.wait_for_request(f"/blobs/{own}")
    for operation in (one, two):
        await env.admin.wait_for(
            operation, copying_all_but_one, timeout=20, what="only the shared blob missing"
        )
    # An observation window for a fetch that must not come (no event marks an absence):
    # both imports are already waiting on the shared blob alone.
    await asyncio.sleep(0.5)
    assert len(proxy.requests_to(f"/blobs/{shared}")) == 1, (
        "the second import fetched the shared blob itself"
    )

    assert held.release is not None
    held.release.set()
    for operation, index, tag in ((one, first, "first:v1"), (two, second, "second:v1")):
        progress = assert_succeeded(await env.admin.wait(operation))
        assert progress["bytesTotal"] == index.blob_bytes
        repository, _, reference = tag.partition(":")
        got = await env.manifest(repository, reference)
        assert got.status == 200 and got.body == index.index_bytes
        assert (await env.blob(repository, shared)).status == 200
    assert len(proxy.requests_to(f"/blobs/{shared}")) == 1
    await env.assert_consistent()


async def test_cancel_a_running_import(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image = await asyncio.to_thread(
        build_image,
        OciLayout(tmp_path / "layout"),
        seed="cancel",
        layer_sizes=(30_000, 40_000, 200_000),
    )
    await asyncio.to_thread(push_layout_http, image, distribution_anon.url, "team/app", "v1")
    last = image.layers[-1].digest
    staged = [d for d in image.blob_digests if d != last]
    proxy = await upstream_proxy(distribution_anon.url)
    proxy.hold(f"/blobs/{last}")  # never released: the import stays running
    env = await import_env(upstreams=insecure(proxy.host), gc_grace_seconds=0)
    operation: Operation = await env.admin.start_import(
        TARGET, body(f"{proxy.host}/team/app:v1", "app:v1")
    )
    await proxy.wait_for_request(f"/blobs/{last}")
    await env.admin.wait_for(
        operation, copying_all_but_one, timeout=20, what="all but the held blob copied"
    )
    assert all(has_blob_file(env.data_dir, d) for d in staged)

    # While the job runs its blobs are pinned: garbage collection without grace keeps them.
    report = await env.reg.services.gc.run()
    assert not set(map(str, report.deleted_blobs)) & set(staged), report.summary()
    assert all(has_blob_file(env.data_dir, d) for d in staged)

    status, canceling = await env.admin.cancel(operation)
    assert status == 200 and canceling["name"] == operation.id, (status, canceling)
    final = await env.admin.wait(operation, timeout=20)
    assert final["status"] == "Canceled" and final["properties"]["state"] == "canceled", final
    assert "endTime" in final
    result_status, _ = await env.admin.result(operation)
    assert result_status != 200
    assert (await env.manifest("app", "v1")).status == 404
    assert (await env.manifest("app", image.digest)).status == 404
    assert await env.tags("app") is None

    # Canceled: the pins are gone, so the same collection now reclaims the staged blobs.
    report = await env.reg.services.gc.run()
    assert set(staged) <= set(map(str, report.deleted_blobs)), report.summary()
    assert not any(has_blob_file(env.data_dir, d) for d in staged)
    await env.assert_consistent()
