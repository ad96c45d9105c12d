"""The RBAC matrix through HTTP: every built-in role, assigned to a fresh service principal
at a subscription, a resource group and a registry, against one representative endpoint
per action class of the management API and the Docker token endpoint of the data plane.

The expected results are written out by hand in `EXPECTED` (not derived from the role
definitions the server uses), so a change of a role or of the action a route checks shows
up here. Then: an assignment elsewhere (a sibling registry, another resource group, another
subscription) grants nothing on the target; a custom role holding only `importImage/action`
can import but not read; removing an assignment revokes at once.

Every test runs on SQLite and PostgreSQL (the `database_url` fixture), one server each.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import (
    AUTHZ,
    Credential,
    IdentityClient,
    owner_credential,
    registry_token,
)

ROLES = ("Owner", "Contributor", "Reader", "AcrPull", "AcrPush", "AcrDelete", "AcrImageSigner")
SCOPES = ("subscription", "resourceGroup", "registry")
GROUP = "rgmatrix"
ACR_PULL_ROLE_ID = (
    "/providers/Microsoft.Authorization/roleDefinitions/7f951dda-4ed3-4680-a7ca-43fe172d538d"
)

# What each built-in role may do on a registry it covers, written out by hand. Columns:
# registry read / write / delete, importImage, listCredentials, scope maps read / write,
# tokens read / write, role assignments read / write; then the Docker token actions granted
# when asking for `repository:r:pull,push,delete`.
#
#                  reg.r reg.w reg.d import creds sm.r sm.w tok.r tok.w ra.r ra.w   data plane
_TABLE = """
Owner              Y     Y     Y     Y      Y     Y    Y    Y     Y     Y    Y      pull,push,delete
Contributor        Y     Y     Y     Y      Y     Y    Y    Y     Y     Y    -      pull,push,delete
Reader             Y     -     -     -      -     Y    -    Y     -     Y    -      pull
AcrPull            -     -     -     -      -     -    -    -     -     -    -      pull
AcrPush            -     -     -     -      -     -    -    -     -     -    -      pull,push
AcrDelete          -     -     -     -      -     -    -    -     -     -    -      delete
AcrImageSigner     -     -     -     -      -     -    -    -     -     -    -      -
"""
_COLUMNS = (
    "registry.read",
    "registry.write",
    "registry.delete",
    "importImage",
    "listCredentials",
    "scopeMaps.read",
    "scopeMaps.write",
    "tokens.read",
    "tokens.write",
    "roleAssignments.read",
    "roleAssignments.write",
)


def _parse_table() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    out: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for line in _TABLE.strip().splitlines():
        role, *marks, data = line.split()
        assert len(marks) == len(_COLUMNS), line
        allowed = frozenset(c for c, mark in zip(_COLUMNS, marks, strict=True) if mark == "Y")
        out[role] = (allowed, frozenset() if data == "-" else frozenset(data.split(",")))
    return out


EXPECTED = _parse_table()


@dataclass(frozen=True)
class Probe:
    """One request standing for an action class: `path` is appended to the registry id; a
    caller allowed gets `ok`, any other 403 AuthorizationFailed naming `action`."""

    name: str
    method: str
    path: str
    body: Any
    ok: int
    action: str


def probes() -> list[Probe]:
    """In order; the registry delete comes last (it removes the registry)."""
    registries = "Microsoft.ContainerRegistry/registries"
    return [
        Probe("registry.read", "GET", "", None, 200, f"{registries}/read"),
        Probe(
            "registry.write",
            "PATCH",
            "",
            {"properties": {"anonymousPullEnabled": False}},
            200,
            f"{registries}/write",
        ),
        # A bad body: authorization is checked before the body is read (arm.import_image ->
        # registry_in_scope -> authorize, then parse_body), so 400 means authorized.
        Probe("importImage", "POST", "/importImage", {}, 400, f"{registries}/importImage/action"),
        Probe(
            "listCredentials",
            "POST",
            "/listCredentials",
            None,
            200,
            f"{registries}/listCredentials/action",
        ),
        Probe("scopeMaps.read", "GET", "/scopeMaps", None, 200, f"{registries}/scopeMaps/read"),
        Probe(
            "scopeMaps.write",
            "PUT",
            "/scopeMaps/probe-map",
            {"properties": {"actions": ["repositories/r/content/read"]}},
            201,
            f"{registries}/scopeMaps/write",
        ),
        Probe("tokens.read", "GET", "/tokens", None, 200, f"{registries}/tokens/read"),
        Probe(
            "tokens.write",
            "PUT",
            "/tokens/probe-token",
            None,  # filled in per registry: the scope map id names it
            201,
            f"{registries}/tokens/write",
        ),
        Probe(
            "roleAssignments.read",
            "GET",
            f"/{AUTHZ}/roleAssignments",
            None,
            200,
            "Microsoft.Authorization/roleAssignments/read",
        ),
        Probe(
            "roleAssignments.write",
            "PUT",
            f"/{AUTHZ}/roleAssignments/",  # + a new GUID
            None,  # filled in: AcrPull for the bystander
            201,
            "Microsoft.Authorization/roleAssignments/write",
        ),
        Probe("registry.delete", "DELETE", "", None, 200, f"{registries}/delete"),
    ]


@dataclass
class World:
    reg: RunningRegistry
    owner: IdentityClient
    subscription: str
    data_dir: Path

    def registry_id(self, name: str, group: str = GROUP) -> str:
        return IdentityClient.registry_id(self.subscription, group, name)

    def client(self, credential: Credential) -> IdentityClient:
        return IdentityClient(self.reg.http, self.reg.url, credential)

    async def registry(self, name: str, group: str = GROUP, **properties: Any) -> str:
        """Create a registry (admin user on); returns its login server."""
        body = await self.owner.create_registry(
            self.subscription, group, name, adminUserEnabled=True, **properties
        )
        return str(body["properties"]["loginServer"])

    async def granted(self, credential: Credential, login_server: str) -> frozenset[str]:
        """The actions on repository `r` of the registry at `login_server` in a token from
        `GET /oauth2/token` with the principal's client id and secret."""
        status, body = await registry_token(
            self.reg.http,
            self.reg.url,
            credential.basic,
            ["repository:r:pull,push,delete"],
            host=login_server,
        )
        assert status == 200, body
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["aud"] == login_server, claims
        actions: set[str] = set()
        for entry in claims["access"]:
            assert entry["type"] == "repository" and entry["name"] == "r", claims
            actions.update(entry["actions"])
        return frozenset(actions)


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    settings = make_settings(tmp_path, database_url, data_plane_auth=True)
    async with running_registry(settings) as reg:
        credential = owner_credential(tmp_path)
        owner = IdentityClient(reg.http, reg.url, credential)
        await owner.create_group(credential.subscription_id, GROUP)
        yield World(reg, owner, credential.subscription_id, tmp_path)


def _scope(world: World, scope: str, registry: str) -> str:
    return {
        "subscription": f"/subscriptions/{world.subscription}",
        "resourceGroup": f"/subscriptions/{world.subscription}/resourceGroups/{GROUP}",
        "registry": world.registry_id(registry),
    }[scope]


def _denied(status: int, body: Any, action: str) -> bool:
    return (
        status == 403
        and isinstance(body, dict)
        and body.get("error", {}).get("code") == "AuthorizationFailed"
        and action in body["error"].get("message", "")
    )


@dataclass
class Case:
    role: str
    scope: str
    registry: str
    login_server: str
    credential: Credential


async def _run_case(world: World, case: Case, bystander: str) -> list[str]:
    """Every probe as the case's principal on its own registry; the mismatches."""
    allowed, data = EXPECTED[case.role]
    who = f"{case.role} at {case.scope}"
    client = world.client(case.credential)
    rid = world.registry_id(case.registry)
    problems = []
    for probe in probes():
        if probe.name == "registry.delete":
            # Data plane first: a permitted delete takes the registry away.
            got = await world.granted(case.credential, case.login_server)
            if got != data:
                problems.append(f"{who}: data plane granted {sorted(got)}, expected {sorted(data)}")
        path, body = rid + probe.path, probe.body
        if probe.name == "tokens.write":
            body = {"properties": {"scopeMapId": f"{rid}/scopeMaps/_repositories_pull"}}
        elif probe.name == "roleAssignments.write":
            path += str(uuid.uuid4())
            body = {"properties": {"roleDefinitionId": ACR_PULL_ROLE_ID, "principalId": bystander}}
        status, answer = await client.call(probe.method, path, body)
        if probe.name in allowed:
            if status != probe.ok:
                problems.append(f"{who}: {probe.name} expected {probe.ok}, got {status} {answer}")
        elif not _denied(status, answer, probe.action):
            problems.append(
                f"{who}: {probe.name} expected 403 AuthorizationFailed for {probe.action}, "
                f"got {status} {answer}"
            )
    gone = "registry.delete" in allowed
    status, _ = await world.owner.call("GET", rid)
    if status != (404 if gone else 200):
        problems.append(f"{who}: after the delete probe the owner reads the registry: {status}")
    return problems


async def test_builtin_roles_at_every_scope(world: World) -> None:
    bystander = await world.owner.create_service_principal("matrix-bystander")
    cases: list[Case] = []
    for role in ROLES:
        for scope in SCOPES:
            name = f"mx{role.lower()}{scope[:3]}"
            login_server = await world.registry(name)
            credential = await world.owner.create_service_principal(f"matrix-{role}-{scope}")
            await world.owner.assign(_scope(world, scope, name), credential.object_id, role)
            cases.append(Case(role, scope, name, login_server, credential))

    results = await asyncio.gather(*(_run_case(world, c, bystander.object_id) for c in cases))
    problems = [problem for found in results for problem in found]
    assert not problems, "\n".join(problems)


async def test_an_assignment_elsewhere_grants_nothing_on_the_target(world: World) -> None:
    # Names chosen so that a string-prefix comparison of scopes would wrongly match: the
    # sibling registry's name and the other group's name are prefixes of the target's.
    other_group = GROUP[:-1]
    await world.owner.create_group(world.subscription, other_group)
    target_server = await world.registry("targetreg2")
    sibling_server = await world.registry("targetreg")
    elsewhere_server = await world.registry("elsewhere1", group=other_group)
    other_subscription = await world.owner.create_subscription(str(uuid.uuid4()))
    target = world.registry_id("targetreg2")

    on_sibling = await world.owner.create_service_principal("owner-of-sibling")
    await world.owner.assign(world.registry_id("targetreg"), on_sibling.object_id, "Owner")
    on_group = await world.owner.create_service_principal("owner-of-other-group")
    await world.owner.assign(
        f"/subscriptions/{world.subscription}/resourceGroups/{other_group}",
        on_group.object_id,
        "Owner",
    )
    on_subscription = await world.owner.create_service_principal("owner-of-other-subscription")
    await world.owner.assign(
        f"/subscriptions/{other_subscription}", on_subscription.object_id, "Owner"
    )

    # Each holds Owner where it was given ...
    assert (await world.client(on_sibling).call("GET", world.registry_id("targetreg")))[0] == 200
    assert await world.granted(on_sibling, sibling_server) == {"pull", "push", "delete"}
    elsewhere = world.registry_id("elsewhere1", other_group)
    assert (await world.client(on_group).call("GET", elsewhere))[0] == 200
    assert await world.granted(on_group, elsewhere_server) == {"pull", "push", "delete"}
    status, _ = await world.client(on_subscription).call(
        "GET", f"/subscriptions/{other_subscription}/resourceGroups/default"
    )
    assert status == 200

    # ... and nothing on the target.
    for credential in (on_sibling, on_group, on_subscription):
        client = world.client(credential)
        for method, path, body, action in (
            ("GET", target, None, "registries/read"),
            ("PATCH", target, {"properties": {}}, "registries/write"),
            ("POST", target + "/listCredentials", None, "registries/listCredentials/action"),
            ("POST", target + "/importImage", {}, "registries/importImage/action"),
            ("GET", target + "/tokens", None, "registries/tokens/read"),
            (
                "PUT",
                f"{target}/{AUTHZ}/roleAssignments/{uuid.uuid4()}",
                {
                    "properties": {
                        "roleDefinitionId": ACR_PULL_ROLE_ID,
                        "principalId": credential.object_id,
                    }
                },
                "roleAssignments/write",
            ),
            ("DELETE", target, None, "registries/delete"),
        ):
            status, answer = await client.call(method, path, body)
            assert _denied(status, answer, action), (credential, method, path, status, answer)
        assert await world.granted(credential, target_server) == frozenset(), credential

    # The registry listing shows only what the caller may read.
    status, listing = await world.client(on_sibling).call(
        "GET",
        f"/subscriptions/{world.subscription}/providers/Microsoft.ContainerRegistry/registries",
    )
    assert status == 200
    assert [r["name"] for r in listing["value"]] == ["targetreg"], listing
    assert (await world.owner.call("GET", target))[0] == 200  # still there


async def test_a_custom_import_only_role_imports_but_cannot_read(world: World) -> None:
    target_server = await world.registry("importtarget")
    target = world.registry_id("importtarget")
    await world.registry("importsource", anonymousPullEnabled=True)
    source = world.registry_id("importsource")
    await world.owner.create_role(
        f"/subscriptions/{world.subscription}",
        "ImportOnly",
        ["Microsoft.ContainerRegistry/registries/importImage/action"],
    )
    importer = await world.owner.create_service_principal("import-only")
    await world.owner.assign(target, importer.object_id, "ImportOnly")
    client = world.client(importer)

    status, answer = await client.call("POST", target + "/importImage", {})
    assert status == 400 and answer["error"]["code"] == "InvalidParameter", answer
    # A real import from a source anyone may pull from is accepted (it then fails in the
    # background, the image being absent: that is not what this test is about).
    status, answer = await client.call(
        "POST",
        target + "/importImage",
        {"source": {"resourceId": source, "sourceImage": "hello:v1"}, "targetTags": ["hello:v1"]},
    )
    assert status == 202, answer
    # A local source it may not pull from is refused by the import policy.
    status, answer = await client.call(
        "POST",
        target + "/importImage",
        {"source": {"resourceId": target, "sourceImage": "hello:v1"}, "targetTags": ["copy:v1"]},
    )
    assert status == 403 and answer["error"]["code"] == "AuthorizationFailed", answer

    for method, path, body, action in (
        ("GET", target, None, "registries/read"),
        ("PATCH", target, {"properties": {}}, "registries/write"),
        ("POST", target + "/listCredentials", None, "registries/listCredentials/action"),
        ("GET", target + "/scopeMaps", None, "registries/scopeMaps/read"),
        ("DELETE", target, None, "registries/delete"),
    ):
        status, answer = await client.call(method, path, body)
        assert _denied(status, answer, action), (method, path, status, answer)
    assert await world.granted(importer, target_server) == frozenset()


async def test_removing_an_assignment_revokes_at_once(world: World) -> None:
    """`AccessControl.unassign` clears the assignment cache of this process at commit, so no
    wait is needed here (other processes learn it through the change feed within a second:
    tests/integration/test_change_feed.py)."""
    login_server = await world.registry("revoketarget")
    target = world.registry_id("revoketarget")
    principal = await world.owner.create_service_principal("revoked")
    reader = await world.owner.assign(target, principal.object_id, "Reader")
    pusher = await world.owner.assign(
        f"/subscriptions/{world.subscription}/resourceGroups/{GROUP}",
        principal.object_id,
        "AcrPush",
    )
    client = world.client(principal)
    bearer = await client.bearer()  # a token issued while the roles were held
    assert (await client.call("GET", target))[0] == 200
    assert await world.granted(principal, login_server) == {"pull", "push"}

    status, _ = await world.owner.call("DELETE", reader["id"])
    assert status == 200
    status, answer = await client.call("GET", target, authorization=bearer)
    assert _denied(status, answer, "registries/read"), (status, answer)
    assert await world.granted(principal, login_server) == {"pull", "push"}  # AcrPush remains

    status, _ = await world.owner.call("DELETE", pusher["id"])
    assert status == 200
    assert await world.granted(principal, login_server) == frozenset()
    status, listing = await client.call(
        "GET", f"/subscriptions/{world.subscription}/{AUTHZ}/roleAssignments"
    )
    assert status == 403, listing
    # Deleting it again is a no-op.
    assert (await world.owner.call("DELETE", pusher["id"]))[0] == 204

    # Granting again works at once too.
    await world.owner.assign(target, principal.object_id, "Reader")
    assert (await client.call("GET", target))[0] == 200
    assert await world.granted(principal, login_server) == {"pull"}


async def test_assignments_need_an_existing_scope_and_deleting_a_missing_one_is_204(
    world: World,
) -> None:
    principal = await world.owner.create_service_principal("scope-checker")
    for scope, code in (
        (world.registry_id("nosuchregistry"), "ResourceNotFound"),
        (
            f"/subscriptions/{world.subscription}/resourceGroups/nosuchgroup",
            "ResourceGroupNotFound",
        ),
    ):
        body = {"properties": {"roleDefinitionId": "AcrPull", "principalId": principal.object_id}}
        status, error = await world.owner.call(
            "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", body
        )
        assert status == 404 and error["error"]["code"] == code, (scope, status, error)
    assert await world.owner.call(
        "GET",
        f"/subscriptions/{world.subscription}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId%20eq%20'{principal.object_id}'",
    ) == (200, {"value": []})
    status, _ = await world.owner.call(
        "DELETE",
        f"/subscriptions/{world.subscription}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
    )
    assert status == 204
    status, error = await world.owner.call(
        "DELETE",
        f"/subscriptions/{uuid.uuid4()}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
    )
    assert status == 404 and error["error"]["code"] == "SubscriptionNotFound", error
