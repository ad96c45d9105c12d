"""Access to a registry's data plane (/v2, /acr/v1, /oauth2): network rules, then the
caller's credentials against what the request needs, answered per the Docker token
specification (401 with a Bearer challenge naming realm, service and scope)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from multidict import MultiDict

from transship.api import envelopes as e
from transship.api.acr import repository_in as acr_repository_in
from transship.api.answers import json_answer
from transship.api.auth import basic_credentials, bearer_token, management_audiences
from transship.api.envelopes import OciError
from transship.api.v2 import SERVICES
from transship.api.v2 import repository_in as v2_repository_in
from transship.errors import Unsupported
from transship.identity.dataplane import EVERY_ACTION, Grant, Unauthenticated, parse_scopes
from transship.identity.network import client_allowed, denial_message
from transship.metadata.records import RegistryRecord
from transship.oci.reference import InvalidReference, validate_repository
from transship.wire import identity as answers

# The paths this middleware guards (need_of says exactly what each one needs).
_DATA_PLANE = ("/v2", "/acr/v1/")
# Everyone's grant when `data_plane_auth` is off.
OPEN = Grant("open", everywhere=EVERY_ACTION, catalog=True)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# An upload session (`/v2/<name>/blobs/uploads/<id>`), as v2's router matches it: DELETE
# there cancels the caller's own upload, part of pushing, not a deletion of content.
_UPLOAD_SESSION = re.compile(r".+/blobs/uploads/[^/]+")
# ACR's soft-delete API (`az acr manifest list-deleted|restore`, `az acr repository
# list-deleted`): Transship deletes for good, so these paths are refused as unsupported
# for every caller, before any credential is asked for.
_SOFT_DELETE = "/acr/v1/_deleted"


@dataclass(frozen=True, slots=True)
class Need:
    """What a request needs: `kind` "base" (any valid credentials), "catalog", or
    "repository" with the Docker action on `name`."""

    kind: str
    name: str = ""
    action: str = ""

    def scope(self) -> str | None:
        if self.kind == "catalog":
            return "registry:catalog:*"
        if self.kind == "repository":
            actions = "pull,push" if self.action == "push" else self.action
            return f"repository:{self.name}:{actions}"
        return None


def _name_in(tail: str, find: Callable[[str], str | None]) -> str | None:
    """The repository name a router's `find` reads from `tail` (None: no route), matched as
    if `.` also matched a line break: the routers' patterns stop at "\n", and a name holding
    one must be refused as a name, not taken for a missing route. (Their names are always a
    prefix of the tail, so the name is cut from the tail by length.)"""
    name = find(tail.replace("\n", "\r"))
    return None if name is None else tail[: len(name)]


def _valid_name(name: str) -> str:
    """`name` if it follows the OCI name grammar. Raises OciError 400 NAME_INVALID otherwise:
    before any challenge is built, so no control character or quote can reach a header."""
    try:
        return validate_repository(name)
    except InvalidReference as exc:
        raise OciError(e.NAME_INVALID, str(exc), {"name": name}) from None


def need_of(method: str, path: str) -> Need | None:
    """What the data-plane request needs; None for paths outside /v2 and /acr/v1. The
    repository is read by the routers' own functions, so the one checked is the one served.

    Raises OciError 400 NAME_INVALID when that repository name breaks the OCI grammar
    (for every caller, anonymous or not); Unsupported for ACR's soft-delete paths.
    """
    if path in ("/v2", "/v2/"):
        return Need("base")
    if path in ("/v2/_catalog", "/acr/v1/_catalog"):
        return Need("catalog")
    if path == _SOFT_DELETE or path.startswith(_SOFT_DELETE + "/"):
        raise soft_delete_unsupported()
    if path.startswith("/v2/"):
        tail = path[len("/v2/") :]
        name = _name_in(tail, v2_repository_in)
        if name is None:
            return Need("base")  # no such endpoint: 404 for anyone authenticated
        name = _valid_name(name)
        if method in ("GET", "HEAD"):
            return Need("repository", name, "pull")
        if method == "DELETE" and not _UPLOAD_SESSION.fullmatch(tail):
            return Need("repository", name, "delete")
        return Need("repository", name, "push")
    if path.startswith("/acr/v1/"):
        tail = path[len("/acr/v1/") :]
        found = acr_repository_in(tail.replace("\n", "\r"), method)
        if found is None:
            return Need("base")
        name = _valid_name(tail[: len(found[0])])
        if method in ("GET", "HEAD"):
            return Need("repository", name, "metadata_read")
        if method == "DELETE":
            return Need("repository", name, "delete")
        # PATCH of changeable attributes (image locking), on the repository or an item.
        return Need("repository", name, "metadata_write")
    return None


def soft_delete_unsupported() -> Unsupported:
    return Unsupported(
        "Soft delete is not supported by Transship: deleted manifests, tags and repositories "
        "are removed for good and cannot be listed or restored.",
        subject="soft delete",
    )


def _satisfied(grant: Grant, need: Need) -> bool:
    if need.kind == "base":
        # ACR challenges an anonymous `GET /v2/` even when anonymous pull is on: clients
        # (az, docker, podman) learn the token realm from that challenge, and az's
        # data-plane commands fail without one. Anonymous pulls of content still work.
        return grant.authenticated
    if need.kind == "catalog":
        return grant.catalog
    return grant.allows(need.name, need.action)


def _detail(need: Need) -> list[dict[str, str]] | None:
    """The `detail` of a 401, naming the access the request needed (none for `/v2/`)."""
    if need.kind == "repository":
        return [{"Type": "repository", "Name": need.name, "Action": need.action}]
    if need.kind == "catalog":
        return [{"Type": "registry", "Name": "catalog", "Action": "*"}]
    return None


def _quoted(value: str) -> str:
    """`value` as an HTTP quoted-string (RFC 9110 5.6.4): a quote or backslash (say, in a
    Host header) cannot end the parameter and add others."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(
    request: web.Request, service: str, need: Need | None, error: str | None = None
) -> str:
    """The `WWW-Authenticate` value for a request. Names come from need_of, which has
    refused any that break the OCI grammar, so no control character reaches the header."""
    realm = f"{request.scheme}://{request.host}/oauth2/token"
    value = f"Bearer realm={_quoted(realm)},service={_quoted(service)}"
    scope = None if need is None else need.scope()
    if scope:
        value += f",scope={_quoted(scope)}"
    if error:
        value += f",error={_quoted(error)}"
    return value


async def check_network(request: web.Request, registry: RegistryRecord) -> None:
    """Raises OciError 403 DENIED naming the client's address when the registry's network
    rules refuse it."""
    settings = await request.app[SERVICES].registry_access.settings(registry)
    address = request.remote or ""
    if not client_allowed(settings.network, address):
        message = denial_message(address, registry.name, settings.network)
        raise OciError(e.DENIED, message, {"ip": address})


async def grant_of(request: web.Request, registry: RegistryRecord) -> Grant:
    """The grant of the request's credentials (anonymous without any). Raises OciError 401
    for credentials that are not valid."""
    services = request.app[SERVICES]
    dataplane = services.dataplane
    service = dataplane.service_name(registry, request.host)
    try:
        token = bearer_token(request)
        if token is not None:
            return await dataplane.bearer(registry, request.host, token)
        basic = basic_credentials(request)
        if basic is not None:
            return await dataplane.basic(registry, *basic, address=request.remote)
    except Unauthenticated as exc:
        raise OciError(
            e.UNAUTHORIZED,
            f"authentication required: {exc}",
            headers={hdrs.WWW_AUTHENTICATE: challenge(request, service, None)},
        ) from None
    if request.headers.get(hdrs.AUTHORIZATION):
        raise OciError(
            e.UNAUTHORIZED,
            "authentication required: unsupported Authorization scheme",
            headers={hdrs.WWW_AUTHENTICATE: challenge(request, service, None)},
        )
    return await dataplane.anonymous(registry)


def _without_mount(request: web.Request) -> web.Request:
    """The same upload request without a cross-repository mount: a caller who may not pull
    the source repository gets a plain upload session, as the spec allows."""
    query = MultiDict((k, v) for k, v in request.query.items() if k not in ("mount", "from"))
    return request.clone(rel_url=request.rel_url.with_query(query))


@web.middleware
async def data_plane_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(_DATA_PLANE):
        return await handler(request)
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    await check_network(request, registry)
    if request.path == _SOFT_DELETE or request.path.startswith(_SOFT_DELETE + "/"):
        raise soft_delete_unsupported()
    need = need_of(request.method, request.path) if services.settings.data_plane_auth else None
    if need is None:
        return await handler(request)
    grant = await grant_of(request, registry)
    service = services.dataplane.service_name(registry, request.host)
    if not _satisfied(grant, need):
        if grant.authenticated and basic_credentials(request) is not None:
            raise OciError(
                e.DENIED,
                (
                    f"{grant.subject} may not {need.action or 'list'} {need.name or 'the catalog'}"
                ).strip(),
            )
        error = "insufficient_scope" if grant.authenticated else None
        raise OciError(
            e.UNAUTHORIZED,
            "authentication required"
            if not grant.authenticated
            else f"{need.scope()} is not granted",
            _detail(need),
            headers={hdrs.WWW_AUTHENTICATE: challenge(request, service, need, error)},
        )
    source = request.query.get("from")
    if (
        request.method == "POST"
        and "mount" in request.query
        and source
        and not grant.allows(source, "pull")
    ):
        request = _without_mount(request)
    return await handler(request)


# -- token endpoints -------------------------------------------------------------------------
async def _form(request: web.Request) -> MultiDict[str]:
    """The query (GET) or the form body's text fields. Raises OciError 400 for a body that
    cannot be read as a form (a multipart type without boundary, undecodable text…)."""
    if request.method == "GET":
        return MultiDict(request.query)
    try:
        form = await request.post()
    except ValueError as exc:
        raise OciError(
            e.OciErrorCode("UNSUPPORTED", 400),
            f"the body is not a readable form: {exc}",
            status=400,
        ) from None
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


def _token_error(message: str) -> OciError:
    return OciError(e.UNAUTHORIZED, message)


async def token(request: web.Request) -> web.Response:
    """`GET /oauth2/token` (Basic or anonymous) and `POST /oauth2/token` with the `password`
    or `refresh_token` grant: an access token holding the requested scopes the caller has."""
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    await check_network(request, registry)
    form = await _form(request)
    dataplane = services.dataplane
    scopes = parse_scopes(form.getall("scope", []))
    try:
        if request.method == "GET":
            grant = await grant_of(request, registry)
        else:
            grant_type = form.get("grant_type", "")
            if grant_type == "password":
                grant = await dataplane.basic(
                    registry,
                    form.get("username", ""),
                    form.get("password", ""),
                    address=request.remote,
                )
            elif grant_type == "refresh_token":
                principal = await dataplane.refresh_principal(
                    registry, form.get("refresh_token", ""), request.host
                )
                grant = await dataplane.principal_grant(registry, principal)
            else:
                raise OciError(
                    e.OciErrorCode("UNSUPPORTED", 400),
                    f"grant_type {grant_type!r} is not supported",
                    status=400,
                )
    except Unauthenticated as exc:
        raise _token_error(f"authentication failed: {exc}") from None
    if not services.settings.data_plane_auth:
        grant = OPEN
    return json_answer(
        answers.RegistryAccessToken.model_validate(
            dataplane.access_token(registry, request.host, grant, scopes)
        ),
        headers={"Cache-Control": "no-store"},
    )


async def exchange(request: web.Request) -> web.Response:
    """`POST /oauth2/exchange`: an ACR refresh token for an Entra access token, or for a
    registry credential given as `username`/`password` (grant_type=password)."""
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    await check_network(request, registry)
    form = await _form(request)
    grant_type = form.get("grant_type", "")
    if grant_type not in ("access_token", "access_token_refresh_token"):
        raise OciError(
            e.OciErrorCode("UNSUPPORTED", 400),
            f"grant_type {grant_type!r} is not supported",
            status=400,
        )
    try:
        refresh = await services.dataplane.exchange(
            registry,
            request.host,
            management_audiences(request, services),
            form.get("access_token", ""),
            form.get("tenant"),
        )
    except Unauthenticated as exc:
        raise _token_error(f"the access token could not be exchanged: {exc}") from None
    return json_answer(
        answers.RegistryRefreshToken(refresh_token=refresh), headers={"Cache-Control": "no-store"}
    )
