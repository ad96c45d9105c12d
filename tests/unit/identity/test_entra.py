"""`transship.identity.entra`: the audience a token request's scope names, the issuer, and
EntraTokens issuing and verifying over a real directory on a SQLite file."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet

from transship.api.envelopes import OAuthError
from transship.api.error_map import Surface, envelope_for
from transship.errors import DomainError, Unauthenticated
from transship.identity.directory import Directory
from transship.identity.entra import (
    ACR_AUDIENCE,
    AZURE_CLI_CLIENT_ID,
    EntraTokens,
    TokenRequest,
    issuer_for,
    resource_of,
)
from transship.identity.model import SERVICE_PRINCIPAL, USER, Principal
from transship.identity.secrets import SecretBox, SecretHasher
from transship.identity.tokens import SigningKeys, TokenInvalid, TokenService
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore

ORIGIN = "https://transship.example:5000"


# -- resource_of -------------------------------------------------------------------------------
# The audience is compared without a trailing slash everywhere (TokenService.verify), so the
# expectations below are compared that way too; the exact spelling is pinned separately.


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        # The Azure CLI's doubled slash means the root of the resource.
        ("https://host:5000//.default", "https://host:5000/"),
        ("http://127.0.0.1:8080//.default", "http://127.0.0.1:8080/"),
        ("https://management.azure.com//.default", "https://management.azure.com/"),
        ("https://management.azure.com/.default", "https://management.azure.com"),
        ("https://management.core.windows.net//.default", "https://management.core.windows.net/"),
        ("https://containerregistry.azure.net/.default", ACR_AUDIENCE),
        # Slashes inside the path collapse; the path itself is kept.
        ("https://host/api//v1/.default", "https://host/api/v1"),
        ("https://host///a///.default", "https://host/a/"),
        # `.default` straight after the resource (no slash) is cut off as well.
        ("https://host.default", "https://host"),
        # Only the first of several scopes counts.
        ("https://host//.default offline_access openid", "https://host/"),
        ("  https://host//.default  ", "https://host/"),
        # Not URLs: taken as they are, minus `/.default`.
        ("api://my-app/.default", "api://my-app"),
        ("00000000-0000-0000-0000-000000000001/.default", "00000000-0000-0000-0000-000000000001"),
        ("https://host", "https://host"),
        ("openid", "openid"),
    ],
)
def test_resource_of(scope: str, audience: str) -> None:
    assert resource_of(scope).rstrip("/") == audience.rstrip("/")


@pytest.mark.parametrize("scope", ["", "   ", "\t\n", "/.default", ".default"])
def test_resource_of_no_resource(scope: str) -> None:
    assert resource_of(scope) == ""


def test_resource_of_doubled_slash_keeps_the_root_slash() -> None:
    """What the docstring promises for the Azure CLI's form: `https://host:port/`."""
    assert resource_of("https://host:5000//.default") == "https://host:5000/"
    assert resource_of("https://host:5000///.default") == "https://host:5000/"


def test_resource_of_does_not_touch_the_authority() -> None:
    assert resource_of("https://User@Host:5000//.default").startswith("https://User@Host:5000")
    assert resource_of("HTTPS://HOST//.default").startswith("HTTPS://HOST")


def test_issuer_for() -> None:
    tenant = "3f1a2b4c-0000-4000-8000-000000000000"
    assert issuer_for(ORIGIN, tenant) == f"{ORIGIN}/{tenant}/v2.0"


# -- EntraTokens -----------------------------------------------------------------------------


@dataclass
class Setup:
    entra: EntraTokens
    tokens: TokenService
    directory: Directory
    tenant: str
    other_tenant: str
    app: Principal
    secret: str
    other_app: Principal
    other_secret: str
    user: Principal


USER_PASSWORD = "correct horse battery"


@pytest.fixture
async def setup(tmp_path: Path, hasher: SecretHasher) -> AsyncIterator[Setup]:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        meta = MetadataStore(database)
        keys = SigningKeys(meta, SecretBox(Fernet.generate_key()))
        await keys.load()
        tokens = TokenService(keys)
        directory = Directory(meta, hasher=hasher)
        tenant, _, owner = await directory.create_tenant("A")
        other, _, other_owner = await directory.create_tenant("B")
        assert owner.secret is not None and other_owner.secret is not None
        user = await directory.create_user(tenant.id, "dana", USER_PASSWORD)
        yield Setup(
            EntraTokens(directory, tokens),
            tokens,
            directory,
            tenant.id,
            other.id,
            owner.principal,
            owner.secret.value,
            other_owner.principal,
            other_owner.secret.value,
            user,
        )
    finally:
        await database.close()


def client_request(s: Setup, **changes: str) -> TokenRequest:
    values = {
        "tenant": s.tenant,
        "grant_type": "client_credentials",
        "client_id": s.app.app_id or "",
        "client_secret": s.secret,
        "username": "",
        "password": "",
        "scope": f"{ORIGIN}//.default",
    }
    values.update(changes)
    return TokenRequest(**values)


async def test_client_credentials(setup: Setup) -> None:
    s = setup
    answer = await s.entra.issue(ORIGIN, client_request(s))
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == answer["ext_expires_in"] == 3599
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["aud"] == f"{ORIGIN}/"
    assert claims["iss"] == f"{ORIGIN}/{s.tenant}/v2.0"
    assert claims["tid"] == s.tenant
    assert claims["oid"] == claims["sub"] == s.app.object_id
    assert claims["appid"] == s.app.app_id
    assert claims["idtyp"] == "app" and claims["ver"] == "2.0"
    assert "upn" not in claims and "name" not in claims
    assert abs(claims["iat"] - time.time()) < 60
    principal = await s.entra.verify(answer["access_token"], {ORIGIN})
    assert principal == s.app


async def test_password_grant_for_a_user(setup: Setup) -> None:
    s = setup
    request = client_request(
        s,
        grant_type="password",
        client_id="",
        client_secret="",
        username="dana",
        password=USER_PASSWORD,
        scope=ACR_AUDIENCE + "/.default",
    )
    answer = await s.entra.issue(ORIGIN, request)
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["oid"] == s.user.object_id and claims["idtyp"] == "user"
    assert claims["upn"] == claims["name"] == claims["unique_name"] == "dana"
    assert claims["appid"] == AZURE_CLI_CLIENT_ID  # no client named: the Azure CLI
    assert (await s.entra.verify(answer["access_token"], {ACR_AUDIENCE})).kind == USER
    with pytest.raises(Unauthenticated) as wrong:
        await s.entra.issue(
            ORIGIN,
            client_request(s, grant_type="password", username="dana", password="nope-nope-nope"),
        )
    assert wrong.value.subject == "user"
    # A user of tenant A does not sign in at tenant B.
    with pytest.raises(Unauthenticated) as elsewhere:
        await s.entra.issue(
            ORIGIN,
            client_request(
                s,
                tenant=s.other_tenant,
                grant_type="password",
                username="dana",
                password=USER_PASSWORD,
            ),
        )
    assert elsewhere.value.subject == "user"


async def test_issue_refusals(setup: Setup) -> None:
    s = setup
    cases: list[tuple[TokenRequest, int, str]] = [
        (client_request(s, client_secret=s.secret + "x"), 401, "invalid_client"),
        (client_request(s, client_id=str(uuid.uuid4())), 401, "invalid_client"),
        (client_request(s, client_secret=""), 401, "invalid_client"),
        # The right secret, at another tenant.
        (client_request(s, tenant=s.other_tenant), 401, "invalid_client"),
        (
            client_request(s, client_id=s.other_app.app_id or "", client_secret=s.other_secret),
            401,
            "invalid_client",
        ),
        (client_request(s, tenant=str(uuid.uuid4())), 400, "invalid_request"),
        (client_request(s, scope=""), 400, "invalid_scope"),
        (client_request(s, scope="/.default"), 400, "invalid_scope"),
        (client_request(s, grant_type="authorization_code"), 400, "unsupported_grant_type"),
        (client_request(s, grant_type=""), 400, "unsupported_grant_type"),
    ]
    for request, status, error in cases:
        with pytest.raises(DomainError) as caught:
            await s.entra.issue(ORIGIN, request)
        answer = envelope_for(caught.value, Surface.OAUTH)
        assert isinstance(answer, OAuthError)
        assert (answer.status, answer.error) == (status, error), request
        assert s.secret not in caught.value.message


async def test_a_tenant_id_is_matched_case_insensitively(setup: Setup) -> None:
    s = setup
    answer = await s.entra.issue(ORIGIN, client_request(s, tenant=s.tenant.upper()))
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["tid"] == s.tenant


async def test_verify_refusals(setup: Setup) -> None:
    s = setup
    good = (await s.entra.issue(ORIGIN, client_request(s)))["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    sign = s.tokens.keys.sign
    refused = {
        "another audience": (good, {"https://elsewhere"}),
        "iss of another tenant": (
            sign({**claims, "iss": issuer_for(ORIGIN, s.other_tenant)}),
            {ORIGIN},
        ),
        "iss without a tenant": (sign({**claims, "iss": ORIGIN}), {ORIGIN}),
        "tid of another tenant": (sign({**claims, "tid": s.other_tenant}), {ORIGIN}),
        "principal of another tenant": (
            sign(
                {
                    **claims,
                    "tid": s.other_tenant,
                    "iss": issuer_for(ORIGIN, s.other_tenant),
                    "oid": s.app.object_id,
                }
            ),
            {ORIGIN},
        ),
        "unknown principal": (sign({**claims, "oid": str(uuid.uuid4())}), {ORIGIN}),
        "no oid": (sign({k: v for k, v in claims.items() if k != "oid"}), {ORIGIN}),
    }
    for name, (token, audiences) in refused.items():
        with pytest.raises(TokenInvalid):
            await s.entra.verify(token, audiences)
            pytest.fail(name)
    # The issuer's origin is not checked, only its tenant: any origin the service answers on.
    other_origin = sign({**claims, "iss": issuer_for("https://alias.example", s.tenant)})
    assert await s.entra.verify(other_origin, {ORIGIN}) == s.app


async def test_a_deleted_principal_is_refused(setup: Setup) -> None:
    s = setup
    created = await s.directory.create_service_principal(s.tenant, "short-lived")
    assert created.secret is not None
    token = (
        await s.entra.issue(
            ORIGIN,
            client_request(
                s, client_id=created.principal.app_id or "", client_secret=created.secret.value
            ),
        )
    )["access_token"]
    assert (await s.entra.verify(token, {ORIGIN})).kind == SERVICE_PRINCIPAL
    await s.directory.delete_principal(created.principal)
    with pytest.raises(TokenInvalid, match="principal"):
        await s.entra.verify(token, {ORIGIN})
    with pytest.raises(Unauthenticated):
        await s.entra.issue(
            ORIGIN,
            client_request(
                s, client_id=created.principal.app_id or "", client_secret=created.secret.value
            ),
        )
