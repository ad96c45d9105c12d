"""importImage refuses bad requests before any job exists: 400 naming the field, 404 for a
registry that does not exist, 400 for a body that is not JSON, 401 without the admin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory
from tests.support.imports import Management, basic_auth

UPSTREAM = "registry.example.com"
DIGEST = "sha256:" + "ab" * 32


def source(**fields: Any) -> dict[str, Any]:
    return {"registryUri": UPSTREAM, "sourceImage": "team/app:v1", **fields}


@dataclass(frozen=True)
class Case:
    body: Callable[[Management], dict[str, Any]]
    status: int
    code: str
    field: str | None  # named in error.target or in the message


CASES: dict[str, Case] = {
    "missing sourceImage": Case(
        lambda m: {"source": {"registryUri": UPSTREAM}}, 400, "InvalidParameter", "sourceImage"
    ),
    "empty sourceImage": Case(
        lambda m: {"source": source(sourceImage="")}, 400, "InvalidParameter", "sourceImage"
    ),
    "bad reference": Case(
        lambda m: {"source": source(sourceImage="Team/App:v1")},
        400,
        "InvalidParameter",
        "sourceImage",
    ),
    "bad tag": Case(
        lambda m: {"source": source(sourceImage="team/app:-v1")},
        400,
        "InvalidParameter",
        "sourceImage",
    ),
    "bad digest": Case(
        lambda m: {"source": source(sourceImage="team/app@sha256:abc")},
        400,
        "InvalidParameter",
        "sourceImage",
    ),
    "credentials without password": Case(
        lambda m: {"source": source(credentials={"username": "someone"})},
        400,
        "InvalidParameter",
        "source.credentials.password",
    ),
    "both resourceId and registryUri": Case(
        lambda m: {"source": source(resourceId=m.registry_id(TARGET))},
        400,
        "InvalidParameter",
        "source",
    ),
    "neither resourceId nor registryUri": Case(
        lambda m: {"source": {"sourceImage": "team/app:v1"}}, 400, "InvalidParameter", "source"
    ),
    "malformed registryUri": Case(
        lambda m: {"source": source(registryUri="not a host/")},
        400,
        "InvalidParameter",
        "registryUri",
    ),
    "malformed resourceId": Case(
        lambda m: {"source": {"resourceId": "/subscriptions/x/registries", "sourceImage": "a:b"}},
        400,
        "InvalidParameter",
        "resourceId",
    ),
    "unknown source registry": Case(
        lambda m: {
            "source": {"resourceId": m.registry_id("nosuchregistry"), "sourceImage": "team/app:v1"}
        },
        404,
        "ResourceNotFound",
        None,
    ),
    "tag in an untagged repository": Case(
        lambda m: {"source": source(), "untaggedTargetRepositories": ["app:v1"]},
        400,
        "InvalidParameter",
        "untaggedTargetRepositories[0]",
    ),
    "digest as a target tag": Case(
        lambda m: {"source": source(), "targetTags": ["app:v1", f"app@{DIGEST}"]},
        400,
        "InvalidParameter",
        "targetTags[1]",
    ),
    "bad target tag": Case(
        lambda m: {"source": source(), "targetTags": ["App:v1"]},
        400,
        "InvalidParameter",
        "targetTags[0]",
    ),
    "unknown mode": Case(
        lambda m: {"source": source(), "mode": "Sometimes"}, 400, "InvalidParameter", "mode"
    ),
    "source is not an object": Case(
        lambda m: {"source": "docker.io/hello-world"}, 400, "InvalidParameter", "source"
    ),
}


async def assert_no_job(env: ImportEnv) -> None:
    assert await env.admin.operations(TARGET) == []


@pytest.fixture
async def env(import_env: ImportEnvFactory) -> ImportEnv:
    return await import_env()


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_invalid_request_is_refused_before_any_job(case: str, env: ImportEnv) -> None:
    expected = CASES[case]
    operation = await env.admin.start_import(TARGET, expected.body(env.admin))
    error = operation.body["error"]
    assert (operation.status, error["code"]) == (expected.status, expected.code), operation.body
    assert operation.location is None and operation.async_operation is None
    if expected.field is not None:
        assert (
            expected.field in (error.get("target") or "") or expected.field in error["message"]
        ), error
    await assert_no_job(env)


async def test_unknown_target_registry_is_not_found(env: ImportEnv) -> None:
    status, payload, _ = await env.admin.call(
        "POST", f"{env.admin.base}/nosuchregistry/importImage", {"source": source()}
    )
    assert status == 404 and payload["error"]["code"] == "ResourceNotFound", payload
    assert "nosuchregistry" in payload["error"]["message"]
    await assert_no_job(env)


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"source": ', b"\xff\xfe"], ids=["garbage", "truncated", "not-utf8"]
)
async def test_malformed_json_is_a_bad_request(raw: bytes, env: ImportEnv) -> None:
    status, payload, _ = await env.admin.call(
        "POST", f"{env.admin.base}/{TARGET}/importImage", raw=raw
    )
    assert status == 400, (status, payload)
    assert payload["error"]["code"] in ("InvalidRequestContent", "InvalidParameter"), payload
    await assert_no_job(env)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "AuthenticationFailed"),
        (basic_auth("admin", "not-the-password"), "AuthenticationFailed"),
        ("Bearer abc", "InvalidAuthenticationToken"),
    ],
    ids=["none", "wrong-password", "bearer"],
)
async def test_management_needs_a_principal(
    authorization: str | None, code: str, env: ImportEnv
) -> None:
    path = f"{env.admin.base}/{TARGET}/importImage"
    status, payload, headers = await env.admin.call(
        "POST", path, {"source": source()}, authorization=authorization
    )
    assert status == 401 and payload["error"]["code"] == code, payload
    assert headers.get("WWW-Authenticate", "").startswith("Bearer authorization_uri=")
    await assert_no_job(env)
