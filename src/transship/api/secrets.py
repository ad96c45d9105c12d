"""`/transship/v1/secrets`: the service's sealed secret store, which the Key Vault secret
identifiers of credential sets resolve against (a Transship extension).

Only the root tenant's administrators may use it (the store is the service's, not a
tenant's): callers need the action at `/` and must be of the root tenant. Values go in and
never come out: answers carry identifiers and times only.
"""

from __future__ import annotations

from aiohttp import web

from transship.api.arm import arm_json, json_body
from transship.api.arm_models import parse_body
from transship.api.auth import authorize
from transship.api.envelopes import ArmError
from transship.api.services import Services
from transship.api.v2 import SERVICES
from transship.cache.secrets import SecretInfo
from transship.wire import cache as wire

SECRETS_READ = "Transship.Secrets/secrets/read"
SECRETS_WRITE = "Transship.Secrets/secrets/write"
SECRETS_DELETE = "Transship.Secrets/secrets/delete"


async def _operator(request: web.Request, action: str) -> Services:
    services = request.app[SERVICES]
    principal = await authorize(request, services, "/", action)
    if principal.tenant_id != services.identity.tenant_id:
        raise ArmError(
            403,
            "AuthorizationFailed",
            "Only administrators of the root tenant may manage the service's secrets.",
        )
    return services


def _secret_json(info: SecretInfo) -> wire.Secret:
    return wire.Secret(
        identifier=info.identifier, created_at=info.created_at, updated_at=info.updated_at
    )


async def secrets_list(request: web.Request) -> web.Response:
    services = await _operator(request, SECRETS_READ)
    return arm_json(wire.SecretList(value=[_secret_json(i) for i in await services.secrets.all()]))


async def secret_put(request: web.Request) -> web.Response:
    """Set or replace one secret: 201 when new, 200 when replaced."""
    services = await _operator(request, SECRETS_WRITE)
    body = parse_body(wire.SecretBody, await json_body(request))
    saved, created = await services.secrets.put(body.identifier, body.value)
    return arm_json(_secret_json(saved), status=201 if created else 200)


async def secret_delete(request: web.Request) -> web.Response:
    """`?identifier=…`: 200 when deleted, 204 when there was none."""
    services = await _operator(request, SECRETS_DELETE)
    identifier = request.query.get("identifier")
    if not identifier:
        raise ArmError(
            400,
            "InvalidParameter",
            "The query parameter 'identifier' is required.",
            target="identifier",
        )
    deleted = await services.secrets.delete(identifier)
    return web.Response(status=200 if deleted else 204)
