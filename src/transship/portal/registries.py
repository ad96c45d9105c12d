"""The registries pages: the list (with the create form), one registry (login server,
login command, settings) and its deletion. Every read and write is the management API's
own call after the API's own authorization (`api/arm.py`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from transship.api.arm import (
    PROVIDER,
    delete_registry,
    patch_registry,
    put_registry,
    registry_in_scope,
    visible_registries,
)
from transship.api.arm_models import parse_body
from transship.api.arm_tenancy import visible_subscriptions
from transship.api.auth import CALLER, authorize
from transship.api.envelopes import ArmError
from transship.identity.rbac import Actions
from transship.metadata.records import RegistryRecord
from transship.portal.web import (
    field,
    page,
    page_response,
    registry_path,
    see_other,
    services_of,
)
from transship.registry.registries import registry_id_of
from transship.wire.bodies import RegistryBody

SKUS = ("Basic", "Standard", "Premium")
# Who sees a registry in the portal: its readers (ARM's listing) and those who may pull
# from it (AcrPull), who browse its repositories.
LISTED = (Actions.REGISTRIES_READ, Actions.PULL)


def login_server_of(request: web.Request, record: RegistryRecord) -> str:
    """Where clients reach the registry: its login server; the default registry (which has
    none of its own) answers at the service's own address."""
    return record.login_server or request.host


def registry_link(record: RegistryRecord) -> str:
    return registry_path(record.subscription_id or "", record.resource_group or "", record.name)


@page
async def registries_page(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    principal = request[CALLER]
    subscriptions = await visible_subscriptions(services, principal)
    rows: list[dict[str, Any]] = []
    for subscription in subscriptions:
        for record in await visible_registries(
            services, principal, subscription.id, actions=LISTED
        ):
            rows.append(
                {
                    "record": record,
                    "link": registry_link(record),
                    "subscription": subscription.display_name or subscription.id,
                }
            )
    groups = {
        s.id: [g.name for g in await services.directory.resource_groups(s.id)]
        for s in subscriptions
    }
    return page_response(
        request,
        "registries.html",
        "Registries",
        registries=rows,
        subscriptions=subscriptions,
        groups=groups,
        default_group=services.identity.resource_group,
        default_location=services.identity.location,
        skus=SKUS,
        notice=f"Registry {request.query['deleted']} deleted."
        if request.query.get("deleted")
        else None,
    )


@page
async def registry_create(request: web.Request) -> web.StreamResponse:
    """Create a registry: `registries/write` at its path (as ARM's PUT), then the PUT's own
    code. A name already taken is refused rather than updating that registry."""
    services = services_of(request)
    sub, rg, name = (
        field(request, "subscription"),
        field(request, "resource_group"),
        field(request, "name"),
    )
    await authorize(
        request,
        services,
        f"/subscriptions/{sub}/resourceGroups/{rg}/{PROVIDER}/registries/{name}",
        Actions.REGISTRIES_WRITE,
    )
    found = await services.registries.name_availability(name)
    if not found.available:
        raise ArmError(409, found.reason or "AlreadyExists", found.message or "Name taken.")
    body: dict[str, Any] = {"sku": {"name": field(request, "sku") or "Premium"}}
    if field(request, "location"):
        body["location"] = field(request, "location")
    record, _ = await put_registry(services, sub, rg, name, parse_body(RegistryBody, body))
    raise see_other(registry_link(record) + "?created=1")


async def _may(request: web.Request, record: RegistryRecord, action: str) -> bool:
    services = services_of(request)
    return await services.access.allowed(request[CALLER], action, registry_id_of(record))


@page
async def registry_page(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, *LISTED)
    can_read = await _may(request, record, Actions.REGISTRIES_READ)
    access = await services.registry_access.settings(record) if can_read else None
    notice = (
        "Registry created."
        if "created" in request.query
        else "Settings saved."
        if "saved" in request.query
        else None
    )
    return page_response(
        request,
        "registry.html",
        f"Registry {record.name}",
        registry=record,
        link=registry_link(record),
        access=access,
        can_write=await _may(request, record, Actions.REGISTRIES_WRITE),
        can_delete=await _may(request, record, Actions.REGISTRIES_DELETE),
        login_server=login_server_of(request, record),
        login_command=f"docker login {login_server_of(request, record)}",
        skus=SKUS,
        notice=notice,
    )


def _settings_body(request: web.Request) -> RegistryBody:
    """The settings form as the ARM PATCH body it stands for (validated by its model)."""
    rules = [line.strip() for line in field(request, "ip_rules").splitlines() if line.strip()]
    properties: dict[str, Any] = {
        "adminUserEnabled": field(request, "admin_user_enabled") == "on",
        "anonymousPullEnabled": field(request, "anonymous_pull_enabled") == "on",
        "publicNetworkAccess": field(request, "public_network_access") or "Enabled",
        "networkRuleSet": {
            "defaultAction": field(request, "default_action") or "Allow",
            "ipRules": [{"action": "Allow", "value": rule} for rule in rules],
        },
        "networkRuleBypassOptions": "AzureServices"
        if field(request, "trusted_services") == "on"
        else "None",
    }
    body: dict[str, Any] = {"properties": properties}
    if field(request, "sku"):
        body["sku"] = {"name": field(request, "sku")}
    parsed: RegistryBody = parse_body(RegistryBody, body)
    return parsed


@page
async def registry_settings(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.REGISTRIES_WRITE)
    await patch_registry(services, record, _settings_body(request))
    raise see_other(registry_link(record) + "?saved=1")


@page
async def registry_delete_confirm(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.REGISTRIES_DELETE)
    return page_response(
        request,
        "confirm.html",
        f"Delete registry {record.name}?",
        what=f"registry {record.name}",
        details=[
            f"{await services.browse.repository_count(record)} repositories and every image, "
            "tag and blob in them",
            "its scope maps, tokens, webhooks and import history",
        ],
        action=registry_link(record) + "/delete",
        cancel=registry_link(record),
        form_id="confirm-delete",
        button="Delete registry",
    )


@page
async def registry_delete(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    sub, rg, name = (request.match_info[k] for k in ("sub", "rg", "name"))
    await authorize(
        request,
        services,
        f"/subscriptions/{sub}/resourceGroups/{rg}/{PROVIDER}/registries/{name}",
        Actions.REGISTRIES_DELETE,
    )
    await delete_registry(services, sub, rg, name)
    raise see_other("/portal/?deleted=" + name)
