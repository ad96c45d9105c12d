"""The Entra-compatible identity endpoints (OIDC discovery, JWKS, token) and the cloud
metadata document `az cloud register` reads."""

from __future__ import annotations

from aiohttp import web

from transship.api.answers import json_answer
from transship.api.auth import basic_credentials, origin_of
from transship.api.envelopes import OAuthError
from transship.api.v2 import SERVICES
from transship.identity.entra import TokenRequest, issuer_for
from transship.wire import identity as answers

TENANT = r"{tenant:[0-9A-Za-z-]{1,64}}"


async def _tenant_id(request: web.Request) -> str:
    """The tenant named in the path. Raises OAuthError 400 for an unknown tenant."""
    tenant = await request.app[SERVICES].directory.tenant(request.match_info["tenant"])
    if tenant is None:
        raise OAuthError(
            400,
            "invalid_tenant",
            f"AADSTS90002: Tenant '{request.match_info['tenant']}' not found.",
        )
    return tenant.id


async def openid_configuration(request: web.Request) -> web.Response:
    tenant = await _tenant_id(request)
    origin = origin_of(request)
    base = f"{origin}/{tenant}"
    return json_answer(
        answers.OpenIdConfiguration(
            issuer=issuer_for(origin, tenant),
            authorization_endpoint=f"{base}/oauth2/v2.0/authorize",
            token_endpoint=f"{base}/oauth2/v2.0/token",
            device_authorization_endpoint=f"{base}/oauth2/v2.0/devicecode",
            end_session_endpoint=f"{base}/oauth2/v2.0/logout",
            jwks_uri=f"{base}/discovery/v2.0/keys",
            response_types_supported=["code", "id_token", "code id_token", "id_token token"],
            response_modes_supported=["query", "fragment", "form_post"],
            subject_types_supported=["pairwise"],
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
            grant_types_supported=["client_credentials", "password"],
            scopes_supported=["openid", "profile", "email", "offline_access"],
            claims_supported=[
                "aud",
                "iss",
                "iat",
                "exp",
                "nbf",
                "sub",
                "tid",
                "oid",
                "appid",
                "idtyp",
                "ver",
            ],
            cloud_instance_name=request.host,
            cloud_graph_host_name=request.host,
            msgraph_host=request.host,
        )
    )


async def jwks(request: web.Request) -> web.Response:
    await _tenant_id(request)
    return json_answer(
        answers.JsonWebKeySet.model_validate(request.app[SERVICES].tokens.keys.jwks())
    )


async def _form_fields(request: web.Request) -> dict[str, str]:
    """The text fields of the form body. Raises OAuthError 400 invalid_request for a body
    that cannot be read as a form (a multipart type without boundary, undecodable text…)."""
    try:
        form = await request.post()
    except ValueError:
        raise OAuthError(
            400,
            "invalid_request",
            "AADSTS900144: The request body must be a form (application/x-www-form-urlencoded).",
        ) from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def token(request: web.Request) -> web.Response:
    """The token endpoint: client credentials (secret in the form or HTTP Basic) or a
    user's password. The v1 form's `resource` stands for `<resource>/.default`."""
    tenant = await _tenant_id(request)
    fields = await _form_fields(request)
    client_id, client_secret = fields.get("client_id", ""), fields.get("client_secret", "")
    basic = basic_credentials(request)
    if basic is not None and not client_secret:
        client_id, client_secret = basic
    scope = fields.get("scope") or (
        fields["resource"] + "/.default" if fields.get("resource") else ""
    )
    response = await request.app[SERVICES].entra.issue(
        origin_of(request),
        TokenRequest(
            tenant=tenant,
            grant_type=fields.get("grant_type", ""),
            client_id=client_id,
            client_secret=client_secret,
            username=fields.get("username", ""),
            password=fields.get("password", ""),
            scope=scope,
            address=request.remote,
        ),
    )
    return json_answer(
        answers.AccessToken.model_validate(response),
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def cloud_metadata(request: web.Request) -> web.Response:
    """What `az cloud register --endpoint-resource-manager <url>` reads: every endpoint of
    this "cloud" is the service itself."""
    services = request.app[SERVICES]
    origin = origin_of(request)
    endpoint = origin + "/"
    return json_answer(
        answers.CloudMetadata(
            name="Transship",
            resource_manager=endpoint,
            portal=endpoint,
            gallery_endpoint=endpoint,
            graph_endpoint=endpoint,
            graph=endpoint,
            microsoft_graph_resource_id=endpoint,
            media=endpoint,
            batch=endpoint,
            sql_management=endpoint,
            authentication=answers.CloudAuthentication(
                login_endpoint=endpoint,
                audiences=[endpoint, *services.settings.management_audiences],
                tenant="common",
                identity_provider="AAD",
            ),
            suffixes=answers.CloudSuffixes(
                acr_login_server=services.settings.effective_login_server_suffix,
                storage="core.windows.net",
                key_vault_dns="vault.azure.net",
                sql_server_hostname="database.windows.net",
            ),
        )
    )
