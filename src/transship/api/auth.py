"""Authentication and authorization of the management API: an Entra-style bearer token (or,
for scripts, a service principal's client id and secret with HTTP Basic), then an RBAC check
of the action on the resource's scope."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from transship.api.envelopes import ArmError
from transship.api.services import Services
from transship.identity.access import authorization_failed
from transship.identity.model import Principal
from transship.identity.tokens import TokenInvalid
from transship.metadata.records import SubscriptionRecord

CALLER: web.RequestKey[Principal] = web.RequestKey("caller", Principal)


def origin_of(request: web.Request) -> str:
    """The scheme and authority the client addressed (the audience of its tokens)."""
    return f"{request.scheme}://{request.host}"


def _local_port(request: web.Request) -> int | None:
    """The port the connection came in on (the `Host` header may name another, behind a
    proxy or port mapping)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def management_audiences(request: web.Request, services: Services) -> set[str]:
    """The audiences a management token may carry: this service's own URLs, under each of
    its configured names (loopback names, listen addresses, the login-server suffix, the
    TLS certificate's extra names) on its port, the port the connection came in on, or the
    scheme's default port; and the configured ARM audiences. Nothing here comes from the
    request's `Host` header, which a client chooses freely: a token minted for another
    service, for the ACR audience or for a data plane is refused."""
    settings = services.settings
    ports = {settings.port, _local_port(request)}
    suffix = settings.effective_login_server_suffix
    suffix_host = urlsplit(f"//{suffix}").hostname or suffix
    names = {"localhost", "127.0.0.1", "[::1]", suffix_host, *settings.tls_hosts}
    names.update(h for h in settings.hosts if h not in ("0.0.0.0", "::"))
    bracketed = {f"[{h}]" if ":" in h and not h.startswith("[") else h for h in names if h}
    authorities = {suffix, *bracketed}
    authorities.update(f"{name}:{port}" for name in bracketed for port in ports if port)
    origins = {f"{scheme}://{a}" for a in authorities for scheme in ("https", "http")}
    return origins | set(settings.management_audiences)


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(user name, password) of an HTTP Basic `Authorization` header, or None."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = (
            base64.b64decode(value.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


def bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _unauthenticated(request: web.Request, code: str, message: str) -> ArmError:
    tenant = "common"
    challenge = (
        f'Bearer authorization_uri="{origin_of(request)}/{tenant}/oauth2/authorize", '
        'error="invalid_token"'
    )
    return ArmError(401, code, message, headers={hdrs.WWW_AUTHENTICATE: challenge})


async def caller(request: web.Request, services: Services) -> Principal:
    """The authenticated principal. Raises ArmError 401 (AuthenticationFailed,
    InvalidAuthenticationToken, ExpiredAuthenticationToken, InvalidAuthenticationTokenAudience)."""
    if CALLER in request:
        return request[CALLER]
    token = bearer_token(request)
    if token is not None:
        try:
            principal = await services.entra.verify(token, management_audiences(request, services))
        except TokenInvalid as exc:
            text = str(exc)
            code = (
                "ExpiredAuthenticationToken"
                if "expired" in text
                else "InvalidAuthenticationTokenAudience"
                if "audience" in text
                else "InvalidAuthenticationToken"
            )
            raise _unauthenticated(request, code, f"The access token is invalid: {text}.") from None
    else:
        basic = basic_credentials(request)
        found = (
            None
            if basic is None
            else await services.directory.authenticate_client(*basic, address=request.remote)
        )
        if found is None and basic is not None:
            # The same words as the token endpoint's for a wrong secret: a client that signs
            # in with HTTP Basic (the CLI does when it learns its tenant) tells the user the
            # same thing either way.
            raise _unauthenticated(
                request,
                "AuthenticationFailed",
                f"AADSTS7000215: Invalid client secret provided for application '{basic[0]}'.",
            )
        if found is None:
            raise _unauthenticated(
                request,
                "AuthenticationFailed",
                "Authentication failed. Send a bearer token from the token endpoint, or a "
                "service principal's client id and secret with HTTP Basic authentication.",
            )
        principal = found
    request[CALLER] = principal
    return principal


async def subscription_of(
    request: web.Request, services: Services, principal: Principal, subscription_id: str
) -> SubscriptionRecord:
    """The subscription, if the caller's tenant owns it. Raises ArmError 404
    SubscriptionNotFound or 401 InvalidAuthenticationTokenTenant."""
    subscription = await services.directory.require_subscription(subscription_id)
    if subscription.tenant_id != principal.tenant_id:
        raise ArmError(
            401,
            "InvalidAuthenticationTokenTenant",
            f"The access token is from the wrong issuer: subscription '{subscription_id}' "
            f"belongs to another tenant than '{principal.tenant_id}'.",
        )
    return subscription


async def authorize(
    request: web.Request, services: Services, scope: str, *actions: str
) -> Principal:
    """Authenticate, check the scope's subscription belongs to the caller's tenant, and
    require one of `actions` at `scope`. Raises ArmError 401, 403 AuthorizationFailed, 404."""
    principal = await caller(request, services)
    parts = scope.strip("/").split("/")
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        await subscription_of(request, services, principal, parts[1])
    if (
        len(parts) == 4
        and parts[2].lower() == "managementgroups"
        and parts[3].lower() != principal.tenant_id
    ):
        raise ArmError(
            401,
            "InvalidAuthenticationTokenTenant",
            f"The access token is from the wrong issuer: the management group '{parts[3]}' "
            "is another tenant's.",
        )
    if not any([await services.access.allowed(principal, action, scope) for action in actions]):
        raise authorization_failed(principal, actions[0], scope)
    return principal
