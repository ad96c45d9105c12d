"""Updates whose body fields are all optional (webhooks, cache rules, credential sets, sync
rules) still require a body, as their OpenAPI document says: a PATCH without one is refused
with 400 InvalidRequestContent and changes nothing, where it used to answer 200."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import make_settings, running_registry
from tests.support.imports import Management

VAULT = "https://fuzzvault.vault.azure.net/secrets"
USER_ID, PASSWORD_ID = f"{VAULT}/user", f"{VAULT}/password"


@pytest.fixture
async def admin(tmp_path: Path, database_url: str | None) -> AsyncIterator[Management]:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as reg:
        yield Management(reg, tmp_path / "data")


async def _ok(admin: Management, method: str, path: str, body: Any) -> Any:
    status, payload, _ = await admin.call(method, path, body)
    assert status in (200, 201), (method, path, status, payload)
    return payload


async def _resources(admin: Management) -> dict[str, Any]:
    """Create one of each; their paths, with what a PATCH of each would change."""
    registry = admin.registry_id("default")
    for identifier, value in ((USER_ID, "someone"), (PASSWORD_ID, "Pa55word-long")):
        secret = {"identifier": identifier, "value": value}
        await _ok(admin, "PUT", "/transship/v1/secrets", secret)
    credential = {"usernameSecretIdentifier": USER_ID, "passwordSecretIdentifier": PASSWORD_ID}
    creds = f"{registry}/credentialSets/hub-creds"
    set_properties = {"loginServer": "docker.io", "authCredentials": [credential]}
    await _ok(admin, "PUT", creds, {"properties": set_properties})
    rule = f"{registry}/cacheRules/hub-alpine"
    rule_properties = {
        "sourceRepository": "docker.io/library/alpine",
        "targetRepository": "hub/alpine",
        "credentialSetResourceId": creds,
    }
    await _ok(admin, "PUT", rule, {"properties": rule_properties})
    webhook = f"{registry}/webhooks/hookone"
    hook = {"serviceUri": "http://hooks.invalid/hook", "actions": ["push"]}
    await _ok(admin, "PUT", webhook, {"location": admin.location, "properties": hook})
    sync = "/transship/v1/registries/default/syncRules/mirror"
    sync_body = {"sourceRegistry": "docker.io", "sourceRepositories": ["library/alpine"]}
    await _ok(admin, "PUT", sync, sync_body)
    swapped = {"usernameSecretIdentifier": PASSWORD_ID, "passwordSecretIdentifier": USER_ID}
    return {
        creds: {"properties": {"authCredentials": [swapped]}},
        rule: {"properties": {"credentialSetResourceId": None}},
        webhook: {"properties": {"status": "disabled"}},
        sync: {"targetRepository": "mirrored/alpine"},
    }


@pytest.mark.parametrize("raw", [None, b"", b" \n"], ids=["absent", "empty", "blank"])
async def test_an_update_without_a_body_is_refused_and_changes_nothing(
    admin: Management, raw: bytes | None
) -> None:
    changes = await _resources(admin)
    for path, change in changes.items():
        before = await _ok(admin, "GET", path, None)
        status, payload, _ = await admin.call("PATCH", path, None, raw=raw)
        assert status == 400, (path, status, payload)
        assert payload["error"]["code"] == "InvalidRequestContent", payload
        assert "body is required" in payload["error"]["message"]
        assert await _ok(admin, "GET", path, None) == before
        # A body, even one changing a single field, is still an update.
        changed = await _ok(admin, "PATCH", path, change)
        assert changed != before, path
