"""`transship role assignment …` and `transship role definition …` (az role …): Azure RBAC
over the service's scopes.

A scope is the service root `/`, a subscription `/subscriptions/{id}`, a resource group
`/subscriptions/{id}/resourceGroups/{name}` or a registry
`/subscriptions/{id}/resourceGroups/{name}/providers/Microsoft.ContainerRegistry/registries/{name}`;
a role assigned at a scope applies to everything beneath it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from transship.cli.client import (
    AUTHORIZATION,
    ApiError,
    ManagementApi,
    is_guid,
    parse_answer,
    scope_path,
    seg,
    unchecked,
)
from transship.cli.common import CONTEXT, IdsCommand, api, service_command
from transship.cli.output import JSON, CommandFailed, emit, emit_json, output_option
from transship.wire.arm import Principal, RoleAssignment, RoleDefinition
from transship.wire.bodies import (
    RoleAssignmentBody,
    RoleAssignmentProperties,
    RoleDefinitionBody,
    RoleDefinitionProperties,
    RolePermissionBody,
)

ASSIGNMENT_COLUMNS = ("PRINCIPAL", "PRINCIPAL TYPE", "ROLE", "SCOPE")
DEFINITION_COLUMNS = ("NAME", "TYPE", "ID", "DESCRIPTION")
# az's role-definition JSON keys, by lower-case spelling, to the ARM property names.
_DEFINITION_KEYS = {
    "name": "roleName",
    "rolename": "roleName",
    "description": "description",
    "actions": "actions",
    "notactions": "notActions",
    "dataactions": "dataActions",
    "notdataactions": "notDataActions",
    "assignablescopes": "assignableScopes",
}
_LISTS = ("actions", "notActions", "dataActions", "notDataActions", "assignableScopes")

scope_option = click.option(
    "--scope",
    metavar="SCOPE",
    help="The scope: '/' (the whole service), /subscriptions/ID, …/resourceGroups/NAME or a "
    "registry's resource id (default: your subscription).",
)
registry_scope_option = click.option(
    "--registry", metavar="REGISTRY", help="Scope to this registry (instead of --scope)."
)
group_scope_option = click.option(
    "--resource-group",
    "-g",
    metavar="RG",
    help="Scope to this resource group, or with --registry the registry's resource group.",
)
assignee_help = "A service principal's app id or object id, or a user's name or object id."


# -- scopes, roles and principals --------------------------------------------------------------
def normalize_scope(scope: str) -> str:
    text = scope.strip()
    if not text.startswith("/"):
        raise click.BadParameter(
            f"{scope!r} is not a scope: it starts with '/' (e.g. /subscriptions/ID)",
            param_hint="--scope",
        )
    return "/" + text.strip("/") if text.strip("/") else "/"


def resolve_scope(
    management: ManagementApi,
    scope: str | None,
    registry: str | None = None,
    resource_group: str | None = None,
) -> str:
    """The scope the options name (default: the subscription)."""
    if scope is not None and (registry or resource_group):
        raise click.UsageError("use either --scope or --registry/--resource-group")
    if scope is not None:
        return normalize_scope(scope)
    if registry:
        return management.registry_id(registry, resource_group)
    if resource_group:
        return management.group_scope(resource_group)
    return management.subscription_scope()


def authorization_url(scope: str, kind: str, name: str | None = None) -> str:
    """`{scope}/providers/Microsoft.Authorization/{kind}[/{name}]`."""
    url = f"{scope_path(scope)}/{AUTHORIZATION}/{kind}"
    return f"{url}/{seg(name)}" if name else url


def guid_tail(text: str) -> str:
    return text.rstrip("/").rsplit("/", 1)[-1]


def resolve_role(management: ManagementApi, role: str, scope: str) -> RoleDefinition:
    """A role definition by name, GUID or resource id. Raises CommandFailed naming an
    unknown role."""
    if is_guid(guid_tail(role)) and (is_guid(role) or "/roledefinitions/" in role.lower()):
        try:
            url = authorization_url(scope, "roleDefinitions", guid_tail(role))
            return management.get(url, RoleDefinition)
        except ApiError as exc:
            if exc.status == 404:
                raise CommandFailed(f"Role '{role}' doesn't exist.") from None
            raise
    escaped = role.replace("'", "''")
    found = management.values(
        authorization_url(scope, "roleDefinitions"),
        RoleDefinition,
        {"$filter": f"roleName eq '{escaped}'"},
    )
    found = [r for r in found if r.properties.role_name.lower() == role.lower()]
    if not found:
        raise CommandFailed(f"Role '{role}' doesn't exist.")
    if len(found) > 1:
        raise CommandFailed(
            f"More than one role is named '{role}'; give its id instead: "
            + ", ".join(r.name for r in found)
        )
    return found[0]


def resolve_assignee(management: ManagementApi, assignee: str, *, exact: bool = True) -> str:
    """The object id of a service principal (app id or object id) or user (name or object
    id). When the login may not read the directory (403), the assignee is used as given
    (the service resolves it) if it is a GUID, or if not `exact` (a role assignment's
    principalId may be a user name; a listing's filter may not)."""
    kinds = ("servicePrincipals", "users") if is_guid(assignee) else ("users",)
    for kind in kinds:
        try:
            found = management.directory("GET", f"/{kind}/{seg(assignee)}", Principal)
        except ApiError as exc:
            if exc.status == 404:
                continue
            if exc.status == 403 and (is_guid(assignee) or not exact):
                return assignee.lower() if is_guid(assignee) else assignee
            raise
        return found.object_id or found.id
    raise CommandFailed(f"Cannot find a user or service principal '{assignee}' in the directory.")


def _names(management: ManagementApi, scope: str) -> tuple[dict[str, str], dict[str, str]]:
    """Role names by GUID and principal names by object id, for tables; whatever the login
    may not read stays unnamed."""
    roles: dict[str, str] = {}
    principals: dict[str, str] = {}
    try:
        for role in management.values(authorization_url(scope, "roleDefinitions"), RoleDefinition):
            roles[role.name.lower()] = role.properties.role_name
    except ApiError:
        pass
    for kind in ("servicePrincipals", "users"):
        try:
            for principal in management.directory_values(f"/{kind}", Principal):
                user_name = principal.user_name
                name = user_name if isinstance(user_name, str) else principal.display_name
                if name:
                    principals[principal.object_id.lower()] = name
        except ApiError:
            pass
    return roles, principals


def assignment_rows(
    assignments: Iterable[RoleAssignment], roles: dict[str, str], principals: dict[str, str]
) -> list[Sequence[Any]]:
    rows: list[Sequence[Any]] = []
    for item in assignments:
        props = item.properties
        principal = props.principal_id
        role = guid_tail(props.role_definition_id)
        rows.append(
            (
                principals.get(principal.lower(), principal),
                props.principal_type,
                roles.get(role.lower(), role),
                props.scope,
            )
        )
    return rows


def definition_row(role: RoleDefinition) -> Sequence[Any]:
    props = role.properties
    return (props.role_name, props.type, role.name, props.description)


# -- commands ----------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
def role() -> None:
    """Manage role-based access control: role assignments and custom roles (az role).

    Built-in roles: Owner, Contributor, Reader, AcrPull, AcrPush, AcrDelete, AcrImageSigner.
    """


@role.group(context_settings=CONTEXT)
def assignment() -> None:
    """Give principals roles at scopes, list and remove those assignments."""


@assignment.command(name="create", context_settings=CONTEXT)
@click.option("--assignee", required=True, metavar="PRINCIPAL", help=assignee_help)
@click.option(
    "--role",
    "role_name",
    required=True,
    metavar="ROLE",
    help="Role name (e.g. AcrPull) or role definition id.",
)
@scope_option
@registry_scope_option
@group_scope_option
@output_option
@service_command
def assignment_create(
    assignee: str,
    role_name: str,
    scope: str | None,
    registry: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Give a principal a role at a scope (az role assignment create).

    \b
    Examples:
      Let a service principal pull from one registry:
        transship role assignment create --assignee $APP_ID --role AcrPull --registry myregistry
      Make a user Contributor of a resource group:
        transship role assignment create --assignee alice --role Contributor --resource-group team-a
      Make a user Reader of the whole service:
        transship role assignment create --assignee alice --role Reader --scope /
    """
    management = api()
    target = resolve_scope(management, scope, registry, resource_group)
    definition = resolve_role(management, role_name, target)
    principal = resolve_assignee(management, assignee, exact=False)
    body = unchecked(
        RoleAssignmentBody,
        properties=unchecked(
            RoleAssignmentProperties, role_definition_id=definition.id, principal_id=principal
        ),
    )
    created = management.put(
        authorization_url(target, "roleAssignments", str(uuid.uuid4())), body, RoleAssignment
    )
    roles = {definition.name.lower(): definition.properties.role_name}
    emit(
        output,
        created,
        ASSIGNMENT_COLUMNS,
        lambda a: assignment_rows([a], roles, {principal.lower(): assignee}),
    )


@assignment.command(name="list", context_settings=CONTEXT)
@click.option("--assignee", metavar="PRINCIPAL", help=f"Only this principal's. {assignee_help}")
@click.option("--role", "role_name", metavar="ROLE", help="Only assignments of this role.")
@scope_option
@registry_scope_option
@group_scope_option
@output_option
@service_command
def assignment_list(
    assignee: str | None,
    role_name: str | None,
    scope: str | None,
    registry: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """List role assignments at, above and beneath a scope (az role assignment list).

    \b
    Examples:
      Every assignment of the subscription:
        transship role assignment list
      Who may do what on a registry (including inherited assignments):
        transship role assignment list --registry myregistry
      A principal's assignments, as JSON:
        transship role assignment list --assignee alice -o json
    """
    management = api()
    target = resolve_scope(management, scope, registry, resource_group)
    query = {}
    if assignee:
        query["$filter"] = f"principalId eq '{resolve_assignee(management, assignee)}'"
    assignments = management.values(
        authorization_url(target, "roleAssignments"), RoleAssignment, query
    )
    if role_name:
        wanted = resolve_role(management, role_name, target).name.lower()
        assignments = [
            a for a in assignments if guid_tail(a.properties.role_definition_id).lower() == wanted
        ]
    if output == JSON:
        emit_json(assignments)
        return
    roles, principals = _names(management, target) if assignments else ({}, {})
    emit(
        output,
        assignments,
        ASSIGNMENT_COLUMNS,
        lambda v: assignment_rows(v, roles, principals),
        empty="No role assignments.",
    )


@assignment.command(name="delete", cls=IdsCommand, context_settings=CONTEXT)
@click.option(
    "--ids",
    "ids",
    multiple=True,
    metavar="ID...",
    help="Resource ids of the assignments to delete (several after one --ids).",
)
@click.option("--assignee", metavar="PRINCIPAL", help=f"Delete this principal's. {assignee_help}")
@click.option("--role", "role_name", metavar="ROLE", help="Delete assignments of this role.")
@scope_option
@registry_scope_option
@group_scope_option
@output_option
@service_command
def assignment_delete(
    ids: tuple[str, ...],
    assignee: str | None,
    role_name: str | None,
    scope: str | None,
    registry: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Delete role assignments: by id, or those of --assignee and/or --role made exactly at
    the scope (az role assignment delete).

    \b
    Examples:
      Take AcrPull on a registry away from a service principal:
        transship role assignment delete --assignee $APP_ID --role AcrPull --registry myregistry
      Delete assignments by id (from role assignment list -o json):
        transship role assignment delete \\
          --ids $(transship role assignment list --assignee alice -o json | jq -r ".[].id")
    """
    management = api()
    targets = [i for value in ids for i in value.split()]
    if targets and (assignee or role_name or scope or registry or resource_group):
        raise click.UsageError("use either --ids or --assignee/--role with a scope")
    if not targets and not (assignee or role_name):
        raise click.UsageError("give --ids, or --assignee and/or --role")
    if not targets:
        target = resolve_scope(management, scope, registry, resource_group)
        query = {}
        if assignee:
            query["$filter"] = f"principalId eq '{resolve_assignee(management, assignee)}'"
        candidates = management.values(
            authorization_url(target, "roleAssignments"), RoleAssignment, query
        )
        wanted = resolve_role(management, role_name, target).name.lower() if role_name else None
        targets = [
            a.id
            for a in candidates
            if a.properties.scope.lower() == target.lower()
            and (wanted is None or guid_tail(a.properties.role_definition_id).lower() == wanted)
        ]
        if not targets:
            raise CommandFailed("No matched assignments were found to delete.")
    deleted: list[RoleAssignment] = []
    for assignment_id in targets:
        if not assignment_id.startswith("/") or "/roleassignments/" not in assignment_id.lower():
            raise click.BadParameter(
                f"{assignment_id!r} is not a role assignment id", param_hint="--ids"
            )
        response = management.call("DELETE", assignment_id)
        if response.status != 204:
            deleted.append(parse_answer(response, RoleAssignment, f"DELETE {assignment_id}"))
    if output == JSON:
        emit_json(deleted)
    elif deleted:
        for item in deleted:
            click.echo(f"Deleted role assignment {item.id}.")
    else:
        click.echo("No role assignment was deleted (none of the ids exists).")


# -- role definitions --------------------------------------------------------------------------
@role.group(context_settings=CONTEXT)
def definition() -> None:
    """Manage custom roles: named sets of allowed actions."""


@dataclass(frozen=True)
class WantedRole:
    """A custom role as az's role-definition JSON gives it (ARM property names)."""

    role_name: str
    description: str
    actions: list[str]
    not_actions: list[str]
    data_actions: list[str]
    not_data_actions: list[str]
    assignable_scopes: list[str]


def parse_definition(text: str) -> WantedRole:
    """az's role-definition JSON (inline, a file, or @file). Raises click.BadParameter."""
    hint = "--role-definition"
    source = text.strip()
    path = Path(source[1:]) if source.startswith("@") else Path(source)
    if source.startswith("@") or (not source.startswith("{") and path.is_file()):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=hint) from None
    try:
        data: object = json.loads(source)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON, nor a file: {exc}", param_hint=hint) from None
    if not isinstance(data, dict):
        raise click.BadParameter("the role definition must be a JSON object", param_hint=hint)
    lists: dict[str, list[str]] = {}
    texts: dict[str, str | None] = {}
    for key, value in data.items():
        arm = _DEFINITION_KEYS.get(str(key).lower())
        if arm is None:
            continue  # Id, IsCustom, … as az accepts them
        if arm in _LISTS:
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise click.BadParameter(f"{key} must be a list of strings", param_hint=hint)
            lists[arm] = value
        elif value is not None and not isinstance(value, str):
            raise click.BadParameter(f"{key} must be a string", param_hint=hint)
        else:
            texts[arm] = value
    role_name = texts.get("roleName")
    if not role_name:
        raise click.BadParameter('the role definition needs a "Name"', param_hint=hint)
    if not lists.get("actions") and not lists.get("dataActions"):
        raise click.BadParameter(
            'the role definition needs "Actions" or "DataActions"', param_hint=hint
        )
    return WantedRole(
        role_name=role_name,
        description=texts.get("description") or "",
        actions=lists.get("actions", []),
        not_actions=lists.get("notActions", []),
        data_actions=lists.get("dataActions", []),
        not_data_actions=lists.get("notDataActions", []),
        assignable_scopes=lists.get("assignableScopes", []),
    )


@definition.command(name="create", context_settings=CONTEXT)
@click.option(
    "--role-definition",
    required=True,
    metavar="JSON|PATH",
    help='The role as JSON, or a file (PATH or @PATH) holding it, in az\'s format: {"Name", '
    '"Description", "Actions", "NotActions", "DataActions", "NotDataActions", '
    '"AssignableScopes"} (default scope: your subscription).',
)
@output_option
@service_command
def definition_create(role_definition: str, output: str) -> None:
    """Create a custom role (az role definition create).

    Actions are patterns over the service's actions, e.g.
    Microsoft.ContainerRegistry/registries/importImage/action or
    Microsoft.ContainerRegistry/registries/*/read ('*' matches anything).

    \b
    Examples:
      A role that may only import images:
        transship role definition create --role-definition \\
          '{"Name": "Importer",
            "Actions": ["Microsoft.ContainerRegistry/registries/importImage/action"]}'
      From a file:
        transship role definition create --role-definition importer.json
    """
    wanted = parse_definition(role_definition)
    management = api()
    scopes = [normalize_scope(s) for s in wanted.assignable_scopes]
    if not scopes:
        scopes = [management.subscription_scope()]
    permission = unchecked(
        RolePermissionBody,
        actions=wanted.actions,
        not_actions=wanted.not_actions,
        data_actions=wanted.data_actions,
        not_data_actions=wanted.not_data_actions,
    )
    body = unchecked(
        RoleDefinitionBody,
        properties=unchecked(
            RoleDefinitionProperties,
            role_name=wanted.role_name,
            description=wanted.description,
            permissions=[permission],
            assignable_scopes=scopes,
        ),
    )
    created = management.put(
        authorization_url(scopes[0], "roleDefinitions", str(uuid.uuid4())), body, RoleDefinition
    )
    emit(output, created, DEFINITION_COLUMNS, lambda r: [definition_row(r)])


@definition.command(name="list", context_settings=CONTEXT)
@click.option("--name", metavar="ROLE", help="Only the role of this name.")
@click.option("--custom-role-only", is_flag=True, help="Only custom roles.")
@scope_option
@output_option
@service_command
def definition_list(
    name: str | None, custom_role_only: bool, scope: str | None, output: str
) -> None:
    """List role definitions: the built-in roles and your tenant's custom roles.

    \b
    Examples:
      transship role definition list
      transship role definition list --name AcrPull -o json
      transship role definition list --custom-role-only
    """
    management = api()
    target = resolve_scope(management, scope)
    query = {"$filter": "roleName eq '{}'".format(name.replace("'", "''"))} if name else None
    roles = management.values(authorization_url(target, "roleDefinitions"), RoleDefinition, query)
    if custom_role_only:
        roles = [r for r in roles if r.properties.type == "CustomRole"]
    emit(
        output,
        roles,
        DEFINITION_COLUMNS,
        lambda v: [definition_row(r) for r in v],
        empty="No role definitions.",
    )


@definition.command(name="delete", context_settings=CONTEXT)
@click.option("--name", required=True, metavar="ROLE", help="Name or id of the custom role.")
@scope_option
@output_option
@service_command
def definition_delete(name: str, scope: str | None, output: str) -> None:
    """Delete a custom role (remove its assignments first).

    \b
    Examples:
      transship role definition delete --name Importer
    """
    management = api()
    target = resolve_scope(management, scope)
    found = resolve_role(management, name, target)
    management.call("DELETE", found.id)
    if output == JSON:
        emit_json(found)
    else:
        click.echo(f"Deleted role '{found.properties.role_name}'.")
