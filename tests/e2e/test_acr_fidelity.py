"""Transship's answers against the shape of ACR's, request by request.

`fixtures/acr_shapes/acr_answers.json` describes what ACR answered az in the azure-cli
repository's recordings (status, headers present and absent, body keys and their JSON types,
a few fixed values). Each test sends Transship the same request and compares key by key;
what Transship answers differently on purpose is listed in the fixture's `knownDifferences`
and must be explained in docs/azure-compatibility.md ("Fidelity"). A key Transship adds is
allowed (Azure clients ignore keys they do not know); a key ACR sends and Transship drops, a
wrong type, status or header fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.support.app import RunningRegistry, make_settings, push_image, running_registry
from tests.support.identity import IdentityClient, owner_credential

FIXTURE = Path(__file__).parent / "fixtures" / "acr_shapes" / "acr_answers.json"
DOCS = Path(__file__).parents[2] / "docs" / "azure-compatibility.md"
SHAPES: dict[str, Any] = json.loads(FIXTURE.read_text())["answers"]
ACR_AUDIENCE = "https://containerregistry.azure.net"
API = "api-version=2025-04-01"
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}


def shape_differences(expected: Any, actual: Any, path: str) -> list[str]:
    """Where `actual` departs from the shape `expected`: each missing key, wrong type, or
    array item of the wrong shape, by dotted path."""
    if isinstance(expected, str):
        wanted = _TYPES[expected]
        # bool is an int in Python; JSON keeps them apart.
        if not isinstance(actual, wanted) or (isinstance(actual, bool) and bool not in wanted):
            return [f"{path}: {expected} expected, got {type(actual).__name__}"]
        return []
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: array expected, got {type(actual).__name__}"]
        return [d for item in actual for d in shape_differences(expected[0], item, f"{path}[]")]
    if not isinstance(actual, dict):
        return [f"{path}: object expected, got {type(actual).__name__}"]
    found: list[str] = []
    for key, inner in expected.items():
        if key not in actual:
            found.append(f"{path}.{key}: missing")
        else:
            found.extend(shape_differences(inner, actual[key], f"{path}.{key}"))
    return found


def _value_at(body: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        body = body[int(part[1:-1])] if part.startswith("[") else body[part]
    return body


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any


def compare(name: str, reply: Reply) -> None:
    """Assert that `reply` has the shape ACR's answer `name` has, known differences aside."""
    shape = SHAPES[name]
    known = shape.get("knownDifferences", {})
    assert reply.status in shape["status"], (name, reply.status, reply.body)
    for header in shape.get("headers", []):
        assert header in reply.headers, (name, header, dict(reply.headers))
    for header in shape.get("absentHeaders", []):
        assert header not in reply.headers, (name, header, reply.headers[header])
    for header, pattern in shape.get("headerPatterns", {}).items():
        assert re.search(pattern, reply.headers[header]), (name, header, reply.headers[header])
    if shape["body"] is None:
        assert reply.body is None or "body" in known, (name, reply.body)
    else:
        differences = [
            d for d in shape_differences(shape["body"], reply.body, "body") if not _known(d, known)
        ]
        assert not differences, (name, differences, reply.body)
    for path, value in shape.get("values", {}).items():
        assert _value_at(reply.body, path) == value, (name, path, reply.body)


def _known(difference: str, known: dict[str, str]) -> bool:
    path = difference.split(":", 1)[0]
    return any(path == k or path.startswith(k + ".") for k in known)


async def _read(response: aiohttp.ClientResponse) -> Reply:
    text = await response.text()
    return Reply(response.status, response.headers, json.loads(text) if text.strip() else None)


@dataclass
class Service:
    reg: RunningRegistry
    owner: IdentityClient
    subscription: str
    stall_port: int

    def registry_path(self, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/default"
            f"/providers/Microsoft.ContainerRegistry/registries/{name}"
        )

    async def arm(self, method: str, path: str, body: Any = None) -> Reply:
        separator = "&" if "?" in path else "?"
        url = path if path.startswith("http") else f"{self.reg.url}{path}{separator}{API}"
        headers = {"Authorization": await self.owner.bearer()}
        async with self.reg.http.request(method, url, json=body, headers=headers) as r:
            return await _read(r)

    async def until_done(self, accepted: Reply) -> tuple[list[Reply], Reply]:
        """Follow the Location of an accepted import as az does: (the 202s, the end)."""
        location = accepted.headers["Location"]
        pending: list[Reply] = []
        for _ in range(300):
            reply = await self.arm("GET", location)
            if reply.status != 202:
                return pending, reply
            pending.append(reply)
            location = reply.headers["Location"]
            await asyncio.sleep(0.05)
        raise TimeoutError(pending[-1])


async def _stalling_upstream() -> asyncio.Server:
    """A TCP server that accepts and never answers: an import from it stays running."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()

    return await asyncio.start_server(hold, "127.0.0.1", 0)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    stall = await _stalling_upstream()
    port = stall.sockets[0].getsockname()[1]
    settings = make_settings(
        tmp_path,
        None,
        data_plane_auth=True,
        upstreams={"stall.example": {"endpoint": f"http://127.0.0.1:{port}", "insecure": True}},
        upstream_read_timeout=30.0,
    )
    try:
        async with running_registry(settings) as reg:
            owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path))
            yield Service(reg, owner, owner.credential.subscription_id, port)
    finally:
        stall.close()


async def _create(service: Service, name: str) -> Reply:
    body = {"location": "local", "sku": {"name": "Premium"}, "properties": {}}
    reply = await service.arm("PUT", service.registry_path(name), body)
    await service.reg.services.resolver.refresh()
    return reply


async def _with_image(service: Service, name: str) -> str:
    """Create registry `name` holding app/web:1; its login server."""
    created = await _create(service, name)
    host = str(created.body["properties"]["loginServer"])
    await push_image(
        service.reg.http, service.reg.url, host, service.owner.credential.basic, "app/web", "1"
    )
    return host


def _import_body(source_id: str, image: str, target: str) -> dict[str, Any]:
    return {
        "source": {"resourceId": source_id, "sourceImage": image},
        "targetTags": [target],
        "mode": "NoForce",
    }


async def test_registry_create_show_and_list(service: Service) -> None:
    created = await _create(service, "fidelityregistry")
    compare("registry_create", created)
    compare("registry_show", await service.arm("GET", service.registry_path("fidelityregistry")))
    listed = await service.arm(
        "GET",
        f"/subscriptions/{service.subscription}/providers/Microsoft.ContainerRegistry/registries",
    )
    compare("registry_list", listed)
    assert [r["name"] for r in listed.body["value"]].count("fidelityregistry") == 1


async def test_import_accepted_then_succeeded_through_location(service: Service) -> None:
    await _with_image(service, "fidelitysource")
    await _create(service, "fidelitytarget")
    accepted = await service.arm(
        "POST",
        service.registry_path("fidelitytarget") + "/importImage",
        _import_body(service.registry_path("fidelitysource"), "app/web:1", "copy:1"),
    )
    compare("import_accepted", accepted)
    pending, final = await service.until_done(accepted)
    for reply in pending:
        compare("import_result_pending", reply)
    compare("import_result_succeeded", final)
    # The extension clients may use: the 202 body's id is the status URL, which agrees.
    status = await service.arm("GET", accepted.body["id"])
    assert status.status == 200 and status.body["status"] == "Succeeded", status.body


async def test_import_pending_answers_accepted_with_a_location_to_poll(service: Service) -> None:
    await _create(service, "fidelitystall")
    accepted = await service.arm(
        "POST",
        service.registry_path("fidelitystall") + "/importImage",
        {"source": {"registryUri": "stall.example", "sourceImage": "app:v1"}},
    )
    compare("import_accepted", accepted)
    pending = await service.arm("GET", accepted.headers["Location"])
    compare("import_result_pending", pending)
    assert pending.headers["Location"] == accepted.headers["Location"]
    canceled = await service.arm("POST", accepted.body["id"] + "/cancel")
    assert canceled.status == 200, canceled.body


@pytest.mark.parametrize(
    ("image", "target", "status", "code"),
    [
        ("app/web:1", "app/web:1", 409, "TagAlreadyExists"),  # NoForce onto an existing tag
        ("app/web:nosuch", "app/web:2", 400, "ManifestUnknown"),
    ],
)
async def test_import_failure_through_location(
    service: Service, image: str, target: str, status: int, code: str
) -> None:
    await _with_image(service, "fidelityfailing")
    accepted = await service.arm(
        "POST",
        service.registry_path("fidelityfailing") + "/importImage",
        _import_body(service.registry_path("fidelityfailing"), image, target),
    )
    compare("import_accepted", accepted)
    _, final = await service.until_done(accepted)
    compare("import_result_failed", final)
    assert (final.status, final.body["error"]["code"]) == (status, code), final.body


async def test_data_plane_login_and_listings(service: Service) -> None:
    host = await _with_image(service, "fidelitydata")
    http, url = service.reg.http, service.reg.url
    async with http.get(f"{url}/v2/", headers={"Host": host}) as r:
        compare("v2_challenge", await _read(r))

    status, token = await service.owner.token(scope=f"{ACR_AUDIENCE}/.default")
    assert status == 200, token
    form = {
        "grant_type": "access_token",
        "service": host,
        "tenant": service.owner.credential.tenant_id,
        "access_token": token["access_token"],
    }
    async with http.post(f"{url}/oauth2/exchange", data=form, headers={"Host": host}) as r:
        exchanged = await _read(r)
    compare("oauth2_exchange", exchanged)

    async def access(scope: str) -> str:
        grant = {
            "grant_type": "refresh_token",
            "service": host,
            "scope": scope,
            "refresh_token": exchanged.body["refresh_token"],
        }
        async with http.post(f"{url}/oauth2/token", data=grant, headers={"Host": host}) as r:
            reply = await _read(r)
        compare("oauth2_token", reply)
        return str(reply.body["access_token"])

    async def get(path: str, scope: str) -> Reply:
        headers = {"Host": host, "Authorization": "Bearer " + await access(scope)}
        async with http.get(f"{url}{path}", headers=headers) as r:
            return await _read(r)

    catalog = await get("/acr/v1/_catalog", "registry:catalog:*")
    compare("catalog", catalog)
    assert catalog.body["repositories"] == ["app/web"]
    scope = "repository:app/web:metadata_read"
    compare("repository", await get("/acr/v1/app/web", scope))
    tags = await get("/acr/v1/app/web/_tags", scope)
    compare("tags", tags)
    assert [t["name"] for t in tags.body["tags"]] == ["1"]
    manifests = await get("/acr/v1/app/web/_manifests", scope)
    compare("manifests", manifests)
    assert manifests.body["manifests"][0]["tags"] == ["1"]


def test_every_known_difference_is_documented() -> None:
    text = DOCS.read_text()
    assert "## Fidelity" in text
    fidelity = text.split("## Fidelity", 1)[1].split("\n## ", 1)[0]
    for name, shape in SHAPES.items():
        for path in shape.get("knownDifferences", {}):
            key = path.removeprefix("header:").rsplit(".", 1)[-1]
            assert f"`{key}`" in fidelity, (name, path)


def test_the_comparison_sees_a_missing_key_a_wrong_type_and_a_bad_item() -> None:
    shape = {"a": "string", "b": {"c": "boolean"}, "d": [{"e": "integer"}]}
    assert shape_differences(shape, {"a": "x", "b": {"c": True}, "d": [{"e": 1}]}, "body") == []
    assert shape_differences(shape, {"a": 1, "b": {"c": 1}, "d": [{"e": True}, {}]}, "body") == [
        "body.a: string expected, got int",
        "body.b.c: boolean expected, got int",
        "body.d[].e: integer expected, got bool",
        "body.d[].e: missing",
    ]
    assert shape_differences(shape, {"b": {}, "d": {}}, "body") == [
        "body.a: missing",
        "body.b.c: missing",
        "body.d: array expected, got dict",
    ]
