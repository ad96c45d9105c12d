"""The seed article's import scenarios, as authorization decides them: who may read the source
and write the target, across registries, subscriptions and tenants, and through network
rules (the service importing as a trusted service)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import (
    RunningRegistry,
    make_settings,
    push_image,
    running_registry,
)
from tests.support.identity import Credential, IdentityClient, owner_credential
from tests.support.imports import status_url_of

OTHER_TENANT = "0f0e0d0c-0b0a-4909-8807-060504030201"
SECOND_SUBSCRIPTION = "11111111-2222-4333-8444-555555555555"


@dataclass
class World:
    """One service: the root tenant's owner, a second subscription, a second tenant, and
    registries in each, with `app/web:1` (and `other/x:1`) pushed into every source."""

    reg: RunningRegistry
    owner: IdentityClient
    other_owner: IdentityClient
    subscription: str
    target_id: str
    source_id: str  # same subscription as the target
    far_source_id: str  # second subscription, same tenant
    foreign_id: str  # another tenant
    digest: str

    def client(self, credential: Credential) -> IdentityClient:
        return IdentityClient(self.reg.http, self.reg.url, credential)

    async def principal(self, name: str, **roles: str) -> IdentityClient:
        """A new service principal of the root tenant with `roles` (scope attribute → role)."""
        credential = await self.owner.create_service_principal(name)
        for scope_name, role in roles.items():
            await self.owner.assign(getattr(self, scope_name), credential.object_id, role)
        return self.client(credential)


async def start_import(
    client: IdentityClient, target_id: str, body: dict[str, Any]
) -> tuple[int, Any, str | None]:
    headers = {"Authorization": await client.bearer()}
    async with client.http.post(
        f"{client.url}{target_id}/importImage?api-version=2025-04-01", json=body, headers=headers
    ) as r:
        payload = await r.json(content_type=None)
    found = status_url_of(r.status, payload)
    return r.status, payload, None if found is None else f"{client.url}{found}"


async def run_import(
    client: IdentityClient, target_id: str, body: dict[str, Any]
) -> tuple[int, Any]:
    """(202, final operation status) or (error status, error body)."""
    status, payload, status_url = await start_import(client, target_id, body)
    if status != 202:
        return status, payload
    assert status_url is not None
    for _ in range(300):
        async with client.http.get(
            status_url, headers={"Authorization": await client.bearer()}
        ) as r:
            final = await r.json()
        if final["status"] != "InProgress":
            return status, final
        await asyncio.sleep(0.1)
    raise TimeoutError(final)


async def tags_of(world: World, registry_id: str, repository: str) -> list[str]:
    host = (await world.owner.ok("GET", registry_id))["properties"]["loginServer"]
    async with world.reg.http.get(
        f"{world.reg.url}/v2/{repository}/tags/list",
        headers={"Host": host, "Authorization": world.owner.credential.basic},
    ) as r:
        if r.status == 404:
            return []
        assert r.status == 200, await r.text()
        return list((await r.json())["tags"] or [])


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    async with running_registry(make_settings(tmp_path, database_url, data_plane_auth=True)) as reg:
        owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path))
        sub = owner.credential.subscription_id
        await owner.create_subscription(SECOND_SUBSCRIPTION)
        await owner.create_group(sub, "prod")
        other = IdentityClient(reg.http, reg.url, await owner.create_tenant(OTHER_TENANT))
        target = await owner.create_registry(sub, "prod", "prodregistry")
        source = await owner.create_registry(sub, "default", "devregistry")
        far = await owner.create_registry(SECOND_SUBSCRIPTION, "default", "farregistry")
        foreign = await other.create_registry(
            other.credential.subscription_id, "default", "foreignregistry"
        )
        await reg.services.resolver.refresh()
        digest = ""
        for registry, pusher in ((source, owner), (far, owner), (foreign, other)):
            host = registry["properties"]["loginServer"]
            digest = await push_image(
                reg.http, reg.url, host, pusher.credential.basic, "app/web", "1"
            )
            await push_image(reg.http, reg.url, host, pusher.credential.basic, "other/x", "1")
        yield World(
            reg, owner, other, sub, target["id"], source["id"], far["id"], foreign["id"], digest
        )


def by_id(resource_id: str, image: str = "app/web:1", **extra: Any) -> dict[str, Any]:
    return {
        "source": {"resourceId": resource_id, "sourceImage": image, **extra},
        "targetTags": [image],
        "mode": "NoForce",
    }


async def test_same_tenant_import_needs_pull_rights_on_the_source(world: World) -> None:
    without = await world.principal("importer-without-pull", target_id="Contributor")
    status, error = await run_import(without, world.target_id, by_id(world.source_id))
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error
    assert (
        "registries/pull/read" in error["error"]["message"]
        and "devregistry" in error["error"]["message"]
    )
    assert await tags_of(world, world.target_id, "app/web") == []

    with_pull = await world.principal(
        "importer-with-pull", target_id="Contributor", source_id="AcrPull"
    )
    status, final = await run_import(with_pull, world.target_id, by_id(world.source_id))
    assert status == 202 and final["status"] == "Succeeded", final
    assert await tags_of(world, world.target_id, "app/web") == ["1"]


async def test_import_by_login_server_of_the_same_service(world: World) -> None:
    caller = await world.principal("by-login-server", target_id="Contributor", source_id="Reader")
    host = (await world.owner.ok("GET", world.source_id))["properties"]["loginServer"]
    body = {"source": {"registryUri": host, "sourceImage": "app/web:1"}, "targetTags": ["copied:1"]}
    status, final = await run_import(caller, world.target_id, body)
    assert status == 202 and final["status"] == "Succeeded", final
    assert await tags_of(world, world.target_id, "copied") == ["1"]


async def test_import_from_another_subscription_of_the_tenant(world: World) -> None:
    caller = await world.principal(
        "cross-subscription", target_id="Contributor", far_source_id="AcrPull"
    )
    status, final = await run_import(caller, world.target_id, by_id(world.far_source_id))
    assert status == 202 and final["status"] == "Succeeded", final
    no_pull = await world.principal("cross-subscription-no-pull", target_id="Contributor")
    status, error = await run_import(
        no_pull, world.target_id, by_id(world.far_source_id, "other/x:1")
    )
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error


async def test_source_with_public_access_disabled_is_read_as_a_trusted_service(
    world: World,
) -> None:
    caller = await world.principal("trusted-service", target_id="Contributor", source_id="AcrPull")
    await world.owner.update_registry(
        world.source_id,
        publicNetworkAccess="Disabled",
        networkRuleSet={"defaultAction": "Deny"},
        networkRuleBypassOptions="AzureServices",
    )
    status, final = await run_import(caller, world.target_id, by_id(world.source_id))
    assert status == 202 and final["status"] == "Succeeded", final

    await world.owner.update_registry(world.source_id, networkRuleBypassOptions="None")
    await asyncio.sleep(0)  # the access settings cache of this process was updated in place
    status, error = await run_import(caller, world.target_id, by_id(world.source_id, "other/x:1"))
    assert status == 403 and error["error"]["code"] == "NetworkAccessDenied", error
    assert (
        "devregistry" in error["error"]["message"] and "AzureServices" in error["error"]["message"]
    )
    assert await tags_of(world, world.target_id, "other/x") == []


async def test_target_with_restricted_network_needs_trusted_services(world: World) -> None:
    caller = await world.principal(
        "restricted-target", target_id="Contributor", source_id="AcrPull"
    )
    await world.owner.update_registry(
        world.target_id, publicNetworkAccess="Disabled", networkRuleBypassOptions="None"
    )
    status, error = await run_import(caller, world.target_id, by_id(world.source_id))
    assert status == 403 and error["error"]["code"] == "NetworkAccessDenied", error
    assert "prodregistry" in error["error"]["message"]


async def test_cross_tenant_import_needs_credentials(world: World) -> None:
    caller = await world.principal("cross-tenant", target_id="Contributor")
    status, error = await run_import(caller, world.target_id, by_id(world.foreign_id))
    assert status == 403 and error["error"]["code"] == "CrossTenantImportNeedsCredentials", error


async def test_cross_tenant_import_with_a_service_principal_of_the_source_tenant(
    world: World,
) -> None:
    caller = await world.principal("cross-tenant-sp", target_id="Contributor")
    reader = await world.other_owner.create_service_principal("foreign-reader")
    await world.other_owner.assign(world.foreign_id, reader.object_id, "AcrPull")
    credentials = {"credentials": {"username": reader.client_id, "password": reader.secret}}
    status, final = await run_import(
        caller, world.target_id, by_id(world.foreign_id, **credentials)
    )
    assert status == 202 and final["status"] == "Succeeded", final
    assert reader.secret not in json.dumps(final)

    wrong = {"credentials": {"username": reader.client_id, "password": "not-the-secret"}}
    status, error = await run_import(
        caller, world.target_id, by_id(world.foreign_id, "other/x:1", **wrong)
    )
    assert status == 401 and error["error"]["code"] == "InvalidSourceCredentials", error


async def test_cross_tenant_import_with_a_repository_scoped_token(world: World) -> None:
    caller = await world.principal("cross-tenant-token", target_id="Contributor")
    password = await world.other_owner.create_token(
        world.foreign_id, "apponly", ["repositories/app/*/content/read"]
    )
    credentials = {"credentials": {"username": "apponly", "password": password}}
    status, final = await run_import(
        caller, world.target_id, by_id(world.foreign_id, **credentials)
    )
    assert status == 202 and final["status"] == "Succeeded", final

    status, error = await run_import(
        caller, world.target_id, by_id(world.foreign_id, "other/x:1", **credentials)
    )
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error
    assert "other/x" in error["error"]["message"]
    assert await tags_of(world, world.target_id, "other/x") == []


async def test_cross_tenant_import_with_the_admin_user(world: World) -> None:
    caller = await world.principal("cross-tenant-admin", target_id="Contributor")
    await world.other_owner.update_registry(world.foreign_id, adminUserEnabled=True)
    username, password = await world.other_owner.admin_passwords(world.foreign_id)
    assert username == "foreignregistry"
    credentials = {"credentials": {"username": username, "password": password}}
    status, final = await run_import(
        caller, world.target_id, by_id(world.foreign_id, **credentials)
    )
    assert status == 202 and final["status"] == "Succeeded", final


async def test_reader_on_the_target_is_refused(world: World) -> None:
    caller = await world.principal("reader-only", target_id="Reader", source_id="AcrPull")
    status, error = await run_import(caller, world.target_id, by_id(world.source_id))
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error
    assert "importImage/action" in error["error"]["message"]
    assert await tags_of(world, world.target_id, "app/web") == []


async def test_a_custom_role_holding_only_import_image_may_import(world: World) -> None:
    role = "Image importer"
    await world.owner.create_role(
        f"/subscriptions/{world.subscription}",
        role,
        ["Microsoft.ContainerRegistry/registries/importImage/action"],
    )
    caller = await world.principal("custom-importer", target_id=role, source_id="AcrPull")
    status, final = await run_import(caller, world.target_id, by_id(world.source_id))
    assert status == 202 and final["status"] == "Succeeded", final
    status, error = await caller.call("GET", world.target_id)
    assert status == 403 and error["error"]["code"] == "AuthorizationFailed", error


async def test_a_principal_of_another_tenant_cannot_touch_the_target(world: World) -> None:
    status, error = await world.other_owner.call(
        "POST", world.target_id + "/importImage", by_id(world.source_id)
    )
    assert status == 401 and error["error"]["code"] == "InvalidAuthenticationTokenTenant", error
