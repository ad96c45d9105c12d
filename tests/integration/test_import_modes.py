"""`mode`: NoForce refuses an existing target tag before anything is copied; Force moves it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.conftest import TARGET, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, OciLayout, build_image
from tests.support.imports import assert_failed, assert_succeeded, push_built


async def test_noforce_refuses_an_existing_tag_and_force_moves_it(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    upstream_proxy: ProxyFactory,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    old = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "old"), seed="old", layer_sizes=(2000,)
    )
    await push_built(env.reg.http, env.reg.url, env.login_server, "app", "v1", old)
    body = {
        "source": {"registryUri": proxy.host, "sourceImage": "team/app:v1"},
        "targetTags": ["app:new", "app:v1"],
        "mode": "NoForce",
    }

    operation = await env.admin.start_import(TARGET, body)
    final = await env.admin.wait(operation)
    error = assert_failed(final, "TagAlreadyExists")
    assert error["message"] == (
        "Tag app:v1 already exists in target registry. Import with --force (mode Force) to "
        "overwrite it."
    )
    status, result = await env.admin.result(operation)
    assert status == 409 and result["error"]["code"] == "TagAlreadyExists", (status, result)
    assert proxy.blob_requests() == [], "NoForce must fail before copying anything"
    still = await env.manifest("app", "v1")
    assert still.status == 200 and still.body == old.manifest_bytes
    assert (await env.manifest("app", "new")).status == 404, (
        "no target tag may move when one is taken"
    )
    assert (await env.manifest("app", upstream_index.digest)).status == 404

    final = await env.run_import({**body, "mode": "Force"})
    assert_succeeded(final)
    assert final["properties"]["mode"] == "Force"
    for tag in ("v1", "new"):
        moved = await env.manifest("app", tag)
        assert moved.status == 200 and moved.body == upstream_index.index_bytes, tag
    assert (await env.manifest("app", old.digest)).status == 200, "the old image stays, untagged"
    assert sorted(s.path for s in proxy.blob_requests()) == sorted(
        f"/v2/team/app/blobs/{digest}" for digest in upstream_index.blob_digests
    ), "each blob fetched exactly once"
    await env.assert_consistent()


async def test_noforce_refuses_a_tag_that_appeared_while_copying(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    upstream_proxy: ProxyFactory,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    held = proxy.hold(f"/blobs/{upstream_index.blob_digests[-1]}")
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    operation = await env.admin.start_import(
        TARGET,
        {
            "source": {"registryUri": proxy.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
        },
    )
    await proxy.wait_for_request(f"/blobs/{upstream_index.blob_digests[-1]}")
    # Someone pushes the tag after the import checked it, before the import commits.
    other = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "other"), seed="other", layer_sizes=(2000,)
    )
    await push_built(env.reg.http, env.reg.url, env.login_server, "app", "v1", other)
    assert held.release is not None
    held.release.set()
    final = await env.admin.wait(operation)
    error = assert_failed(final, "TagAlreadyExists")
    assert error["message"] == (
        "Tag app:v1 already exists in target registry. Import with --force (mode Force) to "
        "overwrite it."
    )
    assert final["properties"]["failure"]["step"] == "commit"
    kept = await env.manifest("app", "v1")
    assert kept.status == 200 and kept.body == other.manifest_bytes
    assert (await env.manifest("app", upstream_index.digest)).status == 404
    await env.assert_consistent()
