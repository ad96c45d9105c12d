"""ARM resources for a registry's repository-scoped access: scope maps, tokens and their
generated passwords."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from transship.api.arm import arm_json, json_body, registry_in_scope
from transship.api.arm_models import parse_body
from transship.api.envelopes import ArmError
from transship.identity.rbac import Actions
from transship.identity.registry_access import TOKEN_PASSWORD_NAMES, ScopeMapView
from transship.metadata.records import RegistryRecord, RegistryTokenRecord
from transship.registry.registries import registry_id_of
from transship.wire import arm as resources
from transship.wire.bodies import (
    GenerateCredentialsBody,
    ScopeMapBody,
    ScopeMapPatchBody,
    TokenBody,
    TokenPatchBody,
)


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat().replace("+00:00", "Z"))


def _scope_map_json(registry: RegistryRecord, view: ScopeMapView) -> resources.ScopeMap:
    return resources.ScopeMap(
        id=f"{registry_id_of(registry)}/scopeMaps/{view.name}",
        name=view.name,
        properties=resources.ScopeMapInfo(
            description=view.description,
            type="SystemDefined" if view.system else "UserDefined",
            creation_date=_iso(view.created_at) or _iso(registry.created_at),
            actions=list(view.actions),
        ),
    )


def _token_json(
    registry: RegistryRecord,
    token: RegistryTokenRecord,
    scope_map: str,
    passwords: list[dict[str, str | None]],
) -> resources.Token:
    return resources.Token(
        id=f"{registry_id_of(registry)}/tokens/{token.name}",
        name=token.name,
        properties=resources.TokenInfo(
            creation_date=_iso(token.created_at),
            scope_map_id=f"{registry_id_of(registry)}/scopeMaps/{scope_map}",
            credentials=resources.TokenCredentials(
                passwords=[resources.TokenPasswordInfo.model_validate(p) for p in passwords]
            ),
            status="enabled" if token.enabled else "disabled",
        ),
    )


def _last_segment(resource_id: str, kind: str, field: str) -> str:
    """The name at the end of a `…/{kind}/{name}` id (or a bare name). Raises ArmError 400."""
    parts = resource_id.strip().rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2].lower() != kind.lower():
        raise ArmError(
            400, "InvalidParameter", f"{field} {resource_id!r} is not a {kind} id.", target=field
        )
    return parts[-1]


# -- scope maps ------------------------------------------------------------------------------
async def scope_maps_list(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.SCOPE_MAPS_READ)
    return arm_json(
        resources.ScopeMapList(
            value=[
                _scope_map_json(registry, v)
                for v in await services.registry_access.scope_maps(registry)
            ]
        )
    )


async def scope_map_get(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.SCOPE_MAPS_READ)
    view = await services.registry_access.require_scope_map(registry, request.match_info["item"])
    return arm_json(_scope_map_json(registry, view))


async def scope_map_put(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.SCOPE_MAPS_WRITE)
    body = parse_body(ScopeMapBody, await json_body(request))
    view, created = await services.registry_access.save_scope_map(
        registry, request.match_info["item"], body.properties.description, body.properties.actions
    )
    return arm_json(_scope_map_json(registry, view), status=201 if created else 200)


async def scope_map_patch(request: web.Request) -> web.Response:
    """Change a scope map's description or actions; what is not given stays."""
    services, registry = await registry_in_scope(request, Actions.SCOPE_MAPS_WRITE)
    body = parse_body(ScopeMapPatchBody, await json_body(request))
    current = await services.registry_access.require_scope_map(registry, request.match_info["item"])
    props = body.properties
    view, _ = await services.registry_access.save_scope_map(
        registry,
        current.name,
        current.description if props.description is None else props.description,
        list(current.actions) if props.actions is None else props.actions,
    )
    return arm_json(_scope_map_json(registry, view))


async def scope_map_delete(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.SCOPE_MAPS_DELETE)
    deleted = await services.registry_access.delete_scope_map(registry, request.match_info["item"])
    return web.Response(status=200 if deleted else 204)


# -- tokens ----------------------------------------------------------------------------------
async def tokens_list(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.TOKENS_READ)
    return arm_json(
        resources.TokenList(
            value=[
                _token_json(registry, *t) for t in await services.registry_access.tokens(registry)
            ]
        )
    )


async def token_get(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.TOKENS_READ)
    found = await services.registry_access.require_token(registry, request.match_info["item"])
    return arm_json(_token_json(registry, *found))


async def token_put(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.TOKENS_WRITE)
    body = parse_body(TokenBody, await json_body(request))
    scope_map = _last_segment(body.properties.scope_map_id, "scopeMaps", "properties.scopeMapId")
    created = await services.registry_access.save_token(
        registry, request.match_info["item"], scope_map, body.properties.status == "enabled"
    )
    found = await services.registry_access.token(registry, request.match_info["item"])
    assert found is not None
    return arm_json(_token_json(registry, *found), status=201 if created else 200)


async def token_patch(request: web.Request) -> web.Response:
    """Move a token to another scope map or enable/disable it; what is not given stays."""
    services, registry = await registry_in_scope(request, Actions.TOKENS_WRITE)
    body = parse_body(TokenPatchBody, await json_body(request))
    token, scope_map, _ = await services.registry_access.require_token(
        registry, request.match_info["item"]
    )
    props = body.properties
    if props.scope_map_id is not None:
        scope_map = _last_segment(props.scope_map_id, "scopeMaps", "properties.scopeMapId")
    enabled = token.enabled if props.status is None else props.status == "enabled"
    await services.registry_access.save_token(registry, token.name, scope_map, enabled)
    updated = await services.registry_access.token(registry, token.name)
    assert updated is not None
    return arm_json(_token_json(registry, *updated))


async def token_delete(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.TOKENS_DELETE)
    deleted = await services.registry_access.delete_token(registry, request.match_info["item"])
    return web.Response(status=200 if deleted else 204)


async def generate_credentials(request: web.Request) -> web.Response:
    """New passwords for a token (both, or the one named), returned once."""
    services, registry = await registry_in_scope(request, Actions.TOKENS_WRITE)
    body = parse_body(GenerateCredentialsBody, await json_body(request))
    token_name = _last_segment(body.token_id, "tokens", "tokenId")
    names = [body.name] if body.name else list(TOKEN_PASSWORD_NAMES)
    values = await services.registry_access.generate_token_passwords(
        registry, token_name, names, body.expiry
    )
    passwords = [
        resources.GeneratedPassword(name=name, value=value, expiry=_iso(body.expiry))
        for name, value in values.items()
    ]
    return arm_json(resources.GeneratedCredentials(username=token_name, passwords=passwords))
