"""A fake Transship server for the client command tests, and the fixtures that run it.

The fake implements the management contract minimally — ARM registries, importImage with
Azure-AsyncOperation polling, the Transship extensions, the Entra-style token endpoint with
bearer-token checks — and the ACR data plane, on 127.0.0.1 in a background thread. It
records every request so the tests can assert exactly what the CLI sent. Other management
calls (directory, roles, scope maps, tokens, …) answer from `scripted`, set per test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from transship.cli import commands_import
from transship.cli.main import main

SUB = "00000000-0000-0000-0000-000000000000"
RG = "transship"
LOCATION = "local"
SUFFIX = "localhost:5000"  # as the server reports it: login servers are <name>.<suffix>
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0b7e5e1c-1111-4a4a-8b8b-000000000001"  # the owner service principal's app id
OWNER_OBJECT_ID = "0b7e5e1c-2222-4a4a-8b8b-000000000002"
SECRET = "0wner-Secret-XYZ-abcdef"  # its client secret
USER = "alice"
USER_PASSWORD = "alice-Pa55word-123"
# Secrets that must never show in a command's output.
SECRETS = (SECRET, USER_PASSWORD)
PROVIDER = "/providers/Microsoft.ContainerRegistry"
GROUP = f"/subscriptions/{SUB}/resourceGroups/{RG}"
DIGEST = "sha256:" + "ab" * 32


def arm_id(name: str, group: str = RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}{PROVIDER}/registries/{name}"


def registry_resource(
    name: str, login_server: str | None = None, group: str = RG
) -> dict[str, Any]:
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
    "Succeeded",
    "succeeded",
    bytes_done=3000,
    bytes_total=3000,
    blobs=(4, 4),
    manifests=(2, 2),
    end=True,
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
    # Registries the login may not read (GET answers 403), as with AcrPull alone.
    unreadable: set[str] = field(default_factory=set)
    # The token endpoint: tokens issued (valid until `expire_tokens`), their lifetime.
    tokens: list[str] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)
    token_lifetime: int = 3599
    # Any other call: (method, path) -> answers in turn (the last repeats), each
    # (status, body) or a function of the request's JSON body returning one.
    scripted: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("myregistry", "mysourceregistry", "default"):
            self.registries[name] = registry_resource(name)

    # -- recording ---------------------------------------------------------------------
    def seen(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and contains in r.path
        ]

    def import_bodies(self) -> list[Any]:
        return [r.body for r in self.seen("POST", "/importImage")]

    def token_requests(self) -> list[Seen]:
        return self.seen("POST", "/oauth2/v2.0/token")

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (as when it expired)."""
        self.expired.update(self.tokens)

    def answer(self, method: str, path: str, *answers: Any) -> None:
        self.scripted[(method, path)] = list(answers)

    # -- the app -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._auth])
        mgmt = f"/subscriptions/{{sub}}/resourceGroups/{{rg}}{PROVIDER}/registries/{{name}}"
        ops = f"/subscriptions/{{sub}}{PROVIDER}/locations/{{loc}}"
        app.router.add_get("/transship/v1/info", self._info)
        app.router.add_get(f"/subscriptions/{{sub}}{PROVIDER}/registries", self._list)
        app.router.add_get(
            f"/subscriptions/{{sub}}/resourceGroups/{{rg}}{PROVIDER}/registries", self._list
        )
        app.router.add_get(mgmt, self._get)
        app.router.add_put(mgmt, self._put)
        app.router.add_delete(mgmt, self._delete)
        app.router.add_post(f"{mgmt}/importImage", self._import)
        app.router.add_get(f"{mgmt}/importOperations", self._import_list)
        app.router.add_get(f"{ops}/operationStatuses/{{op}}", self._status)
        app.router.add_post(f"{ops}/operationStatuses/{{op}}/cancel", self._cancel)
        app.router.add_get(f"{ops}/operationResults/{{op}}", self._result)
        app.router.add_get("/oauth2/token", self._token)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._entra_token)
        app.router.add_get("/acr/v1/_catalog", self._catalog)
        app.router.add_get(r"/acr/v1/{repo:.+}/_tags", self._tags)
        app.router.add_get(r"/acr/v1/{repo:.+}/_manifests", self._manifests)
        app.router.add_delete(r"/acr/v1/{repo:.+}", self._delete_repo)
        app.router.add_route("*", "/{tail:.*}", self._scripted)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw and request.content_type == "application/x-www-form-urlencoded":
            body = dict(parse_qsl(raw.decode()))
        elif raw:
            body = json.loads(raw)
        self.requests.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        response: web.StreamResponse = await handler(request)
        return response

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        management = request.path.startswith(("/subscriptions", "/providers")) or (
            request.path.startswith("/transship") and self.info_requires_auth
        )
        if management:
            authorization = request.headers.get("Authorization", "")
            token = authorization.removeprefix("Bearer ")
            if token in self.expired:
                return arm_error(
                    401, "ExpiredAuthenticationToken", "The access token expiry has passed."
                )
            if token not in self.tokens and authorization != basic(CLIENT_ID, SECRET):
                return arm_error(401, "AuthenticationFailed", "The credential is not valid.")
            if "api-version" not in request.query and request.path.startswith(
                ("/subscriptions", "/providers")
            ):
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

    async def _entra_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if request.match_info["tenant"] != TENANT:
            return oauth_error(
                400,
                "invalid_tenant",
                f"AADSTS90002: Tenant '{request.match_info['tenant']}' not found.",
            )
        if form.get("grant_type") == "client_credentials":
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, SECRET):
                return oauth_error(
                    401, "invalid_client", "AADSTS7000215: Invalid client secret provided."
                )
        elif form.get("grant_type") == "password":
            if (form.get("username"), form.get("password")) != (USER, USER_PASSWORD):
                return oauth_error(
                    400, "invalid_grant", "AADSTS50126: Error validating credentials."
                )
        else:
            return oauth_error(400, "unsupported_grant_type", "AADSTS70003: not supported")
        token = f"entra-{len(self.tokens) + 1}"
        self.tokens.append(token)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": token}
        )

    async def _scripted(self, request: web.Request) -> web.Response:
        answers = self.scripted.get((request.method, request.path))
        if not answers:
            return arm_error(404, "NotScripted", f"{request.method} {request.path} is not scripted")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(answer):
            raw = await request.read()
            answer = answer(json.loads(raw) if raw else None)
        status, body = answer
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)

    async def _info(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        user = (
            authorization.startswith("Bearer ")
            and self.token_requests()
            and (self.token_requests()[-1].body.get("grant_type") == "password")
        )
        caller = (
            {
                "objectId": "a11ce000-0000-0000-0000-000000000000",
                "kind": "User",
                "name": USER,
                "appId": None,
            }
            if user
            else {
                "objectId": OWNER_OBJECT_ID,
                "kind": "ServicePrincipal",
                "name": "transship-owner",
                "appId": CLIENT_ID,
            }
        )
        return web.json_response(
            {
                "version": "0.1.0",
                "tenantId": TENANT,
                "subscriptionId": SUB,
                "resourceGroup": RG,
                "location": LOCATION,
                "loginServerSuffix": SUFFIX,
                "caller": caller,
            }
        )

    async def _list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("rg")
        values = [
            r
            for r in self.registries.values()
            if group is None or f"/resourceGroups/{group}/" in r["id"]
        ]
        return web.json_response({"value": values})

    def _registry(self, request: web.Request) -> dict[str, Any] | None:
        found = self.registries.get(request.match_info["name"])
        if found is None or request.match_info["rg"] != RG:
            return None
        return found

    async def _get(self, request: web.Request) -> web.Response:
        if request.match_info["name"] in self.unreadable:
            return arm_error(403, "AuthorizationFailed", "The client may not read the registry.")
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
        return web.json_response(
            self._op(op, operation("InProgress", "queued")), status=202, headers=headers
        )

    async def _import_list(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        values = [
            self._op(op, SUCCEEDED)
            for op, base in reversed(self.operations.items())
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
            return web.Response(
                status=202, headers={"Location": self._status_url(op, "operationResults")}
            )
        if snapshot["status"] == "Succeeded":
            return web.json_response({})
        error = snapshot.get("error") or {"code": "Failed", "message": "failed"}
        return arm_error(409, error["code"], error["message"])

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") not in (
            basic(CLIENT_ID, SECRET),
            basic(USER, USER_PASSWORD),
        ):
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "no"}]}, status=401
            )
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
        return self._page(
            request, self.catalog.get(request.headers["Host"], []), "repositories", lambda r: r
        )

    def _repo_items(
        self, request: web.Request, table: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> list[dict[str, Any]] | None:
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
            {
                "manifestsDeleted": [m["digest"] for m in manifests],
                "tagsDeleted": [t["name"] for t in tags],
            },
            status=202,
        )


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def oauth_error(status: int, code: str, description: str) -> web.Response:
    return web.json_response(
        {"error": code, "error_description": description, "error_codes": [status]}, status=status
    )


def arm_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


def oci_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"errors": [{"code": code, "message": message, "detail": None}]}, status=status
    )


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
    for name in ("SERVER", "USERNAME", "PASSWORD", "TENANT", "USER_TYPE"):
        name = f"TRANSSHIP_{name}"
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(commands_import, "MIN_POLL_SECONDS", 0.01)
    monkeypatch.setattr(commands_import, "MAX_POLL_SECONDS", 0.05)
    return home


@pytest.fixture
def logged_in(service: FakeService, config_home: Path, tmp_path: Path) -> FakeService:
    """Logged in with the owner credential file the server writes at first start."""
    result = run("login", "--server", service.url, "--credential-file", str(owner_file(tmp_path)))
    assert result.exit_code == 0, result.output
    service.requests.clear()
    return service


def owner_file(directory: Path) -> Path:
    """An owner-credential.json as the server writes it."""
    path = directory / "owner-credential.json"
    path.write_text(
        json.dumps(
            {
                "tenantId": TENANT,
                "subscriptionId": SUB,
                "resourceGroup": RG,
                "clientId": CLIENT_ID,
                "clientSecret": SECRET,
            }
        )
    )
    return path


def run(*args: str, input: str | None = None, secrets: tuple[str, ...] = SECRETS) -> Result:
    """Invoke the CLI; the login's secrets never show in its output."""
    result = CliRunner().invoke(main, list(args), input=input)
    for secret in secrets:
        assert secret not in result.output, "a secret was printed"
    return result


def profile_file(config_home: Path) -> Path:
    return config_home / "transship" / "profile.json"
