"""The ARM resources `registries/cacheRules` and `registries/credentialSets` and the secret
store (`/transship/v1/secrets`) over HTTP, in one process on SQLite and PostgreSQL: their
lifecycle with ACR's shapes, validation errors naming the field, RBAC refusals (readers,
other tenants, no credentials), and secret hygiene: a secret's value is in no answer and in
no log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import IdentityClient, owner_credential
from tests.support.imports import Management

VAULT = "https://myvault.vault.azure.net/secrets"
USER_ID, PASSWORD_ID = f"{VAULT}/hub-user", f"{VAULT}/hub-password"
SECRET_VALUES = ("hub-user-name-4711", "Hub-Pa55word-never-shown")
SECRETS = "/transship/v1/secrets"


@pytest.fixture
async def reg(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningRegistry]:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as running:
        yield running


def _admin(reg: RunningRegistry, tmp_path: Path) -> Management:
    return Management(reg, tmp_path / "data")


def _registry(admin: Management) -> str:
    return f"{admin.base}/default"


def _set_body(login_server: str = "docker.io", **credential: Any) -> dict[str, Any]:
    return {
        "name": "hub-creds",
        "properties": {
            "loginServer": login_server,
            "authCredentials": [
                {
                    "name": "Credential1",
                    "usernameSecretIdentifier": USER_ID,
                    "passwordSecretIdentifier": PASSWORD_ID,
                    **credential,
                }
            ],
        },
        "identity": {"type": "SystemAssigned"},
    }


async def test_credential_set_and_cache_rule_lifecycle(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    admin = _admin(reg, tmp_path)
    registry = _registry(admin)
    creds = f"{registry}/credentialSets/hub-creds"
    status, created, _ = await admin.call("PUT", creds, _set_body())
    assert status == 201, created
    assert created["id"] == creds and created["name"] == "hub-creds"
    assert created["type"] == "Microsoft.ContainerRegistry/registries/credentialSets"
    assert created["identity"]["type"] == "SystemAssigned"
    assert created["identity"]["principalId"] and created["identity"]["tenantId"]
    props = created["properties"]
    assert props["loginServer"] == "docker.io" and props["provisioningState"] == "Succeeded"
    (credential,) = props["authCredentials"]
    assert credential["name"] == "Credential1"
    assert credential["usernameSecretIdentifier"] == USER_ID
    assert credential["passwordSecretIdentifier"] == PASSWORD_ID
    # Neither secret is set yet: Unhealthy, naming them.
    health = credential["credentialHealth"]
    assert health["status"] == "Unhealthy" and health["errorCode"] == "SecretNotFound"
    assert USER_ID in health["errorMessage"] and PASSWORD_ID in health["errorMessage"]

    for identifier, value in zip((USER_ID, PASSWORD_ID), SECRET_VALUES, strict=True):
        status, secret, _ = await admin.call(
            "PUT", SECRETS, {"identifier": identifier, "value": value}
        )
        assert status == 201, secret
        assert secret["identifier"] == identifier and "value" not in secret
    status, shown, _ = await admin.call("GET", creds)
    assert status == 200
    assert shown["properties"]["authCredentials"][0]["credentialHealth"] == {"status": "Healthy"}

    rule = f"{registry}/cacheRules/hub-library"
    body = {
        "properties": {
            "sourceRepository": "docker.io/library/*",
            "targetRepository": "library/*",
            "credentialSetResourceId": creds,
        }
    }
    status, made, _ = await admin.call("PUT", rule, body)
    assert status == 201, made
    assert made["id"] == rule and made["name"] == "hub-library"
    assert made["type"] == "Microsoft.ContainerRegistry/registries/cacheRules"
    assert made["properties"]["sourceRepository"] == "docker.io/library/*"
    assert made["properties"]["targetRepository"] == "library/*"
    assert made["properties"]["credentialSetResourceId"] == creds
    assert made["properties"]["provisioningState"] == "Succeeded"
    assert made["properties"]["creationDate"].endswith("Z")
    # The pull path sees it, with the credentials unsealed.
    found = await reg.services.cache_rule_lookup.upstream_for(
        (
            await reg.services.registries.require(
                admin.subscription_id, admin.resource_group, "default"
            )
        ).id,
        "library/nginx",
    )
    assert found is not None and found.repository == "library/nginx"
    assert found.credentials is not None and found.credentials.password == SECRET_VALUES[1]

    status, listed, _ = await admin.call("GET", f"{registry}/cacheRules")
    assert status == 200 and [r["name"] for r in listed["value"]] == ["hub-library"]
    status, sets, _ = await admin.call("GET", f"{registry}/credentialSets")
    assert status == 200 and [s["name"] for s in sets["value"]] == ["hub-creds"]

    # A credential set in use is not deleted.
    status, refused, _ = await admin.call("DELETE", creds)
    assert status == 409, refused
    assert "hub-library" in refused["error"]["message"]

    # PATCH: null removes the credential set, absent leaves it.
    status, patched, _ = await admin.call("PATCH", rule, {"properties": {}})
    assert status == 200 and patched["properties"]["credentialSetResourceId"] == creds
    status, patched, _ = await admin.call(
        "PATCH", rule, {"properties": {"credentialSetResourceId": None}}
    )
    assert status == 200 and patched["properties"]["credentialSetResourceId"] is None

    # PATCH of a credential set: new identifiers.
    other = f"{VAULT}/hub-password2"
    status, changed, _ = await admin.call(
        "PATCH",
        creds,
        {
            "properties": {
                "authCredentials": [{"name": "Credential1", "passwordSecretIdentifier": other}]
            }
        },
    )
    assert status == 200, changed
    (credential,) = changed["properties"]["authCredentials"]
    assert credential["passwordSecretIdentifier"] == other
    assert credential["usernameSecretIdentifier"] == USER_ID
    assert credential["credentialHealth"]["status"] == "Unhealthy"

    assert (await admin.call("DELETE", creds))[0] == 202
    assert (await admin.call("DELETE", creds))[0] == 204
    assert (await admin.call("GET", creds))[0] == 404
    assert (await admin.call("DELETE", rule))[0] == 202
    assert (await admin.call("DELETE", rule))[0] == 204
    status, missing, _ = await admin.call("GET", rule)
    assert status == 404 and missing["error"]["code"] == "ResourceNotFound"
    status, listed, _ = await admin.call("GET", f"{registry}/cacheRules")
    assert (status, listed) == (200, {"value": []})

    # Secrets: listed by identifier only; deleted.
    status, stored, _ = await admin.call("GET", SECRETS)
    assert status == 200
    assert [s["identifier"] for s in stored["value"]] == sorted([USER_ID, PASSWORD_ID])
    assert (await admin.call("DELETE", f"{SECRETS}?identifier={PASSWORD_ID}"))[0] == 200
    assert (await admin.call("DELETE", f"{SECRETS}?identifier={PASSWORD_ID}"))[0] == 204


async def test_bad_input_is_refused_naming_the_field(reg: RunningRegistry, tmp_path: Path) -> None:
    admin = _admin(reg, tmp_path)
    registry = _registry(admin)
    creds = f"{registry}/credentialSets/hub-creds"
    assert (await admin.call("PUT", creds, _set_body()))[0] == 201
    await admin.call(
        "PUT",
        f"{registry}/cacheRules/hub-library",
        {
            "properties": {
                "sourceRepository": "docker.io/library/*",
                "targetRepository": "library/*",
            }
        },
    )
    cases: list[tuple[str, str, Any, str]] = [
        ("PUT", f"{registry}/credentialSets/bad", _set_body(), "credentialSetName"),
        ("PUT", creds, _set_body("https://docker.io"), "loginServer"),
        (
            "PUT",
            creds,
            _set_body(usernameSecretIdentifier="hub-user"),
            "authCredentials.usernameSecretIdentifier",
        ),
        ("PUT", creds, _set_body(name="Credential2"), "authCredentials.name"),
        ("PUT", creds, {"properties": {"loginServer": "docker.io"}}, "properties.authCredentials"),
        (
            "PUT",
            creds,
            {**_set_body(), "identity": {"type": "UserAssigned"}},
            "identity.type",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/other-lib",
            {
                "properties": {
                    "sourceRepository": "quay.io/library/*",
                    "targetRepository": "library/*",
                }
            },
            "targetRepository",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/all-of-mcr",
            {"properties": {"sourceRepository": "mcr.microsoft.com/*", "targetRepository": "*"}},
            "targetRepository",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/nginx-rule",
            {
                "properties": {
                    "sourceRepository": "docker.io/library/nginx",
                    "targetRepository": "ng/*",
                }
            },
            "targetRepository",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/nginx-rule",
            {"properties": {"sourceRepository": "library/nginx", "targetRepository": "nginx"}},
            "sourceRepository",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/nginx-rule",
            {
                "properties": {
                    "sourceRepository": "ghcr.io/team/nginx",
                    "targetRepository": "nginx",
                    "credentialSetResourceId": creds,
                }
            },
            "credentialSetResourceId",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/nginx-rule",
            {
                "properties": {
                    "sourceRepository": "docker.io/library/nginx",
                    "targetRepository": "nginx",
                    "credentialSetResourceId": f"{admin.base}/otherreg/credentialSets/hub-creds",
                }
            },
            "credentialSetResourceId",
        ),
        (
            "PUT",
            f"{registry}/cacheRules/nginx-rule",
            {
                "properties": {
                    "sourceRepository": "docker.io/library/nginx",
                    "targetRepository": "nginx",
                },
                "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/x": {}}},
            },
            "identity",
        ),
        ("PUT", SECRETS, {"identifier": "not-a-vault-id", "value": "x"}, "identifier"),
        ("PUT", SECRETS, {"identifier": USER_ID, "value": "two\nlines"}, "value"),
        ("PUT", SECRETS, {"identifier": USER_ID}, "value"),
    ]
    for method, path, body, field in cases:
        status, answer, _ = await admin.call(method, path, body)
        assert status == 400, (path, body, answer)
        assert answer["error"]["code"] == "InvalidParameter", answer
        assert answer["error"].get("target") == field, (field, answer)
    status, answer, _ = await admin.call("DELETE", SECRETS)
    assert status == 400 and answer["error"]["target"] == "identifier"
    status, answer, _ = await admin.call("GET", f"{admin.base}/nosuchreg/cacheRules")
    assert status == 404 and answer["error"]["code"] == "ResourceNotFound"
    status, rules, _ = await admin.call("GET", f"{registry}/cacheRules")
    assert [r["name"] for r in rules["value"]] == ["hub-library"]


async def test_readers_read_but_do_not_change_and_strangers_see_nothing(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    admin = _admin(reg, tmp_path)
    registry = _registry(admin)
    creds = f"{registry}/credentialSets/hub-creds"
    rule = f"{registry}/cacheRules/hub-nginx"
    assert (await admin.call("PUT", creds, _set_body()))[0] == 201
    rule_body = {
        "properties": {
            "sourceRepository": "docker.io/library/nginx",
            "targetRepository": "nginx",
            "credentialSetResourceId": creds,
        }
    }
    assert (await admin.call("PUT", rule, rule_body))[0] == 201
    owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path / "data"))
    sp = await owner.create_service_principal("cache-reader")
    await owner.assign(registry, sp.object_id, "Reader")
    reader = IdentityClient(reg.http, reg.url, sp)
    for path in (f"{registry}/cacheRules", rule, f"{registry}/credentialSets", creds):
        status, answer = await reader.call("GET", path)
        assert status == 200, (path, answer)
    refused: list[tuple[str, str, Any]] = [
        ("PUT", f"{registry}/cacheRules/other-rule", rule_body),
        ("PATCH", rule, {"properties": {"credentialSetResourceId": None}}),
        ("DELETE", rule, None),
        ("PUT", f"{registry}/credentialSets/other-set", _set_body()),
        ("PATCH", creds, {"properties": {"authCredentials": [{"name": "Credential1"}]}}),
        ("DELETE", creds, None),
        ("GET", SECRETS, None),
        ("PUT", SECRETS, {"identifier": USER_ID, "value": "reader-value"}),
        ("DELETE", f"{SECRETS}?identifier={USER_ID}", None),
    ]
    for method, path, body in refused:
        status, answer = await reader.call(method, path, body)
        assert status == 403, (method, path, answer)
        assert answer["error"]["code"] == "AuthorizationFailed"
    for method, path, body in [("GET", rule, None), *refused]:
        status, _, _ = await admin.call(method, path, body, authorization=None)
        assert status == 401, (method, path)

    # Another tenant's owner: the registry is not theirs, and the secret store is the
    # root tenant's administrators' only.
    stranger_owner = await owner.create_tenant("0b5d7c3e-1111-4c22-8a33-0123456789ab")
    stranger = IdentityClient(reg.http, reg.url, stranger_owner)
    for method, path, body in [("GET", rule, None), *refused[:6]]:
        status, answer = await stranger.call(method, path, body)
        # The subscription is another tenant's: the token is refused for it.
        assert status == 401, (method, path, answer)
        assert answer["error"]["code"] == "InvalidAuthenticationTokenTenant"
    status, answer = await stranger.call("PUT", SECRETS, {"identifier": USER_ID, "value": "x"})
    assert status == 403, answer
    # Nothing changed.
    _, still, _ = await admin.call("GET", rule)
    assert still["properties"]["credentialSetResourceId"] == creds
    _, stored, _ = await admin.call("GET", SECRETS)
    assert stored == {"value": []}


async def test_a_secret_value_is_in_no_answer_and_no_log_line(
    reg: RunningRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = _admin(reg, tmp_path)
    registry = _registry(admin)
    creds = f"{registry}/credentialSets/hub-creds"
    answers: list[str] = []

    async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, answer, headers = await admin.call(method, path, body)
        answers.append(f"{dict(headers)} {answer}")
        return status, answer

    for identifier, value in zip((USER_ID, PASSWORD_ID), SECRET_VALUES, strict=True):
        assert (await call("PUT", SECRETS, {"identifier": identifier, "value": value}))[0] == 201
        assert (await call("PUT", SECRETS, {"identifier": identifier, "value": value}))[0] == 200
    # Refusals that carry the value do not echo it either.
    await call("PUT", SECRETS, {"identifier": "nope", "value": SECRET_VALUES[1]})
    await call("PUT", SECRETS, {"identifier": USER_ID, "value": SECRET_VALUES[1] + "\n"})
    await call("PUT", SECRETS, {"identifier": USER_ID, "value": [SECRET_VALUES[1]]})
    await call("PUT", creds, _set_body())
    await call(
        "PUT",
        f"{registry}/cacheRules/hub-nginx",
        {
            "properties": {
                "sourceRepository": "docker.io/library/nginx",
                "targetRepository": "nginx",
                "credentialSetResourceId": creds,
            }
        },
    )
    for path in (SECRETS, creds, f"{registry}/credentialSets", f"{registry}/cacheRules"):
        await call("GET", path)
    rid = (
        await reg.services.registries.require(
            admin.subscription_id, admin.resource_group, "default"
        )
    ).id
    found = await reg.services.cache_rule_lookup.upstream_for(rid, "nginx")
    assert found is not None and found.credentials is not None
    # The upstream password never shows in a repr a log line might take.
    assert SECRET_VALUES[1] not in repr(found)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "the server logged nothing: the check would be empty"
    for value in SECRET_VALUES:
        for answer in answers:
            assert value not in answer
        assert value not in logged
