"""Role definitions, role assignments and the checks made with them."""

from __future__ import annotations

import json
import re
import time
import uuid

from transship.errors import Conflict, Denied, Invalid, Unsupported
from transship.identity.directory import tenant_root_scope
from transship.identity.model import Principal
from transship.identity.rbac import (
    BUILTIN_ROLES,
    Assignment,
    Permission,
    RoleDefinition,
    is_allowed,
    is_assignable,
    registry_data_permissions,
    validate_role_permissions,
)
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RoleAssignmentRecord, RoleDefinitionRecord
from transship.metadata.scope import utcnow

_CACHE_SECONDS = 5.0
_GUID_TAIL = re.compile(
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/?$"
)
_SCOPE = re.compile(
    r"/|/providers/Microsoft\.Management/managementGroups/[^/]+"
    r"|/subscriptions/[^/]+(?:/resourceGroups/[^/]+(?:/providers/Microsoft\.ContainerRegistry/registries/[^/]+)?)?",
    re.IGNORECASE,
)


def authorization_failed(principal: Principal, action: str, scope: str) -> Denied:
    return Denied(
        f"The client '{principal.app_id or principal.name}' "
        f"with object id '{principal.object_id}' does not have "
        f"authorization to perform action '{action}' over scope '{scope}' "
        "or the scope is invalid. If access was "
        "recently granted, please refresh your credentials.",
    )


def _custom_role(record: RoleDefinitionRecord) -> RoleDefinition:
    return RoleDefinition(
        id=record.id,
        name=record.name,
        description=record.description,
        permissions=tuple(Permission.from_json(p) for p in json.loads(record.permissions)),
        assignable_scopes=tuple(json.loads(record.assignable_scopes)),
    )


def normalize_scope(scope: str) -> str:
    """A scope in canonical form. Raises Invalid (subject "scope")."""
    scope = "/" + scope.strip().strip("/") if scope.strip() not in ("", "/") else "/"
    if not _SCOPE.fullmatch(scope):
        raise Invalid(
            "scope",
            f"The scope '{scope}' is not a subscription, resource group or registry.",
            subject="scope",
        )
    return scope


class AccessControl:
    """Azure RBAC over the service's resources: built-in and custom roles, assignments at
    the service root, a tenant's root, a subscription, a resource group or a registry,
    inherited downwards."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta
        self._assignments: dict[str, tuple[list[Assignment], float]] = {}
        # Any process's change of roles or assignments drops them all (the change feed).
        meta.changes.subscribe(Topic.ROLES, self._forget)

    def _forget(self) -> None:
        self._assignments.clear()

    # -- role definitions --------------------------------------------------------------------
    async def roles(self, tenant_id: str) -> list[RoleDefinition]:
        async with self._meta.reading() as q:
            custom = await q.identity.role_definitions(tenant_id)
        return [*BUILTIN_ROLES, *(_custom_role(r) for r in custom)]

    async def role(self, tenant_id: str, ident: str) -> RoleDefinition | None:
        """A role by name (case-insensitive), GUID or full role-definition id."""
        found = _GUID_TAIL.search(ident.strip())
        for role in await self.roles(tenant_id):
            if role.name.lower() == ident.strip().lower() or (
                found and role.id.lower() == found.group(1).lower()
            ):
                return role
        return None

    async def save_role(
        self,
        tenant_id: str,
        role_id: str | None,
        name: str,
        description: str,
        permissions: list[Permission],
        scopes: list[str],
    ) -> tuple[RoleDefinition, bool]:
        """Create or replace a custom role; the bool says whether it is new. Raises Invalid
        (subject "role definition") for invalid permissions or scopes, Conflict (subject
        "role definition"; reason "builtin", "id_taken" or "name_taken") for a built-in's
        name or id, an id of another tenant, a name taken."""
        try:
            validate_role_permissions(permissions)
        except ValueError as exc:
            raise Invalid("permissions", str(exc), subject="role definition") from None
        if not permissions or not name.strip() or len(name) > 256:
            raise Invalid(
                "roleName",
                "A role needs a roleName (1-256 characters) and permissions.",
                subject="role definition",
            )
        if not scopes:
            raise Invalid(
                "assignableScopes",
                "A role needs at least one assignable scope.",
                subject="role definition",
            )
        scopes = [normalize_scope(s) for s in scopes]
        role_id = str(uuid.UUID(role_id)) if role_id else str(uuid.uuid4())
        if any(r.id == role_id or r.name.lower() == name.strip().lower() for r in BUILTIN_ROLES):
            raise Conflict(
                f"Built-in role {name!r} cannot be replaced.",
                subject="role definition",
                reason="builtin",
            )
        record = RoleDefinitionRecord(
            role_id,
            tenant_id,
            name.strip(),
            description,
            json.dumps([p.to_json() for p in permissions]),
            json.dumps(scopes),
            utcnow(),
        )
        try:
            async with self._meta.writing() as q:
                iq = q.identity
                existing = await iq.role_definition(role_id)
                if existing is not None and existing.tenant_id != tenant_id:
                    raise Conflict(
                        f"The role definition id {role_id} is in use.",
                        subject="role definition",
                        reason="id_taken",
                    )
                if existing is None:
                    await iq.add_role_definition(record)
                else:
                    await iq.replace_role_definition(record)
        except Conflict as exc:
            if exc.subject is not None:
                raise  # raised in the block above: it already says what collided
            raise Conflict(
                f"A role named {name!r} already exists.",
                subject="role definition",
                reason="name_taken",
                field="roleName",
            ) from None
        self._forget()
        return _custom_role(record), existing is None

    async def delete_role(self, tenant_id: str, role: RoleDefinition) -> None:
        """Raises Unsupported for a built-in role, Conflict (reason "in_use") while
        assignments use it."""
        if role.builtin:
            raise Unsupported(
                f"Built-in role {role.name!r} cannot be deleted.",
                subject="role definition",
                reason="builtin",
            )
        async with self._meta.writing() as q:
            iq = q.identity
            if await iq.role_definition_in_use(role.id):
                raise Conflict(
                    f"Role {role.name!r} is still assigned; delete its assignments first.",
                    subject="role definition",
                    reason="in_use",
                )
            await iq.delete_role_definition(role.id)

    # -- role assignments --------------------------------------------------------------------
    async def assign(
        self, assignment_id: str | None, scope: str, principal: Principal, role: RoleDefinition
    ) -> RoleAssignmentRecord:
        """Raises Invalid (subject "role assignment") when the role cannot be assigned at
        `scope`, Conflict (reason "exists") for an identical existing assignment, Conflict
        (reason "id_taken") for an id another assignment has."""
        scope = normalize_scope(scope)
        if not is_assignable(role, scope):
            raise Invalid(
                "scope",
                f"Role {role.name!r} cannot be assigned at scope '{scope}'.",
                subject="role assignment",
            )
        assignment_id = str(uuid.UUID(assignment_id)) if assignment_id else str(uuid.uuid4())
        async with self._meta.writing() as q:
            iq = q.identity
            for existing in await iq.role_assignments(principal.object_id):
                if (
                    existing.scope.lower() == scope.lower()
                    and existing.role_definition_id == role.id
                ):
                    if existing.id == assignment_id:
                        return existing
                    raise Conflict(
                        "The role assignment already exists.",
                        subject="role assignment",
                        reason="exists",
                    )
            try:
                record = await iq.add_role_assignment(
                    assignment_id, scope, principal.object_id, role.id
                )
            except Conflict:
                # Raised out of the block: the transaction rolls back (PostgreSQL would
                # refuse any further statement in it anyway).
                raise Conflict(
                    "A role assignment with this id exists.",
                    subject="role assignment",
                    reason="id_taken",
                ) from None
        self._forget()
        return record

    async def assignments(self, principal_id: str | None = None) -> list[RoleAssignmentRecord]:
        async with self._meta.reading() as q:
            return await q.identity.role_assignments(principal_id)

    async def assignment(self, assignment_id: str) -> RoleAssignmentRecord | None:
        async with self._meta.reading() as q:
            return await q.identity.role_assignment(assignment_id)

    async def unassign(self, assignment_id: str) -> bool:
        async with self._meta.writing() as q:
            deleted = await q.identity.delete_role_assignment(assignment_id)
        self._forget()
        return deleted

    # -- checks ------------------------------------------------------------------------------
    async def _effective(self, principal: Principal) -> list[Assignment]:
        """The principal's assignments. One at its tenant's root scope covers that scope and
        every subscription (the caller reaches only its own tenant's subscriptions: the
        management API checks the subscription's tenant first), but not the service root."""
        hit = self._assignments.get(principal.object_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        changes = self._meta.changes
        version = changes.version(Topic.ROLES)
        roles = {r.id: r for r in await self.roles(principal.tenant_id)}
        root = tenant_root_scope(principal.tenant_id).lower()
        effective = []
        for record in await self.assignments(principal.object_id):
            role = roles.get(record.role_definition_id)
            if role is None:
                continue
            effective.append(Assignment(record.scope, role))
            if record.scope.lower() == root:
                effective.append(Assignment("/subscriptions", role))
        if not changes.unchanged(version, Topic.ROLES):
            return effective  # read before a change committed: right now, not worth keeping
        if len(self._assignments) > 10_000:
            self._assignments.clear()
        self._assignments[principal.object_id] = (effective, time.monotonic() + _CACHE_SECONDS)
        return effective

    async def allowed(
        self, principal: Principal, action: str, scope: str, *, data: bool = False
    ) -> bool:
        return is_allowed(await self._effective(principal), action, scope, data=data)

    async def require(self, principal: Principal, scope: str, *actions: str) -> None:
        """Passes if any of `actions` is allowed at `scope`. Raises Denied naming
        the first action."""
        for action in actions:
            if await self.allowed(principal, action, scope):
                return
        raise authorization_failed(principal, actions[0], scope)

    async def registry_actions(self, principal: Principal, registry_scope: str) -> frozenset[str]:
        """The Docker token actions (pull, push, delete, metadata_read, metadata_write) the
        principal's roles give on a registry."""
        return registry_data_permissions(await self._effective(principal), registry_scope)
