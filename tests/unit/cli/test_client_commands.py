"""The client commands (login, registry, import, repository) against a fake Transship server.

The fake implements the management contract (/tmp/notes/import-api.md at the time of
writing: ARM registries, importImage with Azure-AsyncOperation polling, the Transship
extensions) and the ACR data plane minimally, on 127.0.0.1 in a background thread, and
records every request so the tests can assert exactly what the CLI sent.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result
from rich.console import Console

from transship.cli import commands_import
from transship.cli.main import main
from transship.cli.progress import ImportProgress

SUB = "00000000-0000-0000-0000-000000000000"
RG = "transship"
LOCATION = "local"
SUFFIX = "localhost:5000"  # as the server reports it: login servers are <name>.<suffix>
PASSWORD = "adm1n-Pa55word-XYZ"
PROVIDER = "/providers/Microsoft.ContainerRegistry"
GROUP = f"/subscriptions/{SUB}/resourceGroups/{RG}"
DIGEST = "sha256:" + "ab" * 32


def arm_id(name: str, group: str = RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}{PROVIDER}/registries/{name}"


def registry_resource(name: str, login_server: str | None = None, group: str = RG) -> dict[str, Any]:
    return {
        "id": arm_id(name, group),
        "name": name,
        "type": "Microsoft.ContainerRegistry/registries",
        "location": LOCATION,
        "tags": {},
        "sku": {"name": "Premium", "tier": "Premium"},
        "properties": {
            "loginServer": login_server or f"{name}.{SUFFIX}",
            "creationDate": "2026-01-02T03:04:05.123456+00:00",
            "provisioningState": "Succeeded",
            "adminUserEnabled": False,
        },
    }


def operation(
    status: str = "InProgress",
    state: str = "running",
    *,
    bytes_done: int = 0,
    bytes_total: int = 0,
    blobs: tuple[int, int] = (0, 0),
    manifests: tuple[int, int] = (0, 0),
    error: dict[str, str] | None = None,
    failure: dict[str, Any] | None = None,
    end: bool = False,
) -> dict[str, Any]:
    """An OperationStatus (name/id and the request's fields are filled in by the server)."""
    result: dict[str, Any] = {
        "status": status,
        "startTime": "2026-01-02T03:04:05+00:00",
        "properties": {
            "state": state,
            "progress": {
                "bytesTotal": bytes_total,
                "bytesDone": bytes_done,
                "blobsTotal": blobs[1],
                "blobsDone": blobs[0],
                "manifestsTotal": manifests[1],
                "manifestsDone": manifests[0],
            },
        },
    }
    if end:
        result["endTime"] = "2026-01-02T03:04:09.500000+00:00"
    if error:
        result["error"] = error
    if failure:
        result["properties"]["failure"] = failure
    return result


SUCCEEDED = operation(
    "Succeeded", "succeeded", bytes_done=3000, bytes_total=3000, blobs=(4, 4), manifests=(2, 2), end=True
)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeService:
    url: str = ""
    registries: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    # Successive answers of the operation status URL (the last one repeats).
    script: list[dict[str, Any]] = field(default_factory=lambda: [SUCCEEDED])
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    post_error: tuple[int, dict[str, Any]] | None = None
    status_url_origin: str = ""  # e.g. "https://elsewhere.example" for absolute URLs
    send_async_header: bool = True
    bare_post_body: bool = False  # a 202 with no OperationStatus body: only Location to follow
    transient_failures: int = 0  # 503s before the status URL answers
    info_requires_auth: bool = True
    # Data plane, per login server: repositories, and per repository tags and manifests.
    catalog: dict[str, list[str]] = field(default_factory=dict)
    tags: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    manifests: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    require_bearer: bool = False

    def __post_init__(self) -> None:
        for name in ("myregistry", "mysourceregistry", "default"):
            self.registries[name] = registry_resource(name)

    # -- recording ---------------------------------------------------------------------
    def seen(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [
            r for r in self.requests
            if (method is None or r.method == method) and contains in r.path
        ]

    def import_bodies(self) -> list[Any]:
        return [r.body for r in self.seen("POST", "/importImage")]

    # -- the app -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._auth])
        mgmt = f"/subscriptions/{{sub}}/resourceGroups/{{rg}}{PROVIDER}/registries/{{name}}"
        ops = f"/subscriptions/{{sub}}{PROVIDER}/locations/{{loc}}"
        app.router.add_get("/transship/v1/info", self._info)
        app.router.add_get(f"/subscriptions/{{sub}}{PROVIDER}/registries", self._list)
        app.router.add_get(f"/subscriptions/{{sub}}/resourceGroups/{{rg}}{PROVIDER}/registries", self._list)
        app.router.add_get(mgmt, self._get)
        app.router.add_put(mgmt, self._put)
        app.router.add_delete(mgmt, self._delete)
        app.router.add_post(f"{mgmt}/importImage", self._import)
        app.router.add_get(f"{mgmt}/importOperations", self._import_list)
        app.router.add_get(f"{ops}/operationStatuses/{{op}}", self._status)
        app.router.add_post(f"{ops}/operationStatuses/{{op}}/cancel", self._cancel)
        app.router.add_get(f"{ops}/operationResults/{{op}}", self._result)
        app.router.add_get("/oauth2/token", self._token)
        app.router.add_get("/acr/v1/_catalog", self._catalog)
        app.router.add_get(r"/acr/v1/{repo:.+}/_tags", self._tags)
        app.router.add_get(r"/acr/v1/{repo:.+}/_manifests", self._manifests)
        app.router.add_delete(r"/acr/v1/{repo:.+}", self._delete_repo)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(raw) if raw else None,
            )
        )
        response: web.StreamResponse = await handler(request)
        return response

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        management = request.path.startswith("/subscriptions") or (
            request.path.startswith("/transship") and self.info_requires_auth
        )
        if management:
            expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return arm_error(401, "AuthenticationFailed", "The credential is not valid.")
            if "api-version" not in request.query and request.path.startswith("/subscriptions"):
                return arm_error(400, "MissingApiVersionParameter", "api-version is required")
        elif (
            request.path.startswith("/acr/")
            and self.require_bearer
            and request.headers.get("Authorization") != "Bearer tok-123"
        ):
            host = request.headers["Host"]
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="https://{host}/oauth2/token",'
                    f'service="{host}",scope="registry:catalog:*"'
                },
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"version": "0.1.0", "subscriptionId": SUB, "resourceGroup": RG,
             "location": LOCATION, "loginServerSuffix": SUFFIX}
        )

    async def _list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("rg")
        values = [r for r in self.registries.values() if group is None or f"/resourceGroups/{group}/" in r["id"]]
        return web.json_response({"value": values})

    def _registry(self, request: web.Request) -> dict[str, Any] | None:
        found = self.registries.get(request.match_info["name"])
        if found is None or request.match_info["rg"] != RG:
            return None
        return found

    async def _get(self, request: web.Request) -> web.Response:
        found = self._registry(request)
        if found is None:
            return not_found(request)
        return web.json_response(found)

    async def _put(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = request.match_info["name"]
        resource = registry_resource(name, (body.get("properties") or {}).get("loginServer"))
        resource["location"] = body.get("location", LOCATION)
        created = name not in self.registries
        self.registries[name] = resource
        return web.json_response(resource, status=201 if created else 200)

    async def _delete(self, request: web.Request) -> web.Response:
        if self.registries.pop(request.match_info["name"], None) is None:
            return web.Response(status=204)
        return web.Response(status=200)

    def _status_url(self, op: str, kind: str = "operationStatuses") -> str:
        return f"{self.status_url_origin}/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}/{kind}/{op}?api-version=2025-04-01"

    def _op(self, op: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        base = self.operations[op]
        merged: dict[str, Any] = json.loads(json.dumps(snapshot))
        merged["id"] = f"/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}/operationStatuses/{op}"
        merged["name"] = op
        merged["properties"] = {**base["properties"], **merged.get("properties", {})}
        return merged

    async def _import(self, request: web.Request) -> web.Response:
        if self._registry(request) is None:
            return not_found(request)
        if self.post_error:
            status, envelope = self.post_error
            return web.json_response(envelope, status=status)
        body = await request.json()
        op = f"op-{len(self.operations) + 1}"
        source = body["source"]
        self.operations[op] = {
            "properties": {
                "registry": request.match_info["name"],
                "source": f"{source.get('registryUri', 'local')}/{source['sourceImage']}",
                "targetTags": body.get("targetTags", []),
                "untaggedTargetRepositories": body.get("untaggedTargetRepositories", []),
                "mode": body.get("mode", "NoForce"),
            }
        }
        self.polls[op] = 0
        headers = {"Location": self._status_url(op, "operationResults"), "Retry-After": "1"}
        if self.send_async_header:
            headers["Azure-AsyncOperation"] = self._status_url(op)
        if self.bare_post_body:
            return web.Response(status=202, headers=headers)
        return web.json_response(self._op(op, operation("InProgress", "queued")), status=202, headers=headers)

    async def _import_list(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        values = [
            self._op(op, SUCCEEDED) for op, base in reversed(self.operations.items())
            if base["properties"]["registry"] == name
        ]
        return web.json_response({"value": values})

    async def _status(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        if op not in self.operations:
            return arm_error(404, "OperationNotFound", f"Operation {op} was not found.")
        if self.transient_failures > 0:
            self.transient_failures -= 1
            return arm_error(503, "ServiceUnavailable", "try again")
        self.polls[op] += 1
        snapshot = self.script[min(self.polls[op] - 1, len(self.script) - 1)]
        return web.json_response(self._op(op, snapshot))

    async def _cancel(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        return web.json_response(self._op(op, operation("Canceled", "canceled", end=True)))

    async def _result(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        self.polls[op] += 1
        snapshot = self.script[min(self.polls[op] - 1, len(self.script) - 1)]
        if snapshot["status"] == "InProgress":
            return web.Response(status=202, headers={"Location": self._status_url(op, "operationResults")})
        if snapshot["status"] == "Succeeded":
            return web.json_response({})
        error = snapshot.get("error") or {"code": "Failed", "message": "failed"}
        return arm_error(409, error["code"], error["message"])

    async def _token(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "no"}]}, status=401)
        return web.json_response({"access_token": "tok-123"})

    def _page(self, request: web.Request, items: list[Any], key: str, name_of: Any) -> web.Response:
        n = min(int(request.query.get("n", "100")), 100)
        last = request.query.get("last")
        ordered = sorted(items, key=name_of)
        if last is not None:
            ordered = [i for i in ordered if name_of(i) > last]
        page = ordered[:n]
        headers = {}
        if len(ordered) > n:
            extra = f"&orderby={request.query['orderby']}" if "orderby" in request.query else ""
            headers["Link"] = f'<{request.path}?last={name_of(page[-1])}&n={n}{extra}>; rel="next"'
        return web.json_response({key: page}, headers=headers)

    async def _catalog(self, request: web.Request) -> web.Response:
        return self._page(request, self.catalog.get(request.headers["Host"], []), "repositories", lambda r: r)

    def _repo_items(self, request: web.Request, table: dict[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
        return table.get((request.headers["Host"], request.match_info["repo"]))

    async def _tags(self, request: web.Request) -> web.Response:
        items = self._repo_items(request, self.tags)
        if items is None:
            return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        return self._page(request, items, "tags", lambda t: t["name"])

    async def _manifests(self, request: web.Request) -> web.Response:
        items = self._repo_items(request, self.manifests)
        if items is None:
            return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        return self._page(request, items, "manifests", lambda m: m["digest"])

    async def _delete_repo(self, request: web.Request) -> web.Response:
        key = (request.headers["Host"], request.match_info["repo"])
        tags = self.tags.pop(key, None)
        manifests = self.manifests.pop(key, [])
        if tags is None:
            return oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        return web.json_response(
            {"manifestsDeleted": [m["digest"] for m in manifests], "tagsDeleted": [t["name"] for t in tags]},
            status=202,
        )


def arm_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


def oci_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": message, "detail": None}]}, status=status)


def not_found(request: web.Request) -> web.Response:
    return arm_error(
        404,
        "ResourceNotFound",
        f"The Resource 'Microsoft.ContainerRegistry/registries/{request.match_info['name']}' "
        f"under resource group '{request.match_info['rg']}' was not found.",
    )


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService()
    loop = asyncio.new_event_loop()
    server = TestServer(fake.app(), host="127.0.0.1")
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start_server())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-transship", daemon=True)
    thread.start()
    assert started.wait(10)
    fake.url = f"http://127.0.0.1:{server.port}"
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in ("TRANSSHIP_SERVER", "TRANSSHIP_USERNAME", "TRANSSHIP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(commands_import, "MIN_POLL_SECONDS", 0.01)
    monkeypatch.setattr(commands_import, "MAX_POLL_SECONDS", 0.05)
    return home


@pytest.fixture
def logged_in(service: FakeService, config_home: Path, tmp_path: Path) -> FakeService:
    credential = tmp_path / "admin-credential.json"
    credential.write_text(json.dumps({"username": "admin", "password": PASSWORD}))
    result = run("login", "--server", service.url, "--credential-file", str(credential))
    assert result.exit_code == 0, result.output
    service.requests.clear()
    return service


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    assert PASSWORD not in result.output, "the admin password was printed"
    return result


def profile_file(config_home: Path) -> Path:
    return config_home / "transship" / "profile.json"


# -- login / logout ------------------------------------------------------------------------


def test_login_with_the_credential_file_saves_a_private_profile(
    service: FakeService, config_home: Path, tmp_path: Path
) -> None:
    credential = tmp_path / "admin-credential.json"
    credential.write_text(json.dumps({"username": "admin", "password": PASSWORD}))
    result = run("login", "--server", service.url, "--credential-file", str(credential))
    assert result.exit_code == 0, result.output
    assert f"Logged in to {service.url} as admin" in result.stdout

    path = profile_file(config_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved == {
        "server": service.url, "username": "admin", "password": PASSWORD,
        "subscriptionId": SUB, "resourceGroup": RG, "location": LOCATION,
        "loginServerSuffix": SUFFIX, "version": "0.1.0",
    }
    [info] = service.seen("GET", "/transship/v1/info")
    assert info.headers["Authorization"] == "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def test_login_reads_the_password_from_stdin_and_prints_json_without_it(
    service: FakeService, config_home: Path
) -> None:
    result = run("login", "--server", service.url, "--password-stdin", "-o", "json", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["server"] == service.url and shown["subscriptionId"] == SUB
    assert "password" not in shown
    assert json.loads(profile_file(config_home).read_text())["password"] == PASSWORD


def test_login_with_a_wrong_password_fails_clearly_and_saves_nothing(
    service: FakeService, config_home: Path
) -> None:
    result = run("login", "--server", service.url, "--password", "wrong-password")
    assert result.exit_code == 1
    assert "(AuthenticationFailed)" in result.stderr
    assert "refused the credential of 'admin'" in result.stderr
    assert "wrong-password" not in result.output
    assert not profile_file(config_home).exists()


def test_login_prompts_for_the_password_without_echoing_it(service: FakeService, config_home: Path) -> None:
    result = run("login", "--server", service.url, "--username", "admin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Password:" in result.stderr
    assert profile_file(config_home).exists()


def test_login_checks_the_password_even_when_info_is_public(service: FakeService, config_home: Path) -> None:
    service.info_requires_auth = False
    result = run("login", "--server", service.url, "--password", "wrong-password")
    assert result.exit_code == 1
    assert "(AuthenticationFailed)" in result.stderr
    assert not profile_file(config_home).exists()


def test_login_rejects_two_password_sources_and_bad_urls(service: FakeService, config_home: Path) -> None:
    result = run("login", "--server", service.url, "--password", "x", "--password-stdin", input="y\n")
    assert result.exit_code == 2
    assert "use only one of --password, --password-stdin" in result.stderr
    result = run("login", "--server", "ftp://host", "--password", "x")
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.stderr
    assert not service.requests
    result = run("login", "--server", "http://127.0.0.1:1", "--password", "x")
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:1" in result.stderr


def test_logout_removes_the_profile(logged_in: FakeService, config_home: Path) -> None:
    assert profile_file(config_home).exists()
    result = run("logout")
    assert result.exit_code == 0 and "Logged out" in result.stdout
    assert not profile_file(config_home).exists()
    assert run("logout").stdout.strip() == "Not logged in."
    result = run("registry", "list")
    assert result.exit_code == 1
    assert "not logged in: run `transship login --server URL`" in result.stderr


def test_environment_variables_replace_the_profile(
    service: FakeService, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSSHIP_SERVER", service.url)
    monkeypatch.setenv("TRANSSHIP_PASSWORD", PASSWORD)
    result = run("registry", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    assert {r["name"] for r in json.loads(result.stdout)} == {"myregistry", "mysourceregistry", "default"}
    # Without a profile the service's subscription comes from the info endpoint.
    assert [r.path for r in service.requests] == [
        "/transship/v1/info", f"/subscriptions/{SUB}{PROVIDER}/registries"
    ]


def test_a_saved_password_is_never_sent_to_another_server(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSSHIP_SERVER", logged_in.url.replace("127.0.0.1", "localhost"))
    result = run("registry", "list")
    assert result.exit_code == 1
    assert "no credential for http://localhost" in result.stderr
    assert not logged_in.requests


# -- registry ------------------------------------------------------------------------------


def test_registry_create_list_show_delete(logged_in: FakeService) -> None:
    result = run("registry", "create", "newregistry", "--location", "west", "--login-server", "new.example.com")
    assert result.exit_code == 0, result.output
    [put] = logged_in.seen("PUT")
    assert put.path == f"{GROUP}{PROVIDER}/registries/newregistry"
    assert put.query["api-version"] == "2025-04-01"
    assert put.body == {"sku": {"name": "Premium"}, "location": "west", "properties": {"loginServer": "new.example.com"}}
    assert "new.example.com" in result.stdout and "newregistry" in result.stdout

    result = run("registry", "list")
    assert result.exit_code == 0
    for header in ("NAME", "RESOURCE GROUP", "LOGIN SERVER"):
        assert header in result.stdout
    assert f"mysourceregistry.{SUFFIX}" in result.stdout

    result = run("registry", "list", "-g", RG, "-o", "json")
    assert len(json.loads(result.stdout)) == 4
    assert logged_in.requests[-1].path == f"{GROUP}{PROVIDER}/registries"

    result = run("registry", "show", "newregistry", "-o", "json")
    assert json.loads(result.stdout)["properties"]["loginServer"] == "new.example.com"

    result = run("registry", "delete", "newregistry", input="n\n")
    assert result.exit_code == 1
    assert not logged_in.seen("DELETE")
    result = run("registry", "delete", "newregistry", input="y\n")
    assert result.exit_code == 0 and "Deleted registry 'newregistry'" in result.stdout
    result = run("registry", "delete", "newregistry", "--yes", "-o", "json")
    assert json.loads(result.stdout) == {"name": "newregistry", "deleted": False}


def test_registry_errors(logged_in: FakeService) -> None:
    result = run("registry", "create", "ab")
    assert result.exit_code == 2
    assert "5-50 alphanumeric" in result.stderr
    result = run("registry", "show", "missing")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "ERROR: (ResourceNotFound) The Resource 'Microsoft.ContainerRegistry/registries/missing' "
        f"under resource group '{RG}' was not found."
    )
    assert result.stdout == ""


# -- import: the request body, form by form ------------------------------------------------

SOURCE_ID = arm_id("mysourceregistry")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--source", "docker.io/library/hello-world:latest", "--image", "hello-world:latest"],
            {"source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:latest"},
             "targetTags": ["hello-world:latest"], "mode": "NoForce"},
            id="docker-hub",
        ),
        pytest.param(
            ["--source", "docker.io/tensorflow/tensorflow:latest-gpu", "--image", "tensorflow:latest-gpu",
             "--username", "U", "--password", "P"],
            {"source": {"registryUri": "docker.io", "credentials": {"username": "U", "password": "P"},
                        "sourceImage": "tensorflow/tensorflow:latest-gpu"},
             "targetTags": ["tensorflow:latest-gpu"], "mode": "NoForce"},
            id="docker-hub-credentials",
        ),
        pytest.param(
            ["--source", "mcr.microsoft.com/windows/servercore:ltsc2019", "--image", "servercore:ltsc2019"],
            {"source": {"registryUri": "mcr.microsoft.com", "sourceImage": "windows/servercore:ltsc2019"},
             "targetTags": ["servercore:ltsc2019"], "mode": "NoForce"},
            id="mcr",
        ),
        pytest.param(
            ["--source", f"mysourceregistry.{SUFFIX}/aci-helloworld:latest", "--image", "aci-helloworld:latest"],
            {"source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
             "targetTags": ["aci-helloworld:latest"], "mode": "NoForce"},
            id="login-server-of-the-service",
        ),
        pytest.param(
            ["--source", f"MySourceRegistry.{SUFFIX.upper()}/aci-helloworld:latest"],
            {"source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
             "targetTags": ["aci-helloworld:latest"], "mode": "NoForce"},
            id="login-server-any-case",
        ),
        pytest.param(
            ["--source", "aci-helloworld:latest", "--image", "aci-helloworld:latest", "--registry", SOURCE_ID],
            {"source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
             "targetTags": ["aci-helloworld:latest"], "mode": "NoForce"},
            id="registry-arm-id",
        ),
        pytest.param(
            ["--source", "samples/aci-helloworld:latest", "--image", "aci-hello-world:latest",
             "--registry", arm_id("mysourceregistry", "sourceResourceGroup")],
            {"source": {"resourceId": arm_id("mysourceregistry", "sourceResourceGroup"),
                        "sourceImage": "samples/aci-helloworld:latest"},
             "targetTags": ["aci-hello-world:latest"], "mode": "NoForce"},
            id="registry-arm-id-other-group",
        ),
        pytest.param(
            ["--source", f"mysourceregistry.{SUFFIX}/aci-helloworld@{DIGEST}"],
            {"source": {"resourceId": SOURCE_ID, "sourceImage": f"aci-helloworld@{DIGEST}"},
             "targetTags": ["aci-helloworld"], "mode": "NoForce"},
            id="by-digest-no-image",
        ),
        pytest.param(
            ["--source", "mysourceregistry.azurecr.io/aci-helloworld@sha256:123456abcdefg"],
            {"source": {"registryUri": "mysourceregistry.azurecr.io",
                        "sourceImage": "aci-helloworld@sha256:123456abcdefg"},
             "targetTags": ["aci-helloworld"], "mode": "NoForce"},
            id="article-digest-sent-as-written",
        ),
        pytest.param(
            ["--source", "sourceregistry.example/sourcerepo:tag", "--image", "targetimage:tag",
             "--username", "id", "--password", "secret"],
            {"source": {"registryUri": "sourceregistry.example",
                        "credentials": {"username": "id", "password": "secret"},
                        "sourceImage": "sourcerepo:tag"},
             "targetTags": ["targetimage:tag"], "mode": "NoForce"},
            id="private-registry-service-principal",
        ),
        pytest.param(
            ["--source", "docker.io/hello-world", "--password", "token-only"],
            {"source": {"registryUri": "docker.io", "credentials": {"password": "token-only"},
                        "sourceImage": "hello-world"},
             "targetTags": ["hello-world"], "mode": "NoForce"},
            id="password-without-username-and-no-library-prefix",
        ),
        pytest.param(
            ["--source", f"mysourceregistry.{SUFFIX}/app:1", "--username", "u", "--password", "p"],
            {"source": {"registryUri": f"mysourceregistry.{SUFFIX}",
                        "credentials": {"username": "u", "password": "p"}, "sourceImage": "app:1"},
             "targetTags": ["app:1"], "mode": "NoForce"},
            id="login-server-with-credentials-stays-a-uri",
        ),
        pytest.param(
            ["--source", "localhost:5001/team/app:v1", "-t", "app:v1", "-t", "app:stable", "-t", "app:latest"],
            {"source": {"registryUri": "localhost:5001", "sourceImage": "team/app:v1"},
             "targetTags": ["app:v1", "app:stable", "app:latest"], "mode": "NoForce"},
            id="repeated-image",
        ),
        pytest.param(
            ["--source", "docker.io/library/alpine:3.20", "--repository", "alpine", "--repository", "mirror/alpine"],
            {"source": {"registryUri": "docker.io", "sourceImage": "library/alpine:3.20"},
             "untaggedTargetRepositories": ["alpine", "mirror/alpine"], "mode": "NoForce"},
            id="untagged-repositories",
        ),
        pytest.param(
            ["--source", "docker.io/library/alpine:3.20", "-t", "alpine:3.20", "--repository", "archive"],
            {"source": {"registryUri": "docker.io", "sourceImage": "library/alpine:3.20"},
             "targetTags": ["alpine:3.20"], "untaggedTargetRepositories": ["archive"], "mode": "NoForce"},
            id="tags-and-repositories",
        ),
        pytest.param(
            ["--source", "docker.io/library/hello-world:latest", "--force"],
            {"source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:latest"},
             "targetTags": ["library/hello-world:latest"], "mode": "Force"},
            id="force",
        ),
        pytest.param(
            ["--source", f"mysourceregistry.{SUFFIX}/aci-helloworld:latest", "--registry", "mysourceregistry"],
            {"source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
             "targetTags": ["aci-helloworld:latest"], "mode": "NoForce"},
            id="registry-name-strips-login-server",
        ),
        pytest.param(
            ["--source", "aci-helloworld:latest", "--registry", f"mysourceregistry.{SUFFIX}"],
            {"source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
             "targetTags": ["aci-helloworld:latest"], "mode": "NoForce"},
            id="registry-login-server",
        ),
    ],
)
def test_import_sends_the_parameters_az_acr_import_sends(
    logged_in: FakeService, args: list[str], expected: dict[str, Any]
) -> None:
    result = run("import", "--name", "myregistry", *args)
    assert result.exit_code == 0, result.output
    assert logged_in.import_bodies() == [expected]
    [post] = logged_in.seen("POST", "/importImage")
    assert post.path == f"{GROUP}{PROVIDER}/registries/myregistry/importImage"
    assert post.query == {"api-version": "2025-04-01"}
    for secret in ("secret", "token-only"):
        assert secret not in result.output


def test_the_registry_list_is_read_only_when_a_name_must_be_resolved(logged_in: FakeService) -> None:
    run("import", "-n", "myregistry", "--source", "a:1", "--registry", SOURCE_ID)
    run("import", "-n", "myregistry", "--source", "x.example/a:1", "-u", "u", "-p", "p")
    assert not logged_in.seen("GET", f"{PROVIDER}/registries")
    run("import", "-n", "myregistry", "--source", "x.example/a:1")
    assert len(logged_in.seen("GET", f"{PROVIDER}/registries")) == 1


def test_credentials_are_not_sent_with_registry_as_az_does(logged_in: FakeService) -> None:
    result = run("import", "-n", "myregistry", "--source", "a:1", "--registry", SOURCE_ID, "-u", "u", "-p", "p")
    assert result.exit_code == 0
    assert "credentials" not in logged_in.import_bodies()[0]["source"]
    assert "--username/--password are not sent" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "docker.io/library/x:1", "--username", "u"], "--username needs --password"),
        (["--source", "hello-world:latest"], "--source 'hello-world:latest' names no source registry"),
        (["--source", "library/hello-world:latest"], "'library' is not a fully qualified domain name"),
        (["--source", "team/app:1", "-u", "u", "-p", "p"], "'team' is not a fully qualified domain name"),
        (["--source", "docker.io/"], "names no source registry"),
        ([], "missing --source"),
    ],
)
def test_import_usage_errors_exit_2_before_any_import(
    logged_in: FakeService, args: list[str], message: str
) -> None:
    result = run("import", "--name", "myregistry", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not logged_in.import_bodies()


def test_import_from_an_unknown_registry_name_fails(logged_in: FakeService) -> None:
    result = run("import", "--name", "myregistry", "--source", "a:1", "--registry", "nosuchregistry")
    assert result.exit_code == 1
    assert "(ResourceNotFound) The source registry 'nosuchregistry' is not a registry of this service" in result.stderr
    assert not logged_in.import_bodies()


def test_a_rejected_import_prints_the_code_message_and_target(logged_in: FakeService) -> None:
    logged_in.post_error = (
        400,
        {"error": {"code": "InvalidParameter", "message": "invalid tag 'a:-x'", "target": "targetTags"}},
    )
    result = run("import", "--name", "myregistry", "--source", "docker.io/library/a:1", "-t", "a:-x")
    assert result.exit_code == 1
    assert "ERROR: (InvalidParameter) invalid tag 'a:-x'\nTarget: targetTags" in result.stderr
    result = run("import", "--name", "nosuch", "--source", "docker.io/library/a:1")
    assert result.exit_code == 1
    assert "(ResourceNotFound)" in result.stderr


# -- import: waiting, progress, outcome ----------------------------------------------------

PROGRESS_SCRIPT = [
    operation("InProgress", "running", bytes_total=3000, blobs=(0, 4), manifests=(0, 2)),
    operation("InProgress", "running", bytes_done=1500, bytes_total=3000, blobs=(2, 4), manifests=(1, 2)),
    operation("InProgress", "running", bytes_done=3000, bytes_total=3000, blobs=(4, 4), manifests=(2, 2)),
    SUCCEEDED,
]


def test_import_waits_with_progress_and_summarises(logged_in: FakeService) -> None:
    logged_in.script = PROGRESS_SCRIPT
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest",
                 "--image", "hello-world:latest")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 4
    polls = logged_in.seen("GET", "/operationStatuses/op-1")
    assert all(p.headers["Authorization"].startswith("Basic ") for p in polls)
    lines = result.stderr.splitlines()
    assert lines[0] == "Importing docker.io/library/hello-world:latest"
    assert any("running" in line and "  0%" in line and "blobs 0/4" in line for line in lines)
    assert any(" 50%" in line and "1.5 kB / 3.0 kB" in line and "blobs 2/4  manifests 1/2" in line for line in lines)
    assert any("succeeded" in line and "100%" in line and "blobs 4/4  manifests 2/2" in line for line in lines)
    assert result.stdout == (
        "Imported docker.io/library/hello-world:latest into myregistry: hello-world:latest\n"
        "2 manifests, 4 blobs, 3.0 kB in 4.5 s (operation op-1)\n"
    )


def test_import_json_output_is_the_final_operation(logged_in: FakeService) -> None:
    logged_in.script = PROGRESS_SCRIPT
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest", "-o", "json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    assert final["name"] == "op-1" and final["status"] == "Succeeded"
    assert final["properties"]["progress"]["blobsDone"] == 4
    assert " 50%" in result.stderr  # progress never pollutes stdout


def test_a_failed_import_prints_code_message_step_and_exits_1(logged_in: FakeService) -> None:
    logged_in.script = [
        operation("InProgress", "running", bytes_total=10, blobs=(0, 1), manifests=(0, 1)),
        operation(
            "Failed", "failed", end=True,
            error={"code": "UpstreamUnauthorized", "message": "the source registry refused the credential"},
            failure={"step": "authenticate", "object": "docker.io/library/private", "upstreamStatus": 401},
        ),
    ]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/private:1")
    assert result.exit_code == 1
    assert (
        "ERROR: (UpstreamUnauthorized) the source registry refused the credential\n"
        "Step: authenticate\nObject: docker.io/library/private\nUpstream status: 401\n"
        "Operation: op-1 (transship import show --name myregistry op-1)"
    ) in result.stderr
    assert result.stdout == ""

    result = run("import", "-n", "myregistry", "--source", "docker.io/library/private:1", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "UpstreamUnauthorized"


def test_a_tag_conflict_and_a_cancel_are_failures(logged_in: FakeService) -> None:
    logged_in.script = [
        operation("Failed", "failed", error={"code": "TagAlreadyExists",
                  "message": "Tag hello-world:latest already exists in target registry."},
                  failure={"step": "commit", "object": "hello-world:latest", "upstreamStatus": None}),
    ]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest")
    assert result.exit_code == 1
    assert "(TagAlreadyExists) Tag hello-world:latest already exists in target registry.\nStep: commit" in result.stderr
    assert "Upstream status" not in result.stderr
    logged_in.script = [operation("Canceled", "canceled", end=True)]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest")
    assert result.exit_code == 1
    assert "(OperationCanceled) The import was canceled." in result.stderr


def test_no_wait_prints_the_operation_and_does_not_poll(logged_in: FakeService) -> None:
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "Import started: operation op-1 (InProgress)" in result.stdout
    assert (
        f"Status: {logged_in.url}/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}"
        "/operationStatuses/op-1?api-version=2025-04-01\n"
    ) in result.stdout
    assert "transship import show --name myregistry op-1" in result.stdout
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait", "-o", "json")
    shown = json.loads(result.stdout)
    assert shown["name"] == "op-2" and shown["status"] == "InProgress"
    assert shown["azureAsyncOperation"].endswith("/operationStatuses/op-2?api-version=2025-04-01")
    assert shown["location"].endswith("/operationResults/op-2?api-version=2025-04-01")
    assert not logged_in.seen("GET", "/operationStatuses/")


def test_ctrl_c_stops_waiting_but_leaves_the_import_running(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_in.script = [operation("InProgress", "running", bytes_total=10)]
    calls = []

    def interrupted(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(commands_import, "sleep", interrupted)
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 130
    assert "Stopped waiting; the import op-1 continues on the server." in result.stderr
    assert "Follow it with: transship import show --name myregistry op-1" in result.stderr
    assert not logged_in.seen("POST", "/cancel")


def test_polling_survives_transient_errors_and_stays_on_the_configured_server(logged_in: FakeService) -> None:
    logged_in.status_url_origin = "https://elsewhere.example"
    logged_in.transient_failures = 2
    logged_in.script = PROGRESS_SCRIPT
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 4


def test_without_azure_async_operation_the_body_id_is_followed(logged_in: FakeService) -> None:
    logged_in.send_async_header = False
    logged_in.script = PROGRESS_SCRIPT
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 4


def test_with_only_a_location_the_operation_result_is_followed(logged_in: FakeService) -> None:
    logged_in.send_async_header = False
    logged_in.bare_post_body = True
    logged_in.script = [operation(), operation(), SUCCEEDED]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 3
    assert len(logged_in.seen("GET", "/operationResults/op-1")) == 3
    assert "Imported" in result.stdout and "(operation op-1)" in result.stdout

    logged_in.script = [operation(), operation("Failed", "failed", error={
        "code": "TagAlreadyExists", "message": "Tag a:1 already exists in target registry."})]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 1
    assert "ERROR: (TagAlreadyExists) Tag a:1 already exists in target registry." in result.stderr


def test_poll_delay_honours_retry_after_up_to_two_seconds() -> None:
    assert commands_import.poll_delay(None) == 0.5
    assert commands_import.poll_delay(0.1) == 0.5
    assert commands_import.poll_delay(1) == 1
    assert commands_import.poll_delay(30) == 2.0


def test_the_live_progress_bar_shows_bytes_items_and_rate() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    with ImportProgress(console, "docker.io/library/hello-world:latest") as progress:
        assert progress.live
        for snapshot in PROGRESS_SCRIPT:
            progress.update(snapshot)
    text = buffer.getvalue()
    assert "hello-world:latest succeeded" in text
    assert "100%" in text
    assert "3.0/3.0 kB" in text
    assert "blobs 4/4  manifests 2/2" in text


# -- import list / show / cancel -----------------------------------------------------------


def test_import_list_show_and_cancel(logged_in: FakeService) -> None:
    run("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait")
    run("import", "-n", "mysourceregistry", "--source", "docker.io/library/b:1", "--no-wait")

    result = run("import", "list", "--name", "myregistry")
    assert result.exit_code == 0, result.output
    assert "OPERATION" in result.stdout and "op-1" in result.stdout and "op-2" not in result.stdout
    assert logged_in.requests[-1].path == f"{GROUP}{PROVIDER}/registries/myregistry/importOperations"
    listed = json.loads(run("import", "list", "--name", "myregistry", "-o", "json").stdout)
    assert [o["name"] for o in listed] == ["op-1"]

    logged_in.script = [operation("Failed", "failed", error={"code": "DIGEST_INVALID", "message": "bad layer"},
                                  failure={"step": "copy", "object": DIGEST, "upstreamStatus": 200})]
    result = run("import", "show", "--name", "myregistry", "op-1")
    assert result.exit_code == 0, result.output
    assert "Error: (DIGEST_INVALID) bad layer" in result.stdout
    assert f"Object: {DIGEST}" in result.stdout
    assert logged_in.requests[-1].path == f"/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}/operationStatuses/op-1"
    assert json.loads(run("import", "show", "-n", "myregistry", "op-1", "-o", "json").stdout)["status"] == "Failed"

    result = run("import", "show", "--name", "myregistry", "op-2")
    assert result.exit_code == 1
    assert "(OperationNotFound) Operation op-2 is an import into registry 'mysourceregistry'" in result.stderr
    result = run("import", "show", "--name", "myregistry", "op-9")
    assert result.exit_code == 1 and "(OperationNotFound) Operation op-9 was not found." in result.stderr

    result = run("import", "cancel", "--name", "myregistry", "op-1", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "Canceled"
    [cancel] = logged_in.seen("POST", "/cancel")
    assert cancel.path == f"/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}/operationStatuses/op-1/cancel"
    result = run("import", "cancel", "--name", "myregistry", "op-2")
    assert result.exit_code == 1
    assert len(logged_in.seen("POST", "/cancel")) == 1


# -- repository ----------------------------------------------------------------------------

LOGIN = f"myregistry.{SUFFIX}"


def tag(name: str) -> dict[str, Any]:
    return {"name": name, "digest": DIGEST, "createdTime": "2026-01-01T00:00:00Z",
            "lastUpdateTime": "2026-01-02T00:00:00Z", "signed": False,
            "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True,
                                     "readEnabled": True, "listEnabled": True}}


def manifest(index: int, tags: list[str]) -> dict[str, Any]:
    return {"digest": f"sha256:{index:064x}", "imageSize": 1234 * index, "createdTime": "2026-01-01T00:00:00Z",
            "lastUpdateTime": "2026-01-02T00:00:00Z", "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "architecture": "amd64", "os": "linux", "tags": tags, "changeableAttributes": {}}


def test_repository_list_follows_link_pages_on_the_login_server(logged_in: FakeService) -> None:
    names = [f"repo{i:03d}" for i in range(250)]
    logged_in.catalog[LOGIN] = names
    logged_in.catalog["other.example"] = ["nope"]
    result = run("repository", "list", "--name", "myregistry", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == names
    pages = logged_in.seen("GET", "/acr/v1/_catalog")
    assert [p.query.get("last") for p in pages] == [None, "repo099", "repo199"]
    assert {p.headers["Host"] for p in pages} == {LOGIN}
    assert all("Authorization" not in p.headers for p in pages)
    assert logged_in.seen("GET", "/registries/myregistry")  # the login server came from registry show

    logged_in.requests.clear()
    result = run("repository", "list", "--name", "myregistry", "--top", "150")
    assert result.stdout.splitlines()[0].strip() == "REPOSITORY"
    assert len(result.stdout.splitlines()) == 151
    assert [p.query["n"] for p in logged_in.seen("GET", "/acr/v1/_catalog")] == ["100", "50"]


def test_a_registry_without_login_server_is_reached_by_the_server_host(logged_in: FakeService) -> None:
    logged_in.registries["default"]["properties"]["loginServer"] = None
    host = logged_in.url.removeprefix("http://")
    logged_in.catalog[host] = ["library/hello-world"]
    result = run("repository", "list", "--name", "default", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["library/hello-world"]


def test_repository_show_tags_and_manifests(logged_in: FakeService) -> None:
    logged_in.tags[(LOGIN, "team/app")] = [tag(f"v{i:03d}") for i in range(120)]
    logged_in.manifests[(LOGIN, "team/app")] = [manifest(1, ["v1"]), manifest(2, [])]

    result = run("repository", "show-tags", "-n", "myregistry", "--repository", "team/app", "-o", "json")
    assert json.loads(result.stdout) == [f"v{i:03d}" for i in range(120)]
    pages = logged_in.seen("GET", "/acr/v1/team/app/_tags")
    assert len(pages) == 2

    logged_in.requests.clear()
    result = run("repository", "show-tags", "-n", "myregistry", "--repository", "team/app", "--detail",
                 "--orderby", "time_desc", "--top", "3", "-o", "json")
    shown = json.loads(result.stdout)
    assert [t["name"] for t in shown] == ["v000", "v001", "v002"] and shown[0]["digest"] == DIGEST
    [page] = logged_in.seen("GET", "/_tags")
    assert page.query == {"orderby": "timedesc", "n": "3"}

    result = run("repository", "show-tags", "-n", "myregistry", "--repository", "team/app", "--detail", "--top", "2")
    assert "NAME" in result.stdout and "DIGEST" in result.stdout and DIGEST in result.stdout

    result = run("repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "-o", "json")
    assert json.loads(result.stdout) == [
        {"digest": f"sha256:{1:064x}", "tags": ["v1"], "timestamp": "2026-01-02T00:00:00Z"},
        {"digest": f"sha256:{2:064x}", "tags": [], "timestamp": "2026-01-02T00:00:00Z"},
    ]
    result = run("repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "--detail")
    assert "linux/amd64" in result.stdout and "2.5 kB" in result.stdout
    result = run("repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "--detail", "-o", "json")
    assert json.loads(result.stdout)[0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    result = run("repository", "show-tags", "-n", "myregistry", "--repository", "missing")
    assert result.exit_code == 1
    assert "ERROR: (NAME_UNKNOWN) repository name not known to registry" in result.stderr


def test_repository_delete(logged_in: FakeService) -> None:
    logged_in.tags[(LOGIN, "hello-world")] = [tag("latest")]
    logged_in.manifests[(LOGIN, "hello-world")] = [manifest(1, ["latest"]), manifest(2, [])]
    result = run("repository", "delete", "-n", "myregistry", "--repository", "hello-world", input="n\n")
    assert result.exit_code == 1
    assert not logged_in.seen("DELETE")
    result = run("repository", "delete", "-n", "myregistry", "--repository", "hello-world", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted repository 'hello-world': 2 manifests, 1 tag.\n"
    [delete] = logged_in.seen("DELETE")
    assert delete.path == "/acr/v1/hello-world" and delete.headers["Host"] == LOGIN
    result = run("repository", "delete", "-n", "myregistry", "--repository", "hello-world", "--yes")
    assert result.exit_code == 1 and "(NAME_UNKNOWN)" in result.stderr


def test_the_data_plane_answers_a_bearer_challenge_with_the_login(logged_in: FakeService) -> None:
    logged_in.require_bearer = True
    logged_in.catalog[LOGIN] = ["a", "b"]
    result = run("repository", "list", "--name", "myregistry", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["a", "b"]
    [token] = logged_in.seen("GET", "/oauth2/token")
    assert token.headers["Host"] == LOGIN
    assert token.query == {"service": LOGIN, "scope": "registry:catalog:*"}


# -- help and layering ---------------------------------------------------------------------

COMMANDS = [
    ["login"], ["logout"], ["registry", "create"], ["registry", "list"], ["registry", "show"],
    ["registry", "delete"], ["import"], ["import", "list"], ["import", "show"], ["import", "cancel"],
    ["repository", "list"], ["repository", "show-tags"], ["repository", "show-manifests"],
    ["repository", "delete"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert "transship " + " ".join(command) in result.output
    if command != ["logout"]:
        assert "--output" in result.output


SERVER_PACKAGES = ("transship.api", "transship.registry", "transship.metadata", "transship.storage",
                   "transship.imports", "transship.worker", "transship.identity", "transship.config")


def test_the_client_modules_import_no_server_code() -> None:
    import transship.cli as cli

    directory = Path(cli.__file__).parent
    mine = [p for p in directory.glob("*.py") if p.name not in ("__init__.py", "main.py", "server.py")]
    assert {p.name for p in mine} >= {"client.py", "profile.py", "commands_import.py"}
    for path in mine:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            for name in names:
                assert not name.startswith(SERVER_PACKAGES), f"{path.name} imports {name}"


def test_profile_mode_holds_even_with_a_permissive_umask(
    service: FakeService, config_home: Path
) -> None:
    previous = os.umask(0)
    try:
        result = run("login", "--server", service.url, "--password-stdin", input=PASSWORD)
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(profile_file(config_home).stat().st_mode) == 0o600
    assert stat.S_IMODE(profile_file(config_home).parent.stat().st_mode) == 0o700
