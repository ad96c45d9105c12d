"""The real Transship application for the client command tests, and the fixtures that run it.

`service` runs `create_app(settings)` in-process on 127.0.0.1 (a free port, its own event
loop in a background thread, stopped at teardown) over SQLite in the test's `tmp_path`.
Every test starts from a copy of one data directory bootstrapped once per session (its
database migrated, the owner service principal created and written to
`owner-credential.json`), so a test costs a server start, not a migration. The data plane
authenticates, egress is denied to every host (an import from a remote registry fails at
once, offline), and secrets are hashed at the test run's low cost (tests/conftest.py).

Two middlewares sit outside the application's own:
- a recorder: every request (method, path, query, headers, body) and the status and JSON
  body of its answer, so a test can assert exactly what the CLI sent where that matters;
- an override: `answer(method, path, ...)` or `intercept(method, path, handler)` replaces one
  route's answer for one test, for server behaviour that is hard to provoke for real (a
  500, a refused token, an import's progress snapshots). Everything else is the real app.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import StreamReader, web
from click.testing import CliRunner, Result

from tests.support.app import (
    AppTestServer,
    make_settings,
    push_image,
    running_registry,
)
from transship.api.app import create_app
from transship.api.services import build_services
from transship.cli import commands_import
from transship.cli.main import main
from transship.config import EgressRuleSettings, EgressSettings, Settings

T = TypeVar("T")
PROVIDER = "/providers/Microsoft.ContainerRegistry"
AUTHZ = "/providers/Microsoft.Authorization"
SUFFIX = "localhost:5000"  # the default suffix: login servers are <name>.localhost:<port>
LOCATION = "local"
RG = "default"  # the resource group the first start creates
USER = "alice"
USER_PASSWORD = "alice-Pa55word-123"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Interceptor = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request the server received, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    reply: Any = None  # the answer's JSON body, when it had one


@dataclass
class LiveService:
    """A running real application, its owner credential, and what it was sent."""

    url: str
    data_dir: Path
    loop: asyncio.AbstractEventLoop
    requests: list[Seen] = field(default_factory=list)
    overrides: dict[tuple[str, str, bool], Interceptor] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)  # Authorization values answered 401

    # -- the owner credential the first start wrote --------------------------------------
    @property
    def owner(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.credential_file.read_text())
        return data

    @property
    def credential_file(self) -> Path:
        return self.data_dir / "owner-credential.json"

    @property
    def tenant(self) -> str:
        return self.owner["tenantId"]

    @property
    def sub(self) -> str:
        return self.owner["subscriptionId"]

    @property
    def client_id(self) -> str:
        return self.owner["clientId"]

    @property
    def secret(self) -> str:
        return self.owner["clientSecret"]

    @property
    def group(self) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{RG}"

    def arm_id(self, name: str, group: str = RG) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{group}{PROVIDER}/registries/{name}"

    # -- recording -------------------------------------------------------------------------
    def seen(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method) and contains in r.path
        ]

    def import_bodies(self) -> list[Any]:
        return [r.body for r in self.seen("POST", "/importImage")]

    def token_requests(self) -> list[Seen]:
        return self.seen("POST", "/oauth2/v2.0/token")

    def tokens(self) -> list[str]:
        """The access tokens the token endpoint issued, in order."""
        return [r.reply["access_token"] for r in self.token_requests() if r.status == 200]

    # -- overrides -------------------------------------------------------------------------
    def intercept(
        self, method: str, path: str, interceptor: Interceptor, *, prefix: bool = False
    ) -> None:
        """`interceptor(request, handler)` answers `method path` (every path starting with
        `path` if `prefix`) from now on; it may call `handler`, the real application, and
        change or replace its answer."""
        self.overrides[(method, path, prefix)] = interceptor

    def _override(self, request: web.Request) -> Interceptor | None:
        for (method, path, prefix), interceptor in self.overrides.items():
            if method == request.method and (
                request.path.startswith(path) if prefix else request.path == path
            ):
                return interceptor
        return None

    def answer(self, method: str, path: str, *answers: Any) -> None:
        """Scripted answers of `method path`, in turn (the last repeats): each
        `(status, JSON body or None)`."""
        queue = list(answers)

        async def scripted(request: web.Request, handler: Handler) -> web.StreamResponse:
            status, body = queue.pop(0) if len(queue) > 1 else queue[0]
            if body is None:
                return web.Response(status=status)
            return web.json_response(body, status=status)

        self.intercept(method, path, scripted)

    def refuse_tokens(self, tokens: set[str]) -> None:
        """The management API refuses these bearer tokens from now on, as it does an
        expired one (the server cannot be made to expire a token on demand)."""
        self.refused.update(f"Bearer {t}" for t in tokens)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        # The handlers stream the body from `request.content`, which reading consumed:
        # hand them the same bytes again.
        replay = StreamReader(request.protocol, 2**16, loop=asyncio.get_running_loop())
        replay.feed_data(raw)
        replay.feed_eof()
        request._payload = replay
        body: Any = None
        if raw and request.content_type == "application/x-www-form-urlencoded":
            body = dict(parse_qsl(raw.decode()))
        elif raw and request.content_type == "application/json":
            body = json.loads(raw)
        elif raw:
            body = raw
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        self.requests.append(seen)
        override = self._override(request)
        try:
            if request.headers.get("Authorization") in self.refused:
                response: web.StreamResponse = web.json_response(
                    {
                        "error": {
                            "code": "ExpiredAuthenticationToken",
                            "message": "The access token expiry has passed.",
                        }
                    },
                    status=401,
                )
            elif override is not None:
                response = await override(request, handler)
            else:
                response = await handler(request)
        except web.HTTPException as exc:
            seen.status = exc.status
            raise
        seen.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            payload = response.body
            if isinstance(payload, bytes) and payload:
                seen.reply = json.loads(payload)
        return response

    # -- the server's loop -----------------------------------------------------------------
    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the server's event loop; its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def push_images(
        self, login_server: str, images: list[tuple[str, str | None]], seed: str = ""
    ) -> list[str]:
        """Push a small one-layer image (its bytes a function of the repository and `seed`)
        to each `(repository, tag)` of the registry at `login_server` as the owner, untagged
        (by digest) when the tag is None; their manifest digests."""
        return self.run(self._push_images(login_server, images, seed))

    async def _push_images(
        self, login_server: str, images: list[tuple[str, str | None]], seed: str
    ) -> list[str]:
        digests = []
        async with aiohttp.ClientSession() as http:
            repositories = sorted({r for r, _ in images})
            tokens = {}
            # One token for many repositories: few checks of the owner's (hashed) secret.
            for start in range(0, len(repositories), 20):
                batch = repositories[start : start + 20]
                async with http.post(
                    f"{self.url}/oauth2/token",
                    data=[
                        ("grant_type", "password"),
                        ("service", login_server),
                        ("username", self.client_id),
                        ("password", self.secret),
                        *(("scope", f"repository:{r}:pull,push") for r in batch),
                    ],
                    headers={"Host": login_server},
                ) as r:
                    assert r.status == 200, await r.text()
                    token = (await r.json())["access_token"]
                tokens.update(dict.fromkeys(batch, token))
            for repository, tag in images:
                config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
                digests.append(
                    await push_image(
                        http,
                        self.url,
                        login_server,
                        f"Bearer {tokens[repository]}",
                        repository,
                        tag,
                        config=config,
                        layer=f"layer of {repository} {seed}".encode(),
                    )
                )
        return digests


def settings_for(data_dir: Path) -> Settings:
    """The test server's settings: authenticated data plane, and no egress at all (a rule on
    every host name, decided before any DNS lookup), so an import from a remote registry
    fails at once without touching the network."""
    egress = EgressSettings(default="deny", rules=(EgressRuleSettings(action="deny", target="*"),))
    return make_settings(data_dir, None, data_plane_auth=True, egress=egress)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after the first start: migrated, with the owner credential."""
    data_dir = tmp_path_factory.mktemp("cli-template") / "data"

    async def first_start() -> None:
        async with running_registry(settings_for(data_dir)):
            pass

    asyncio.run(first_start())
    assert (data_dir / "owner-credential.json").exists()
    return data_dir


@pytest.fixture
def service(bootstrapped: Path, tmp_path: Path) -> Iterator[LiveService]:
    data_dir = tmp_path / "data"
    shutil.copytree(bootstrapped, data_dir)
    settings = settings_for(data_dir)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        services = await build_services(settings)
        try:
            app = create_app(settings, services)
            live = LiveService("", data_dir, loop)
            app.middlewares.insert(0, live.middleware)
            server = AppTestServer(app, settings, host="127.0.0.1")
            await server.start_server()
            try:
                live.url = str(server.make_url("")).rstrip("/")
                holder["live"] = live
                ready.set()
                await stop.wait()
            finally:
                await server.close()
        finally:
            await services.close()
            ready.set()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="transship-cli-test", daemon=True
    )
    thread.start()
    assert ready.wait(60) and "live" in holder, "the server did not start"
    live: LiveService = holder["live"]
    _SECRETS[:] = [live.secret, USER_PASSWORD]
    try:
        yield live
    finally:
        _SECRETS.clear()
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(60)
        assert not thread.is_alive(), "the server did not stop"
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
def logged_in(service: LiveService, config_home: Path) -> LiveService:
    """Logged in with the owner credential file the server wrote at its first start."""
    result = run(
        "login",
        "--server",
        service.url,
        "--credential-file",
        str(service.credential_file),
    )
    assert result.exit_code == 0, result.output
    service.requests.clear()
    return service


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# The secrets of the running test's server: `run` checks none is ever printed.
_SECRETS: list[str] = []


def run(*args: str, input: str | None = None, secrets: tuple[str, ...] | None = None) -> Result:
    """Invoke the CLI; none of `secrets` (by default: the owner's secret and the test
    user's password) shows in its output."""
    result = CliRunner().invoke(main, list(args), input=input)
    for secret in _SECRETS if secrets is None else secrets:
        assert secret not in result.output, "a secret was printed"
    return result


def profile_file(config_home: Path) -> Path:
    return config_home / "transship" / "profile.json"
