"""The access page of a registry: its role assignments, scope maps and tokens, with forms
to add them and confirmation pages to remove them. Each table and each change makes the
check its ARM route makes (`roleAssignments/*`, `scopeMaps/*`, `tokens/*` on the registry)
and calls the same service code (`api/arm_authorization.py`, `identity/registry_access`).

A new token's password is shown once, in the answer to the form that created it; it is
never stored in the session, logged, or shown again.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web

from transship.api.arm import registry_in_scope
from transship.api.arm_authorization import assignment_at, assignments_around, create_assignment
from transship.api.auth import CALLER
from transship.api.services import Services
from transship.identity.rbac import Actions, builtin_role
from transship.metadata.records import RegistryRecord
from transship.portal.registries import registry_link
from transship.portal.web import field, page, page_response, see_other
from transship.registry.registries import registry_id_of

# What a change's redirect says happened (a key, never text from the query).
_DONE = {
    "assigned": "Role assigned.",
    "unassigned": "Role assignment removed.",
    "scope-map-saved": "Scope map saved.",
    "scope-map-deleted": "Scope map deleted.",
    "token-deleted": "Token deleted.",
}


def access_link(record: RegistryRecord) -> str:
    return registry_link(record) + "/access"


async def _may(
    services: Services, request: web.Request, record: RegistryRecord, action: str
) -> bool:
    return await services.access.allowed(request[CALLER], action, registry_id_of(record))


async def _role_names(services: Services, tenant_id: str) -> dict[str, str]:
    return {role.id: role.name for role in await services.access.roles(tenant_id)}


async def _access_page(
    request: web.Request,
    services: Services,
    record: RegistryRecord,
    *,
    token_password: tuple[str, str] | None = None,
    notice: str | None = None,
) -> web.Response:
    principal = request[CALLER]
    scope = registry_id_of(record)
    may = {
        action: await _may(services, request, record, action)
        for action in (
            Actions.ROLE_ASSIGNMENTS_READ,
            Actions.ROLE_ASSIGNMENTS_WRITE,
            Actions.ROLE_ASSIGNMENTS_DELETE,
            Actions.SCOPE_MAPS_READ,
            Actions.SCOPE_MAPS_WRITE,
            Actions.SCOPE_MAPS_DELETE,
            Actions.TOKENS_READ,
            Actions.TOKENS_WRITE,
            Actions.TOKENS_DELETE,
        )
    }
    assignments: list[dict[str, Any]] = []
    roles: list[str] = []
    if may[Actions.ROLE_ASSIGNMENTS_READ]:
        names = await _role_names(services, principal.tenant_id)
        roles = sorted(set(names.values()))
        for assignment, owner in await assignments_around(services, principal, scope):
            builtin = builtin_role(assignment.role_definition_id)
            assignments.append(
                {
                    "record": assignment,
                    "owner": owner,
                    "role": builtin.name
                    if builtin is not None
                    else names.get(assignment.role_definition_id, assignment.role_definition_id),
                    "here": assignment.scope.lower() == scope.lower(),
                    "delete": f"{access_link(record)}/role-assignments/{assignment.id}/delete",
                }
            )
    scope_maps = (
        await services.registry_access.scope_maps(record) if may[Actions.SCOPE_MAPS_READ] else []
    )
    tokens = await services.registry_access.tokens(record) if may[Actions.TOKENS_READ] else []
    return page_response(
        request,
        "access.html",
        f"Access to {record.name}",
        # "roleAssignments/read", "scopeMaps/write", "tokens/delete"…
        may={"/".join(key.split("/")[-2:]): value for key, value in may.items()},
        assignments=assignments,
        roles=roles,
        scope_maps=scope_maps,
        tokens=tokens,
        token_password=token_password,
        notice=notice,
        registry=record,
        link=registry_link(record),
        access=access_link(record),
    )


@page
async def access_page(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(
        request,
        Actions.ROLE_ASSIGNMENTS_READ,
        Actions.SCOPE_MAPS_READ,
        Actions.TOKENS_READ,
    )
    return await _access_page(
        request, services, record, notice=_DONE.get(request.query.get("done", ""))
    )


# -- role assignments ------------------------------------------------------------------------
@page
async def assign_role(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.ROLE_ASSIGNMENTS_WRITE)
    await create_assignment(
        services,
        request[CALLER],
        registry_id_of(record),
        str(uuid.uuid4()),
        field(request, "role"),
        field(request, "principal_id"),
    )
    raise see_other(access_link(record) + "?done=assigned")


async def _assignment(
    request: web.Request, action: str
) -> tuple[Services, RegistryRecord, Any, Any]:
    services, record = await registry_in_scope(request, action)
    found, owner = await assignment_at(
        services, request[CALLER], registry_id_of(record), request.match_info["item"]
    )
    return services, record, found, owner


@page
async def unassign_confirm(request: web.Request) -> web.StreamResponse:
    _, record, found, owner = await _assignment(request, Actions.ROLE_ASSIGNMENTS_DELETE)
    role = builtin_role(found.role_definition_id)
    return page_response(
        request,
        "confirm.html",
        "Remove a role assignment?",
        what=f"the role assignment {found.id}",
        details=[
            f"{owner.display} loses the role {role.name if role else found.role_definition_id} "
            f"on registry {record.name}"
        ],
        action=f"{access_link(record)}/role-assignments/{found.id}/delete",
        cancel=access_link(record),
        form_id="confirm-delete",
        button="Remove",
    )


@page
async def unassign(request: web.Request) -> web.StreamResponse:
    services, record, found, _ = await _assignment(request, Actions.ROLE_ASSIGNMENTS_DELETE)
    await services.access.unassign(found.id)
    raise see_other(access_link(record) + "?done=unassigned")


# -- scope maps ------------------------------------------------------------------------------
@page
async def create_scope_map(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.SCOPE_MAPS_WRITE)
    actions = [line.strip() for line in field(request, "actions").splitlines() if line.strip()]
    await services.registry_access.save_scope_map(
        record, field(request, "name"), field(request, "description"), actions
    )
    raise see_other(access_link(record) + "?done=scope-map-saved")


@page
async def scope_map_delete_confirm(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.SCOPE_MAPS_DELETE)
    view = await services.registry_access.require_scope_map(record, request.match_info["item"])
    return page_response(
        request,
        "confirm.html",
        f"Delete scope map {view.name}?",
        what=f"scope map {view.name}",
        details=[f"{len(view.actions)} actions: " + ", ".join(view.actions[:10])],
        action=f"{access_link(record)}/scope-maps/{quote(view.name, safe='')}/delete",
        cancel=access_link(record),
        form_id="confirm-delete",
        button="Delete scope map",
    )


@page
async def scope_map_delete(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.SCOPE_MAPS_DELETE)
    await services.registry_access.delete_scope_map(record, request.match_info["item"])
    raise see_other(access_link(record) + "?done=scope-map-deleted")


# -- tokens ----------------------------------------------------------------------------------
@page
async def create_token(request: web.Request) -> web.StreamResponse:
    """Create a token bound to a scope map and generate its first password, shown in this
    answer only (200, not a redirect: a reload must not show it again)."""
    services, record = await registry_in_scope(request, Actions.TOKENS_WRITE)
    name = field(request, "name")
    await services.registry_access.save_token(record, name, field(request, "scope_map"), True)
    passwords = await services.registry_access.generate_token_passwords(
        record, name, ["password1"], None
    )
    response = await _access_page(
        request,
        services,
        record,
        token_password=(name, passwords["password1"]),
        notice=f"Token {name} created. Copy its password now: it is not shown again.",
    )
    return response


@page
async def token_delete_confirm(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.TOKENS_DELETE)
    token, scope_map, _ = await services.registry_access.require_token(
        record, request.match_info["item"]
    )
    return page_response(
        request,
        "confirm.html",
        f"Delete token {token.name}?",
        what=f"token {token.name}",
        details=[f"its passwords stop working at once (scope map {scope_map} stays)"],
        action=f"{access_link(record)}/tokens/{quote(token.name, safe='')}/delete",
        cancel=access_link(record),
        form_id="confirm-delete",
        button="Delete token",
    )


@page
async def token_delete(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.TOKENS_DELETE)
    await services.registry_access.delete_token(record, request.match_info["item"])
    raise see_other(access_link(record) + "?done=token-deleted")
