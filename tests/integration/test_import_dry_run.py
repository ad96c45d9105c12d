"""importImage with `dryRun: true` against a real docker-registry, through the recording
proxy: the plan of a fresh import, of a repeat (everything present), of a NoForce conflict
and of an unknown tag; nothing written by any dry run (rows and blob files compared); and
the upstream requests it reports, for itself and for the real import, against what the
upstream actually served."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory, ProxyFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, OciLayout, build_image, push_layout_http
from tests.support.imports import assert_succeeded, blob_files, push_built
from tests.support.upstream_proxy import Seen, UpstreamProxy
from transship.metadata import schema as s

# Rewritten by reads of the service itself, not by what an import writes; and the upstream
# rate-limit budgets, which count the dry run's manifest GETs: they are real pulls
# (tests/integration/test_import_rate_limit.py checks that).
_VOLATILE_TABLES = {"signing_keys", "service_state", "change_counters", "upstream_budgets"}


async def dry_run(env: ImportEnv, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, payload, headers = await env.admin.call(
        "POST", f"{env.admin.base}/{TARGET}/importImage", {**body, "dryRun": True}
    )
    assert "Location" not in headers, "a dry run starts no operation"
    return status, dict(payload)


async def written(env: ImportEnv) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Every row of every table the service writes, and every blob file."""
    rows = {}
    async with env.reg.services.meta.reading() as q:
        for table in s.metadata.sorted_tables:
            if table.name not in _VOLATILE_TABLES:
                rows[table.name] = sorted(
                    repr(tuple(r)) for r in await q.conn.execute(select(table))
                )
    return rows, await asyncio.to_thread(blob_files, env.data_dir)


def served(seen: list[Seen]) -> dict[str, int]:
    """What the upstream served, in the report's terms."""
    manifest_gets = [r for r in seen if r.method == "GET" and "/manifests/" in r.path]
    return {
        "total": len(seen),
        "manifestGets": len(manifest_gets),
        "manifestHeads": sum(r.method == "HEAD" and "/manifests/" in r.path for r in seen),
        "blobGets": sum(r.method == "GET" and "/blobs/" in r.path for r in seen),
        "challenged": sum(r.status == 401 for r in seen),
        "pulls": sum(r.status not in (401, 429) for r in manifest_gets),
    }


def reported(requests: dict[str, Any]) -> dict[str, int]:
    """The report's counts of requests to the registry itself (token requests apart)."""
    keys = ("manifestGets", "manifestHeads", "blobGets", "challenged", "pulls")
    return {"total": requests["total"] - requests["auth"], **{k: requests[k] for k in keys}}


def body(proxy: UpstreamProxy, mode: str = "NoForce", image: str = "team/app:v1") -> dict[str, Any]:
    return {
        "source": {"registryUri": proxy.host, "sourceImage": image},
        "targetTags": ["app:v1"],
        "mode": mode,
    }


async def test_a_fresh_plan_then_the_real_import_then_a_plan_of_everything_present(
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    upstream_proxy: ProxyFactory,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    before = await written(env)

    status, plan = await dry_run(env, body(proxy))
    assert status == 200, plan
    assert await written(env) == before, "a dry run writes nothing"
    assert await env.admin.operations(TARGET) == []
    assert plan["root"] == upstream_index.digest
    assert plan["source"] == f"{proxy.host}/team/app:v1" and plan["mode"] == "NoForce"
    manifests = plan["manifests"]
    assert [m["digest"] for m in manifests] == list(upstream_index.manifest_digests)
    assert [m["platform"] for m in manifests] == [
        None,
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
    ]
    assert manifests[0]["root"] and not any(m["root"] for m in manifests[1:])
    assert manifests[0]["size"] == len(upstream_index.index_bytes)
    assert manifests[0]["mediaType"] == upstream_index.media_type
    assert not any(m["present"] for m in manifests)
    assert plan["blobs"] == {
        "total": len(upstream_index.blob_digests),
        "present": 0,
        "toFetch": len(upstream_index.blob_digests),
        "bytesTotal": upstream_index.blob_bytes,
        "bytesPresent": 0,
        "bytesToFetch": upstream_index.blob_bytes,
        "foreign": 0,
    }
    assert plan["targetTags"] == [
        {"tag": "app:v1", "action": "create", "current": None, "reason": None}
    ]
    assert plan["wouldSucceed"] is True
    # What the dry run spent is what the upstream served it: four manifest GETs, no blob.
    spent = plan["spentRequests"]
    assert reported(spent) == served(proxy.seen)
    assert spent["manifestGets"] == spent["pulls"] == 4 and spent["blobGets"] == 0
    assert spent["auth"] == 0

    # The real import spends what the dry run predicted.
    proxy.seen.clear()
    assert_succeeded(await env.run_import(body(proxy)))
    predicted = plan["predictedRequests"]
    assert reported(predicted) == served(proxy.seen)
    assert predicted["blobGets"] == len(upstream_index.blob_digests)

    # After it: everything present, the tag unchanged under Force and refused under NoForce
    # (as the real import refuses any existing tag without Force).
    before = await written(env)
    proxy.seen.clear()
    status, again = await dry_run(env, body(proxy, "Force"))
    assert status == 200, again
    assert all(m["present"] for m in again["manifests"])
    blobs = again["blobs"]
    assert blobs["present"] == blobs["total"] and blobs["toFetch"] == blobs["bytesToFetch"] == 0
    assert again["targetTags"] == [
        {"tag": "app:v1", "action": "unchanged", "current": upstream_index.digest, "reason": None}
    ]
    assert again["predictedRequests"]["blobGets"] == 0
    assert reported(again["spentRequests"]) == served(proxy.seen)
    status, noforce = await dry_run(env, body(proxy))
    assert status == 200, noforce
    (tag,) = noforce["targetTags"]
    assert tag["action"] == "refused" and "already this image" in tag["reason"]
    assert noforce["wouldSucceed"] is False
    assert await written(env) == before

    # ...and the forced repeat spends what its plan predicted: manifests only.
    proxy.seen.clear()
    assert_succeeded(await env.run_import(body(proxy, "Force")))
    assert reported(again["predictedRequests"]) == served(proxy.seen)
    await env.assert_consistent()


async def test_a_noforce_conflict_is_refused_and_force_would_move_the_tag(
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
    before = await written(env)

    status, plan = await dry_run(env, body(proxy))
    assert status == 200, plan
    (tag,) = plan["targetTags"]
    assert tag["action"] == "refused" and tag["current"] == old.digest
    assert "NoForce" in tag["reason"] and "already this image" not in tag["reason"]
    assert plan["wouldSucceed"] is False
    status, forced = await dry_run(env, body(proxy, "Force"))
    assert status == 200, forced
    assert forced["targetTags"] == [
        {"tag": "app:v1", "action": "move", "current": old.digest, "reason": None}
    ]
    assert forced["wouldSucceed"] is True
    # Nothing of the upstream image is there yet (the old image shares no blob with it).
    assert forced["blobs"]["present"] == 0
    assert await written(env) == before
    assert proxy.blob_requests() == [], "a dry run fetches no blob"


async def test_an_unknown_tag_is_manifest_unknown_at_once(
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    upstream_proxy: ProxyFactory,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    before = await written(env)
    status, error = await dry_run(env, body(proxy, image="team/app:missing"))
    assert status == 400, error
    assert error["error"]["code"] == "ManifestUnknown", error
    assert "team/app:missing" in error["error"]["message"]
    assert await written(env) == before
    assert await env.admin.operations(TARGET) == []


async def test_an_egress_refusal_is_answered_at_once(
    import_env: ImportEnvFactory, database_url: str | None
) -> None:
    # Loopback is a private address: refused unless the host is configured.
    env = await import_env(database_url)
    before = await written(env)
    status, error = await dry_run(
        env,
        {"source": {"registryUri": "127.0.0.1:9", "sourceImage": "team/app:v1"}, "mode": "Force"},
    )
    assert status in (400, 403), error
    assert error["error"]["code"] != "InternalServerError", error
    assert await written(env) == before
    assert await env.admin.operations(TARGET) == []


async def test_token_auth_requests_are_counted_and_predicted(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    upstream_proxy: ProxyFactory,
) -> None:
    registry = distribution_token
    token_server = registry.token_server
    assert token_server is not None
    image = await asyncio.to_thread(
        build_image, OciLayout(tmp_path / "one"), seed="one", layer_sizes=(3000, 5000)
    )
    await asyncio.to_thread(push_layout_http, image, registry.url, "team/app", "v1", registry.auth)
    proxy = await upstream_proxy(registry.url)
    env = await import_env(upstreams=insecure(proxy.host))
    credentials = {"username": registry.username, "password": registry.password}
    request = body(proxy)
    request["source"]["credentials"] = credentials
    token_server.clear_requests()

    status, plan = await dry_run(env, request)
    assert status == 200, plan
    spent = plan["spentRequests"]
    assert spent["auth"] == len(token_server.requests) == 1
    assert spent["challenged"] == 1 and reported(spent) == served(proxy.seen)
    # The tag is resolved with a HEAD, challenged then repeated with the token: one GET, the
    # only pull (a HEAD or a challenged request is no pull).
    assert spent["manifestHeads"] == 2 and spent["manifestGets"] == 1
    assert spent["pulls"] == 1

    proxy.seen.clear()
    token_server.clear_requests()
    assert_succeeded(await env.run_import(request))
    predicted = plan["predictedRequests"]
    assert predicted["auth"] == len(token_server.requests)
    assert reported(predicted) == served(proxy.seen)
    assert predicted["blobGets"] == len(image.blob_digests)


async def test_concurrent_dry_runs_agree_and_do_not_wait_for_a_running_import(
    import_env: ImportEnvFactory,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    upstream_proxy: ProxyFactory,
) -> None:
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(database_url, upstreams=insecure(proxy.host))
    before = await written(env)
    answers = await asyncio.gather(*(dry_run(env, body(proxy)) for _ in range(4)))
    assert all(status == 200 for status, _ in answers), answers
    plans = [plan for _, plan in answers]
    assert all(plan == plans[0] for plan in plans[1:])
    assert await written(env) == before

    # An import holding its last blob in flight: the dry run answers at once, and counts
    # neither the blobs that import pinned nor its tag (nothing is visible before it commits).
    held = proxy.hold(f"/blobs/{upstream_index.blob_digests[-1]}")
    operation = await env.admin.start_import(TARGET, body(proxy))
    await proxy.wait_for_request(f"/blobs/{upstream_index.blob_digests[-1]}")
    status, during = await asyncio.wait_for(dry_run(env, body(proxy)), timeout=20)
    assert status == 200, during
    assert during["blobs"]["present"] == 0
    assert during["targetTags"][0]["action"] == "create"
    assert held.release is not None
    held.release.set()
    assert_succeeded(await env.admin.wait(operation))
    status, after = await dry_run(env, body(proxy, "Force"))
    assert status == 200 and after["targetTags"][0]["action"] == "unchanged", after


async def test_a_dry_run_flag_that_is_not_a_boolean_is_refused(
    import_env: ImportEnvFactory, database_url: str | None
) -> None:
    env = await import_env(database_url)
    status, error, _ = await env.admin.call(
        "POST",
        f"{env.admin.base}/{TARGET}/importImage",
        {"source": {"registryUri": "docker.io", "sourceImage": "library/alpine:3"}, "dryRun": 1},
    )
    assert status == 400 and error["error"]["code"] == "InvalidParameter", error
    assert "dryRun" in json.dumps(error), error
    assert await env.admin.operations(TARGET) == []


async def test_a_locked_tag_is_refused_even_with_force_as_the_import_is(
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
    async with env.reg.request(
        "PATCH",
        "/acr/v1/app/_tags/v1",
        data=json.dumps({"writeEnabled": False}),
        headers={"Host": env.login_server},
    ) as r:
        assert r.status == 200, await r.text()
    before = await written(env)
    status, plan = await dry_run(env, body(proxy, "Force"))
    assert status == 200, plan
    (tag,) = plan["targetTags"]
    assert tag["action"] == "refused" and tag["current"] == old.digest, tag
    assert "v1" in tag["reason"], tag
    assert plan["wouldSucceed"] is False
    assert await written(env) == before
    # The plan's verdict is the import's.
    final = await env.run_import(body(proxy, "Force"))
    assert final["status"] == "Failed" and final["error"]["code"] == "OperationDisallowed", final
