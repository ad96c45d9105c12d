"""Tokens end to end: the Entra-like token endpoint with its OIDC discovery and JWKS, the
management API refusing every kind of bad token, the data plane's Docker tokens (access,
refresh, exchange) bound to one registry and one tenant, and signing-key rotation.

Forged and expired tokens are signed in-process with the service's real key
(`reg.services.tokens.keys.sign`) or with a key of our own, and each refusal is paired with
a control token made the same way that is accepted, so the refusal is known to come from
the one thing changed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import Credential, IdentityClient, owner_credential, registry_token

ACR_SCOPE = "https://containerregistry.azure.net/.default"
REFRESH_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"


@dataclass
class Env:
    reg: RunningRegistry
    owner: IdentityClient
    credential: Credential

    @property
    def url(self) -> str:
        return self.reg.url

    @property
    def tenant(self) -> str:
        return self.credential.tenant_id

    @property
    def subscription(self) -> str:
        return self.credential.subscription_id

    def client(self, credential: Credential) -> IdentityClient:
        return IdentityClient(self.reg.http, self.url, credential)

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.reg.http.get(self.url + path) as r:
            return r.status, await r.json(content_type=None)

    async def access_token(self, credential: Credential, scope: str | None = None) -> str:
        status, body = await self.client(credential).token(scope)
        assert status == 200, body
        return str(body["access_token"])

    async def arm(self, token: str, path: str | None = None) -> tuple[int, Any, str]:
        """GET a management resource with a bearer token; (status, body, WWW-Authenticate).
        By default the owner's resource group `default`, which needs authentication and
        an RBAC check."""
        path = path or f"/subscriptions/{self.subscription}/resourceGroups/default"
        async with self.reg.http.get(
            f"{self.url}{path}?api-version=2025-04-01",
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            text = await r.text()
            return (
                r.status,
                json.loads(text) if text else None,
                r.headers.get("WWW-Authenticate", ""),
            )

    async def v2(self, host: str, authorization: str, path: str = "/v2/") -> tuple[int, Any, str]:
        """A data-plane GET addressed to `host`; (status, body, WWW-Authenticate)."""
        async with self.reg.http.get(
            self.url + path, headers={"Host": host, "Authorization": authorization}
        ) as r:
            text = await r.text()
            return (
                r.status,
                json.loads(text) if text else None,
                r.headers.get("WWW-Authenticate", ""),
            )

    async def registry(self, name: str) -> str:
        """Create a registry in the owner's default group; its login server."""
        body = await self.owner.create_registry(self.subscription, "default", name)
        return str(body["properties"]["loginServer"])

    async def docker_token(self, host: str, authorization: str, *scopes: str) -> str:
        status, body = await registry_token(
            self.reg.http, self.url, authorization, list(scopes), host=host
        )
        assert status == 200, body
        return str(body["access_token"])

    async def exchange(
        self, host: str, access_token: str, tenant: str | None = None
    ) -> tuple[int, Any]:
        form = {"grant_type": "access_token", "service": host, "access_token": access_token}
        if tenant is not None:
            form["tenant"] = tenant
        async with self.reg.http.post(
            self.url + "/oauth2/exchange", data=form, headers={"Host": host}
        ) as r:
            return r.status, await r.json(content_type=None)

    async def refresh_grant(self, host: str, refresh_token: str, scope: str) -> tuple[int, Any]:
        form = {
            "grant_type": "refresh_token",
            "service": host,
            "scope": scope,
            "refresh_token": refresh_token,
        }
        async with self.reg.http.post(
            self.url + "/oauth2/token", data=form, headers={"Host": host}
        ) as r:
            return r.status, await r.json(content_type=None)

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign with the service's active key, in-process."""
        return self.reg.services.tokens.keys.sign(claims)


@pytest.fixture
async def env(tmp_path: Path, database_url: str | None) -> AsyncIterator[Env]:
    settings = make_settings(tmp_path, database_url, data_plane_auth=True)
    async with running_registry(settings) as reg:
        credential = owner_credential(tmp_path)
        yield Env(reg, IdentityClient(reg.http, reg.url, credential), credential)


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def header_of(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hs256_with(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An HS256 JWT made by hand (PyJWT refuses a PEM public key as an HMAC secret, which
    is the point of the attack)."""
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    ).encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return signing_input.decode() + "." + _b64(signature)


def fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `claims` valid from now for an hour, with `changes`."""
    now = int(time.time())
    out = {**claims, "iat": now, "nbf": now, "exp": now + 3600, "jti": str(uuid.uuid4())}
    out.update(changes)
    return out


def expired(claims: dict[str, Any]) -> dict[str, Any]:
    """Expired two minutes ago: beyond the verifier's 30 s of clock skew."""
    now = int(time.time())
    return fresh(claims, iat=now - 3720, nbf=now - 3720, exp=now - 120)


def _jwk(jwks: dict[str, Any], kid: str) -> Any:
    found = [key for key in jwks["keys"] if key["kid"] == kid]
    assert len(found) == 1, (kid, jwks)
    return jwt.PyJWK(found[0]).key


# -- discovery, JWKS and the token endpoint --------------------------------------------------


async def test_discovery_jwks_and_issued_tokens(env: Env) -> None:
    status, config = await env.get_json(f"/{env.tenant}/v2.0/.well-known/openid-configuration")
    assert status == 200, config
    issuer = f"{env.url}/{env.tenant}/v2.0"
    assert config["issuer"] == issuer
    assert config["token_endpoint"] == f"{env.url}/{env.tenant}/oauth2/v2.0/token"
    assert config["jwks_uri"] == f"{env.url}/{env.tenant}/discovery/v2.0/keys"
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    assert "client_credentials" in config["grant_types_supported"]
    for claim in ("aud", "iss", "exp", "tid", "oid", "appid"):
        assert claim in config["claims_supported"], claim
    # The v1 path and an upper-case tenant id name the same document.
    status, same = await env.get_json(f"/{env.tenant.upper()}/.well-known/openid-configuration")
    assert status == 200 and same["issuer"] == issuer, same
    status, error = await env.get_json(f"/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
    assert status == 400 and error["error"] == "invalid_tenant", error

    status, jwks = await env.get_json(config["jwks_uri"].removeprefix(env.url))
    assert status == 200, jwks
    assert jwks["keys"], jwks
    for key in jwks["keys"]:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig", key
        assert {"kid", "n", "e"} <= key.keys() and "d" not in key and "p" not in key, key
    assert (await env.get_json(f"/{env.tenant}/discovery/keys"))[1] == jwks

    # A token from the discovered endpoint (client secret in the form) ...
    form = {
        "grant_type": "client_credentials",
        "client_id": env.credential.client_id,
        "client_secret": env.credential.secret,
        "scope": f"{env.url}//.default",
    }
    async with env.reg.http.post(config["token_endpoint"], data=form) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        answer = await r.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] > 3000, answer
    token = answer["access_token"]
    # ... verifies against the published key named by its kid, with its claims.
    kid = header_of(token)["kid"]
    claims = jwt.decode(
        token,
        _jwk(jwks, kid),
        algorithms=["RS256"],
        audience=f"{env.url}/",
        issuer=issuer,
        options={"require": ["exp", "iat", "tid", "oid", "appid"]},
    )
    info = await env.owner.info()
    assert claims["tid"] == env.tenant
    assert claims["oid"] == claims["sub"] == info["caller"]["objectId"]
    assert claims["appid"] == env.credential.client_id
    assert claims["idtyp"] == "app"
    assert claims["exp"] - claims["iat"] == answer["expires_in"]
    # A token tampered with no longer verifies against that key.
    head, _, signature = token.split(".")
    tampered_claims = {**claims, "oid": str(uuid.uuid4())}
    tampered = f"{head}.{_b64(json.dumps(tampered_claims).encode())}.{signature}"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, _jwk(jwks, kid), algorithms=["RS256"], audience=f"{env.url}/")

    # HTTP Basic client authentication and the v1 `resource` form give the same audience.
    async with env.reg.http.post(
        f"{env.url}/{env.tenant}/oauth2/token",
        data={"grant_type": "client_credentials", "resource": f"{env.url}/"},
        headers={"Authorization": env.credential.basic},
    ) as r:
        assert r.status == 200, await r.text()
        v1 = claims_of((await r.json())["access_token"])
    assert v1["aud"] == f"{env.url}/" and v1["oid"] == claims["oid"], v1


async def test_token_endpoint_refusals(env: Env) -> None:
    wrong = Credential(env.tenant, env.credential.client_id, env.credential.secret + "x")
    status, body = await env.client(wrong).token()
    assert status == 401 and body["error"] == "invalid_client", body
    assert env.credential.secret not in json.dumps(body)

    unknown_client = Credential(env.tenant, str(uuid.uuid4()), "whatever-secret")
    status, body = await env.client(unknown_client).token()
    assert status == 401 and body["error"] == "invalid_client", body

    status, body = await env.owner.token(tenant=str(uuid.uuid4()))
    assert status == 400 and body["error"] in ("invalid_tenant", "invalid_request"), body

    # The right secret at another tenant's endpoint.
    other = await env.owner.create_tenant(str(uuid.uuid4()))
    status, body = await env.owner.token(tenant=other.tenant_id)
    assert status == 401 and body["error"] == "invalid_client", body
    status, body = await env.client(other).token(tenant=env.tenant)
    assert status == 401 and body["error"] == "invalid_client", body

    async with env.reg.http.post(
        f"{env.url}/{env.tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": env.credential.client_id,
            "client_secret": env.credential.secret,
            "scope": f"{env.url}//.default",
        },
    ) as r:
        body = await r.json()
        assert r.status == 400 and body["error"] == "unsupported_grant_type", body
    async with env.reg.http.post(
        f"{env.url}/{env.tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": env.credential.client_id,
            "client_secret": env.credential.secret,
        },
    ) as r:
        body = await r.json()
        assert r.status == 400 and body["error"] == "invalid_scope", body


# -- the management API refuses bad tokens ---------------------------------------------------


async def test_management_api_refuses_expired_and_forged_tokens(env: Env) -> None:
    real = await env.access_token(env.credential)
    claims = claims_of(real)
    kid = header_of(real)["kid"]
    status, _, _ = await env.arm(real)
    assert status == 200

    # Control: a token signed in-process with fresh claims is accepted.
    status, body, _ = await env.arm(env.sign(fresh(claims)))
    assert status == 200, body

    status, body, challenge = await env.arm(env.sign(expired(claims)))
    assert status == 401 and body["error"]["code"] == "ExpiredAuthenticationToken", body
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, challenge

    # On a thread: a 2048-bit key takes 50 to 500 ms of CPU, and the stall guard watches this
    # loop too.
    other_key = await asyncio.to_thread(rsa.generate_private_key, 65537, 2048)
    same_kid = jwt.encode(
        fresh(claims), other_key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"}
    )
    unknown_kid = jwt.encode(
        fresh(claims), other_key, algorithm="RS256", headers={"kid": "not-a-key-of-ours"}
    )
    unsigned = jwt.encode(fresh(claims), "", algorithm="none", headers={"kid": kid})
    public_pem = jwt.PyJWK(
        (await env.get_json(f"/{env.tenant}/discovery/v2.0/keys"))[1]["keys"][0]
    ).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    confused = hs256_with(public_pem, {"alg": "HS256", "typ": "JWT", "kid": kid}, fresh(claims))
    # The real signature over other claims.
    head, _, signature = real.split(".")
    swapped = f"{head}.{_b64(json.dumps(fresh(claims)).encode())}.{signature}"
    for name, token in (
        ("another key, same kid", same_kid),
        ("another key, unknown kid", unknown_kid),
        ("alg none", unsigned),
        ("HS256 keyed with the public key", confused),
        ("real signature, other claims", swapped),
        ("not a JWT", "not-a-jwt"),
    ):
        status, body, challenge = await env.arm(token)
        assert status == 401, (name, status, body)
        assert body["error"]["code"] == "InvalidAuthenticationToken", (name, body)
        assert challenge.startswith("Bearer "), (name, challenge)

    # Signed with the real key, but not what the issuer issues.
    for name, forged in (
        ("tid of another tenant than iss", fresh(claims, tid=str(uuid.uuid4()))),
        ("iss of another tenant than tid", fresh(claims, iss=f"{env.url}/{uuid.uuid4()}/v2.0")),
        ("an unknown oid", fresh(claims, oid=str(uuid.uuid4()))),
        ("no exp", {k: v for k, v in fresh(claims).items() if k != "exp"}),
        ("no iss", {k: v for k, v in fresh(claims).items() if k != "iss"}),
    ):
        status, body, _ = await env.arm(env.sign(forged))
        assert status == 401, (name, status, body)
        assert body["error"]["code"] == "InvalidAuthenticationToken", (name, body)


async def test_management_api_refuses_wrong_audience_and_tenant(env: Env) -> None:
    acr = await env.access_token(env.credential, ACR_SCOPE)
    # (The service writes the audience with a trailing slash; audiences compare without it.)
    assert claims_of(acr)["aud"].rstrip("/") == "https://containerregistry.azure.net"
    status, body, _ = await env.arm(acr)
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationTokenAudience", body
    # The well-known management audiences are accepted (settings.management_audiences).
    azure = await env.access_token(env.credential, "https://management.azure.com//.default")
    assert (await env.arm(azure))[0] == 200
    # A data-plane access token is for a registry, not for the management API.
    login_server = await env.registry("audience1")
    docker = await env.docker_token(login_server, env.credential.basic, "repository:r:pull")
    status, body, _ = await env.arm(docker)
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationTokenAudience", body

    other = await env.owner.create_tenant(str(uuid.uuid4()), "Tenant B")
    b_token = await env.access_token(other)
    assert claims_of(b_token)["tid"] == other.tenant_id
    own = f"/subscriptions/{other.subscription_id}/resourceGroups/default"
    assert (await env.arm(b_token, own))[0] == 200
    registry = IdentityClient.registry_id(env.subscription, "default", "audience1")
    for path in (
        f"/subscriptions/{env.subscription}/resourceGroups/default",
        registry,
        f"/subscriptions/{env.subscription}/providers/Microsoft.ContainerRegistry/registries",
    ):
        status, body, _ = await env.arm(b_token, path)
        assert status == 401, (path, status, body)
        assert body["error"]["code"] == "InvalidAuthenticationTokenTenant", (path, body)
    # Tenant B's owner holds Owner on its own tenant's root; that reaches nothing of A's.
    status, body = await env.client(other).call("GET", registry)
    assert status == 401, body


async def test_management_audience_never_comes_from_the_host_header(env: Env) -> None:
    """A token minted for any audience a caller likes is refused even when the request names
    that audience's host in its Host header: the audiences are the service's own names."""
    chosen = "evil.example:4242"
    token = await env.access_token(env.credential, f"http://{chosen}/.default")
    path = f"/subscriptions/{env.subscription}/resourceGroups/default?api-version=2025-04-01"
    for host in (chosen, "127.0.0.1:4242"):
        async with env.reg.http.get(
            env.url + path, headers={"Host": host, "Authorization": f"Bearer {token}"}
        ) as r:
            body = await r.json(content_type=None)
            assert r.status == 401, (host, body)
            assert body["error"]["code"] == "InvalidAuthenticationTokenAudience", body
    # Control: a token for the address the service listens on works, whatever the Host.
    own = await env.access_token(env.credential, f"{env.url}//.default")
    async with env.reg.http.get(
        env.url + path, headers={"Host": chosen, "Authorization": f"Bearer {own}"}
    ) as r:
        assert r.status == 200, await r.text()


async def test_token_of_a_deleted_principal_is_refused(env: Env) -> None:
    doomed = await env.owner.create_service_principal("doomed")
    await env.owner.assign(f"/subscriptions/{env.subscription}", doomed.object_id, "Reader")
    token = await env.access_token(doomed)
    assert (await env.arm(token))[0] == 200
    assert (await env.client(doomed).call("GET", "/transship/v1/info", authorization=doomed.basic))[
        0
    ] == 200

    status, body = await env.owner.call(
        "DELETE", f"/transship/v1/servicePrincipals/{doomed.object_id}"
    )
    assert status == 204, body
    status, body, _ = await env.arm(token)
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken", body
    status, body = await env.client(doomed).call(
        "GET", "/transship/v1/info", authorization=doomed.basic
    )
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed", body
    status, body = await env.client(doomed).token()
    assert status == 401 and body["error"] == "invalid_client", body


# -- the data plane --------------------------------------------------------------------------


async def test_access_token_is_bound_to_its_registry(env: Env) -> None:
    x = await env.registry("registryx")
    y = await env.registry("registryy")
    assert x != y
    token = await env.docker_token(x, env.credential.basic, "repository:r:pull")
    assert claims_of(token)["aud"] == x
    assert claims_of(token)["access"] == [{"type": "repository", "name": "r", "actions": ["pull"]}]

    status, _, _ = await env.v2(x, f"Bearer {token}")
    assert status == 200
    status, body, _ = await env.v2(x, f"Bearer {token}", "/v2/r/tags/list")
    assert status == 404 and body["errors"][0]["code"] == "NAME_UNKNOWN", body  # authorized

    for path in ("/v2/", "/v2/r/tags/list"):
        status, body, challenge = await env.v2(y, f"Bearer {token}", path)
        assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED", (path, body)
        assert challenge.startswith(f'Bearer realm="http://{y}/oauth2/token"'), challenge
        assert f'service="{y}"' in challenge, challenge


async def test_data_plane_refuses_expired_and_forged_bearer_tokens(env: Env) -> None:
    x = await env.registry("bearerx1")
    real = await env.docker_token(x, env.credential.basic, "repository:r:pull")
    claims = claims_of(real)
    kid = header_of(real)["kid"]
    # Control: the same claims signed in-process, fresh, are accepted.
    status, body, _ = await env.v2(x, f"Bearer {env.sign(fresh(claims))}", "/v2/r/tags/list")
    assert status == 404, body

    # On a thread: a 2048-bit key takes 50 to 500 ms of CPU, and the stall guard watches this
    # loop too.
    other_key = await asyncio.to_thread(rsa.generate_private_key, 65537, 2048)
    everything = fresh(
        claims, access=[{"type": "repository", "name": "r", "actions": ["pull", "push"]}]
    )
    for name, token in (
        ("expired", env.sign(expired(claims))),
        ("another key, same kid", jwt.encode(everything, other_key, "RS256", {"kid": kid})),
        ("alg none", jwt.encode(everything, "", algorithm="none", headers={"kid": kid})),
        ("issued for another registry", env.sign(fresh(claims, aud="elsewhere.example"))),
        ("not an access token", env.sign(fresh(claims, grant_type="refresh_token"))),
    ):
        for path in ("/v2/", "/v2/r/tags/list"):
            status, body, challenge = await env.v2(x, f"Bearer {token}", path)
            assert status == 401, (name, path, status, body)
            assert body["errors"][0]["code"] == "UNAUTHORIZED", (name, body)
            assert challenge.startswith(f'Bearer realm="http://{x}/oauth2/token"'), challenge
            assert f'service="{x}"' in challenge, (name, challenge)


async def test_exchange_refuses_another_tenant(env: Env) -> None:
    x = await env.registry("exchangex")
    entra = await env.access_token(env.credential, ACR_SCOPE)

    status, body = await env.exchange(x, entra, env.tenant)
    assert status == 200, body
    refresh = body["refresh_token"]
    assert claims_of(refresh)["grant_type"] == "refresh_token"
    assert claims_of(refresh)["aud"] == x
    status, body = await env.exchange(x, entra)  # the tenant parameter is optional
    assert status == 200, body
    # An ARM token for a configured management audience is accepted as well.
    arm = await env.access_token(env.credential, "https://management.azure.com//.default")
    status, body = await env.exchange(x, arm, env.tenant)
    assert status == 200, body

    other = await env.owner.create_tenant(str(uuid.uuid4()), "Tenant B")
    status, body = await env.exchange(x, entra, other.tenant_id)
    assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED", body
    status, body = await env.exchange(x, entra, str(uuid.uuid4()))
    assert status == 401, body
    b_token = await env.access_token(other, ACR_SCOPE)
    for tenant in (other.tenant_id, env.tenant, None):
        status, body = await env.exchange(x, b_token, tenant)
        assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED", (tenant, body)
    # Not an Entra token at all: a data-plane access token, a refresh token.
    docker = await env.docker_token(x, env.credential.basic, "repository:r:pull")
    for token in (docker, refresh, env.sign(expired(claims_of(entra)))):
        status, body = await env.exchange(x, token, env.tenant)
        assert status == 401, body


async def test_exchange_accepts_a_token_for_this_services_management_url(env: Env) -> None:
    x = await env.registry("exchangearm")
    arm = await env.access_token(env.credential)  # scope `<url>//.default`, as the CLI asks
    assert (await env.arm(arm))[0] == 200  # good for the management API
    status, body = await env.exchange(x, arm, env.tenant)
    assert status == 200, body


async def test_refresh_tokens_and_access_tokens_are_not_interchangeable(env: Env) -> None:
    x = await env.registry("refreshx1")
    y = await env.registry("refreshy1")
    entra = await env.access_token(env.credential, ACR_SCOPE)
    status, body = await env.exchange(x, entra, env.tenant)
    assert status == 200, body
    refresh = body["refresh_token"]

    # The refresh token gets access tokens, by the refresh_token grant or as the password
    # of the well-known refresh-token user name.
    status, body = await env.refresh_grant(x, refresh, "repository:r:pull,push")
    assert status == 200, body
    access = body["access_token"]
    assert claims_of(access)["access"] == [
        {"type": "repository", "name": "r", "actions": ["pull", "push"]}
    ]
    assert (await env.v2(x, f"Bearer {access}", "/v2/r/tags/list"))[0] == 404
    from_basic = await env.docker_token(
        x, Credential(env.tenant, REFRESH_TOKEN_USERNAME, refresh).basic, "repository:r:pull"
    )
    assert claims_of(from_basic)["access"][0]["actions"] == ["pull"]

    # But it is no access token itself ...
    for path in ("/v2/", "/v2/r/tags/list"):
        status, body, challenge = await env.v2(x, f"Bearer {refresh}", path)
        assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED", (path, body)
        assert challenge.startswith("Bearer realm="), challenge
    # ... an access token is no refresh token ...
    status, body = await env.refresh_grant(x, access, "repository:r:pull")
    assert status == 401, body
    status, body = await registry_token(
        env.reg.http,
        env.url,
        Credential(env.tenant, REFRESH_TOKEN_USERNAME, access).basic,
        ["repository:r:pull"],
        host=x,
    )
    assert status == 401, body
    # ... and neither works on another registry.
    status, body = await env.refresh_grant(y, refresh, "repository:r:pull")
    assert status == 401, body
    assert (await env.v2(y, f"Bearer {access}"))[0] == 401


# -- signing-key rotation --------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(env: Env) -> None:
    keys = env.reg.services.tokens.keys
    x = await env.registry("rotatex1")
    # Issued before the rotation and not used yet (so not in the verified-token cache).
    before = await env.access_token(env.credential)
    docker_before = await env.docker_token(x, env.credential.basic, "repository:r:pull")
    old_kid = header_of(before)["kid"]
    assert header_of(docker_before)["kid"] == old_kid

    new_kid = await keys.rotate()
    assert new_kid != old_kid
    status, jwks = await env.get_json(f"/{env.tenant}/discovery/v2.0/keys")
    assert status == 200
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid}

    assert (await env.arm(before))[0] == 200
    assert (await env.v2(x, f"Bearer {docker_before}", "/v2/r/tags/list"))[0] == 404
    jwt.decode(before, _jwk(jwks, old_kid), algorithms=["RS256"], audience=f"{env.url}/")

    after = await env.access_token(env.credential)
    assert header_of(after)["kid"] == new_kid
    jwt.decode(after, _jwk(jwks, new_kid), algorithms=["RS256"], audience=f"{env.url}/")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(after, _jwk(jwks, old_kid), algorithms=["RS256"], audience=f"{env.url}/")
    assert (await env.arm(after))[0] == 200
    docker_after = await env.docker_token(x, env.credential.basic, "repository:r:pull")
    assert header_of(docker_after)["kid"] == new_kid
    assert (await env.v2(x, f"Bearer {docker_after}", "/v2/r/tags/list"))[0] == 404

    # A second rotation: both earlier keys still publish and verify.
    newest = await keys.rotate()
    status, jwks = await env.get_json(f"/{env.tenant}/discovery/v2.0/keys")
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid, newest}
    assert (await env.arm(await env.access_token(env.credential)))[0] == 200
    jwt.decode(before, _jwk(jwks, old_kid), algorithms=["RS256"], audience=f"{env.url}/")
