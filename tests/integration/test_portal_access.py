"""The portal's access page and its guards (SQLite and PostgreSQL): role assignments,
scope maps and tokens through the API's own checks and code, a token's password shown
once and working against the data plane; and CSRF refusal on every POST route of the
portal, with nothing changed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import Credential, IdentityClient, basic, owner_credential
from tests.support.portal import PortalClient
from transship.portal.routes import PORTAL_ROUTES

GROUP = "default"


@dataclass
class World:
    reg: RunningRegistry
    owner: Credential
    admin: IdentityClient

    @property
    def registry(self) -> str:
        return f"/portal/registries/{self.owner.subscription_id}/{GROUP}/default"

    async def browser(self, who: Credential | None = None) -> PortalClient:
        credential = who or self.owner
        client = PortalClient(self.reg.url)
        page = await client.sign_in(credential.tenant_id, credential.client_id, credential.secret)
        assert page.status == 303, page.text[:2000]
        return client


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    data_dir = tmp_path / "data"
    # The data plane asks for credentials: the token's password is checked for real.
    settings = make_settings(data_dir, database_url, data_plane_auth=True)
    async with running_registry(settings) as reg:
        owner = owner_credential(data_dir)
        yield World(reg, owner, IdentityClient(reg.http, reg.url, owner))


async def test_scope_map_token_and_its_password_shown_once(world: World) -> None:
    browser = await world.browser()
    try:
        access = world.registry + "/access"
        made = await browser.submit(
            access,
            "create-scope-map",
            {
                "name": "readers",
                "description": "read app",
                "actions": "repositories/app/content/read\nrepositories/app/metadata/read",
            },
        )
        assert made.status == 303, made.text[:2000]
        page = await browser.get(made.location or access)
        assert page.html.get("notice").text == "Scope map saved."
        rows = page.html.get("scope-maps").find_all("tr", data_scope_map="readers")
        assert rows and "repositories/app/content/read" in rows[0].text
        created = await browser.submit(
            access, "create-token", {"name": "ci-token", "scope_map": "readers"}
        )
        assert created.status == 200, created.text[:2000]
        password = created.html.get("token-password").text
        assert len(password) >= 20
        assert created.html.get("tokens").find_all("tr", data_token="ci-token")
        # Never again: not on the page reloaded, not in the token listing.
        again = await browser.get(access)
        assert again.html.by_id("token-password") is None and password not in again.text
        # It works: a data-plane token for pulling app, refused for pushing.
        async with world.reg.http.get(
            world.reg.url + "/oauth2/token",
            params={"service": "localhost:5000", "scope": "repository:app:pull,push"},
            headers={"Authorization": basic("ci-token", password)},
        ) as r:
            assert r.status == 200, await r.text()
        # Delete the token (confirmation first), then the scope map.
        confirm = await browser.get(access + "/tokens/ci-token/delete")
        assert confirm.status == 200 and "token ci-token" in confirm.html.get("content").text
        deleted = await browser.submit(access + "/tokens/ci-token/delete", "confirm-delete", {})
        assert deleted.status == 303
        gone = await browser.submit(access + "/scope-maps/readers/delete", "confirm-delete", {})
        assert gone.status == 303
        final = await browser.get(access)
        assert final.html.get("tokens").find_all("tr", data_token="ci-token") == []
        assert final.html.get("scope-maps").find_all("tr", data_scope_map="readers") == []
    finally:
        await browser.close()


async def test_role_assignment_through_the_portal_grants_and_removal_revokes(world: World) -> None:
    helper = await world.admin.create_service_principal("helper")
    browser = await world.browser()
    try:
        access = world.registry + "/access"
        assigned = await browser.submit(
            access, "assign-role", {"principal_id": helper.client_id, "role": "Reader"}
        )
        assert assigned.status == 303, assigned.text[:2000]
        page = await browser.get(access)
        rows = page.html.get("role-assignments").find_all("tr", data_principal=helper.object_id)
        assert len(rows) == 1 and rows[0].attrs["data-role"] == "Reader"
        # The helper now sees the registry in its portal.
        other = await world.browser(helper)
        try:
            home = await other.get("/portal/")
            assert home.html.get("registries").find_all("tr", data_registry="default")
            # A Reader may not assign roles: no form, and posting is refused by the API's check.
            its = await other.get(access)
            assert its.status == 200 and its.html.by_id("assign-role") is None
            refused = await other.post(
                access + "/role-assignments",
                {
                    "csrf_token": its.csrf("sign-out"),
                    "principal_id": helper.client_id,
                    "role": "Owner",
                },
            )
            assert refused.status == 403 and "AuthorizationFailed" in refused.text
        finally:
            await other.close()
        assignment = rows[0].attrs["data-assignment"]
        removed = await browser.submit(
            f"{access}/role-assignments/{assignment}/delete", "confirm-delete", {}
        )
        assert removed.status == 303
        page = await browser.get(access)
        assert (
            page.html.get("role-assignments").find_all("tr", data_principal=helper.object_id) == []
        )
        # An unknown role: the API's refusal, shown.
        bad = await browser.submit(
            access, "assign-role", {"principal_id": helper.client_id, "role": "Nope"}
        )
        assert bad.status == 400 and "Nope" in bad.html.get("error").text
    finally:
        await browser.close()


def _sample_path(pattern: str, world: World) -> str:
    values = {
        "sub": world.owner.subscription_id,
        "rg": GROUP,
        "name": "default",
        "repo": "team/app",
        "reference": "v1",
        "operation": "0" * 32,
        "item": "ci",
    }
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: values[m.group(1)], pattern)


async def test_every_post_route_refuses_a_missing_or_wrong_csrf_token(world: World) -> None:
    posts = [r for r in PORTAL_ROUTES if r.method == "POST"]
    assert len(posts) == 14
    browser = await world.browser()
    try:
        before = await world.admin.ok(
            "GET", IdentityClient.registry_id(world.owner.subscription_id, GROUP, "default")
        )
        for entry in posts:
            path = _sample_path(entry.path, world)
            data = {
                "name": "csrfmade",
                "subscription": world.owner.subscription_id,
                "resource_group": GROUP,
                "source": "library/alpine:3",
                "principal_id": world.owner.client_id,
                "role": "Owner",
                "actions": "repositories/x/content/read",
                "admin_user_enabled": "on",
            }
            for token in (None, "not-the-token"):
                form = dict(data) if token is None else {**data, "csrf_token": token}
                page = await browser.post(path, form)
                assert page.status == 403, (entry.path, token, page.status, page.text[:500])
                assert "CsrfTokenInvalid" in page.text, entry.path
        # Nothing changed: still signed in (sign-out refused), the registry and its settings
        # as they were, no registry created, no import queued.
        assert (await browser.get("/portal/")).status == 200
        after = await world.admin.ok(
            "GET", IdentityClient.registry_id(world.owner.subscription_id, GROUP, "default")
        )
        assert after["properties"] == before["properties"]
        assert await world.reg.services.registries.get("csrfmade") is None
        default = await world.reg.services.registries.get("default")
        assert default is not None and await world.reg.services.imports.list(default.id) == []
    finally:
        await browser.close()
