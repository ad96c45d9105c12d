"""Password guessing is answered 429 with `Retry-After` once a client address (or a user name
or client id) has failed too often, in the envelope of each surface: OCI on the data plane
(Basic on /v2 and the /oauth2/token endpoint), ARM on the management API, OAuth on the Entra
token endpoint. Every request comes from 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.app import Answer, RunningRegistry, make_settings, running_registry
from tests.support.identity import IdentityClient, basic, owner_credential

USER_PASSWORD = "dana's long password"


async def get(reg: RunningRegistry, path: str, authorization: str) -> Answer:
    async with reg.request("GET", path, headers={"Authorization": authorization}) as r:
        return Answer(r.status, r.headers, await r.read())


async def entra_token(reg: RunningRegistry, tenant: str, form: dict[str, str]) -> Answer:
    async with reg.request("POST", f"/{tenant}/oauth2/v2.0/token", data=form) as r:
        return Answer(r.status, r.headers, await r.read())


def retry_after(answer: Answer) -> int:
    value = int(answer.headers["Retry-After"])
    assert 1 <= value <= 60, value
    return value


async def test_the_21st_wrong_basic_password_on_the_data_plane_is_429(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None, data_plane_auth=True)
    async with running_registry(settings) as reg:
        owner = owner_credential(tmp_path / "data")
        wrong = basic(owner.client_id, "not the secret")
        for attempt in range(20):
            answer = await get(reg, "/v2/", wrong)
            assert answer.status == 401, (attempt, answer)
            assert answer.error_code() == "UNAUTHORIZED"
        for path in (
            "/v2/",
            "/v2/app/manifests/latest",
            "/oauth2/token?service=x&scope=repository:app:pull",
        ):
            refused = await get(reg, path, wrong)
            assert refused.status == 429, (path, refused)
            assert refused.error_code() == "TOOMANYREQUESTS"
            assert "too many failed sign-ins" in json.loads(refused.body)["errors"][0]["message"]
            retry_after(refused)
        # From this address, even the right secret is not checked until the window frees.
        assert (await get(reg, "/v2/", owner.basic)).status == 429
        # The ACR token endpoint's password grant counts and is refused the same way.
        form = {"grant_type": "password", "username": owner.client_id, "password": "x"}
        async with reg.request("POST", "/oauth2/token", data=form) as r:
            assert r.status == 429 and "Retry-After" in r.headers
            assert (await r.json())["errors"][0]["code"] == "TOOMANYREQUESTS"


async def test_wrong_basic_secrets_on_the_management_api_get_the_arm_429(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None, auth_failure_limit_per_client=3)
    async with running_registry(settings) as reg:
        owner = owner_credential(tmp_path / "data")
        path = "/subscriptions?api-version=2022-12-01"
        for _ in range(3):
            answer = await get(reg, path, basic(owner.client_id, "guess"))
            assert answer.status == 401
            assert json.loads(answer.body)["error"]["code"] == "AuthenticationFailed"
        refused = await get(reg, path, basic(owner.client_id, "guess"))
        assert refused.status == 429
        error = json.loads(refused.body)["error"]
        assert error["code"] == "TooManyRequests" and "retry after" in error["message"]
        assert "guess" not in error["message"]
        retry_after(refused)


async def test_wrong_client_secrets_on_the_entra_token_endpoint_get_the_oauth_429(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", None, auth_failure_limit_per_client=3)
    async with running_registry(settings) as reg:
        owner = owner_credential(tmp_path / "data")
        form = {
            "grant_type": "client_credentials",
            "client_id": owner.client_id,
            "client_secret": "guess",
            "scope": f"{reg.url}//.default",
        }
        for _ in range(3):
            answer = await entra_token(reg, owner.tenant_id, form)
            assert answer.status == 401
            assert json.loads(answer.body)["error"] == "invalid_client"
        refused = await entra_token(reg, owner.tenant_id, form)
        assert refused.status == 429
        body: dict[str, Any] = json.loads(refused.body)
        assert body["error"] == "temporarily_unavailable"
        assert "too many failed sign-ins" in body["error_description"]
        assert refused.headers["Cache-Control"] == "no-store"
        retry_after(refused)


async def test_a_guessed_principal_is_refused_while_others_and_remembered_sign_ins_pass(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path / "data",
        None,
        data_plane_auth=True,
        auth_failure_limit_per_client=1000,
        auth_failure_limit_per_principal=3,
    )
    async with running_registry(settings) as reg:
        owner = owner_credential(tmp_path / "data")
        async with aiohttp.ClientSession() as http:
            await IdentityClient(http, reg.url, owner).create_user("dana", USER_PASSWORD)
            other = await IdentityClient(http, reg.url, owner).create_service_principal("other")
        # dana signs in once: the success is remembered.
        assert (await get(reg, "/v2/", basic("dana", USER_PASSWORD))).status == 200
        for i in range(3):
            assert (await get(reg, "/v2/", basic("dana", f"guess {i}"))).status == 401
        refused = await get(reg, "/v2/", basic("DANA", "guess"))
        assert refused.status == 429 and refused.error_code() == "TOOMANYREQUESTS"
        assert "user name or client id" in json.loads(refused.body)["errors"][0]["message"]
        retry_after(refused)
        # The remembered password still gets in; another principal from the same address too.
        assert (await get(reg, "/v2/", basic("dana", USER_PASSWORD))).status == 200
        assert (await get(reg, "/v2/", other.basic)).status == 200
        # The Entra password grant for dana is refused too, in the OAuth envelope.
        form = {
            "grant_type": "password",
            "username": "dana",
            "password": "another guess",
            "scope": f"{reg.url}//.default",
        }
        answer = await entra_token(reg, owner.tenant_id, form)
        assert answer.status == 429
        assert json.loads(answer.body)["error"] == "temporarily_unavailable"
