"""Tenancy surfaces: ARM's subscriptions, resource groups and resource listing, and the
service's own directory API (/transship/v1: tenants, subscriptions, service principals,
users), which stands in for Microsoft Graph."""

from __future__ import annotations

from aiohttp import web
from pydantic import MISSING

from transship.api.arm import arm_json, json_body, registry_json_of
from transship.api.arm_models import parse_body
from transship.api.auth import authorize, caller, subscription_of
from transship.api.envelopes import ArmError
from transship.api.services import Services
from transship.api.v2 import SERVICES
from transship.identity.directory import tenant_root_scope
from transship.identity.model import SERVICE_PRINCIPAL, USER, IssuedSecret, Principal
from transship.identity.rbac import Actions
from transship.metadata.records import ResourceGroupRecord, SubscriptionRecord
from transship.registry.registries import registry_id_of
from transship.wire import arm as resources
from transship.wire.bodies import (
    CredentialResetBody,
    ResourceGroupBody,
    ServicePrincipalBody,
    SubscriptionBody,
    TenantBody,
    UserBody,
)

DIRECTORY_READ = "Microsoft.Directory/principals/read"
DIRECTORY_WRITE = "Microsoft.Directory/principals/write"
DIRECTORY_DELETE = "Microsoft.Directory/principals/delete"
TENANTS_WRITE = "Microsoft.Directory/tenants/write"
SUBSCRIPTIONS_WRITE = "Microsoft.Resources/subscriptions/write"
_REGISTRY_TYPE = "microsoft.containerregistry/registries"


def _subscription_json(record: SubscriptionRecord) -> resources.Subscription:
    return resources.Subscription(
        id=f"/subscriptions/{record.id}",
        subscription_id=record.id,
        tenant_id=record.tenant_id,
        display_name=record.display_name,
    )


def _group_json(record: ResourceGroupRecord) -> resources.ResourceGroup:
    return resources.ResourceGroup(
        id=f"/subscriptions/{record.subscription_id}/resourceGroups/{record.name}",
        name=record.name,
        location=record.location,
    )


# -- ARM: tenants, subscriptions, resources, resource groups ---------------------------------
async def tenants_list(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await caller(request, services)
    tenant = await services.directory.tenant(principal.tenant_id)
    assert tenant is not None
    return arm_json(
        resources.TenantList(
            value=[
                resources.Tenant(
                    id=f"/tenants/{tenant.id}",
                    tenant_id=tenant.id,
                    display_name=tenant.display_name,
                )
            ]
        )
    )


async def subscriptions_list(request: web.Request) -> web.Response:
    """The caller's tenant's subscriptions on which it holds any role."""
    services = request.app[SERVICES]
    principal = await caller(request, services)
    visible = await visible_subscriptions(services, principal)
    return arm_json(resources.SubscriptionList(value=[_subscription_json(r) for r in visible]))


async def visible_subscriptions(
    services: Services, principal: Principal
) -> list[SubscriptionRecord]:
    """The principal's tenant's subscriptions on which it holds any role (at the root, a
    management group, the subscription or anything under it)."""
    assignments = await services.access.assignments(principal.object_id)
    visible = []
    for record in await services.directory.subscriptions(principal.tenant_id):
        scope = f"/subscriptions/{record.id}".lower()
        if any(
            a.scope == "/"
            or a.scope.lower().startswith("/providers/microsoft.management/")
            or a.scope.lower() == scope
            or a.scope.lower().startswith(scope + "/")
            for a in assignments
        ):
            visible.append(record)
    return visible


async def subscription_get(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await caller(request, services)
    return arm_json(
        _subscription_json(
            await subscription_of(request, services, principal, request.match_info["sub"])
        )
    )


async def resources_list(request: web.Request) -> web.Response:
    """The subscription's resources the caller may read; only registries exist here, and a
    `$filter` on another resourceType selects nothing."""
    services = request.app[SERVICES]
    principal = await caller(request, services)
    sub = request.match_info["sub"]
    await subscription_of(request, services, principal, sub)
    wanted = request.query.get("$filter", "")
    if "resourcetype" in wanted.lower() and _REGISTRY_TYPE not in wanted.lower():
        return arm_json(resources.GenericResourceList(value=[]))
    records = await services.registries.list(sub, request.match_info.get("rg"))
    value = []
    for record in records:
        if await services.access.allowed(
            principal, Actions.REGISTRIES_READ, registry_id_of(record)
        ):
            body = await registry_json_of(services, record)
            value.append(
                resources.GenericResource(
                    id=body.id,
                    name=body.name,
                    type=body.type,
                    location=body.location,
                    tags=body.tags,
                    sku=resources.GenericSku(name=body.sku.name, tier=body.sku.tier),
                )
            )
    return arm_json(resources.GenericResourceList(value=value))


def _group_scope(request: web.Request) -> str:
    return f"/subscriptions/{request.match_info['sub']}/resourceGroups/{request.match_info['rg']}"


async def groups_list(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await caller(request, services)
    sub = request.match_info["sub"]
    await subscription_of(request, services, principal, sub)
    groups = [
        g
        for g in await services.directory.resource_groups(sub)
        if await services.access.allowed(
            principal, Actions.RESOURCE_GROUPS_READ, f"/subscriptions/{sub}/resourceGroups/{g.name}"
        )
    ]
    return arm_json(resources.ResourceGroupList(value=[_group_json(g) for g in groups]))


async def group_get(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await authorize(request, services, _group_scope(request), Actions.RESOURCE_GROUPS_READ)
    group = await services.directory.require_resource_group(
        request.match_info["sub"], request.match_info["rg"]
    )
    if request.method == "HEAD":
        return web.Response(status=204)
    return arm_json(_group_json(group))


async def group_put(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await authorize(request, services, _group_scope(request), Actions.RESOURCE_GROUPS_WRITE)
    body = parse_body(ResourceGroupBody, await json_body(request))
    group, created = await services.directory.ensure_resource_group(
        request.match_info["sub"], request.match_info["rg"], body.location
    )
    return arm_json(_group_json(group), status=201 if created else 200)


async def group_delete(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await authorize(request, services, _group_scope(request), Actions.RESOURCE_GROUPS_DELETE)
    sub, rg = request.match_info["sub"], request.match_info["rg"]
    deleted = await services.directory.delete_resource_group(sub, rg)
    return web.Response(status=200 if deleted else 204)


# -- the service's directory API -------------------------------------------------------------
def _principal_json(
    principal: Principal,
    secret: IssuedSecret | None = None,
    secrets: list[dict[str, str]] | None = None,
) -> resources.Principal:
    """A principal; with `secret`, the one just issued (shown this once); with `secrets`,
    the summaries of its secrets (never their values)."""
    summaries = (
        MISSING if secrets is None else [resources.SecretInfo.model_validate(s) for s in secrets]
    )
    if secret is None:
        return resources.Principal(
            id=principal.object_id,
            object_id=principal.object_id,
            tenant_id=principal.tenant_id,
            kind=principal.kind,
            display_name=principal.name,
            app_id=principal.app_id if principal.kind == SERVICE_PRINCIPAL else MISSING,
            user_name=MISSING if principal.kind == SERVICE_PRINCIPAL else principal.name,
            password_credentials=summaries,
        )
    # Only service principals have secrets.
    return resources.PrincipalWithSecret(
        id=principal.object_id,
        object_id=principal.object_id,
        tenant_id=principal.tenant_id,
        kind=principal.kind,
        display_name=principal.name,
        app_id=principal.app_id,
        password_credentials=summaries,
        password=secret.value,
        credential=resources.SecretInfo(
            key_id=secret.key_id, hint=secret.hint, end_date_time=secret.expires_at
        ),
    )


async def _directory_caller(
    request: web.Request, action: str, scope: str | None = None
) -> tuple[Services, Principal]:
    """Authorize a directory action at the caller's tenant root (or `scope`)."""
    services = request.app[SERVICES]
    principal = await caller(request, services)
    await authorize(request, services, scope or tenant_root_scope(principal.tenant_id), action)
    return services, principal


async def tenant_put(request: web.Request) -> web.Response:
    """A new tenant with a subscription, a `default` group and an owner service principal
    whose secret is in this response only. Only the root tenant's administrators may."""
    services, principal = await _directory_caller(request, TENANTS_WRITE, "/")
    if principal.tenant_id != services.identity.tenant_id:
        raise ArmError(
            403, "AuthorizationFailed", "Only administrators of the root tenant may create tenants."
        )
    body = parse_body(TenantBody, await json_body(request))
    tenant, subscription, owner = await services.directory.create_tenant(
        body.display_name,
        tenant_id=request.match_info["tenant"],
        subscription_id=body.subscription_id,
    )
    created = _principal_json(owner.principal, owner.secret)
    assert isinstance(created, resources.PrincipalWithSecret)
    return arm_json(
        resources.CreatedTenant(
            tenant_id=tenant.id,
            display_name=tenant.display_name,
            subscription_id=subscription.id,
            resource_group="default",
            owner=created,
        ),
        status=201,
    )


async def subscription_put(request: web.Request) -> web.Response:
    services, principal = await _directory_caller(request, SUBSCRIPTIONS_WRITE, "/")
    body = parse_body(SubscriptionBody, await json_body(request))
    tenant_id = body.tenant_id or principal.tenant_id
    if (
        tenant_id.lower() != principal.tenant_id
        and principal.tenant_id != services.identity.tenant_id
    ):
        raise ArmError(
            403,
            "AuthorizationFailed",
            "Only administrators of the root tenant may create subscriptions in other tenants.",
        )
    record = await services.directory.create_subscription(
        tenant_id.lower(), body.display_name, request.match_info["sub"]
    )
    return arm_json(_subscription_json(record), status=201)


async def principals_list(request: web.Request) -> web.Response:
    services, principal = await _directory_caller(request, DIRECTORY_READ)
    kind = SERVICE_PRINCIPAL if request.path.endswith("servicePrincipals") else USER
    return arm_json(
        resources.PrincipalList(
            value=[
                _principal_json(p)
                for p in await services.directory.principals(principal.tenant_id, kind)
            ]
        )
    )


async def service_principal_create(request: web.Request) -> web.Response:
    services, principal = await _directory_caller(request, DIRECTORY_WRITE)
    body = parse_body(ServicePrincipalBody, await json_body(request))
    created = await services.directory.create_service_principal(
        principal.tenant_id, body.display_name, body.years
    )
    return arm_json(_principal_json(created.principal, created.secret), status=201)


async def user_create(request: web.Request) -> web.Response:
    services, principal = await _directory_caller(request, DIRECTORY_WRITE)
    body = parse_body(UserBody, await json_body(request))
    return arm_json(
        _principal_json(
            await services.directory.create_user(principal.tenant_id, body.user_name, body.password)
        ),
        status=201,
    )


async def _target(request: web.Request, action: str) -> tuple[Services, Principal]:
    services, principal = await _directory_caller(request, action)
    found = await services.directory.find_principal(principal.tenant_id, request.match_info["id"])
    kind = USER if request.path.startswith("/transship/v1/users/") else SERVICE_PRINCIPAL
    if found is None or found.kind != kind:
        raise ArmError(
            404,
            "PrincipalNotFound",
            f"No service principal or user '{request.match_info['id']}' "
            f"in tenant {principal.tenant_id}.",
        )
    return services, found


async def principal_get(request: web.Request) -> web.Response:
    services, found = await _target(request, DIRECTORY_READ)
    secrets = None
    if found.kind == SERVICE_PRINCIPAL:
        secrets = await services.directory.secret_summaries(found.object_id)
    return arm_json(_principal_json(found, secrets=secrets))


async def principal_delete(request: web.Request) -> web.Response:
    services, found = await _target(request, DIRECTORY_DELETE)
    if found.object_id == (await caller(request, services)).object_id:
        raise ArmError(409, "CannotDeleteSelf", "A principal cannot delete itself.")
    await services.directory.delete_principal(found)
    return web.Response(status=204)


async def credential_reset(request: web.Request) -> web.Response:
    services, found = await _target(request, DIRECTORY_WRITE)
    if found.kind != SERVICE_PRINCIPAL:
        raise ArmError(400, "InvalidParameter", "Only service principals have secrets to reset.")
    body = parse_body(CredentialResetBody, await json_body(request))
    secret = await services.directory.reset_secret(found, append=body.append, years=body.years)
    return arm_json(_principal_json(found, secret))
