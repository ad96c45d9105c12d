"""`transship.identity.access`: scope normalisation, the AuthorizationFailed error, and
AccessControl's roles, assignments, checks and cache over a SQLite file."""

from __future__ import annotations

import time
import types
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from transship.errors import Conflict, Denied, DomainError, Invalid, Unsupported
from transship.identity import access as access_module
from transship.identity.access import AccessControl, authorization_failed, normalize_scope
from transship.identity.directory import Directory, tenant_root_scope
from transship.identity.model import SERVICE_PRINCIPAL, Principal
from transship.identity.rbac import (
    ACR_DELETE,
    ACR_PULL,
    ACR_PUSH,
    BUILTIN_ROLES,
    CONTRIBUTOR,
    OWNER,
    READER,
    Actions,
    Permission,
)
from transship.identity.secrets import SecretHasher
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore

SUB = "/subscriptions/11111111-1111-1111-1111-111111111111"
RG = f"{SUB}/resourceGroups/rg"
REGISTRY = f"{RG}/providers/Microsoft.ContainerRegistry/registries/reg1"

# -- normalize_scope -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("  ", "/"),
        ("//", "/"),
        (SUB, SUB),
        (SUB + "/", SUB),
        (SUB.lstrip("/"), SUB),
        (f"  {RG}/  ", RG),
        (REGISTRY, REGISTRY),
        (
            REGISTRY.replace("resourceGroups", "resourcegroups"),
            REGISTRY.replace("resourceGroups", "resourcegroups"),
        ),
        (
            "/providers/Microsoft.Management/managementGroups/tenant-1",
            "/providers/Microsoft.Management/managementGroups/tenant-1",
        ),
    ],
)
def test_normalize_scope(given: str, expected: str) -> None:
    assert normalize_scope(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "/subscriptions",
        "/subscriptions/",
        f"{SUB}/resourceGroups",
        f"{RG}/providers/Microsoft.ContainerRegistry/registries",
        f"{REGISTRY}/scopeMaps/m",
        f"{RG}/providers/Microsoft.Storage/storageAccounts/x",
        "/providers/Microsoft.Management/managementGroups",
        "/tenants/x",
        "not a scope",
        f"{SUB}//resourceGroups/rg",
    ],
)
def test_normalize_scope_refuses(given: str) -> None:
    with pytest.raises(Invalid) as caught:
        normalize_scope(given)
    assert (caught.value.subject, caught.value.field) == ("scope", "scope")


def test_authorization_failed_names_client_object_action_and_scope() -> None:
    principal = Principal("obj-1", "tenant-1", SERVICE_PRINCIPAL, "name", "app-1")
    error = authorization_failed(principal, Actions.REGISTRIES_READ, REGISTRY)
    assert isinstance(error, Denied) and error.reason is None
    for part in ("'app-1'", "'obj-1'", f"'{Actions.REGISTRIES_READ}'", f"'{REGISTRY}'"):
        assert part in error.message
    user = Principal("obj-2", "tenant-1", "User", "dana")
    assert "'dana'" in authorization_failed(user, "x", "/").message


# -- AccessControl -----------------------------------------------------------------------------


@dataclass
class World:
    meta: MetadataStore
    access: AccessControl
    directory: Directory
    tenant: str
    other_tenant: str
    alice: Principal
    bob: Principal
    foreign: Principal


@pytest.fixture
async def world(tmp_path: Path, hasher: SecretHasher) -> AsyncIterator[World]:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        meta = MetadataStore(database)
        directory = Directory(meta, hasher=hasher)
        tenant, _, _ = await directory.create_tenant("A")
        other, _, _ = await directory.create_tenant("B")
        alice = await directory.create_service_principal(tenant.id, "alice")
        bob = await directory.create_service_principal(tenant.id, "bob")
        foreign = await directory.create_service_principal(other.id, "foreign")
        yield World(
            meta,
            AccessControl(meta),
            directory,
            tenant.id,
            other.id,
            alice.principal,
            bob.principal,
            foreign.principal,
        )
    finally:
        await database.close()


async def test_builtin_roles_are_listed_and_found(world: World) -> None:
    roles = await world.access.roles(world.tenant)
    assert roles[: len(BUILTIN_ROLES)] == list(BUILTIN_ROLES)
    for ident in (
        "AcrPush",
        "acrpush",
        " ACRPUSH ",
        ACR_PUSH.id,
        ACR_PUSH.id.upper(),
        ACR_PUSH.resource_id,
        f"{SUB}{ACR_PUSH.resource_id}",
    ):
        assert await world.access.role(world.tenant, ident) == ACR_PUSH, ident
    assert await world.access.role(world.tenant, "NoSuchRole") is None
    assert await world.access.role(world.tenant, str(uuid.uuid4())) is None


async def test_inheritance_down_the_scopes(world: World) -> None:
    a = world.access
    await a.assign(None, RG, world.alice, READER)
    assert await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)
    assert await a.allowed(world.alice, Actions.REGISTRIES_READ, RG)
    assert not await a.allowed(world.alice, Actions.REGISTRIES_READ, SUB)
    assert not await a.allowed(world.alice, Actions.REGISTRIES_READ, f"{SUB}/resourceGroups/rg2")
    assert not await a.allowed(world.alice, Actions.REGISTRIES_WRITE, REGISTRY)
    assert not await a.allowed(world.bob, Actions.REGISTRIES_READ, REGISTRY)
    # Case-insensitive, as ARM ids are.
    assert await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY.upper())


async def test_own_tenant_root_covers_its_subscriptions_another_tenants_root_nothing(
    world: World,
) -> None:
    a = world.access
    await a.assign(None, tenant_root_scope(world.tenant), world.alice, CONTRIBUTOR)
    assert await a.allowed(world.alice, Actions.REGISTRIES_DELETE, REGISTRY)
    assert await a.allowed(world.alice, Actions.REGISTRIES_DELETE, SUB)
    assert await a.allowed(world.alice, Actions.REGISTRIES_DELETE, tenant_root_scope(world.tenant))
    assert not await a.allowed(world.alice, Actions.ROLE_ASSIGNMENTS_WRITE, REGISTRY)
    # Not the service root, nor another tenant's root.
    assert not await a.allowed(world.alice, Actions.REGISTRIES_DELETE, "/")
    assert not await a.allowed(
        world.alice, Actions.REGISTRIES_DELETE, tenant_root_scope(world.other_tenant)
    )
    # Tenant A's root given to a principal of tenant B is only that literal scope.
    await a.assign(None, tenant_root_scope(world.tenant), world.foreign, OWNER)
    assert not await a.allowed(world.foreign, Actions.REGISTRIES_READ, REGISTRY)
    assert await a.allowed(world.foreign, Actions.REGISTRIES_READ, tenant_root_scope(world.tenant))


async def test_require_passes_on_any_action_and_names_the_first(world: World) -> None:
    a = world.access
    await a.assign(None, REGISTRY, world.alice, READER)
    await a.require(world.alice, REGISTRY, Actions.IMPORT_IMAGE, Actions.REGISTRIES_READ)
    with pytest.raises(Denied) as caught:
        await a.require(world.alice, REGISTRY, Actions.IMPORT_IMAGE, Actions.REGISTRIES_WRITE)
    assert Actions.IMPORT_IMAGE in caught.value.message


async def test_registry_actions(world: World) -> None:
    a = world.access
    assert await a.registry_actions(world.alice, REGISTRY) == frozenset()
    await a.assign(None, SUB, world.alice, ACR_PULL)
    await a.assign(None, REGISTRY, world.alice, ACR_DELETE)
    assert await a.registry_actions(world.alice, REGISTRY) == {"pull", "metadata_read", "delete"}
    other = REGISTRY.replace("reg1", "reg2")
    assert await a.registry_actions(world.alice, other) == {"pull", "metadata_read"}


async def test_assign_refusals_and_idempotence(world: World) -> None:
    a = world.access
    record = await a.assign(None, REGISTRY + "/", world.alice, READER)
    assert record.scope == REGISTRY
    again = await a.assign(record.id, REGISTRY, world.alice, READER)
    assert again.id == record.id
    with pytest.raises(Conflict) as exists:
        await a.assign(None, REGISTRY, world.alice, READER)
    assert (exists.value.subject, exists.value.reason) == ("role assignment", "exists")
    with pytest.raises(Conflict) as reused:
        await a.assign(record.id, SUB, world.alice, READER)
    assert (reused.value.subject, reused.value.reason) == ("role assignment", "id_taken")
    with pytest.raises(Invalid) as bad_scope:
        await a.assign(None, REGISTRY + "/tokens/t", world.alice, READER)
    assert (bad_scope.value.subject, bad_scope.value.field) == ("scope", "scope")
    with pytest.raises(ValueError):
        await a.assign("not-a-guid", REGISTRY, world.alice, READER)


async def test_custom_roles(world: World) -> None:
    a = world.access
    role, created = await a.save_role(
        world.tenant,
        None,
        "Importer",
        "imports only",
        [Permission(actions=(Actions.IMPORT_IMAGE,))],
        [SUB],
    )
    assert created and not role.builtin and role.assignable_scopes == (SUB,)
    assert await a.role(world.tenant, "importer") == role
    assert await a.role(world.tenant, role.id) == role
    assert await a.role(world.other_tenant, "Importer") is None  # per tenant
    await a.assign(None, REGISTRY, world.alice, role)
    assert await a.allowed(world.alice, Actions.IMPORT_IMAGE, REGISTRY)
    assert not await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)
    # Outside its assignable scopes it cannot be assigned.
    with pytest.raises(Invalid) as outside:
        await a.assign(None, "/subscriptions/22222222-2222-2222-2222-222222222222", world.bob, role)
    assert (outside.value.subject, outside.value.field) == ("role assignment", "scope")
    # Replacing it changes what its holders may do, at once.
    replaced, created = await a.save_role(
        world.tenant,
        role.id,
        "Importer",
        "imports and reads",
        [Permission(actions=(Actions.IMPORT_IMAGE, Actions.REGISTRIES_READ))],
        [SUB],
    )
    assert not created and replaced.id == role.id
    assert await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)
    # It cannot be deleted while assigned.
    with pytest.raises(Conflict) as in_use:
        await a.delete_role(world.tenant, replaced)
    assert (in_use.value.subject, in_use.value.reason) == ("role definition", "in_use")
    for record in await a.assignments(world.alice.object_id):
        assert await a.unassign(record.id)
    await a.delete_role(world.tenant, replaced)
    assert await a.role(world.tenant, "Importer") is None


async def test_custom_role_refusals(world: World) -> None:
    a = world.access
    read = [Permission(actions=(Actions.REGISTRIES_READ,))]
    refusals: tuple[tuple[str, str | None, list[Permission], list[str], type, str], ...] = (
        ("Reader", None, read, [SUB], Conflict, "builtin"),  # a built-in name
        ("x", READER.id, read, [SUB], Conflict, "builtin"),  # a built-in id
        ("", None, read, [SUB], Invalid, "roleName"),
        ("x" * 257, None, read, [SUB], Invalid, "roleName"),
        ("NoPerms", None, [], [SUB], Invalid, "roleName"),
        ("NoScopes", None, read, [], Invalid, "assignableScopes"),
        ("BadScope", None, read, ["/nowhere"], Invalid, "scope"),
        ("BadAction", None, [Permission(actions=("",))], [SUB], Invalid, "permissions"),
    )
    for name, role_id, permissions, scopes, error, which in refusals:
        with pytest.raises(DomainError) as caught:
            await a.save_role(world.tenant, role_id, name, "", permissions, scopes)
        assert type(caught.value) is error, name
        assert which in (caught.value.reason, caught.value.field), name
    await a.save_role(world.tenant, None, "Mine", "", read, [SUB])
    with pytest.raises(Conflict) as duplicate:
        await a.save_role(world.tenant, None, "MINE", "", read, [SUB])
    assert (duplicate.value.reason, duplicate.value.field) == ("name_taken", "roleName")
    with pytest.raises(Unsupported) as builtin:
        await a.delete_role(world.tenant, OWNER)
    assert (builtin.value.subject, builtin.value.reason) == ("role definition", "builtin")


async def test_changes_in_this_process_apply_at_once(world: World) -> None:
    a = world.access
    assert not await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)  # cached: none
    record = await a.assign(None, REGISTRY, world.alice, READER)
    assert await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)
    assert await a.unassign(record.id)
    assert not await a.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)
    assert not await a.unassign(record.id)


async def test_another_process_sees_changes_within_the_cache_lifetime(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    """Each process caches a principal's assignments for 5 s; a change made by another
    process (another store over the same database, with a change hub of its own) shows
    after that even when no change feed tells this one (the backstop)."""
    here, there = world.access, AccessControl(MetadataStore(world.meta.db))
    record = await there.assign(None, REGISTRY, world.alice, READER)
    assert await here.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)
    await there.unassign(record.id)
    assert await here.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)  # stale
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + 5.5)
    monkeypatch.setattr(access_module, "time", clock)
    assert not await here.allowed(world.alice, Actions.REGISTRIES_READ, REGISTRY)


async def test_deleted_principals_keep_no_rights(world: World) -> None:
    a = world.access
    await a.assign(None, SUB, world.bob, OWNER)
    assert await a.allowed(world.bob, Actions.REGISTRIES_DELETE, REGISTRY)
    await world.directory.delete_principal(world.bob)
    assert await world.directory.principal(world.bob.object_id) is None
    assert await a.assignments(world.bob.object_id) == []
