"""No secret leaks: a full run against a real server process (logging at DEBUG, access log
on) issues every kind of secret the service has — a service principal's secret, a reset
secret, a user's password, the admin user's passwords, registry-token passwords, Entra access
tokens, ACR refresh and access tokens, upstream import credentials — uses each, and then
searches every response body and header and every log line for them. A secret may appear
only in the one response whose job is to hand it out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.peers.transship import TransshipServer
from tests.support.identity import AUTHZ, PROVIDER, basic, owner_credential

API = "api-version=2025-04-01"


@dataclass
class Recorder:
    """Every response of the run, and which secret each one handed out."""

    http: aiohttp.ClientSession
    url: str
    responses: list[tuple[str, str]] = field(default_factory=list)  # (request line, headers + body)
    issued: dict[str, str] = field(default_factory=dict)  # secret → the request line that issued it

    async def call(
        self, method: str, path: str, *, issues: tuple[str, ...] = (), **kwargs: Any
    ) -> tuple[int, Any]:
        """One request; `issues` names JSON fields of the response that hold new secrets."""
        async with self.http.request(method, self.url + path, allow_redirects=False, **kwargs) as r:
            text = await r.text()
            headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        line = f"{method} {path}"
        self.responses.append((line, headers + "\n" + text))
        body = json.loads(text) if text.startswith(("{", "[")) else None
        for name in issues:
            for secret in _values(body, name):
                self.issued.setdefault(secret, line)
        return r.status, body


def _values(document: Any, name: str) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key == name and isinstance(value, str):
                yield value
            else:
                yield from _values(value, name)
    elif isinstance(document, list):
        for item in document:
            yield from _values(item, name)


def _hands_out(line: str, source: str) -> bool:
    """Whether the response to `line` may hold a secret first issued by `source`: its own
    response, and the admin user's passwords, which ACR hands back on every listCredentials
    and regenerateCredential by design."""
    admin = ("/listCredentials?", "/regenerateCredential?")
    return line == source or (any(a in source for a in admin) and any(a in line for a in admin))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TransshipServer]:
    with TransshipServer(
        tmp_path, data_plane_auth=True, env={"TRANSSHIP_LOG_LEVEL": "DEBUG"}
    ) as running:
        yield running


async def test_no_secret_in_any_log_line_or_later_response(
    server: TransshipServer, tmp_path: Path
) -> None:
    owner = owner_credential(server.data_dir)
    sub, tenant = owner.subscription_id, owner.tenant_id
    async with aiohttp.ClientSession() as http:
        rec = Recorder(http, server.url)
        rec.issued[owner.secret] = "first start (owner-credential.json)"
        as_owner = {"Authorization": owner.basic}

        status, body = await rec.call(
            "POST",
            f"/{tenant}/oauth2/v2.0/token",
            issues=("access_token",),
            data={
                "grant_type": "client_credentials",
                "client_id": owner.client_id,
                "client_secret": owner.secret,
                "scope": f"{server.url}//.default",
            },
        )
        assert status == 200, body
        bearer = {"Authorization": "Bearer " + body["access_token"]}

        status, sp = await rec.call(
            "POST",
            f"/transship/v1/servicePrincipals?{API}",
            json={"displayName": "ci"},
            headers=bearer,
            issues=("password",),
        )
        assert status == 201, sp
        status, reset = await rec.call(
            "POST",
            f"/transship/v1/servicePrincipals/{sp['appId']}/credentials/reset?{API}",
            json={"append": True},
            headers=bearer,
            issues=("password",),
        )
        assert status == 200, reset
        user_password = "correct horse battery staple"
        rec.issued[user_password] = "chosen by the test"
        status, user = await rec.call(
            "POST",
            f"/transship/v1/users?{API}",
            json={"userName": "dana", "password": user_password},
            headers=bearer,
        )
        assert status == 201, user

        status, registries = await rec.call(
            "GET", f"/subscriptions/{sub}/{PROVIDER}/registries?{API}", headers=bearer
        )
        registry_id = registries["value"][0]["id"]
        login_server = registries["value"][0]["properties"]["loginServer"]
        await rec.call(
            "PUT",
            f"{registry_id}/{AUTHZ}/roleAssignments/6f1d5c1e-0000-4000-8000-000000000001?{API}",
            headers=bearer,
            json={
                "properties": {
                    "roleDefinitionId": (
                        "/providers/Microsoft.Authorization/roleDefinitions/"
                        "8311e382-0749-4cb8-b61a-304f252e45ec"
                    ),
                    "principalId": sp["objectId"],
                }
            },
        )
        await rec.call(
            "PATCH",
            f"{registry_id}?{API}",
            json={"properties": {"adminUserEnabled": True}},
            headers=bearer,
        )
        status, creds = await rec.call(
            "POST", f"{registry_id}/listCredentials?{API}", headers=bearer, issues=("value",)
        )
        assert status == 200, creds
        status, renewed = await rec.call(
            "POST",
            f"{registry_id}/regenerateCredential?{API}",
            json={"name": "password2"},
            headers=bearer,
            issues=("value",),
        )
        assert status == 200, renewed
        await rec.call(
            "PUT",
            f"{registry_id}/scopeMaps/ci-map?{API}",
            json={"properties": {"actions": ["repositories/ci/*/content/read"]}},
            headers=bearer,
        )
        await rec.call(
            "PUT",
            f"{registry_id}/tokens/ci-token?{API}",
            json={"properties": {"scopeMapId": f"{registry_id}/scopeMaps/ci-map"}},
            headers=bearer,
        )
        status, token_creds = await rec.call(
            "POST",
            f"{registry_id}/generateCredentials?{API}",
            json={"tokenId": f"{registry_id}/tokens/ci-token"},
            headers=bearer,
            issues=("value",),
        )
        assert status == 200, token_creds

        # Use every credential, right and wrong, on every surface.
        sp_secret = reset["password"]
        admin_password = creds["passwords"][0]["value"]
        token_password = token_creds["passwords"][0]["value"]
        for username, password in (
            (sp["appId"], sp_secret),
            ("dana", user_password),
            (creds["username"], admin_password),
            ("ci-token", token_password),
            (sp["appId"], sp_secret + "x"),
            ("ci-token", admin_password),
        ):
            await rec.call("GET", "/v2/", headers={"Authorization": basic(username, password)})
            await rec.call(
                "GET",
                f"/oauth2/token?service={login_server}&scope=repository:ci/app:pull,push",
                headers={"Authorization": basic(username, password)},
                issues=("access_token", "token"),
            )
            await rec.call(
                "POST",
                "/oauth2/token",
                issues=("access_token",),
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": password,
                    "service": login_server,
                    "scope": "registry:catalog:*",
                },
            )
            await rec.call(
                "GET",
                f"/transship/v1/info?{API}",
                headers={"Authorization": basic(username, password)},
            )
        status, user_token = await rec.call(
            "POST",
            f"/{tenant}/oauth2/v2.0/token",
            issues=("access_token",),
            data={
                "grant_type": "password",
                "username": "dana",
                "password": user_password,
                "client_id": "cli",
                "scope": "https://containerregistry.azure.net/.default",
            },
        )
        assert status == 200, user_token
        await rec.call(
            "POST",
            f"/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "password",
                "username": "dana",
                "password": user_password + "!",
                "scope": "x/.default",
            },
        )
        status, exchanged = await rec.call(
            "POST",
            "/oauth2/exchange",
            issues=("refresh_token",),
            data={
                "grant_type": "access_token",
                "service": login_server,
                "tenant": tenant,
                "access_token": body["access_token"],
            },
        )
        assert status == 200, exchanged
        status, access = await rec.call(
            "POST",
            "/oauth2/token",
            issues=("access_token",),
            data={
                "grant_type": "refresh_token",
                "service": login_server,
                "scope": "repository:ci/app:pull",
                "refresh_token": exchanged["refresh_token"],
            },
        )
        assert status == 200, access
        await rec.call(
            "GET",
            "/v2/ci/app/tags/list",
            headers={"Authorization": "Bearer " + access["access_token"]},
        )
        await rec.call(
            "GET",
            "/v2/ci/app/tags/list",
            headers={"Authorization": "Bearer " + access["access_token"][:-4] + "AAAA"},
        )

        # An import whose upstream credentials are wrong: the password must not come back.
        upstream_password = "upstream-password-that-must-stay-secret"
        rec.issued[upstream_password] = "chosen by the test"
        status, op = await rec.call(
            "POST",
            f"{registry_id}/importImage?{API}",
            headers=bearer,
            json={
                "source": {
                    "registryUri": "127.0.0.1:9",
                    "sourceImage": "x/y:1",
                    "credentials": {"username": "u", "password": upstream_password},
                },
                "targetTags": ["x/y:1"],
            },
        )
        assert status == 202, op
        for _ in range(100):
            status, op = await rec.call(
                "GET",
                f"/subscriptions/{sub}/{PROVIDER}/locations/local/operationStatuses/{op['name']}?{API}",
                headers=as_owner,
            )
            if op["status"] != "InProgress":
                break
            await asyncio.sleep(0.1)
        await rec.call("GET", f"{registry_id}/importOperations?{API}", headers=bearer)
        await rec.call(
            "GET", f"/transship/v1/servicePrincipals/{sp['appId']}?{API}", headers=bearer
        )
        await rec.call("GET", f"{registry_id}/tokens?{API}", headers=bearer)

    server.stop()
    logs = "\n".join(p.read_text(errors="replace") for p in server.workdir.glob("transship-*.log"))
    assert "GET /oauth2/token" in logs, "the access log must be on for this test to mean anything"
    assert len(rec.issued) >= 10, rec.issued
    for secret, source in rec.issued.items():
        assert secret not in logs, f"a secret issued by {source} is in the server log"
        leaks = [
            line for line, text in rec.responses if secret in text and not _hands_out(line, source)
        ]
        assert leaks == [], f"a secret issued by {source} came back from {leaks}"
