"""The smallest Microsoft Graph subset `az role assignment` needs, at `/v1.0` on the
service's own URL (the cloud metadata names the service as `microsoftGraphResourceId`):

- `GET /v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '<appId>')` (or
  `appId eq '<appId>'`): how `--assignee <appId>` finds the object id;
- `POST /v1.0/directoryObjects/getByIds` `{"ids": […]}`: how `role assignment list` names
  principals, and how `create` answers for an assignment that exists already.

Callers need the same right as for the directory API (`Microsoft.Directory/principals/read`
at the caller's tenant root) and see only their own tenant's principals. Errors use Graph's
envelope, `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import re

from aiohttp import web

from transship.api.answers import json_answer
from transship.api.arm import json_body
from transship.api.arm_tenancy import DIRECTORY_READ
from transship.api.auth import authorize
from transship.api.auth import caller as caller_of
from transship.api.envelopes import ArmError
from transship.api.v2 import SERVICES
from transship.identity.directory import tenant_root_scope
from transship.identity.model import SERVICE_PRINCIPAL, Principal
from transship.wire import graph

_FILTERS = (
    re.compile(r"servicePrincipalNames/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'([^']*)'\s*\)", re.I),
    re.compile(r"appId\s+eq\s+'([^']*)'", re.I),
)
_MAX_IDS = 1000


def _object_json(principal: Principal) -> graph.GraphServicePrincipal | graph.GraphUser:
    if principal.kind == SERVICE_PRINCIPAL:
        return graph.GraphServicePrincipal(
            id=principal.object_id,
            app_id=principal.app_id,
            display_name=principal.name,
            service_principal_names=[principal.app_id],
            app_owner_organization_id=principal.tenant_id,
        )
    return graph.GraphUser(
        id=principal.object_id,
        display_name=principal.name,
        user_principal_name=principal.name,
    )


async def _directory_reader(request: web.Request) -> Principal:
    """The caller, if it may read its tenant's directory. Raises ArmError 401/403."""
    services = request.app[SERVICES]
    principal = await caller_of(request, services)
    await authorize(request, services, tenant_root_scope(principal.tenant_id), DIRECTORY_READ)
    return principal


def _unsupported(message: str) -> ArmError:
    return ArmError(400, "Request_UnsupportedQuery", message)


async def service_principals(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    caller = await _directory_reader(request)
    query = request.query.get("$filter")
    wanted: str | None = None
    if query is not None:
        for pattern in _FILTERS:
            found = pattern.fullmatch(query.strip())
            if found:
                wanted = found.groups()[-1]
                break
        else:
            raise _unsupported(
                "Only $filter=servicePrincipalNames/any(c:c eq '<appId>') and appId eq '<appId>' "
                "are supported."
            )
    principals = await services.directory.principals(caller.tenant_id, SERVICE_PRINCIPAL)
    value = [
        _object_json(p)
        for p in principals
        if wanted is None or (p.app_id or "").lower() == wanted.lower()
    ]
    return json_answer(
        graph.GraphObjectList(
            odata_context=f"{request.url.origin()}/v1.0/$metadata#servicePrincipals", value=value
        )
    )


async def get_by_ids(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    caller = await _directory_reader(request)
    body = await json_body(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ArmError(400, "Request_BadRequest", "The body must hold `ids`, a list of object ids.")
    if len(ids) > _MAX_IDS:
        raise ArmError(400, "Request_BadRequest", f"At most {_MAX_IDS} ids may be given.")
    value = []
    for ident in dict.fromkeys(i.lower() for i in ids):
        principal = await services.directory.principal(ident)
        if principal is not None and principal.tenant_id == caller.tenant_id:
            value.append(_object_json(principal))
    return json_answer(
        graph.GraphObjectList(
            odata_context=f"{request.url.origin()}/v1.0/$metadata#directoryObjects", value=value
        )
    )
