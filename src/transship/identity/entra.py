"""The Entra-compatible identity provider: client-credentials and password grants issue
RS256 access tokens; the management API verifies them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from transship.errors import Invalid, NotFound, Unauthenticated, Unsupported
from transship.identity.directory import Directory
from transship.identity.model import SERVICE_PRINCIPAL, Principal
from transship.identity.tokens import TokenInvalid, TokenService

ACCESS_TOKEN_LIFETIME = timedelta(seconds=3599)
# The audience the Azure CLI asks for when it talks to a registry's data plane.
ACR_AUDIENCE = "https://containerregistry.azure.net"
# Well-known public client of the Azure CLI; users sign in through it.
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
_ISSUER_TAIL = re.compile(r"/([0-9a-f-]{36})/v2\.0$")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token endpoint request, as the form fields were sent, and the network address it
    came from (None: unknown), which failed sign-ins are counted against."""

    tenant: str
    grant_type: str
    client_id: str
    client_secret: str
    username: str
    password: str
    scope: str
    address: str | None = None


def resource_of(scope: str) -> str:
    """The audience a `scope` asks for: the first scope's resource without `/.default`.
    The Azure CLI sends the management resource with a doubled slash
    (`https://host:port//.default`), which means `https://host:port/`; runs of slashes in
    the path collapse, and a resource without a path keeps none."""
    first = scope.split()[0] if scope.split() else ""
    for suffix in ("/.default", ".default"):
        if first.endswith(suffix):
            first = first[: -len(suffix)]
            break
    scheme, sep, rest = first.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        first = f"{scheme}://{host}" + re.sub("/+", "/", slash + path)
    return first


def issuer_for(origin: str, tenant_id: str) -> str:
    return f"{origin}/{tenant_id}/v2.0"


class EntraTokens:
    def __init__(self, directory: Directory, tokens: TokenService) -> None:
        self._directory = directory
        self._tokens = tokens

    async def issue(self, origin: str, request: TokenRequest) -> dict[str, Any]:
        """The token response for a client-credentials or password grant. Raises NotFound
        ("tenant"), Invalid("scope"), Unsupported("grant type"), Unauthenticated ("client"
        for a bad secret, "user" for a bad password) with Entra's messages, and RetryLater
        (TooManyFailures, CredentialChecksBusy) when the sign-in is refused before its check."""
        tenant = await self._directory.tenant(request.tenant)
        if tenant is None:
            raise NotFound(
                "tenant", request.tenant, f"AADSTS90002: Tenant '{request.tenant}' not found."
            )
        audience = resource_of(request.scope)
        if not audience:
            raise Invalid(
                "scope", "AADSTS70011: The scope parameter is required and must name a resource."
            )
        if request.grant_type == "client_credentials":
            principal = await self._directory.authenticate_client(
                request.client_id, request.client_secret, address=request.address
            )
            if principal is None or principal.tenant_id != tenant.id:
                raise Unauthenticated(
                    "AADSTS7000215: Invalid client secret provided for application "
                    f"'{request.client_id}', or the application is not in tenant '{tenant.id}'.",
                    subject="client",
                )
        elif request.grant_type == "password":
            found = await self._directory.authenticate_user(
                tenant.id, request.username, request.password, address=request.address
            )
            if found is None:
                raise Unauthenticated(
                    "AADSTS50126: Error validating credentials due to invalid username or "
                    "password.",
                    subject="user",
                )
            principal = found
        else:
            raise Unsupported(
                f"AADSTS70003: grant_type {request.grant_type!r} is not supported.",
                subject="grant type",
            )
        claims = {
            "aud": audience,
            "iss": issuer_for(origin, tenant.id),
            "tid": tenant.id,
            "oid": principal.object_id,
            "sub": principal.object_id,
            "appid": principal.app_id or request.client_id or AZURE_CLI_CLIENT_ID,
            "idtyp": "app" if principal.kind == SERVICE_PRINCIPAL else "user",
            "ver": "2.0",
        }
        if principal.kind != SERVICE_PRINCIPAL:
            claims["name"] = claims["upn"] = claims["unique_name"] = principal.name
        token, seconds = self._tokens.issue(claims, ACCESS_TOKEN_LIFETIME)
        return {
            "token_type": "Bearer",
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": token,
        }

    async def verify(self, token: str, audiences: set[str]) -> Principal:
        """The principal an access token was issued to. Raises TokenInvalid when the token is
        invalid, for another audience, or its principal no longer exists."""
        claims = await self._tokens.verify(token, audiences=audiences)
        tenant_id = str(claims.get("tid", ""))
        found = _ISSUER_TAIL.search(str(claims.get("iss", "")))
        if found is None or found.group(1) != tenant_id:
            raise TokenInvalid("the token's issuer does not match its tenant")
        principal = await self._directory.principal(str(claims.get("oid", "")))
        if principal is None or principal.tenant_id != tenant_id:
            raise TokenInvalid("the token's principal does not exist in its tenant")
        return principal
