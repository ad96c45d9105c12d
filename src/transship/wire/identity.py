"""Answers of the identity endpoints (the Entra-style token service, OIDC discovery, the
signing keys, the cloud metadata document) and of the data-plane token endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt

from transship.wire.base import Answer, SnakeAnswer

OAuthErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "invalid_tenant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
]


class OAuthError(SnakeAnswer):
    """An OAuth 2.0 token endpoint error (RFC 6749 section 5.2), as Entra ID answers it."""

    error: OAuthErrorCode
    error_description: str
    error_codes: list[int]


class AccessToken(SnakeAnswer):
    """An RS256 access token for the audience the scope named."""

    token_type: Literal["Bearer"] = "Bearer"
    expires_in: NonNegativeInt
    ext_expires_in: NonNegativeInt
    access_token: str


class OpenIdConfiguration(SnakeAnswer):
    """The tenant's OpenID Connect discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    device_authorization_endpoint: str
    end_session_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    response_modes_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    grant_types_supported: list[str]
    scopes_supported: list[str]
    claims_supported: list[str]
    tenant_region_scope: None = None
    cloud_instance_name: str
    cloud_graph_host_name: str
    msgraph_host: str


class JsonWebKey(SnakeAnswer):
    kty: Literal["RSA"] = "RSA"
    use: Literal["sig"] = "sig"
    alg: Literal["RS256"] = "RS256"
    kid: str
    n: str
    e: str


class JsonWebKeySet(SnakeAnswer):
    """The token signing keys, active and retired."""

    keys: list[JsonWebKey]


class CloudAuthentication(Answer):
    login_endpoint: str
    audiences: list[str]
    tenant: str
    identity_provider: str


class CloudSuffixes(Answer):
    acr_login_server: str
    storage: str
    key_vault_dns: str
    sql_server_hostname: str


class CloudMetadata(Answer):
    """What `az cloud register --endpoint-resource-manager <url>` reads: every endpoint is
    this service."""

    name: str
    resource_manager: str
    portal: str
    gallery_endpoint: str
    graph_endpoint: str
    graph: str
    microsoft_graph_resource_id: str
    media: str
    batch: str
    sql_management: str
    authentication: CloudAuthentication
    suffixes: CloudSuffixes


class RegistryAccessToken(SnakeAnswer):
    """A registry access token (Docker token specification) holding, of the scopes asked
    for, the actions the caller has; `token` repeats `access_token`."""

    access_token: str
    token: str
    expires_in: NonNegativeInt


class RegistryRefreshToken(SnakeAnswer):
    """An ACR refresh token: the password of user 00000000-0000-0000-0000-000000000000, or
    the refresh_token grant of POST /oauth2/token."""

    refresh_token: str
