"""Batch imports (importImages, a Transship extension) from a real docker-registry, on
SQLite and PostgreSQL: per-item reports with a missing tag and refused credentials among
items that succeed, a re-run that is unchanged and costs HEADs only upstream, cancel, and a
validation refusal that queues nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.conftest import TARGET, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.support.batches import (
    batch_status,
    batches_rows,
    cancel_batch,
    item,
    push_small_images,
    start_batch,
    wait_batch,
)

REPOSITORIES = ("team/a", "team/b", "team/c")


async def test_batch_reports_each_item_and_reruns_unchanged_with_heads_only(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    distribution_htpasswd: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    built = await push_small_images(tmp_path, distribution_anon.url, REPOSITORIES)
    proxy = await upstream_proxy(distribution_anon.url)
    private = distribution_htpasswd.url.removeprefix("http://")
    env = await import_env(database_url, upstreams=insecure(proxy.host, private))
    good = [item(proxy.host, f"{r}:v1", mode="Force") for r in REPOSITORIES]
    refused = item(private, "team/a:v1", "private/a:v1")
    refused["source"]["credentials"] = {"username": "tester", "password": "not-the-password"}
    images = [good[0], item(proxy.host, "team/a:missing"), good[1], refused, good[2]]

    started = await start_batch(env.admin, TARGET, images)
    assert started.status == 202, started.body
    assert started.headers["Location"] == started.url
    assert started.body["properties"]["counts"]["total"] == 5
    final = await wait_batch(env.admin, started.url)

    assert final["status"] == "Failed", final
    properties = final["properties"]
    assert properties["state"] == "completedWithFailures"
    assert final["error"]["code"] == "BatchItemsFailed"
    counts = properties["counts"]
    assert (counts["succeeded"], counts["failed"], counts["unchanged"]) == (3, 2, 0)
    items = properties["items"]
    assert [i["index"] for i in items] == list(range(5))
    for position, repository in ((0, "team/a"), (2, "team/b"), (4, "team/c")):
        entry = items[position]
        assert entry["operation"]["properties"]["state"] == "succeeded", entry
        assert entry["digest"] == built[repository].digest
        assert entry["unchanged"] is False
        assert entry["operation"]["properties"]["targetTags"] == [f"{repository}:v1"]
        assert entry["operation"]["properties"]["progress"]["bytesFetched"] > 0
        got = await env.manifest(repository, "v1")
        assert got.status == 200 and got.body == built[repository].manifest_bytes
    missing, denied = items[1], items[3]
    assert missing["operation"]["properties"]["state"] == "failed"
    assert missing["operation"]["error"]["code"] == "ManifestUnknown", missing
    assert missing["digest"] is None and missing["unchanged"] is False
    assert denied["operation"]["properties"]["state"] == "failed"
    assert denied["operation"]["error"]["code"] == "UpstreamUnauthorized", denied
    assert "not-the-password" not in str(final)
    # Each item is an ordinary import operation too.
    listed = {o["name"] for o in await env.admin.operations(TARGET)}
    assert {i["operation"]["name"] for i in items} <= listed

    # The same batch again (the images that exist): nothing to copy, each manifest only
    # HEADed upstream, and the report says unchanged.
    proxy.seen.clear()
    again = await start_batch(env.admin, TARGET, good)
    final = await wait_batch(env.admin, again.url)
    assert final["status"] == "Succeeded" and final["properties"]["state"] == "succeeded", final
    counts = final["properties"]["counts"]
    assert (counts["succeeded"], counts["unchanged"], counts["bytesFetched"]) == (3, 3, 0)
    assert all(i["unchanged"] for i in final["properties"]["items"])
    assert [i["digest"] for i in final["properties"]["items"]] == [
        built[r].digest for r in REPOSITORIES
    ]
    assert proxy.blob_requests() == []
    assert proxy.requests_to("/manifests/", "GET") == [], proxy.seen
    assert len(proxy.requests_to("/manifests/", "HEAD")) == len(REPOSITORIES)

    # One image changed upstream: only it is copied, the others stay unchanged.
    changed = await push_small_images(
        tmp_path / "changed", distribution_anon.url, ["team/b"], variant="-2"
    )
    assert changed["team/b"].digest != built["team/b"].digest
    proxy.seen.clear()
    third = await wait_batch(env.admin, (await start_batch(env.admin, TARGET, good)).url)
    entries = third["properties"]["items"]
    assert [e["unchanged"] for e in entries] == [True, False, True], entries
    assert entries[1]["digest"] == changed["team/b"].digest
    fetched = {s.path.rsplit("/", 1)[-1] for s in proxy.blob_requests()}
    assert fetched and fetched <= set(changed["team/b"].blob_digests)
    await env.assert_consistent()


async def test_cancel_of_a_batch_cancels_its_queued_and_running_items(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    await push_small_images(tmp_path, distribution_anon.url, REPOSITORIES)
    proxy = await upstream_proxy(distribution_anon.url)
    held = proxy.hold("/blobs/")
    # Two imports at a time into the registry: two items run (held at their blobs), the
    # third waits for a slot.
    env = await import_env(
        database_url, upstreams=insecure(proxy.host), import_max_running_per_registry=2
    )
    try:
        started = await start_batch(
            env.admin, TARGET, [item(proxy.host, f"{r}:v1") for r in REPOSITORIES]
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            running = await batch_status(env.admin, started.url)
            counts = running["properties"]["counts"]
            assert counts["running"] <= 2, counts
            if counts["running"] == 2:
                break
            assert loop.time() < deadline, running
            await asyncio.sleep(0.1)
        assert running["status"] == "InProgress"
        assert counts["queued"] == 1 and counts["succeeded"] == 0

        status, body = await cancel_batch(env.admin, started.url)
        assert status == 200, body
        assert body["properties"]["cancelRequested"] is True
        assert body["properties"]["counts"]["canceled"] >= 1
        final = await wait_batch(env.admin, started.url)
    finally:
        held.release.set()
    assert final["status"] == "Canceled" and final["properties"]["state"] == "canceled", final
    states = [i["operation"]["properties"]["state"] for i in final["properties"]["items"]]
    assert states == ["canceled"] * 3
    for repository in REPOSITORIES:
        assert await env.tags(repository) is None
    # A batch that ended does not change when canceled again.
    status, body = await cancel_batch(env.admin, started.url)
    assert status == 200 and body["properties"]["state"] == "canceled"


async def test_an_invalid_item_refuses_the_whole_batch_and_queues_nothing(
    import_env: ImportEnvFactory, database_url: str | None
) -> None:
    env = await import_env(database_url, upstreams=insecure("upstream.test"))
    good = item("upstream.test", "team/a:v1")
    cases = [
        ([good, {"source": {"registryUri": "upstream.test"}}], "images[1].source.sourceImage"),
        ([good, item("upstream.test", "team/a:v1", "Bad Name:v1")], "images[1].targetTags"),
        ([good, item("upstream.test", "team/a:v1", platforms=["linux"])], "images[1].platforms"),
        ([good, good, item("upstream.test", "a:v1", dryRun=True)], "images[2].dryRun"),
    ]
    for images, target in cases:
        started = await start_batch(env.admin, TARGET, images)
        assert started.status == 400, started.body
        error = started.body["error"]
        assert error["target"].startswith(target), error
        assert target.split(".")[0] in error["message"], error
    started = await start_batch(env.admin, TARGET, [])
    assert started.status == 400 and started.body["error"]["target"] == "images"
    assert await batches_rows(env.admin) == (0, 0)


async def test_a_batch_of_another_registry_is_not_found(
    import_env: ImportEnvFactory, database_url: str | None
) -> None:
    env = await import_env(database_url, upstreams=insecure("upstream.test"))
    await env.admin.create_registry("otherregistry")
    started = await start_batch(env.admin, TARGET, [item("upstream.test", "team/a:v1")])
    other = started.url.replace(f"/registries/{TARGET}/", "/registries/otherregistry/")
    status, body, _ = await env.admin.call("GET", other.split("?")[0])
    assert status == 404 and body["error"]["code"] == "OperationNotFound"
    status, body, _ = await env.admin.call("POST", other.split("?")[0] + "/cancel")
    assert status == 404
    await asyncio.wait_for(wait_batch(env.admin, started.url), 60)


async def test_a_large_batch_is_queued_described_and_canceled_at_once(
    import_env: ImportEnvFactory, database_url: str | None
) -> None:
    # Under the loop-stall guard: queuing and describing hundreds of items stays off the loop.
    env = await import_env(database_url, upstreams=insecure("upstream.test"))
    images = [item("upstream.test", f"team/app{i}:v1") for i in range(400)]
    started = await start_batch(env.admin, TARGET, images)
    assert started.status == 202, started.body
    assert started.body["properties"]["counts"]["total"] == 400
    assert [i["index"] for i in started.body["properties"]["items"]] == list(range(400))
    status, body = await cancel_batch(env.admin, started.url)
    assert status == 200 and body["properties"]["cancelRequested"] is True
    final = await wait_batch(env.admin, started.url)
    assert final["status"] in ("Canceled", "Failed"), final["status"]
    assert final["properties"]["counts"]["succeeded"] == 0
    assert await batches_rows(env.admin) == (1, 400)
