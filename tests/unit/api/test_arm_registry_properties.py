"""The registry properties of ACR's ARM API that az sets and reads back (SKU, tags, the
retention policy), the ones Transship refuses rather than drop (data endpoints, soft delete,
quarantine, content trust), checkNameAvailability, listUsages, and the "not supported"
answer of features Transship lacks; on SQLite and PostgreSQL, through the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.imports import PROVIDER, Management
from transship.wire import arm as resources


@pytest.fixture
async def reg(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningRegistry]:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as running:
        yield running


@pytest.fixture
def admin(reg: RunningRegistry, tmp_path: Path) -> Management:
    return Management(reg, tmp_path / "data")


def error(payload: Any) -> tuple[str, str]:
    return payload["error"]["code"], payload["error"].get("target", "")


async def test_put_keeps_sku_and_tags_and_patch_replaces_tags(admin: Management) -> None:
    path = f"{admin.base}/propsreg"
    body = {"location": "local", "sku": {"name": "Basic"}, "tags": {"team": "a", "env": "dev"}}
    status, created, _ = await admin.call("PUT", path, body)
    assert status == 201, created
    resources.Registry.model_validate(created)
    assert created["sku"] == {"name": "Basic", "tier": "Basic"}
    assert created["tags"] == {"env": "dev", "team": "a"}
    # PATCH replaces the tags object as a whole (ARM's semantics) and changes the SKU.
    status, patched, _ = await admin.call(
        "PATCH", path, {"tags": {"env": "prod"}, "sku": {"name": "Standard"}}
    )
    assert status == 200, patched
    assert patched["tags"] == {"env": "prod"} and patched["sku"]["name"] == "Standard"
    # A PATCH without tags or SKU leaves both as they are.
    status, patched, _ = await admin.call("PATCH", path, {"properties": {"adminUserEnabled": True}})
    assert patched["tags"] == {"env": "prod"} and patched["sku"]["name"] == "Standard"
    status, shown, _ = await admin.call("GET", path)
    assert shown["tags"] == {"env": "prod"} and shown["sku"]["tier"] == "Standard"
    # An empty object removes every tag.
    status, patched, _ = await admin.call("PATCH", path, {"tags": {}})
    assert patched["tags"] == {}


@pytest.mark.parametrize(
    ("body", "code", "target"),
    [
        ({"sku": {"name": "Gold"}}, "InvalidParameter", "sku.name"),
        ({"tags": {"a/b": "x"}}, "InvalidParameter", "tags"),
        ({"tags": {"a": "x" * 257}}, "InvalidParameter", "tags"),
        ({"tags": {f"t{i}": "x" for i in range(51)}}, "InvalidParameter", "tags"),
        (
            {"properties": {"policies": {"retentionPolicy": {"status": "enabled", "days": 366}}}},
            "InvalidParameter",
            "properties.policies.retentionPolicy.days",
        ),
        (
            {"properties": {"dataEndpointEnabled": True}},
            "FeatureNotSupported",
            "properties.dataEndpointEnabled",
        ),
        (
            {"properties": {"policies": {"softDeletePolicy": {"status": "enabled"}}}},
            "FeatureNotSupported",
            "properties.policies.softDeletePolicy",
        ),
        (
            {"properties": {"policies": {"softDeletePolicy": {"retentionDays": 30}}}},
            "FeatureNotSupported",
            "properties.policies.softDeletePolicy.retentionDays",
        ),
        (
            {"properties": {"policies": {"trustPolicy": {"status": "enabled"}}}},
            "FeatureNotSupported",
            "properties.policies.trustPolicy",
        ),
        (
            {"properties": {"policies": {"quarantinePolicy": {"status": "enabled"}}}},
            "FeatureNotSupported",
            "properties.policies.quarantinePolicy",
        ),
        (
            {"properties": {"policies": {"exportPolicy": {"status": "disabled"}}}},
            "FeatureNotSupported",
            "properties.policies.exportPolicy",
        ),
    ],
)
async def test_a_refused_property_leaves_the_registry_as_it_was(
    admin: Management, body: dict[str, Any], code: str, target: str
) -> None:
    path = f"{admin.base}/refusedreg"
    status, before, _ = await admin.call(
        "PUT", path, {"location": "local", "sku": {"name": "Premium"}, "tags": {"keep": "me"}}
    )
    assert status == 201
    # Every change in the same request is refused with the bad one: no partial state.
    mixed = {
        **body,
        "properties": {**body.get("properties", {}), "anonymousPullEnabled": True},
    }
    if "tags" not in body:
        mixed["tags"] = {"changed": "yes"}
    status, payload, _ = await admin.call("PATCH", path, mixed)
    assert status == 400, payload
    assert error(payload) == (code, target)
    status, after, _ = await admin.call("GET", path)
    assert after == before
    # A new registry with such a property is not created.
    status, payload, _ = await admin.call("PUT", f"{admin.base}/nevercreated", mixed)
    assert status == 400 and error(payload) == (code, target)
    status, _, _ = await admin.call("GET", f"{admin.base}/nevercreated")
    assert status == 404


async def test_the_policies_as_reported_are_accepted_back(admin: Management) -> None:
    """az's `config retention update` sends back every policy it read with its change."""
    path = f"{admin.base}/policyreg"
    status, created, _ = await admin.call("PUT", path, {"location": "local"})
    assert status == 201
    policies = created["properties"]["policies"]
    assert policies["retentionPolicy"] == {
        "days": 7,
        "lastUpdatedTime": None,
        "status": "disabled",
    }
    assert policies["softDeletePolicy"]["status"] == "disabled"
    changed = {**policies, "retentionPolicy": {"status": "enabled", "days": 0}}
    status, patched, _ = await admin.call("PATCH", path, {"properties": {"policies": changed}})
    assert status == 200, patched
    retention = patched["properties"]["policies"]["retentionPolicy"]
    assert retention["status"] == "enabled" and retention["days"] == 0
    assert retention["lastUpdatedTime"] is not None
    # Days alone keep the status.
    status, patched, _ = await admin.call(
        "PATCH", path, {"properties": {"policies": {"retentionPolicy": {"days": 30}}}}
    )
    retention = patched["properties"]["policies"]["retentionPolicy"]
    assert (retention["status"], retention["days"]) == ("enabled", 30)


async def test_check_name_availability(reg: RunningRegistry, admin: Management) -> None:
    await admin.create_registry("takenname")
    path = f"/subscriptions/{admin.subscription_id}/{PROVIDER}/checkNameAvailability"
    kind = "Microsoft.ContainerRegistry/registries"
    answers = {}
    for name in ("takenname", "TAKENNAME", "freename", "ab", "bad-name"):
        status, payload, _ = await admin.call("POST", path, {"name": name, "type": kind})
        assert status == 200, payload
        resources.NameAvailability.model_validate(payload)
        answers[name] = payload
    assert answers["takenname"] == {
        "nameAvailable": False,
        "reason": "AlreadyExists",
        "message": "The registry takenname is already in use.",
    }
    assert answers["TAKENNAME"]["reason"] == "AlreadyExists"  # names are case-insensitive
    assert answers["freename"] == {
        "nameAvailable": True,
        "availableLoginServerName": reg.services.registries.login_server_for("freename"),
    }
    assert answers["ab"]["reason"] == answers["bad-name"]["reason"] == "Invalid"
    status, payload, _ = await admin.call("POST", path, {"name": "x", "type": "Other/type"})
    assert status == 400 and error(payload) == ("InvalidParameter", "type")
    status, payload, _ = await admin.call(
        "POST", path, {"name": "x", "type": kind}, authorization=None
    )
    assert status == 401


async def test_list_usages_counts_distinct_blobs_scope_maps_and_tokens(
    reg: RunningRegistry, admin: Management
) -> None:
    created = await admin.create_registry("usagereg")
    base = f"{admin.base}/usagereg"

    async def usages(path: str) -> dict[str, dict[str, Any]]:
        status, payload, _ = await admin.call("GET", f"{path}/listUsages")
        assert status == 200, payload
        resources.UsageList.model_validate(payload)
        return {u["name"]: u for u in payload["value"]}

    empty = await usages(base)
    assert empty["Size"] == {
        "name": "Size",
        "limit": 500 * 1024**3,
        "currentValue": 0,
        "unit": "Bytes",
    }
    assert empty["ScopeMaps"]["currentValue"] == empty["Tokens"]["currentValue"] == 0
    assert empty["Webhooks"] == {
        "name": "Webhooks",
        "limit": 500,
        "currentValue": 0,
        "unit": "Count",
    }
    status, scope_map, _ = await admin.call(
        "PUT",
        f"{base}/scopeMaps/readers",
        {"properties": {"actions": ["repositories/app/content/read"]}},
    )
    assert status in (200, 201), scope_map
    status, token, _ = await admin.call(
        "PUT", f"{base}/tokens/reader1", {"properties": {"scopeMapId": scope_map["id"]}}
    )
    assert status in (200, 201), token
    status, hook, _ = await admin.call(
        "PUT",
        f"{base}/webhooks/hook1",
        {
            "location": "westus",
            "properties": {"serviceUri": "https://hooks.example.com/in", "actions": ["push"]},
        },
    )
    assert status in (200, 201), hook
    counted = await usages(base)
    assert counted["ScopeMaps"]["currentValue"] == counted["Tokens"]["currentValue"] == 1
    assert counted["Webhooks"]["currentValue"] == 1
    assert counted["Size"]["currentValue"] == 0  # no content of its own
    assert created["name"] == "usagereg"

    # The default registry (push_image's): the same image in two repositories is stored,
    # and counted, once; another image adds its own blobs.
    expected = 0
    for repository, seed in (("one", b"shared"), ("two", b"shared"), ("three", b"other")):
        await reg.push_image(repository, "v1", seed=seed)
        if repository != "two":
            async with reg.request("GET", f"/v2/{repository}/manifests/v1") as r:
                manifest = await r.json(content_type=None)
            expected += sum(d["size"] for d in (manifest["config"], *manifest["layers"]))
    default = await reg.services.registries.get(reg.services.settings.default_registry)
    assert default is not None and default.resource_group is not None
    path = f"/subscriptions/{default.subscription_id}/resourceGroups/{default.resource_group}"
    used = await usages(f"{path}/{PROVIDER}/registries/{default.name}")
    assert used["Size"]["currentValue"] == expected > 0
    assert (await usages(base))["Size"]["currentValue"] == 0


async def test_features_transship_lacks_answer_feature_not_supported(admin: Management) -> None:
    await admin.create_registry("featurereg")
    base = f"{admin.base}/featurereg"
    for method, path in (
        ("GET", "/tasks"),
        ("PUT", "/replications/westus"),
        ("GET", "/replications/westus"),
        ("POST", "/scheduleRun"),
        ("POST", "/listBuildSourceUploadUrl"),
        ("PUT", "/pipelineRuns/run1"),
        ("GET", "/connectedRegistries"),
        ("DELETE", "/agentPools/pool/x"),
    ):
        status, payload, _ = await admin.call(method, base + path, {})
        assert status == 400, (method, path, payload)
        assert payload["error"]["code"] == "FeatureNotSupported"
        assert "not supported by Transship" in payload["error"]["message"]
    # The replication list is real: there are none.
    status, payload, _ = await admin.call("GET", base + "/replications")
    assert (status, payload) == (200, {"value": []})
    # A registry that does not exist is 404, and a stranger is refused, as everywhere.
    status, payload, _ = await admin.call("GET", f"{admin.base}/nosuchreg/tasks")
    assert status == 404 and payload["error"]["code"] == "ResourceNotFound"
    status, _, _ = await admin.call("GET", base + "/tasks", authorization=None)
    assert status == 401
