"""Scheduled sync against a real docker-registry behind the counting proxy, on SQLite and
PostgreSQL: a first run copies the selected tags; a run without changes costs HEAD requests
only (no manifest GET, no blob GET); a tag moved upstream is the only one copied again; a tag
deleted upstream is untagged here with mirrorDeletions; a scheduled rule runs on its own in
the supervised loop; two workers racing for a rule make one run; bad rules are refused
naming the field."""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path

from tests.integration.conftest import TARGET, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex
from tests.support.batches import push_small_images
from tests.support.sync import (
    delete_upstream_manifest,
    outcomes,
    put_rule,
    rule_path,
    run_rule,
    runs,
    start_run,
    wait_run,
)
from transship.cache.sync import SyncService
from transship.worker.sync_loop import SyncWorker

FAST = {"sync_poll_seconds": 0.2, "sync_min_interval_seconds": 1}
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")


async def _push_versions(tmp_path: Path, url: str, variant: str = "") -> dict[str, str]:
    """team/app at each version (and `latest`, `nightly`), each its own image; tag → digest."""
    digests = {}
    for tag in (*VERSIONS, "latest", "nightly"):
        built = await push_small_images(tmp_path, url, ["team/app"], tag=tag, variant=variant)
        digests[tag] = built["team/app"].digest
    return digests


async def test_sync_copies_what_changed_with_heads_only_otherwise(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    digests = await _push_versions(tmp_path, distribution_anon.url)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host), **FAST)
    status, rule = await put_rule(
        env.admin,
        TARGET,
        "app-mirror",
        {
            "sourceRegistry": proxy.host,
            "sourceRepositories": ["team/app"],
            "targetRepository": "mirror/app",
            "tagFilter": {"semver": ">=1", "exclude": "nightly"},
            "mirrorDeletions": True,
        },
    )
    assert status == 201, rule
    assert rule["properties"]["intervalSeconds"] is None
    assert rule["properties"]["lastRun"] is None

    first = await run_rule(env.admin, TARGET, "app-mirror")
    assert first["state"] == "succeeded", first
    assert first["trigger"] == "manual"
    assert outcomes(first) == dict.fromkeys(VERSIONS, "copied")
    assert first["counts"]["copied"] == 3 and first["importBatch"]
    for entry in first["tags"]:
        assert entry["digest"] == digests[entry["tag"]]
        assert entry["upstreamDigest"] == digests[entry["tag"]]
        assert entry["operation"]
    assert sorted(await env.tags("mirror/app") or []) == sorted(VERSIONS)
    # The copies are ordinary import operations.
    listed = {o["name"] for o in await env.admin.operations(TARGET)}
    assert {t["operation"] for t in first["tags"]} <= listed

    # No change upstream: one tag list and one HEAD per tag; no GET of any manifest or blob.
    proxy.seen.clear()
    second = await run_rule(env.admin, TARGET, "app-mirror")
    assert second["state"] == "succeeded", second
    assert outcomes(second) == dict.fromkeys(VERSIONS, "unchanged")
    assert second["importBatch"] is None
    assert proxy.requests_to("/manifests/", "GET") == []
    assert proxy.blob_requests() == []
    assert len(proxy.requests_to("/manifests/", "HEAD")) == 3
    assert len(proxy.requests_to("/tags/list")) == 1
    # The run's own count of what it sent says as much.
    sent = second["upstreamRequests"]
    assert (sent["manifestHeads"], sent["manifestGets"], sent["pulls"]) == (3, 0, 0), sent
    assert sent["total"] == len(proxy.seen)

    # 1.1.0 moves upstream: only it is copied.
    moved = await push_small_images(
        tmp_path, distribution_anon.url, ["team/app"], tag="1.1.0", variant="-moved"
    )
    proxy.seen.clear()
    third = await run_rule(env.admin, TARGET, "app-mirror")
    assert outcomes(third) == {"1.0.0": "unchanged", "1.1.0": "copied", "2.0.0": "unchanged"}
    gets = proxy.requests_to("/manifests/", "GET")
    assert gets and all("1.1.0" in s.path or "sha256:" in s.path for s in gets)
    assert all("1.0.0" not in s.path and "2.0.0" not in s.path for s in gets)
    got = await env.manifest("mirror/app", "1.1.0")
    assert got.status == 200 and got.body == moved["team/app"].manifest_bytes

    # 2.0.0 is deleted upstream: untagged here (mirrorDeletions), the others stay.
    await delete_upstream_manifest(distribution_anon.url, "team/app", digests["2.0.0"])
    fourth = await run_rule(env.admin, TARGET, "app-mirror")
    assert outcomes(fourth) == {"1.0.0": "unchanged", "1.1.0": "unchanged", "2.0.0": "deleted"}
    assert sorted(await env.tags("mirror/app") or []) == ["1.0.0", "1.1.0"]

    history = await runs(env.admin, TARGET, "app-mirror")
    assert [r["name"] for r in history] == [
        fourth["name"],
        third["name"],
        second["name"],
        first["name"],
    ]
    status, shown, _ = await env.admin.call("GET", rule_path(TARGET, "app-mirror"))
    assert status == 200 and shown["properties"]["lastRun"]["name"] == fourth["name"]
    await env.assert_consistent()


async def test_sync_does_not_overwrite_tags_it_did_not_create(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    await push_small_images(tmp_path, distribution_anon.url, ["team/app"], tag="1.0.0")
    await push_small_images(tmp_path, distribution_anon.url, ["other/app"], tag="1.0.0")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host), **FAST)
    # Someone's own mirror/app:1.0.0 (another image).
    imported = await env.run_import(
        {
            "source": {"registryUri": proxy.host, "sourceImage": "other/app:1.0.0"},
            "targetTags": ["mirror/app:1.0.0"],
        }
    )
    assert imported["status"] == "Succeeded", imported
    before = await env.manifest("mirror/app", "1.0.0")
    status, _ = await put_rule(
        env.admin,
        TARGET,
        "careful",
        {
            "sourceRegistry": proxy.host,
            "sourceRepositories": ["team/app"],
            "targetRepository": "mirror/app",
        },
    )
    assert status == 201
    run = await run_rule(env.admin, TARGET, "careful")
    assert run["state"] == "completedWithFailures", run
    assert run["error"]["code"] == "SyncTagsFailed"
    (entry,) = run["tags"]
    assert entry["outcome"] == "failed" and entry["reason"].startswith("TagAlreadyExists")
    after = await env.manifest("mirror/app", "1.0.0")
    assert after.body == before.body


async def test_scheduled_rule_runs_in_the_supervised_loop(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    await push_small_images(tmp_path, distribution_anon.url, ["team/app"], tag="1.0.0")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(None, upstreams=insecure(proxy.host), **FAST)
    status, rule = await put_rule(
        env.admin,
        TARGET,
        "every-second",
        {
            "sourceRegistry": proxy.host,
            "sourceRepositories": ["team/app"],
            "intervalSeconds": 1,
        },
    )
    assert status == 201 and rule["properties"]["nextRunTime"], rule
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        found = await runs(env.admin, TARGET, "every-second")
        ended = [r for r in found if r["state"] not in ("queued", "running")]
        if len(ended) >= 2:
            break
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.2)
    assert all(r["trigger"] == "scheduled" for r in ended)
    assert ended[-1]["counts"]["copied"] == 1 and ended[0]["counts"]["unchanged"] == 1
    assert await env.tags("team/app") == ["1.0.0"]
    async with env.reg.http.get(f"{env.reg.url}/readyz") as r:
        ready = await r.json()
    loops = {loop["name"]: loop for loop in ready["loops"]}
    assert loops["sync"]["state"] == "running", ready


async def test_two_workers_racing_for_a_rule_make_one_run(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    await push_small_images(tmp_path, distribution_anon.url, ["team/app"], tag="1.0.0")
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host), **FAST)
    status, _ = await put_rule(
        env.admin,
        TARGET,
        "raced",
        {"sourceRegistry": proxy.host, "sourceRepositories": ["team/app"]},
    )
    assert status == 201
    sync = env.reg.services.sync
    # Another process's view of the same service: the same database, another lease owner.
    others = []
    for _ in range(3):
        other = copy.copy(sync)
        other.owner = uuid.uuid4().hex
        other._work = asyncio.Event()
        others.append(other)
    registry = await env.reg.services.registries.get(TARGET)
    assert registry is not None
    view = await sync.get(registry, "raced")
    assert view is not None
    claims = await asyncio.gather(*(s.claim(view.record.id) for s in (sync, *others)))
    assert sorted(claims) == [False, False, False, True]
    winner: SyncService = (sync, *others)[claims.index(True)]
    await winner._release(view.record.id)

    # Three more workers loop beside the server's own; one queued run runs once.
    workers = [SyncWorker(o) for o in others]
    loops = [asyncio.create_task(w.run_forever(lambda: None)) for w in workers]
    try:
        for other in others:
            other.wake()
        proxy.seen.clear()
        started = await start_run(env.admin, TARGET, "raced")
        for other in others:
            other.wake()
        final = await wait_run(env.admin, TARGET, "raced", started["name"])
        await asyncio.sleep(1.0)  # any second run would start within a poll
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for w in workers:
            await w.close()
    assert final["state"] == "succeeded", final
    assert [r["name"] for r in await runs(env.admin, TARGET, "raced")] == [started["name"]]
    assert len(proxy.requests_to("/tags/list")) == 1


async def test_bad_rules_are_refused_naming_the_field(
    import_env: ImportEnvFactory,
) -> None:
    env = await import_env(None, **FAST)
    good = {"sourceRegistry": "registry.example", "sourceRepositories": ["team/app"]}
    cases = [
        ({**good, "tagFilter": {"include": "("}}, "tagFilter.include"),
        ({**good, "tagFilter": {"semver": "banana"}}, "tagFilter.semver"),
        ({**good, "tagFilter": {"newest": 0}}, "tagFilter.newest"),
        ({**good, "sourceRepositories": []}, "sourceRepositories"),
        ({**good, "sourceRepositories": ["Team/App"]}, "sourceRepositories[0]"),
        ({"sourceRepositories": ["a"]}, "sourceRegistry"),
        ({**good, "sourceRegistry": "not a host"}, "sourceRegistry"),
        ({**good, "intervalSeconds": 0}, "intervalSeconds"),
        ({**good, "platforms": ["linux"]}, "platforms[0]"),
        ({**good, "referrerArtifactTypes": ["x/y"]}, "referrerArtifactTypes"),
        ({**good, "targetRepository": "UPPER"}, "targetRepository"),
        ({**good, "mirrorDeletions": "yes"}, "mirrorDeletions"),
        ({**good, "unknownField": 1}, "unknownField"),
    ]
    for body, field in cases:
        status, answer = await put_rule(env.admin, TARGET, "bad-rule", body)
        assert status == 400, (body, answer)
        assert answer["error"]["target"] == field, (body, answer)
        assert field in answer["error"]["message"], answer
    status, answer = await put_rule(env.admin, TARGET, "x", good)
    assert status == 400 and answer["error"]["target"] == "ruleName", answer
    status, answer = await put_rule(env.admin, "nosuchregistry", "rule1", good)
    assert status == 404, answer
    # Credentials are kept sealed and never answered.
    status, answer = await put_rule(
        env.admin,
        TARGET,
        "with-creds",
        {**good, "credentials": {"username": "robot", "password": "s3cret-pw"}},
    )
    assert status == 201, answer
    assert answer["properties"]["credentials"] == {"username": "robot"}
    assert "s3cret-pw" not in str(answer)
    # PATCH changes only what it names; credentials stay unless given.
    status, answer = await put_rule(
        env.admin, TARGET, "with-creds", {"tagFilter": {"newest": 5}}, method="PATCH"
    )
    assert status == 200, answer
    assert answer["properties"]["tagFilter"]["newest"] == 5
    assert answer["properties"]["sourceRepositories"] == ["team/app"]
    assert answer["properties"]["credentials"] == {"username": "robot"}
    status, answer = await put_rule(
        env.admin, TARGET, "with-creds", {"credentials": None}, method="PATCH"
    )
    assert status == 200 and answer["properties"]["credentials"] is None, answer
    status, listed, _ = await env.admin.call("GET", f"/transship/v1/registries/{TARGET}/syncRules")
    assert status == 200 and [r["name"] for r in listed["value"]] == ["with-creds"]
    status, _, _ = await env.admin.call("DELETE", rule_path(TARGET, "with-creds"))
    assert status == 200
    status, _, _ = await env.admin.call("DELETE", rule_path(TARGET, "with-creds"))
    assert status == 204
    status, answer, _ = await env.admin.call("GET", rule_path(TARGET, "with-creds"))
    assert status == 404 and answer["error"]["code"] == "SyncRuleNotFound"


async def test_a_rewritten_platform_subset_is_not_copied_again(
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    upstream_proxy: ProxyFactory,
) -> None:
    """What is stored (a new index of one platform) is not what the upstream names: the run
    compares upstream with upstream and local with local, so no resync loop."""
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(None, upstreams=insecure(proxy.host), **FAST)
    status, rule = await put_rule(
        env.admin,
        TARGET,
        "amd64-only",
        {
            "sourceRegistry": proxy.host,
            "sourceRepositories": ["team/app"],
            "platforms": ["linux/amd64"],
            "platformMode": "rewritten",
        },
    )
    assert status == 201, rule
    assert rule["properties"]["platforms"] == ["linux/amd64"]
    first = await run_rule(env.admin, TARGET, "amd64-only")
    (entry,) = first["tags"]
    assert entry["outcome"] == "copied", first
    assert entry["upstreamDigest"] == upstream_index.digest
    assert entry["digest"] != upstream_index.digest  # the rewritten index
    proxy.seen.clear()
    for _ in range(2):
        again = await run_rule(env.admin, TARGET, "amd64-only")
        assert outcomes(again) == {"v1": "unchanged"}, again
        assert again["importBatch"] is None
    assert proxy.requests_to("/manifests/", "GET") == [] and proxy.blob_requests() == []
    got = await env.manifest("team/app", "v1")
    assert got.status == 200 and got.headers["Docker-Content-Digest"] == entry["digest"]
