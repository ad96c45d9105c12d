"""Small in-process registry, token service and storage servers for the upstream client's
unit tests (aiohttp `TestServer` on loopback addresses).

- :class:`FakeRegistry` serves manifests and blobs of one repository (with `Range`), in one
  of three auth modes (`none`, `basic`, `bearer`), and takes a queue of scripted faults for
  its blob and manifest routes: a status with headers, a body cut after N bytes (TCP reset),
  a stall, a clean short body, extra bytes, an ignored Range, a redirect.
- :class:`FakeTokenService` answers `GET /token` (and the OAuth2 `POST`) with tokens the
  registry accepts, recording every request.
- :class:`FakeStorage` serves blobs at `/blob/<digest>` (a redirect target on another host).

Every server records what it received (`requests`: method, path, query, headers).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, MultiDict

REPO = "library/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: MultiDict[str]
    headers: CIMultiDict[str]
    form: MultiDict[str] | None = None


async def _record(request: web.Request, log: list[Seen]) -> Seen:
    form: MultiDict[str] | None = None
    if request.method == "POST":
        form = MultiDict((k, str(v)) for k, v in (await request.post()).items())
    seen = Seen(
        request.method, request.path, MultiDict(request.query), CIMultiDict(request.headers), form
    )
    log.append(seen)
    return seen


# -- faults ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Answer `status` with `headers` (and a small JSON error body)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cut:
    """Announce the full length, send `after` bytes of the body, then reset the connection."""

    after: int


@dataclass(frozen=True)
class Stall:
    """Send `after` bytes of the body, then go silent until `release` is set."""

    after: int
    release: asyncio.Event


@dataclass(frozen=True)
class Hang:
    """Answer nothing at all (not even headers) until `release` is set."""

    release: asyncio.Event


@dataclass(frozen=True)
class Short:
    """Send only `length` bytes, chunked (no Content-Length), and end the body cleanly."""

    length: int


@dataclass(frozen=True)
class Extra:
    """Send the body plus `extra` bytes; `chunked` hides the length."""

    extra: bytes
    chunked: bool = True


@dataclass(frozen=True)
class IgnoreRange:
    """Answer 200 with the whole body whatever Range says."""


@dataclass(frozen=True)
class BadRange:
    """Answer 206 starting at `start` instead of where asked."""

    start: int


@dataclass(frozen=True)
class PartialRange:
    """Answer 206 with at most `length` bytes from where asked."""

    length: int


@dataclass(frozen=True)
class Redirect:
    """Redirect (`status`) to `location`."""

    location: str
    status: int = 307


@dataclass(frozen=True)
class Body:
    """Answer 200 with exactly these bytes and headers (manifests: wrong content etc.)."""

    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


Fault = (
    Status | Cut | Stall | Short | Extra | IgnoreRange | BadRange | PartialRange | Redirect | Body
)


def _parse_range(header: str | None, size: int) -> int | None:
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    start = int(header[len("bytes=") : -1])
    return start if start <= size else None


async def serve_bytes(
    request: web.Request, data: bytes, content_type: str, fault: Fault | None
) -> web.StreamResponse:
    """Serve `data` honouring `Range: bytes=N-`, with an optional fault applied."""
    start = (
        None
        if isinstance(fault, IgnoreRange)
        else _parse_range(request.headers.get("Range"), len(data))
    )
    status = 200
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes"}
    body = data
    if isinstance(fault, BadRange):
        start = fault.start
    if start is not None and (start > 0 or request.headers.get("Range")):
        body = data[start:]
        if isinstance(fault, PartialRange):
            body = body[: fault.length]
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
    if isinstance(fault, Extra):
        body = body + fault.extra
    response = web.StreamResponse(status=status, headers=headers)
    if isinstance(fault, Short) or (isinstance(fault, Extra) and fault.chunked):
        response.enable_chunked_encoding()
        if isinstance(fault, Short):
            body = body[: fault.length]
    else:
        response.content_length = len(body)
    await response.prepare(request)
    if isinstance(fault, Cut | Stall):
        await response.write(body[: fault.after])
        await asyncio.sleep(0.05)  # let the bytes leave before the reset
        if isinstance(fault, Stall):
            await fault.release.wait()
        assert request.transport is not None
        request.transport.abort()
        return response
    for i in range(0, len(body), 64 * 1024):
        await response.write(body[i : i + 64 * 1024])
    await response.write_eof()
    return response


class _Server:
    def __init__(self, host: str) -> None:
        self.host = host
        self.requests: list[Seen] = []
        self.app = web.Application()
        self.server: TestServer | None = None

    async def start(self, **kwargs: Any) -> _Server:
        self.server = TestServer(self.app, host=self.host)
        await self.server.start_server(**kwargs)
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    @property
    def authority(self) -> str:
        assert self.server is not None
        return f"{self.server.host}:{self.server.port}"


class FakeStorage(_Server):
    """Blob storage on another host: `GET /blob/<digest>`, no auth, Range honoured."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        super().__init__(host)
        self.blobs: dict[str, bytes] = {}
        self.app.router.add_get("/blob/{digest}", self._blob)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        await _record(request, self.requests)
        data = self.blobs.get(request.match_info["digest"])
        if data is None:
            return web.Response(status=404)
        return await serve_bytes(request, data, "application/octet-stream", None)


class FakeRegistry(_Server):
    """A registry holding one repository."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        repo: str = REPO,
        auth: Literal["none", "basic", "bearer"] = "none",
        username: str = "alice",
        password: str = "s3cr3t-pa55",
    ) -> None:
        super().__init__(host)
        self.repo = repo
        self.auth = auth
        self.username = username
        self.password = password
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.faults: dict[str, list[Fault]] = {"manifest": [], "blob": [], "other": []}
        self.token_service: FakeTokenService | None = None
        # The scope each route requires (bearer mode); actions are checked as a subset.
        self.scope_for: dict[str, str] = {
            "manifest": f"repository:{repo}:pull",
            "blob": f"repository:{repo}:pull",
        }
        self.revoked: set[str] = set()
        self.accept_tokens = True
        self.app.router.add_get("/v2/{name:.+}/manifests/{ref}", self._manifest)
        self.app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)
        self.app.router.add_get("/elsewhere/{digest}", self._elsewhere)

    # -- content -----------------------------------------------------------------------

    def add_manifest(
        self, data: bytes, media_type: str = OCI_MANIFEST, tag: str | None = None
    ) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[digest] = (data, media_type)
        if tag:
            self.manifests[tag] = (data, media_type)
        return digest

    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def on(self, route: str, *faults: Fault) -> None:
        """Queue faults for the next requests to `route` (`manifest`, `blob`, `other`)."""
        self.faults[route].extend(faults)

    def seen(self, route: str) -> list[Seen]:
        marker = {"manifest": "/manifests/", "blob": "/blobs/", "other": "/elsewhere/"}[route]
        return [r for r in self.requests if marker in r.path]

    # -- auth --------------------------------------------------------------------------

    def _challenge(self, route: str) -> web.Response:
        if self.auth == "basic":
            header = 'Basic realm="fake-registry"'
        else:
            assert self.token_service is not None
            header = (
                f'Bearer realm="{self.token_service.url}/token",service="fake-registry",'
                f'scope="{self.scope_for[route]}"'
            )
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": header},
        )

    def _authorized(self, request: web.Request, route: str) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return header == f"Basic {expected}"
        if not header.startswith("Bearer ") or not self.accept_tokens:
            return False
        token = header.removeprefix("Bearer ")
        assert self.token_service is not None
        granted = self.token_service.issued.get(token)
        if granted is None or token in self.revoked:
            return False
        return all(_covers(granted, s) for s in self.scope_for[route].split(" "))

    # -- routes ------------------------------------------------------------------------

    def _next_fault(self, route: str) -> Fault | None:
        queue = self.faults[route]
        return queue.pop(0) if queue else None

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        await _record(request, self.requests)
        if not self._authorized(request, "manifest"):
            return self._challenge("manifest")
        fault = self._next_fault("manifest")
        if isinstance(fault, Status):
            return web.json_response({"errors": []}, status=fault.status, headers=fault.headers)
        if isinstance(fault, Body):
            response = web.StreamResponse(headers=fault.headers)
            if fault.chunked:
                response.enable_chunked_encoding()
            else:
                response.content_length = len(fault.data)
            await response.prepare(request)
            await response.write(fault.data)
            await response.write_eof()
            return response
        if isinstance(fault, Redirect):
            raise web.HTTPTemporaryRedirect(fault.location)
        if request.match_info["name"] != self.repo:
            return web.json_response({"errors": [{"code": "NAME_UNKNOWN"}]}, status=404)
        found = self.manifests.get(request.match_info["ref"])
        if found is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        data, media_type = found
        if isinstance(fault, Cut | Stall):
            return await serve_bytes(request, data, media_type, fault)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return web.Response(
            body=data, headers={"Content-Type": media_type, "Docker-Content-Digest": digest}
        )

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        await _record(request, self.requests)
        if not self._authorized(request, "blob"):
            return self._challenge("blob")
        fault = self._next_fault("blob")
        if isinstance(fault, Hang):
            await fault.release.wait()
            raise web.HTTPServiceUnavailable()
        if isinstance(fault, Status):
            return web.json_response({"errors": []}, status=fault.status, headers=fault.headers)
        if isinstance(fault, Redirect):
            return web.Response(status=fault.status, headers={"Location": fault.location})
        data = self.blobs.get(request.match_info["digest"])
        if data is None or request.match_info["name"] != self.repo:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        return await serve_bytes(request, data, "application/octet-stream", fault)

    async def _elsewhere(self, request: web.Request) -> web.StreamResponse:
        """A same-origin redirect target that still wants the registry's credentials."""
        await _record(request, self.requests)
        if not self._authorized(request, "blob"):
            return self._challenge("blob")
        data = self.blobs.get(request.match_info["digest"])
        if data is None:
            return web.Response(status=404)
        fault = self._next_fault("other")
        if isinstance(fault, Redirect):
            return web.Response(status=fault.status, headers={"Location": fault.location})
        return await serve_bytes(request, data, "application/octet-stream", fault)


def _covers(granted: set[tuple[str, str]], scope: str) -> bool:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind == "repository" and all((name, a) in granted for a in actions.split(","))


class FakeTokenService(_Server):
    """`GET /token?service&scope` (Basic optional) and `POST /token` (refresh_token grant)."""

    def __init__(
        self,
        registry: FakeRegistry,
        *,
        host: str = "127.0.0.2",
        token_key: Literal["token", "access_token"] = "token",
        expires_in: int | None = 300,
        require_credentials: bool = False,
        refresh_token: str = "refresh-me-0123",
    ) -> None:
        super().__init__(host)
        self.registry = registry
        registry.token_service = self
        self.token_key = token_key
        self.expires_in = expires_in
        self.require_credentials = require_credentials
        self.refresh_token = refresh_token
        self.issued: dict[str, set[tuple[str, str]]] = {}
        self.refuse: int | None = None
        self.faults: list[Fault] = []
        self.delay = 0.0  # seconds each GET /token answer waits: lets fetches overlap
        self._counter = itertools.count(1)
        self.app.router.add_get("/token", self._get)
        self.app.router.add_post("/token", self._post)

    @property
    def token_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path == "/token"]

    def _grant(self, scopes: list[str]) -> web.Response:
        token = f"tok-{next(self._counter)}"
        granted: set[tuple[str, str]] = set()
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository":
                granted |= {(name, a) for a in actions.split(",")}
        self.issued[token] = granted
        body: dict[str, object] = {self.token_key: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def _get(self, request: web.Request) -> web.Response:
        seen = await _record(request, self.requests)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.faults:
            fault = self.faults.pop(0)
            assert isinstance(fault, Status)
            return web.json_response({}, status=fault.status, headers=fault.headers)
        if self.refuse is not None:
            return web.json_response({"details": "no"}, status=self.refuse)
        header = seen.headers.get("Authorization")
        registry = self.registry
        expected = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        if header is not None and header != f"Basic {expected}":
            return web.json_response({"details": "incorrect username or password"}, status=401)
        if header is None and self.require_credentials:
            return web.json_response({"details": "anonymous access denied"}, status=401)
        return self._grant([s for item in seen.query.getall("scope", []) for s in item.split(" ")])

    async def _post(self, request: web.Request) -> web.Response:
        seen = await _record(request, self.requests)
        assert seen.form is not None
        if (
            seen.form.get("grant_type") != "refresh_token"
            or seen.form.get("refresh_token") != self.refresh_token
        ):
            return web.json_response({"error": "invalid_grant"}, status=401)
        return self._grant(seen.form.get("scope", "").split(" "))


def scopes_asked(request: Seen) -> list[str]:
    """The scopes of a token request (GET query or POST form)."""
    if request.form is not None:
        return request.form.get("scope", "").split(" ")
    return [s for item in request.query.getall("scope", []) for s in item.split(" ")]


Clock = Callable[[], float]
