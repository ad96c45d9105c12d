"""The error middleware (api/errors.py) answers a domain error raised by a handler in the
envelope of the route's surface, with the exact bytes and headers clients have always had:
OCI with `Docker-Distribution-API-Version`, the upload's `Location`/`Range` for a chunk out
of order, ARM with `target`, OAuth with `Cache-Control: no-store`, and `Retry-After` on 429
everywhere. A small app on a loopback port, stopped by each test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from transship import errors as d
from transship.api.errors import error_middleware
from transship.identity.throttle import TooManyFailures
from transship.registry.blobs import ChunkOutOfOrder

Raiser = Callable[[], d.DomainError]

RAISERS: dict[str, Raiser] = {
    "manifest": lambda: d.NotFound(
        "manifest",
        "v1",
        "manifest v1 is not in repository app",
        detail={"reference": "v1"},
    ),
    "chunk": lambda: ChunkOutOfOrder("abc", "team/app", 300, 200),
    "loginserver": lambda: d.Invalid(
        "properties.loginServer", "properties.loginServer is read-only"
    ),
    "client": lambda: d.Unauthenticated("AADSTS7000215: Invalid client secret", subject="client"),
    "throttled": lambda: TooManyFailures(9, "too many failed sign-ins"),
}


async def _raise(request: web.Request) -> web.Response:
    raise RAISERS[request.match_info["what"]]()


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application(middlewares=[error_middleware])
    for prefix in ("/v2/app/x", "/subscriptions/s/x", "/tenant-1/oauth2/v2.0/x"):
        app.router.add_route("*", prefix + "/{what}", _raise)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def call(server: TestServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, str(server.make_url(path))) as r,
    ):
        return r.status, dict(r.headers), await r.read()


async def test_oci_not_found(server: TestServer) -> None:
    status, headers, body = await call(server, "GET", "/v2/app/x/manifest")
    assert status == 404
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert headers["Content-Type"].startswith("application/json")
    assert (
        body
        == json.dumps(
            {
                "errors": [
                    {
                        "code": "MANIFEST_UNKNOWN",
                        "message": "manifest v1 is not in repository app",
                        "detail": {"reference": "v1"},
                    }
                ]
            }
        ).encode()
    )


async def test_oci_head_has_no_body(server: TestServer) -> None:
    status, headers, body = await call(server, "HEAD", "/v2/app/x/manifest")
    assert (status, body) == (404, b"")
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_a_chunk_out_of_order_says_where_the_upload_stands(server: TestServer) -> None:
    status, headers, body = await call(server, "PATCH", "/v2/app/x/chunk")
    assert status == 416
    assert headers["Location"] == "/v2/team/app/blobs/uploads/abc"
    assert headers["Range"] == "0-199"
    assert headers["Docker-Upload-UUID"] == "abc"
    assert json.loads(body) == {
        "errors": [
            {
                "code": "BLOB_UPLOAD_INVALID",
                "message": "chunk starts at 300 but upload abc is at offset 200",
            }
        ]
    }


async def test_arm_names_the_target(server: TestServer) -> None:
    status, headers, body = await call(server, "PUT", "/subscriptions/s/x/loginserver")
    assert status == 400
    assert "Docker-Distribution-API-Version" not in headers
    assert (
        body
        == json.dumps(
            {
                "error": {
                    "code": "InvalidParameter",
                    "message": "properties.loginServer is read-only",
                    "target": "properties.loginServer",
                }
            }
        ).encode()
    )


async def test_oauth_is_not_cached(server: TestServer) -> None:
    status, headers, body = await call(server, "POST", "/tenant-1/oauth2/v2.0/x/client")
    assert status == 401
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body) == {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret",
        "error_codes": [401],
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v2/app/x/throttled",
            {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many failed sign-ins"}]},
        ),
        (
            "/subscriptions/s/x/throttled",
            {"error": {"code": "TooManyRequests", "message": "too many failed sign-ins"}},
        ),
        (
            "/tenant-1/oauth2/v2.0/x/throttled",
            {
                "error": "temporarily_unavailable",
                "error_description": "too many failed sign-ins",
                "error_codes": [429],
            },
        ),
    ],
)
async def test_429_everywhere_says_when_to_retry(
    server: TestServer, path: str, body: dict[str, object]
) -> None:
    status, headers, raw = await call(server, "POST", path)
    assert (status, headers["Retry-After"], json.loads(raw)) == (429, "9", body)
