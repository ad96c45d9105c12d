"""Pull-through on first pull, against a real upstream (Debian's docker-registry) behind the
recording proxy: the exact manifests and blobs, one upstream fetch per blob for any number
of concurrent pullers, an upstream dying mid-blob, tag re-checks by HEAD, an outage served
from the cache, and a caller who may not pull triggering nothing upstream."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import TARGET, ImportEnv, ProxyFactory, insecure, small_index
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultMode, FaultProxy
from tests.peers.images import OciLayout, build_image, push_layout_http
from tests.support.app import make_settings, running_registry
from tests.support.cache_rules import (  # noqa: F401
    CacheEnvFactory,
    Rule,
    StaticCacheRules,
    cache_env,
    cached_registry,
    pull_all,
    wait_for_jobs,
)
from tests.support.identity import IdentityClient, owner_credential
from tests.support.imports import Management, fetch, has_blob_file
from tests.support.upstream_proxy import UpstreamProxy
from transship.cache.errors import CredentialSetUnavailable
from transship.imports.model import BlobOrder, ImportRequest


def gets(proxy: UpstreamProxy, fragment: str, method: str = "GET") -> int:
    return len(proxy.requests_to(fragment, method))


async def test_first_pull_answers_the_exact_image_and_imports_it(
    tmp_path: Path,
    database_url: str | None,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path)
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host, database_url)

    await pull_all(env, "cache/app", "v1", index)

    operations = await wait_for_jobs(env, 1)
    assert len(operations) == 1
    op = operations[0]
    assert op["status"] == "Succeeded", op
    assert op["properties"]["targetTags"] == ["cache/app:v1"]
    assert proxy.host in json.dumps(op["properties"]) and "team/app" in json.dumps(op)
    # Its blobs are fetched image by image, as the client pulling it asks for them.
    job = await env.reg.services.imports.get(op["name"])
    assert job is not None
    assert ImportRequest.from_json(job.request).blob_order is BlobOrder.IMAGE_BY_IMAGE
    # Every blob and manifest came from the upstream once: the job reused what the pull got.
    for digest in index.blob_digests:
        assert gets(proxy, f"/blobs/{digest}") == 1, digest
    assert gets(proxy, "/manifests/v1") == 1
    for child in index.children:
        assert gets(proxy, f"/manifests/{child.digest}") == 1
    # An ordinary repository now: listed, tagged, consistent; a second pull is local.
    assert await env.tags("cache/app") == ["v1"]
    catalog = await fetch(env.reg.http, env.reg.url, "/v2/_catalog")
    assert "cache/app" in json.loads(catalog.body)["repositories"]
    before = len(proxy.seen)
    await pull_all(env, "cache/app", "v1", index)
    assert len(proxy.seen) == before
    await env.assert_consistent()


async def test_repository_without_a_rule_is_not_pulled_through(
    cache_env: CacheEnvFactory,  # noqa: F811
    upstream_proxy: ProxyFactory,
    distribution_anon: DistributionRegistry,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    got = await env.manifest("other/app", "v1")
    assert got.status == 404
    assert not proxy.seen


async def test_a_tag_missing_upstream_is_manifest_unknown(
    cache_env: CacheEnvFactory,  # noqa: F811
    upstream_proxy: ProxyFactory,
    distribution_anon: DistributionRegistry,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    got = await env.manifest("cache/nothing", "v1")
    assert got.status == 404
    assert json.loads(got.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert not await env.admin.operations(TARGET)
    # A reference no registry could hold is refused here, without asking upstream.
    seen = len(proxy.seen)
    for reference in (".INVALID", "sha256:nothex"):
        got = await env.manifest("cache/nothing", reference)
        assert got.status in (400, 404), (reference, got.status)
    assert len(proxy.seen) == seen


async def test_twenty_concurrent_first_pulls_fetch_each_blob_once(
    tmp_path: Path,
    database_url: str | None,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await asyncio.to_thread(
        small_index, tmp_path, layer_sizes=(300_000, 500_000), shared_layer_size=400_000
    )
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/multi", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host, database_url)

    await asyncio.gather(*(pull_all(env, "cache/multi", "v1", index) for _ in range(20)))

    for digest in index.blob_digests:
        assert gets(proxy, f"/blobs/{digest}") == 1, (digest, proxy.blob_requests(digest))
    assert gets(proxy, "/manifests/v1") == 1
    operations = await wait_for_jobs(env, 1)
    assert [op["status"] for op in operations] == ["Succeeded"]
    await env.assert_consistent()


async def test_upstream_dying_mid_blob_leaves_no_blob_and_the_next_pull_completes(
    tmp_path: Path,
    database_url: str | None,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
) -> None:
    image = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "layout"), seed="dying", layer_sizes=(3_000_000,)
    )
    await asyncio.to_thread(push_layout_http, image, distribution_anon.url, "team/dying", "v1")
    recorder = await upstream_proxy(distribution_anon.url)
    tcp = fault_proxy_factory("127.0.0.1", recorder.port)
    upstream = f"127.0.0.1:{tcp.port}"
    env = await cache_env(upstream, database_url, upstream_retry_attempts=1)
    layer = image.layers[0].digest

    got = await env.manifest("cache/dying", "v1")
    assert got.status == 200 and got.body == image.manifest_bytes
    # Every connection from now on is cut after 1 MB of the answer.
    tcp.set_mode(FaultMode.reset(1_000_000, once=False))
    async with env.reg.http.get(f"{env.reg.url}/v2/cache/dying/blobs/{layer}") as response:
        if response.status == 200:
            # Begun before the upstream died: the body must break off, never end cleanly.
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        else:
            assert response.status == 502, await response.text()
    await wait_for_jobs(env, 1)
    assert not has_blob_file(env.data_dir, layer)
    # Asked again while the upstream still dies: fetched again, and broken off again.
    async with env.reg.http.get(f"{env.reg.url}/v2/cache/dying/blobs/{layer}") as response:
        if response.status == 200:
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        else:
            assert response.status == 502, await response.text()
    assert not has_blob_file(env.data_dir, layer)

    tcp.set_mode(FaultMode.passthrough())
    got = await env.manifest("cache/dying", "v1")
    assert got.status == 200 and got.body == image.manifest_bytes
    got = await env.blob("cache/dying", layer)
    assert got.status == 200
    assert "sha256:" + hashlib.sha256(got.body).hexdigest() == layer
    operations = await wait_for_jobs(env, 2)
    assert sorted(op["status"] for op in operations) == ["Failed", "Succeeded"]
    await env.assert_consistent()


async def test_a_client_gets_a_blob_as_the_fill_fetches_it_not_after(
    tmp_path: Path,
    database_url: str | None,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
) -> None:
    """A client asking for a blob the fill's import job is fetching follows that fetch: its
    first bytes come while the upstream is still sending (not once the blob is stored), the
    upstream sends the blob once, and the client's copy is exact."""
    image = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "layout"), seed="follow", layer_sizes=(2_000_000,)
    )
    await asyncio.to_thread(push_layout_http, image, distribution_anon.url, "team/slow", "v1")
    recorder = await upstream_proxy(distribution_anon.url)
    tcp = fault_proxy_factory("127.0.0.1", recorder.port)
    tcp.set_mode(FaultMode.bandwidth(800_000))  # the layer takes ~2.5 s
    env = await cache_env(f"127.0.0.1:{tcp.port}", database_url)
    layer = image.layers[0].digest

    got = await env.manifest("cache/slow", "v1")
    assert got.status == 200 and got.body == image.manifest_bytes
    async with asyncio.timeout(30):
        while not gets(recorder, f"/blobs/{layer}"):  # the job's fetch has begun
            await asyncio.sleep(0.02)
    async with env.reg.http.get(f"{env.reg.url}/v2/cache/slow/blobs/{layer}") as response:
        assert response.status == 200
        first = await response.content.readexactly(1000)
        stored_when_first_bytes_came = has_blob_file(env.data_dir, layer)
        body = first + await response.read()
    assert not stored_when_first_bytes_came
    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer
    assert gets(recorder, f"/blobs/{layer}") == 1  # followed, not fetched again
    assert [op["status"] for op in await wait_for_jobs(env, 1)] == ["Succeeded"]
    await env.assert_consistent()


async def test_wrong_bytes_from_the_upstream_are_never_committed(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    image = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "layout"), seed="corrupt", layer_sizes=(200_000,)
    )
    await asyncio.to_thread(push_layout_http, image, distribution_anon.url, "team/bad", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    layer = image.layers[0].digest
    proxy.corrupt(f"/blobs/{layer}")
    env = await cache_env(proxy.host, upstream_retry_attempts=1)

    assert (await env.manifest("cache/bad", "v1")).status == 200
    async with env.reg.http.get(f"{env.reg.url}/v2/cache/bad/blobs/{layer}") as response:
        if response.status == 200:
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        else:
            assert response.status == 502
    assert not has_blob_file(env.data_dir, layer)


async def test_a_stale_tag_is_rechecked_with_a_head_and_a_moved_tag_pulled_again(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    first = await asyncio.to_thread(small_index, tmp_path, seed="first", platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, first, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host, cache_tag_ttl_seconds=0)
    await pull_all(env, "cache/app", "v1", first)
    await wait_for_jobs(env, 1)
    manifest_gets = gets(proxy, "/manifests/")
    heads = gets(proxy, "/manifests/", "HEAD")

    # Unchanged upstream: one HEAD per pull, no GET (no pull spent on a rate-limited host).
    for more in (1, 2):
        got = await env.manifest("cache/app", "v1")
        assert got.status == 200 and got.body == first.index_bytes
        assert gets(proxy, "/manifests/v1", "HEAD") == heads + more
    assert gets(proxy, "/manifests/", "GET") == manifest_gets
    # By digest: never re-checked.
    assert (await env.manifest("cache/app", first.digest)).status == 200
    assert gets(proxy, "/manifests/", "HEAD") == heads + 2

    second = await asyncio.to_thread(
        small_index, tmp_path, seed="second", platforms=("linux/arm64",)
    )
    await asyncio.to_thread(push_layout_http, second, distribution_anon.url, "team/app", "v1")
    await pull_all(env, "cache/app", "v1", second)
    await wait_for_jobs(env, 2)
    assert (await env.manifest("cache/app", "v1")).body == second.index_bytes
    await env.assert_consistent()


async def test_an_upstream_outage_serves_the_cached_tag_and_counts_it(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host, cache_tag_ttl_seconds=0, upstream_retry_attempts=1)
    await pull_all(env, "cache/app", "v1", index)
    await wait_for_jobs(env, 1)

    await proxy.close()  # the upstream is gone
    await pull_all(env, "cache/app", "v1", index)
    assert "serving cached cache/app:v1" in caplog.text
    metrics = await fetch(env.reg.http, env.reg.url, "/metrics")
    assert b"transship_cache_stale_served_total 1.0" in metrics.body


async def test_a_caller_who_may_not_pull_triggers_no_upstream_request(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host, data_plane_auth=True)
    blob = index.blob_digests[0]
    for path in ("/v2/cache/app/manifests/v1", f"/v2/cache/app/blobs/{blob}"):
        for method in ("GET", "HEAD"):
            async with env.reg.http.request(method, env.reg.url + path) as response:
                assert response.status == 401, (method, path)
    assert not proxy.seen
    assert not await env.admin.operations(TARGET)


async def test_pull_right_alone_pulls_through_and_no_right_fetches_nothing(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host, data_plane_auth=True)
    owner = IdentityClient(env.reg.http, env.reg.url, owner_credential(env.data_dir))
    stranger = await owner.create_service_principal("stranger")
    puller = await owner.create_service_principal("puller")
    await owner.assign(env.admin.registry_id(TARGET), puller.object_id, "AcrPull")
    child = index.children[0]

    for path in ("/v2/cache/app/manifests/v1", f"/v2/cache/app/blobs/{child.config.digest}"):
        async with env.reg.http.get(
            env.reg.url + path, headers={"Authorization": stranger.basic}
        ) as response:
            assert response.status in (401, 403), (path, response.status)
    assert not proxy.seen
    assert not await env.admin.operations(TARGET)

    # AcrPull has no push right: the service writes the cache on the rule's behalf.
    headers = {"Authorization": puller.basic, "Accept": index.media_type}
    async with env.reg.http.get(
        f"{env.reg.url}/v2/cache/app/manifests/v1", headers=headers
    ) as response:
        assert response.status == 200 and await response.read() == index.index_bytes
    async with env.reg.http.get(
        f"{env.reg.url}/v2/cache/app/blobs/{child.config.digest}", headers=headers
    ) as response:
        assert response.status == 200
        assert "sha256:" + hashlib.sha256(await response.read()).hexdigest() == child.config.digest
    operations = await wait_for_jobs(env, 1)
    assert [op["status"] for op in operations] == ["Succeeded"]


async def test_a_rule_whose_credentials_cannot_be_resolved_is_a_clear_502(
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    rules = env.reg.services.pull_through
    assert rules is not None
    broken = CredentialSetUnavailable("hub-creds", "https://vault/secrets/hub", "not set")
    env_rules = rules._rules
    assert isinstance(env_rules, StaticCacheRules)
    env_rules.rules.insert(0, Rule("locked", "locked/*", proxy.host, "team/*", broken=broken))
    got = await env.manifest("locked/app", "v1")
    assert got.status == 502, got
    assert "hub-creds" in got.body.decode()
    assert not proxy.seen


async def test_a_cached_repository_is_ordinary_deleted_it_fills_again(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    await pull_all(env, "cache/app", "v1", index)
    await wait_for_jobs(env, 1)

    async with env.reg.request("DELETE", "/acr/v1/cache/app") as r:
        assert r.status in (200, 202), await r.text()
    assert await env.tags("cache/app") is None
    # Nothing pinned is left behind by the pull-through: a collection past the grace period
    # reclaims every blob of the deleted image.
    report = await env.reg.services.gc.run(now=datetime.now(UTC) + timedelta(days=2))
    assert set(index.blob_digests) <= set(map(str, report.deleted_blobs)), report.summary()
    await pull_all(env, "cache/app", "v1", index)
    operations = await wait_for_jobs(env, 2)
    assert [op["status"] for op in operations] == ["Succeeded", "Succeeded"]
    assert await env.tags("cache/app") == ["v1"]
    await env.assert_consistent()


async def test_a_blob_asked_for_on_its_own_is_fetched_from_the_rules_upstream(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    """What another server process answers for a blob of an image this one is filling (or
    a client asking for a blob by digest): the upstream repository's blob, verified."""
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    layer = index.children[0].layers[0]

    async with env.reg.request("HEAD", f"/v2/cache/app/blobs/{layer.digest}") as r:
        assert r.status == 200 and r.content_length == layer.descriptor.size
    assert gets(proxy, f"/blobs/{layer.digest}") == 0  # a HEAD is answered with a HEAD
    got = await env.blob("cache/app", layer.digest)
    assert got.status == 200
    assert "sha256:" + hashlib.sha256(got.body).hexdigest() == layer.digest
    assert gets(proxy, f"/blobs/{layer.digest}") == 1
    got = await env.blob("cache/app", layer.digest)  # linked now: served locally
    assert got.status == 200 and gets(proxy, f"/blobs/{layer.digest}") == 1

    unknown = "sha256:" + "0" * 64
    got = await env.blob("cache/app", unknown)
    assert got.status == 404 and json.loads(got.body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    got = await env.blob("other/app", layer.digest)  # no rule: nothing asked upstream
    assert got.status == 404
    assert not proxy.requests_to("/v2/team/app/blobs/" + unknown, "GET")
    assert not [s for s in proxy.seen if "/other/" in s.path]
    await env.assert_consistent()


async def test_a_cache_rule_made_through_arm_pulls_through(
    tmp_path: Path,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    """The composition root's own lookup: a rule created with the ARM API (anonymous
    upstream, no credential set) makes its repositories pull through."""
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64",))
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, upstreams=insecure(proxy.host))
    async with running_registry(settings) as reg:
        admin = Management(reg, data_dir)
        env = ImportEnv(reg, admin, data_dir, database_url)
        got = await env.manifest("cache/app", "v1")
        assert got.status == 404 and not proxy.seen  # no rule yet
        rule = {
            "properties": {
                "sourceRepository": f"{proxy.host}/team/*",
                "targetRepository": "cache/*",
            }
        }
        status, made, _ = await admin.call(
            "PUT", f"{admin.base}/default/cacheRules/team-images", rule
        )
        assert status in (200, 201), made
        await pull_all(env, "cache/app", "v1", index)
        operations = await wait_for_jobs(env, 1)
        assert [op["status"] for op in operations] == ["Succeeded"]


async def test_a_fill_run_by_another_process_reads_the_manifests_it_was_queued_with(
    tmp_path: Path,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    """A server that does no background work answers the first pull; the import job that
    copies the image runs in another process over the same database and store (`serve
    --workers N`, a `transship worker`, another replica): it spends no upstream pull on
    the manifests the server already fetched."""
    index = await asyncio.to_thread(small_index, tmp_path)
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    data_dir = tmp_path / "data"
    upstreams = insecure(proxy.host)
    server_settings = make_settings(data_dir, database_url, upstreams=upstreams)
    server_settings = server_settings.model_copy(update={"background_work": False})
    rules = StaticCacheRules([Rule("team", "cache/*", proxy.host, "team/*")])
    async with cached_registry(server_settings, rules) as server:
        admin = Management(server, data_dir)
        await admin.create_registry(TARGET)
        env = ImportEnv(server, admin, data_dir, database_url)
        got = await env.manifest("cache/app", "v1")
        assert got.status == 200 and got.body == index.index_bytes
        for child in index.children:
            got = await env.manifest("cache/app", child.digest)
            assert got.status == 200 and got.body == child.manifest_bytes
        (queued,) = await admin.operations(TARGET)
        assert queued["properties"]["state"] == "queued"  # nobody here runs it
        worker_settings = make_settings(data_dir, database_url, upstreams=upstreams)
        async with running_registry(worker_settings):
            (done,) = await wait_for_jobs(env, 1)
        assert done["status"] == "Succeeded", done
        await pull_all(env, "cache/app", "v1", index)
    # Each manifest came from the upstream once, for the pull; the job read them from what
    # it was queued with. Its blobs, fetched by the job, once each.
    assert gets(proxy, "/manifests/v1") == 1
    for child in index.children:
        assert gets(proxy, f"/manifests/{child.digest}") == 1, child.digest
    for digest in index.blob_digests:
        assert gets(proxy, f"/blobs/{digest}") == 1, digest


async def test_a_range_of_a_blob_being_pulled_through_is_answered_206(
    tmp_path: Path,
    cache_env: CacheEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    """A client resuming a layer (containerd sends `Range`) gets the part it asked for,
    whether the blob is relayed from the upstream right now or already stored."""
    index = await asyncio.to_thread(
        small_index, tmp_path, platforms=("linux/amd64",), layer_sizes=(300_000,)
    )
    await asyncio.to_thread(push_layout_http, index, distribution_anon.url, "team/app", "v1")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await cache_env(proxy.host)
    layer = index.children[0].layers[0]
    data = index.layout.blob_path(layer.digest).read_bytes()
    path = f"/v2/cache/app/blobs/{layer.digest}"

    for asked, span in (("bytes=1000-1999", (1000, 2000)), ("bytes=-500", (len(data) - 500, None))):
        async with env.reg.request("GET", path, headers={"Range": asked}) as r:
            body = await r.read()
            assert r.status == 206, (r.status, body[:200])
            end = len(data) if span[1] is None else span[1]
            assert r.headers["Content-Range"] == f"bytes {span[0]}-{end - 1}/{len(data)}"
        assert body == data[span[0] : end]
    # The first was relayed as fetched, the second served stored: one upstream fetch.
    assert gets(proxy, f"/blobs/{layer.digest}") == 1
    async with env.reg.request("GET", path, headers={"Range": f"bytes={len(data)}-"}) as r:
        assert r.status == 416
    await env.assert_consistent()
