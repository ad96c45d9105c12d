"""Invalid repository names on the data plane are 400 NAME_INVALID before any challenge is
built (a control character in a name used to reach the `WWW-Authenticate` header: no
response at all, and a traceback), and cancelling an upload needs push, not delete."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import IdentityClient, basic, owner_credential
from transship.api.dataplane_auth import Need, challenge, need_of
from transship.api.envelopes import OciError

GROUP = "names"


@dataclass
class World:
    reg: RunningRegistry
    owner: IdentityClient
    registry_id: str
    login_server: str


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    settings = make_settings(tmp_path, database_url, data_plane_auth=True)
    async with running_registry(settings) as reg:
        owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path))
        subscription = owner.credential.subscription_id
        await owner.create_group(subscription, GROUP)
        created = await owner.create_registry(subscription, GROUP, "namesreg")
        await reg.services.resolver.refresh()
        yield World(reg, owner, created["id"], created["properties"]["loginServer"])


async def raw_request(
    world: World, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send one request line exactly as given (no client-side quoting) and read the whole
    response. Raises AssertionError when the server closes the connection without one."""
    assert world.reg.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", world.reg.server.port)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {world.login_server}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        await writer.wait_closed()
    assert data, f"no response to {method} {target}"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), found, body


_INVALID = [
    ("GET", "/v2/a%0d/manifests/v1"),
    ("GET", "/v2/a%0a/manifests/v1"),
    ("HEAD", "/v2/a%0d%0aX-Injected:%20yes/manifests/v1"),
    ("PUT", "/v2/a%0d/manifests/v1"),
    ("POST", "/v2/a%0a/blobs/uploads/"),
    ("DELETE", "/v2/a%0d/blobs/uploads/0123456789abcdef0123456789abcdef"),
    ("GET", "/v2/a%0d/tags/list"),
    ("GET", "/v2/Upper/manifests/v1"),
    ("GET", "/v2/a%22,scope=%22x/manifests/v1"),
    ("GET", "/acr/v1/a%0d/_tags"),
    ("GET", "/acr/v1/a%0a"),
    ("DELETE", "/acr/v1/a%0d/_manifests/sha256:" + "0" * 64),
    ("PATCH", "/acr/v1/a%0a/_tags/v1"),
]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/a\r/manifests/v1"),
        ("GET", "/v2/a\n/manifests/v1"),
        ("PATCH", "/v2/te\nam/app/blobs/uploads/0f1e"),
        ("GET", "/v2/UPPER/tags/list"),
        ("GET", '/v2/a",scope="x/referrers/sha256:0'),
        ("GET", "/acr/v1/a/_manifests/b/_manifests"),
        ("GET", "/acr/v1/a\n/_tags"),
        ("PATCH", "/acr/v1/a\n/_tags"),
        ("DELETE", "/acr/v1/a\r"),
    ],
)
def test_need_of_refuses_invalid_names(method: str, path: str) -> None:
    with pytest.raises(OciError) as raised:
        need_of(method, path)
    assert raised.value.status == 400 and raised.value.code.code == "NAME_INVALID"


@pytest.mark.parametrize(("method", "target"), _INVALID)
async def test_an_invalid_name_is_400_name_invalid_for_anonymous_and_authenticated_callers(
    world: World, method: str, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    callers = {"anonymous": None, "owner": {"Authorization": world.owner.credential.basic}}
    for caller, headers in callers.items():
        status, found, body = await raw_request(world, method, target, headers)
        assert status == 400, (caller, status, body)
        assert "www-authenticate" not in found and "x-injected" not in found, found
        if method != "HEAD":
            error = json.loads(body)["errors"][0]
            assert error["code"] == "NAME_INVALID", error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_quote_in_the_host_header_cannot_add_challenge_parameters() -> None:
    request = make_mocked_request("GET", "/v2/r/tags/list", headers={"Host": 'reg",scope="x'})
    value = challenge(request, "svc", Need("repository", "r", "pull"))
    assert value == (
        'Bearer realm="http://reg\\",scope=\\"x/oauth2/token",service="svc",'
        'scope="repository:r:pull"'
    )


async def test_a_valid_name_still_gets_the_challenge(world: World) -> None:
    status, found, _ = await raw_request(world, "GET", "/v2/team/app/manifests/v1")
    assert status == 401
    assert 'scope="repository:team/app:pull"' in found["www-authenticate"]


async def _upload(world: World, authorization: str) -> str:
    async with world.reg.http.post(
        f"{world.reg.url}/v2/app/blobs/uploads/",
        headers={"Host": world.login_server, "Authorization": authorization},
    ) as r:
        assert r.status == 202, await r.text()
        return str(r.headers["Location"])


async def _cancel(world: World, location: str, authorization: str) -> int:
    async with world.reg.http.delete(
        world.reg.url + location,
        headers={"Host": world.login_server, "Authorization": authorization},
    ) as r:
        return r.status


async def test_cancelling_an_upload_needs_push_not_delete(world: World) -> None:
    pusher = await world.owner.create_token(
        world.registry_id,
        "pusher",
        ["repositories/app/content/read", "repositories/app/content/write"],
    )
    reader = await world.owner.create_token(
        world.registry_id, "reader", ["repositories/app/content/read"]
    )
    push_only, pull_only = basic("pusher", pusher), basic("reader", reader)
    owner = world.owner.credential.basic

    location = await _upload(world, push_only)
    assert await _cancel(world, location, push_only) == 204  # before: 403, it needed delete
    assert await _cancel(world, location, push_only) == 404  # it is gone

    location = await _upload(world, owner)
    assert await _cancel(world, location, pull_only) == 403
    async with world.reg.http.get(
        world.reg.url + location, headers={"Host": world.login_server, "Authorization": owner}
    ) as r:
        assert r.status == 204  # the session survived the refused cancel
