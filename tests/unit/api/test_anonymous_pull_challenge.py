"""Anonymous pull as ACR has it: anonymous `GET /v2/` is always challenged (az, docker and
podman learn the token realm there), while anonymous callers may pull content, directly or
with an anonymous pull token; and ACR's soft-delete paths answer "not supported" for every
caller instead of asking for a permission that does not exist."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import RunningRegistry, make_settings, push_image, running_registry
from tests.support.identity import IdentityClient, owner_credential

GROUP = "anon"


@dataclass
class World:
    reg: RunningRegistry
    owner: IdentityClient
    login_server: str
    digest: str

    async def get(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.reg.request(
            method, path, headers={"Host": self.login_server, **(headers or {})}, **kwargs
        ) as r:
            return r.status, dict(r.headers), await r.read()

    async def anonymous_pull(self, enabled: bool) -> None:
        registry = await self.reg.services.registries.get("anonreg")
        assert registry is not None
        await self.reg.services.registry_access.update(registry, anonymous_pull=enabled)


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    settings = make_settings(tmp_path, database_url, data_plane_auth=True)
    async with running_registry(settings) as reg:
        owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path))
        subscription = owner.credential.subscription_id
        await owner.create_group(subscription, GROUP)
        created = await owner.create_registry(subscription, GROUP, "anonreg")
        await reg.services.resolver.refresh()
        login_server = created["properties"]["loginServer"]
        digest = await push_image(
            reg.http, reg.url, login_server, owner.credential.basic, "app", "v1"
        )
        yield World(reg, owner, login_server, digest)


def challenge_of(headers: dict[str, str]) -> str:
    return headers["WWW-Authenticate"]


async def test_anonymous_v2_is_challenged_with_or_without_anonymous_pull(world: World) -> None:
    for enabled in (False, True):
        await world.anonymous_pull(enabled)
        status, headers, body = await world.get("GET", "/v2/")
        assert status == 401, (enabled, body)
        assert challenge_of(headers) == (
            f'Bearer realm="http://{world.login_server}/oauth2/token",'
            f'service="{world.login_server}"'
        )
        assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    # Credentials still open it.
    status, _, _ = await world.get("GET", "/v2/", {"Authorization": world.owner.credential.basic})
    assert status == 200


async def test_anonymous_pull_serves_content_only_when_enabled(world: World) -> None:
    path = "/v2/app/manifests/v1"
    status, headers, _ = await world.get("GET", path)
    assert status == 401 and 'scope="repository:app:pull"' in challenge_of(headers)
    await world.anonymous_pull(True)
    status, headers, _ = await world.get("GET", path)
    assert status == 200 and headers["Docker-Content-Digest"] == world.digest
    # Pull only: the catalog, pushes and deletes are still challenged.
    for method, target in (
        ("GET", "/v2/_catalog"),
        ("PUT", "/v2/app/manifests/v2"),
        ("DELETE", f"/v2/app/manifests/{world.digest}"),
    ):
        status, _, _ = await world.get(method, target)
        assert status == 401, (method, target)


async def test_docker_flow_an_anonymous_token_with_pull(world: World) -> None:
    """docker and podman: `GET /v2/` → 401, an anonymous token for the scope, the pull."""
    await world.anonymous_pull(True)
    status, headers, _ = await world.get("GET", "/v2/")
    assert status == 401 and "/oauth2/token" in challenge_of(headers)
    status, _, body = await world.get(
        "GET",
        "/oauth2/token",
        params={"service": world.login_server, "scope": "repository:app:pull,push"},
    )
    assert status == 200, body
    bearer = {"Authorization": "Bearer " + json.loads(body)["access_token"]}
    status, headers, _ = await world.get("GET", "/v2/app/manifests/v1", bearer)
    assert status == 200 and headers["Docker-Content-Digest"] == world.digest
    status, headers, _ = await world.get("PUT", "/v2/app/manifests/v2", bearer, data=b"{}")
    assert status == 401 and 'error="insufficient_scope"' in challenge_of(headers)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/acr/v1/_deleted/_catalog"),
        ("GET", "/acr/v1/_deleted/app/_manifests"),
        ("GET", "/acr/v1/_deleted/app/_tags"),
        ("POST", "/acr/v1/_deleted/app/_manifests/sha256:" + "a" * 64),
    ],
)
async def test_soft_delete_paths_are_unsupported_for_every_caller(
    world: World, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": world.owner.credential.basic}):
        status, _, body = await world.get(method, path, headers)
        assert status == 405, body
        error = json.loads(body)["errors"][0]
        assert error["code"] == "UNSUPPORTED"
        assert error["message"].startswith("Soft delete is not supported by Transship")


async def test_soft_delete_paths_are_unsupported_without_data_plane_auth(tmp_path: Path) -> None:
    async with (
        running_registry(make_settings(tmp_path, None)) as reg,
        reg.request("GET", "/acr/v1/_deleted/app/_manifests") as r,
    ):
        assert r.status == 405
        assert (await r.json())["errors"][0]["code"] == "UNSUPPORTED"
