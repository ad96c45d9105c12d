"""Authenticated upstreams: docker-registry with htpasswd (HTTP Basic) and with bearer tokens
from the real token server, with credentials and anonymously. Wrong credentials fail as
UpstreamUnauthorized without the password ever showing up."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory, insecure, small_index
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, push_layout_http
from tests.support.imports import assert_failed, assert_succeeded


async def pushed(tmp_path: Path, registry: DistributionRegistry) -> BuiltIndex:
    """A 2-platform index at `team/app:v1`, built and pushed in a thread: both are blocking
    work that would hold the test's loop."""

    def build() -> BuiltIndex:
        index = small_index(tmp_path, platforms=("linux/amd64", "linux/arm64"))
        push_layout_http(index, registry.url, "team/app", "v1", auth=registry.auth)
        return index

    return await asyncio.to_thread(build)


def body(registry: DistributionRegistry, credentials: dict[str, Any] | None) -> dict[str, Any]:
    source: dict[str, Any] = {"registryUri": registry.host, "sourceImage": "team/app:v1"}
    if credentials is not None:
        source["credentials"] = credentials
    return {"source": source, "targetTags": ["app:v1"]}


async def assert_landed(env: ImportEnv, index: BuiltIndex) -> None:
    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == index.index_bytes


async def test_htpasswd_upstream_with_credentials(
    tmp_path: Path, import_env: ImportEnvFactory, distribution_htpasswd: DistributionRegistry
) -> None:
    registry = distribution_htpasswd
    index = await pushed(tmp_path, registry)
    env = await import_env(upstreams=insecure(registry.host))
    final = await env.run_import(
        body(registry, {"username": registry.username, "password": registry.password})
    )
    assert_succeeded(final)
    await assert_landed(env, index)
    assert registry.password is not None and registry.password not in json.dumps(final)


@pytest.mark.parametrize("given", ["wrong-password", "no-credentials"])
async def test_htpasswd_upstream_refuses_without_leaking_the_password(
    given: str,
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_htpasswd: DistributionRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = distribution_htpasswd
    await pushed(tmp_path, registry)
    env = await import_env(upstreams=insecure(registry.host))
    wrong = "Wr0ng-" + secrets.token_urlsafe(16)
    credentials = (
        {"username": registry.username, "password": wrong} if given == "wrong-password" else None
    )
    final = await env.run_import(body(registry, credentials))
    error = assert_failed(final, "UpstreamUnauthorized")
    failure = final["properties"]["failure"]
    assert failure["step"] == "authenticate" and failure["upstreamStatus"] == 401, failure
    assert registry.host in error["message"]
    assert (await env.manifest("app", "v1")).status == 404
    basic = base64.b64encode(f"{registry.username}:{wrong}".encode()).decode()
    everything = json.dumps(final) + json.dumps(await env.admin.operations(TARGET)) + caplog.text
    assert caplog.records, "the server's log was not captured"
    for secret in (wrong, basic):
        assert secret not in everything
    for path in env.data_dir.glob("metadata.db*"):  # sealed at rest, and dropped at the end
        assert wrong.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("with_credentials", [True, False], ids=["credentials", "anonymous"])
async def test_token_upstream(
    with_credentials: bool,
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
) -> None:
    registry = distribution_token
    token_server = registry.token_server
    assert token_server is not None
    index = await pushed(tmp_path, registry)
    token_server.clear_requests()
    env = await import_env(upstreams=insecure(registry.host))
    credentials = (
        {"username": registry.username, "password": registry.password} if with_credentials else None
    )
    final = await env.run_import(body(registry, credentials))
    assert_succeeded(final)
    await assert_landed(env, index)

    asked = token_server.requests
    assert asked, "the token server was never asked"
    for request in asked:
        assert request.status == 200, request
        assert "repository:team/app:pull" in request.scopes, request.scopes
        assert request.authenticated is with_credentials, request
        assert request.username == (registry.username if with_credentials else None)
        assert {"type": "repository", "name": "team/app", "actions": ["pull"]} in request.granted
    # One token serves the whole import (it is cached per scope and sent up front).
    assert len(asked) == 1, [r.scopes for r in asked]


async def test_later_imports_reuse_the_token_of_the_same_credentials_only(
    tmp_path: Path, import_env: ImportEnvFactory, distribution_token: DistributionRegistry
) -> None:
    """The server remembers the token the first import got: a second import with the same
    credentials sends it up front (no challenge, no token request); an anonymous import,
    or one with other credentials, never gets it."""
    registry = distribution_token
    token_server = registry.token_server
    assert token_server is not None
    index = await pushed(tmp_path, registry)
    env = await import_env(upstreams=insecure(registry.host))
    credentials = {"username": registry.username, "password": registry.password}
    token_server.clear_requests()
    for tag in ("v1", "v2"):
        request = body(registry, credentials)
        request["targetTags"] = [f"app:{tag}"]
        assert_succeeded(await env.run_import(request))
    (asked,) = token_server.requests
    assert asked.username == registry.username

    anonymous = body(registry, None)
    anonymous["targetTags"] = ["app:anonymous"]
    assert_succeeded(await env.run_import(anonymous))
    wrong = body(registry, {"username": registry.username, "password": "Wr0ng-" + "x" * 12})
    wrong["targetTags"] = ["app:wrong"]
    assert_failed(await env.run_import(wrong), "UpstreamUnauthorized")
    later = token_server.requests[1:]
    assert [(r.authenticated, r.status) for r in later] == [(False, 200), (False, 401)]
    for tag in ("v1", "v2", "anonymous"):
        got = await env.manifest("app", tag)
        assert got.status == 200 and got.body == index.index_bytes
