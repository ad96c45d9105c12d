"""A dry run is authorized exactly as the import: importImage on the target and pull on a
same-service source, or 403 — and it then reads a same-service source as the import would
(its blobs linked, not fetched; no upstream request)."""

from __future__ import annotations

from typing import Any

from tests.integration.test_import_authorization import World, by_id, start_import, tags_of
from tests.integration.test_import_authorization import world as authorization_world

# The world of the import authorization tests, as a fixture of this module.
__all__ = ["authorization_world"]


def dry(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "dryRun": True}


async def test_a_reader_of_the_target_gets_403_for_a_dry_run(authorization_world: World) -> None:
    caller = await authorization_world.principal(
        "dry-reader", target_id="Reader", source_id="AcrPull"
    )
    status, error, status_url = await start_import(
        caller, authorization_world.target_id, dry(by_id(authorization_world.source_id))
    )
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error
    assert "importImage/action" in error["error"]["message"]
    assert status_url is None


async def test_an_importer_without_pull_on_the_source_gets_403_for_a_dry_run(
    authorization_world: World,
) -> None:
    caller = await authorization_world.principal("dry-without-pull", target_id="Contributor")
    status, error, _ = await start_import(
        caller, authorization_world.target_id, dry(by_id(authorization_world.source_id))
    )
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error
    assert "registries/pull/read" in error["error"]["message"]


async def test_an_importer_with_both_rights_gets_the_plan_and_nothing_is_written(
    authorization_world: World,
) -> None:
    caller = await authorization_world.principal(
        "dry-importer", target_id="Contributor", source_id="AcrPull"
    )
    status, plan, status_url = await start_import(
        caller, authorization_world.target_id, dry(by_id(authorization_world.source_id))
    )
    assert status == 200, plan
    assert status_url is None
    assert plan["root"] == authorization_world.digest
    assert plan["source"].endswith("/app/web:1"), plan["source"]
    # Same service: the source repository's blobs are linked (zero-copy), nothing upstream.
    blobs = plan["blobs"]
    assert blobs["total"] > 0 and blobs["present"] == blobs["total"]
    assert blobs["bytesToFetch"] == 0
    assert plan["spentRequests"]["total"] == plan["predictedRequests"]["total"] == 0
    assert plan["targetTags"] == [
        {"tag": "app/web:1", "action": "create", "current": None, "reason": None}
    ]
    assert await tags_of(authorization_world, authorization_world.target_id, "app/web") == []
    operations = await authorization_world.owner.ok(
        "GET", authorization_world.target_id + "/importOperations"
    )
    assert operations["value"] == []
