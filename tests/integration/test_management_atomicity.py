"""A failed management write leaves no trace: every write of the management API commits in
one transaction, after everything it depends on was validated.

For each write route (the table `cases()`), the request is sent again and again with a
fault injected at the commit of its 1st, 2nd, … write transaction (the statements of the
transaction all ran; the commit fails), until a run commits without reaching the fault:
that last run must succeed. After every failed run, a snapshot of the relevant resources
(GET/list through the API, and the rows of every management table) must equal the one
taken before. A route that committed part of its work in an earlier transaction than the
one that failed is caught by its second run. Only the request's own transactions count: a
middleware marks the handler's task, so background loops never trip the fault.

Then the defect this was written for (issue 11), with no fault at all: a registry PUT
whose IP rule is invalid answers 400 and creates nothing; and a generateCredentials whose
second password cannot be hashed changes neither password.

Every test runs on SQLite and PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import select

from tests.support.app import AppTestServer, make_settings
from tests.support.identity import AUTHZ, IdentityClient, owner_credential
from transship.api.app import create_app
from transship.api.services import Services, build_services
from transship.identity.secrets import CredentialChecksBusy
from transship.metadata import schema as s

GROUP = "rgatom"
# Rows that change without any request (keys rotate; the service notes its own state).
_VOLATILE_TABLES = {"signing_keys", "service_state"}
_IN_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)


T = TypeVar("T")


class InjectedFault(Exception):
    """Raised at the commit of the transaction a test chose."""


@web.middleware
async def _mark_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Innermost middleware: the handler's task (and only it) counts its transactions."""
    _IN_REQUEST.set(True)
    return await handler(request)


class CommitFault:
    """Wraps the store's `writing()` and `write_at_once()`: the `fail_at`-th transaction a
    request opens rolls back with InjectedFault after its last statement, instead of
    committing. A scope joined to a caller's transaction (`within` given) is not a
    transaction of its own."""

    def __init__(self, services: Services) -> None:
        self._writing = services.meta.writing
        self._write_at_once = services.meta.write_at_once
        self.fail_at = 0
        self.opened = 0
        self.fired = False
        services.meta.writing = self._wrapped  # type: ignore[method-assign]
        services.meta.write_at_once = self._wrapped_at_once  # type: ignore[method-assign]

    def _count(self) -> None:
        self.opened += 1
        if self.opened == self.fail_at:
            self.fired = True
            raise InjectedFault(f"transaction {self.opened}")

    async def _wrapped_at_once(self, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        counted = _IN_REQUEST.get()  # read here: on SQLite `work` runs on the write thread

        async def then_fault(q: Any) -> T:
            result = await work(q)
            if counted:
                self._count()
            return result

        return await self._write_at_once(then_fault)

    def arm(self, fail_at: int) -> None:
        self.fail_at, self.opened, self.fired = fail_at, 0, False

    @asynccontextmanager
    async def _wrapped(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        within = args[0] if args else kwargs.get("within")
        counted = _IN_REQUEST.get() and within is None
        async with self._writing(*args, **kwargs) as q:
            yield q
            if counted:
                self._count()


@dataclass
class World:
    services: Services
    http: aiohttp.ClientSession
    url: str
    owner: IdentityClient
    subscription: str
    fault: CommitFault
    ids: dict[str, str]

    def registry_id(self, name: str) -> str:
        return IdentityClient.registry_id(self.subscription, GROUP, name)


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    settings = make_settings(tmp_path, database_url)
    services = await build_services(settings)
    app = create_app(settings, services)
    app.middlewares.append(_mark_request)
    server = AppTestServer(app, settings, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("")).rstrip("/")
            credential = owner_credential(tmp_path)
            owner = IdentityClient(http, url, credential)
            world = World(
                services, http, url, owner, credential.subscription_id, CommitFault(services), {}
            )
            await _populate(world)
            yield world
    finally:
        await server.close()
        await services.close()


async def _populate(world: World) -> None:
    """What the cases change or delete: registries, scope maps, tokens, principals, roles,
    assignments and a spare resource group."""
    owner, sub = world.owner, world.subscription
    await owner.create_group(sub, GROUP)
    await owner.create_group(sub, "rgspare")
    for name in ("atomreg", "atomdel"):
        await owner.create_registry(sub, GROUP, name, adminUserEnabled=True)
    for name in ("atomreg", "atomdel"):
        await owner.create_token(
            world.registry_id(name), f"{name}-tok", ["repositories/r/content/read"]
        )
    sp = await owner.create_service_principal("atom-sp")
    doomed = await owner.create_service_principal("atom-doomed-sp")
    user = await owner.create_user("atomuser", "a-long-enough-password")
    doomed_user = await owner.create_user("atomdoomed", "a-long-enough-password")
    role = await owner.create_role(f"/subscriptions/{sub}", "atom-role", ["*/read"])
    doomed_role = await owner.create_role(f"/subscriptions/{sub}", "atom-doomed-role", ["*/read"])
    assignment = await owner.assign(world.registry_id("atomreg"), sp.object_id, "Reader")
    world.ids.update(
        sp=sp.object_id,
        doomed_sp=doomed.object_id,
        user=user,
        doomed_user=doomed_user,
        role=role,
        doomed_role=doomed_role,
        assignment=str(assignment["name"]),
    )


async def _rows(services: Services) -> dict[str, list[str]]:
    """Every row of every table but the volatile ones, as sorted text."""
    out = {}
    async with services.meta.reading() as q:
        for table in s.metadata.sorted_tables:
            if table.name not in _VOLATILE_TABLES:
                out[table.name] = sorted(
                    repr(tuple(r)) for r in await q.conn.execute(select(table))
                )
    return out


async def snapshot(world: World) -> dict[str, Any]:
    """What a client sees of the management state, and the rows behind it."""
    sub = f"/subscriptions/{world.subscription}"
    reads = [
        ("GET", "/subscriptions"),
        ("GET", f"{sub}/resourcegroups"),
        ("GET", f"{sub}/providers/Microsoft.ContainerRegistry/registries"),
        ("GET", f"{sub}/{AUTHZ}/roleDefinitions"),
        ("GET", f"/{AUTHZ}/roleAssignments"),
        ("GET", "/transship/v1/servicePrincipals"),
        ("GET", "/transship/v1/users"),
        ("GET", f"/transship/v1/servicePrincipals/{world.ids['sp']}"),
    ]
    for name in ("atomreg", "atomdel", "atomnew"):
        registry = world.registry_id(name)
        reads += [
            ("GET", registry),
            ("GET", f"{registry}/scopeMaps"),
            ("GET", f"{registry}/tokens"),
            ("POST", f"{registry}/listCredentials"),
            ("GET", f"{registry}/importOperations"),
        ]
    # Read at once: nothing writes meanwhile (the fault is disarmed), so the order of the
    # reads does not matter, and the snapshot costs one round of latency, not 23.
    await world.owner.bearer()  # one token for all the reads, not one fetched by each
    answers = await asyncio.gather(*(world.owner.call(method, path) for method, path in reads))
    seen: dict[str, Any] = {
        f"{method} {path}": answer for (method, path), answer in zip(reads, answers, strict=True)
    }
    seen["rows"] = await _rows(world.services)
    return seen


@dataclass(frozen=True)
class Case:
    """One write: `path` and `body` may name ids of the world (`{registry:NAME}`, `{sp}`…)."""

    name: str
    method: str
    path: str
    body: Any = None
    ok: tuple[int, ...] = (200, 201, 202, 204)


def cases() -> list[Case]:
    """Every write route of the management API, in an order where each finds what it
    needs: creations and changes first, deletions last, the import at the very end (its
    job then runs in the background)."""
    reg = "{registry:atomreg}"
    dele = "{registry:atomdel}"
    sub = "/subscriptions/{sub}"
    network = {"defaultAction": "Deny", "ipRules": [{"action": "Allow", "value": "10.0.0.0/8"}]}
    return [
        Case(
            "registry create",
            "PUT",
            "{registry:atomnew}",
            {
                "location": "local",
                "properties": {
                    "adminUserEnabled": True,
                    "anonymousPullEnabled": True,
                    "networkRuleSet": network,
                },
            },
        ),
        Case(
            "registry put existing",
            "PUT",
            reg,
            {
                "location": "local",
                "properties": {"anonymousPullEnabled": True, "networkRuleSet": network},
            },
        ),
        Case(
            "registry patch",
            "PATCH",
            reg,
            {"properties": {"adminUserEnabled": False, "publicNetworkAccess": "Disabled"}},
        ),
        Case(
            "regenerate credential", "POST", dele + "/regenerateCredential", {"name": "password2"}
        ),
        Case(
            "scope map create",
            "PUT",
            reg + "/scopeMaps/atom-map2",
            {"properties": {"actions": ["repositories/a/content/read"]}},
        ),
        Case(
            "scope map patch",
            "PATCH",
            reg + "/scopeMaps/atomreg-tok-map",
            {"properties": {"description": "changed", "actions": ["repositories/b/content/read"]}},
        ),
        Case(
            "token create on a built-in scope map",
            "PUT",
            reg + "/tokens/atom-tok2",
            {"properties": {"scopeMapId": reg + "/scopeMaps/_repositories_pull"}},
        ),
        Case(
            "token patch",
            "PATCH",
            reg + "/tokens/atomreg-tok",
            {
                "properties": {
                    "status": "disabled",
                    "scopeMapId": reg + "/scopeMaps/_repositories_push",
                }
            },
        ),
        Case(
            "generate credentials (both passwords)",
            "POST",
            reg + "/generateCredentials",
            {"tokenId": reg + "/tokens/atomreg-tok"},
        ),
        Case("resource group create", "PUT", sub + "/resourcegroups/rgnew", {"location": "local"}),
        Case("tenant create", "PUT", "/transship/v1/tenants/{new}", {"displayName": "Atom tenant"}),
        Case(
            "subscription create",
            "PUT",
            "/transship/v1/subscriptions/{new}",
            {"displayName": "Atom subscription"},
        ),
        Case(
            "service principal create",
            "POST",
            "/transship/v1/servicePrincipals",
            {"displayName": "atom-sp2"},
        ),
        Case(
            "user create",
            "POST",
            "/transship/v1/users",
            {"userName": "atomuser2", "password": "another-long-password"},
        ),
        Case(
            "secret reset",
            "POST",
            "/transship/v1/servicePrincipals/{sp}/credentials/reset",
            {"append": False},
        ),
        Case(
            "role definition create",
            "PUT",
            sub + f"/{AUTHZ}/roleDefinitions/{{new}}",
            {
                "properties": {
                    "roleName": "atom-role2",
                    "description": "x",
                    "permissions": [{"actions": ["*/read"]}],
                    "assignableScopes": [sub],
                }
            },
        ),
        Case(
            "role definition replace",
            "PUT",
            sub + f"/{AUTHZ}/roleDefinitions/{{role}}",
            {
                "properties": {
                    "roleName": "atom-role-renamed",
                    "description": "y",
                    "permissions": [{"actions": ["Microsoft.ContainerRegistry/registries/read"]}],
                    "assignableScopes": [sub],
                }
            },
        ),
        Case(
            "role assignment create",
            "PUT",
            reg + f"/{AUTHZ}/roleAssignments/{{new}}",
            {"properties": {"roleDefinitionId": "AcrPull", "principalId": "{sp}"}},
        ),
        Case("token delete", "DELETE", dele + "/tokens/atomdel-tok"),
        Case("scope map delete", "DELETE", dele + "/scopeMaps/atomdel-tok-map"),
        Case("role assignment delete", "DELETE", reg + f"/{AUTHZ}/roleAssignments/{{assignment}}"),
        Case("role definition delete", "DELETE", sub + f"/{AUTHZ}/roleDefinitions/{{doomed_role}}"),
        Case("service principal delete", "DELETE", "/transship/v1/servicePrincipals/{doomed_sp}"),
        Case("user delete", "DELETE", "/transship/v1/users/{doomed_user}"),
        Case("registry delete", "DELETE", dele),
        Case("resource group delete", "DELETE", sub + "/resourcegroups/rgspare"),
        Case(
            "import",
            "POST",
            reg + "/importImage",
            {
                "source": {"registryUri": "registry.invalid", "sourceImage": "library/x:1"},
                "targetTags": ["x:1"],
            },
        ),
    ]


def _fill(world: World, value: Any, new: str) -> Any:
    """`value` with the world's ids in place of its `{…}` names."""
    if isinstance(value, dict):
        return {k: _fill(world, v, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(world, v, new) for v in value]
    if not isinstance(value, str):
        return value
    for name in ("atomreg", "atomdel", "atomnew"):
        value = value.replace(f"{{registry:{name}}}", world.registry_id(name))
    value = value.replace("{sub}", world.subscription).replace("{new}", new)
    for key, ident in world.ids.items():
        value = value.replace(f"{{{key}}}", ident)
    return value


async def _run_case(world: World, case: Case) -> list[str]:
    """The case's request with a fault at each of its transactions in turn; the problems."""
    problems: list[str] = []
    new = str(uuid.uuid4())  # the same new id in every run, as a retrying client sends
    path, body = _fill(world, case.path, new), _fill(world, case.body, new)
    fail_at = 1
    before = await snapshot(world)
    while True:
        world.fault.arm(fail_at)
        status, answer = await world.owner.call(case.method, path, body)
        fired = world.fault.fired
        world.fault.arm(0)
        if not fired:
            break
        if status < 500:
            problems.append(f"{case.name}: fault in transaction {fail_at} answered {status}")
        after = await snapshot(world)
        changed = sorted(k for k in before if before[k] != after[k])
        if changed:
            problems.append(
                f"{case.name}: failed in its transaction {fail_at}, yet changed {changed}"
            )
        # Nothing runs between this snapshot and the next run's request: it is that run's
        # "before" (taking it again would read the same state).
        before = after
        fail_at += 1
    if status not in case.ok:
        problems.append(f"{case.name}: answered {status} {answer} without a fault")
    if fail_at == 1:
        problems.append(f"{case.name}: wrote nothing (is the case still a write?)")
    return problems


async def test_a_failed_write_leaves_no_trace(world: World) -> None:
    problems: list[str] = []
    for case in cases():
        problems += await _run_case(world, case)
    assert not problems, "\n".join(problems)


async def test_registry_put_with_an_invalid_ip_rule_creates_nothing(world: World) -> None:
    """The reproduced defect: the registry was created, then the access settings refused."""
    before = await snapshot(world)
    status, body = await world.owner.call(
        "PUT",
        world.registry_id("atomnew"),
        {
            "location": "local",
            "properties": {
                "adminUserEnabled": True,
                "networkRuleSet": {
                    "defaultAction": "Deny",
                    "ipRules": [{"action": "Allow", "value": "not-an-address"}],
                },
            },
        },
    )
    assert status == 400 and body["error"]["target"] == "networkRuleSet.ipRules", body
    assert await snapshot(world) == before
    status, _ = await world.owner.call("GET", world.registry_id("atomnew"))
    assert status == 404


async def test_generate_credentials_changes_no_password_when_one_cannot_be_made(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both passwords are made, then stored together: a hashing pool that refuses the second
    (429) leaves the first as it was, not replaced by one the caller never saw."""
    hasher = world.services.registry_access._hasher
    real_hash: Callable[[str], Awaitable[str]] = hasher.hash
    calls = 0

    async def second_refused(value: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise CredentialChecksBusy(1, "injected: the hashing pool is full")
        return await real_hash(value)

    monkeypatch.setattr(hasher, "hash", second_refused)
    registry = world.registry_id("atomreg")
    before = await snapshot(world)
    status, body = await world.owner.call(
        "POST", registry + "/generateCredentials", {"tokenId": registry + "/tokens/atomreg-tok"}
    )
    assert status == 429, body
    assert calls == 2
    assert await snapshot(world) == before
