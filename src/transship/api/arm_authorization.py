"""The Microsoft.Authorization subset: role definitions and role assignments at the service
root, a tenant root, a subscription, a resource group or a registry."""

from __future__ import annotations

import re

from aiohttp import web

from transship.api.arm import arm_json, json_body
from transship.api.arm_models import parse_body
from transship.api.auth import authorize
from transship.api.envelopes import ArmError
from transship.api.services import Services
from transship.api.v2 import SERVICES
from transship.identity.access import normalize_scope
from transship.identity.model import Principal
from transship.identity.rbac import (
    Actions,
    Permission,
    RoleDefinition,
    builtin_role,
    scope_covers,
)
from transship.metadata.records import RoleAssignmentRecord
from transship.wire import arm as resources
from transship.wire.bodies import RoleAssignmentBody, RoleDefinitionBody

AUTHZ = "providers/Microsoft.Authorization"
# The scopes below the service root that the role routes accept, as one path variable
# (with its trailing '/').
ROLE_SCOPE = (
    r"{scope:(?:subscriptions/[^/]+(?:/resourceGroups/[^/]+(?:/providers/Microsoft\.ContainerRegistry/registries/[^/]+)?)?"
    r"|providers/Microsoft\.Management/managementGroups/[^/]+)/}"
)
_FILTER_PRINCIPAL = re.compile(r"principalId\s+eq\s+'([^']+)'", re.IGNORECASE)
_FILTER_ASSIGNED_TO = re.compile(r"assignedTo\('([^']+)'\)", re.IGNORECASE)
_FILTER_ROLE_NAME = re.compile(r"roleName\s+eq\s+'([^']+)'", re.IGNORECASE)


def _scope(request: web.Request) -> str:
    return normalize_scope("/" + request.match_info.get("scope", ""))


def _role_json(role: RoleDefinition) -> resources.RoleDefinition:
    # identity.rbac keeps the ARM shape of a role (the policy reads it back from there).
    return resources.RoleDefinition.model_validate(role.to_json())


def _assignment_json(
    record: RoleAssignmentRecord, principal: Principal | None
) -> resources.RoleAssignment:
    scope = record.scope
    prefix = "" if scope == "/" else scope
    created = record.created_at.isoformat().replace("+00:00", "Z")
    # A built-in role's id as the role definitions list gives it, so that clients matching
    # the two (az role assignment list fills roleDefinitionName so) find it.
    builtin = builtin_role(record.role_definition_id)
    return resources.RoleAssignment(
        id=f"{prefix}/{AUTHZ}/roleAssignments/{record.id}",
        name=record.id,
        properties=resources.RoleAssignmentInfo(
            role_definition_id=builtin.resource_id
            if builtin is not None
            else f"{prefix}/{AUTHZ}/roleDefinitions/{record.role_definition_id}",
            principal_id=record.principal_id,
            principal_type=principal.kind if principal else "Unknown",
            scope=scope,
            created_on=created,
            updated_on=created,
        ),
    )


# -- role definitions ------------------------------------------------------------------------
async def definitions_list(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    scope = _scope(request)
    principal = await authorize(request, services, scope, Actions.ROLE_DEFINITIONS_READ)
    roles = await services.access.roles(principal.tenant_id)
    wanted = _FILTER_ROLE_NAME.search(request.query.get("$filter", ""))
    if wanted:
        roles = [r for r in roles if r.name.lower() == wanted.group(1).lower()]
    return arm_json(resources.RoleDefinitionList(value=[_role_json(r) for r in roles]))


async def definition_get(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authorize(request, services, _scope(request), Actions.ROLE_DEFINITIONS_READ)
    role = await services.access.role(principal.tenant_id, request.match_info["id"])
    if role is None:
        raise ArmError(
            404,
            "RoleDefinitionDoesNotExist",
            f"The role definition '{request.match_info['id']}' does not exist.",
        )
    return arm_json(_role_json(role))


async def definition_put(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = parse_body(RoleDefinitionBody, await json_body(request))
    props = body.properties
    principal = None
    for scope in props.assignable_scopes:
        principal = await authorize(
            request, services, normalize_scope(scope), Actions.ROLE_DEFINITIONS_WRITE
        )
    assert principal is not None
    permissions = [
        Permission(
            tuple(p.actions), tuple(p.not_actions), tuple(p.data_actions), tuple(p.not_data_actions)
        )
        for p in props.permissions
    ]
    try:
        role_id = request.match_info["id"]
        role, created = await services.access.save_role(
            principal.tenant_id,
            role_id,
            props.role_name,
            props.description,
            permissions,
            props.assignable_scopes,
        )
    except ValueError:
        raise ArmError(
            400,
            "InvalidRoleDefinitionId",
            f"The role definition id '{request.match_info['id']}' is not a GUID.",
        ) from None
    return arm_json(_role_json(role), status=201 if created else 200)


async def definition_delete(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authorize(request, services, _scope(request), Actions.ROLE_DEFINITIONS_DELETE)
    role = await services.access.role(principal.tenant_id, request.match_info["id"])
    if role is None:
        return web.Response(status=204)
    await services.access.delete_role(principal.tenant_id, role)
    return arm_json(_role_json(role))


# -- role assignments ------------------------------------------------------------------------
async def _tenant_assignments(
    services: Services, tenant_id: str
) -> list[tuple[RoleAssignmentRecord, Principal]]:
    out = []
    for record in await services.access.assignments():
        principal = await services.directory.principal(record.principal_id)
        if principal is not None and principal.tenant_id == tenant_id:
            out.append((record, principal))
    return out


async def assignments_list(request: web.Request) -> web.Response:
    """Assignments at, above and below the scope (or only at and above with `atScope()`),
    optionally of one principal."""
    services = request.app[SERVICES]
    scope = _scope(request)
    principal = await authorize(request, services, scope, Actions.ROLE_ASSIGNMENTS_READ)
    query = request.query.get("$filter", "")
    who = _FILTER_PRINCIPAL.search(query) or _FILTER_ASSIGNED_TO.search(query)
    at_scope = "atscope()" in query.lower().replace(" ", "")
    found = await assignments_around(
        services, principal, scope, who.group(1) if who else None, at_scope=at_scope
    )
    return arm_json(resources.RoleAssignmentList(value=[_assignment_json(r, o) for r, o in found]))


async def assignments_around(
    services: Services,
    principal: Principal,
    scope: str,
    who: str | None = None,
    *,
    at_scope: bool = False,
) -> list[tuple[RoleAssignmentRecord, Principal]]:
    """The assignments of `principal`'s tenant at and above `scope`, and below it unless
    `at_scope`; only those of the principal whose object or app id is `who` when given. The
    caller checked `roleAssignments/read` at `scope`."""
    value = []
    for record, owner in await _tenant_assignments(services, principal.tenant_id):
        if who and who.lower() not in (owner.object_id, (owner.app_id or "").lower()):
            continue
        above = scope_covers(record.scope, scope)
        below = scope_covers(scope, record.scope)
        if above or (below and not at_scope):
            value.append((record, owner))
    return value


async def _require_scope_exists(services: Services, scope: str) -> None:
    """Raises ArmError 404 when the resource group or registry a scope names does not exist
    (the subscription was checked with the caller's tenant)."""
    parts = scope.strip("/").split("/")
    if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
        await services.directory.require_resource_group(parts[1], parts[3])
    if len(parts) == 8:
        await services.registries.require(parts[1], parts[3], parts[7])


async def assignment_put(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    scope = _scope(request)
    caller = await authorize(request, services, scope, Actions.ROLE_ASSIGNMENTS_WRITE)
    await _require_scope_exists(services, scope)
    body = parse_body(RoleAssignmentBody, await json_body(request))
    record, assignee = await create_assignment(
        services,
        caller,
        scope,
        request.match_info["id"],
        body.properties.role_definition_id,
        body.properties.principal_id,
    )
    return arm_json(_assignment_json(record, assignee), status=201)


async def create_assignment(
    services: Services,
    caller: Principal,
    scope: str,
    assignment_id: str,
    role_definition_id: str,
    principal_id: str,
) -> tuple[RoleAssignmentRecord, Principal]:
    """Assign the role (id or name) to the principal (object or app id, of the caller's
    tenant) at `scope`, an existing scope where the caller was authorized for
    `roleAssignments/write`. Raises ArmError 400 (role, principal, id)."""
    role = await services.access.role(caller.tenant_id, role_definition_id)
    if role is None:
        raise ArmError(
            400,
            "RoleDefinitionDoesNotExist",
            f"The role definition '{role_definition_id}' does not exist.",
            target="properties.roleDefinitionId",
        )
    assignee = await services.directory.find_principal(caller.tenant_id, principal_id)
    if assignee is None:
        raise ArmError(
            400,
            "PrincipalNotFound",
            f"Principal {principal_id} does not exist in the directory {caller.tenant_id}.",
            target="properties.principalId",
        )
    try:
        record = await services.access.assign(assignment_id, scope, assignee, role)
    except ValueError:
        raise ArmError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment id '{assignment_id}' is not a GUID.",
        ) from None
    return record, assignee


async def _assignment(
    request: web.Request, action: str
) -> tuple[Services, RoleAssignmentRecord, Principal]:
    services = request.app[SERVICES]
    scope = _scope(request)
    caller = await authorize(request, services, scope, action)
    record, owner = await assignment_at(services, caller, scope, request.match_info["id"])
    return services, record, owner


async def assignment_at(
    services: Services, caller: Principal, scope: str, assignment_id: str
) -> tuple[RoleAssignmentRecord, Principal]:
    """The assignment of that id made at exactly `scope` in the caller's tenant (the caller
    was authorized at `scope`). Raises ArmError 404 RoleAssignmentNotFound."""
    record = await services.access.assignment(assignment_id)
    owner = None if record is None else await services.directory.principal(record.principal_id)
    if (
        record is None
        or owner is None
        or owner.tenant_id != caller.tenant_id
        or record.scope.lower() != scope.lower()
    ):
        raise ArmError(
            404,
            "RoleAssignmentNotFound",
            f"The role assignment '{assignment_id}' is not found.",
        )
    return record, owner


async def assignment_get(request: web.Request) -> web.Response:
    _, record, owner = await _assignment(request, Actions.ROLE_ASSIGNMENTS_READ)
    return arm_json(_assignment_json(record, owner))


async def assignment_delete(request: web.Request) -> web.Response:
    try:
        services, record, owner = await _assignment(request, Actions.ROLE_ASSIGNMENTS_DELETE)
    except ArmError as exc:
        if exc.code == "RoleAssignmentNotFound":
            return web.Response(status=204)
        raise
    await services.access.unassign(record.id)
    return arm_json(_assignment_json(record, owner))
