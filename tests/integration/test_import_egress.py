"""The egress policy of imports with real connections, on loopback only.

Upstreams are the in-process fakes of tests/unit/imports/fake_registry.py on 127.0.0.x;
the "forbidden" address is a loopback address the policy denies (127.0.0.3, or 127.0.0.1
under `deny_private`), so a broken rule would only ever reach another loopback server,
which records it. The level-1 policies turn `deny_private` off, so that loopback stands in
for public addresses and only the rules decide; the defaults (`deny_private` on, configured
upstreams trusted) are tested in test_import_egress_defaults.py. Host names resolve
through a scripted resolver (injected as the `EgressPolicies.inner_resolver`), never
through DNS.

Two levels: `Sources.open` → `UpstreamClient` (failures inspected as `ImportFailure`s), and
whole imports through the in-process server and its management API.

An autouse guard (`loopback_only`) makes the hard rule mechanical: a connect to anything but
a loopback address, or a name lookup through the system resolver, fails before any packet
leaves.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, MultiDict

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory, insecure
from tests.support import app as support_app
from tests.support.app import image_manifest, make_settings
from tests.support.imports import assert_failed, assert_succeeded
from tests.unit.imports.doubles import MemoryWriter
from tests.unit.imports.fake_registry import (
    REPO,
    FakeRegistry,
    FakeStorage,
    FakeTokenService,
    Seen,
)
from tests.unit.imports.test_egress import ScriptedResolver
from transship.api.services import Services, build_services
from transship.config import Settings, UpstreamHost
from transship.imports.egress import EgressPolicies, EgressPolicy, EgressRule
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import SourceSpec
from transship.imports.ports import Credentials
from transship.imports.retry import RetryPolicy
from transship.imports.sources import Sources
from transship.oci.digest import Digest

ALLOWED = "127.0.0.2"
DENIED = "127.0.0.3"
DENY_RULE = f"deny {DENIED}/32"
DENY_3 = EgressPolicy((EgressRule.parse("deny", f"{DENIED}/32"),), deny_private=False)
EGRESS_DENY_3 = {"rules": [{"action": "deny", "target": f"{DENIED}/32"}]}

CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "seed": "egress"}).encode()
LAYER = b"egress-layer-" + bytes(range(256)) * 200
MANIFEST = image_manifest(CONFIG, [LAYER])
BLOBS = {str(Digest.of(CONFIG)): CONFIG, str(Digest.of(LAYER)): LAYER}
USERNAME, PASSWORD = "alice", "s3cr3t-pa55"


# -- the guard -----------------------------------------------------------------------------


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """`host` as an address; an IPv4-mapped IPv6 address as the IPv4 address it is."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback(host: str) -> bool:
    try:
        return _address(host).is_loopback
    except ValueError:
        return False


def _canonical(host: str) -> str:
    return str(_address(host))


@dataclass
class Connections:
    """Every TCP/UDP connect of the test (host, port), and what the guard refused."""

    made: list[tuple[str, int]] = field(default_factory=list)
    refused: list[object] = field(default_factory=list)

    def hosts(self) -> set[str]:
        return {host for host, _ in self.made}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    seen = Connections()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        if isinstance(address, tuple):  # AF_INET / AF_INET6 (AF_UNIX addresses are paths)
            if not _is_loopback(str(address[0])):
                seen.refused.append(address)
                raise OSError(errno.ENETUNREACH, f"test guard: no connection to {address!r}")
            seen.made.append((_canonical(str(address[0])), int(address[1])))

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            text = host.decode() if isinstance(host, bytes) else str(host)
            try:
                ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                seen.refused.append(text)
                raise socket.gaierror(
                    socket.EAI_NONAME, f"test guard: no lookup of {text!r}"
                ) from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield seen
    assert seen.refused == [], f"the test tried to leave loopback: {seen.refused}"


# -- upstreams -----------------------------------------------------------------------------


class Upstream(FakeRegistry):
    """A fake registry holding `library/app:v1` (one config, one layer). `redirect_blobs_to`
    (a base URL) answers every blob GET with a 307 to `<base>/blob/<digest>`; `realm`
    replaces the token service's URL in Bearer challenges."""

    def __init__(
        self,
        host: str,
        *,
        auth: Literal["none", "basic", "bearer"] = "none",
        redirect_blobs_to: str | None = None,
        realm: str | None = None,
    ) -> None:
        super().__init__(host=host, auth=auth, username=USERNAME, password=PASSWORD)
        self.redirect_blobs_to = redirect_blobs_to
        self.realm = realm
        for data in BLOBS.values():
            self.add_blob(data)
        self.add_manifest(MANIFEST, tag="v1")

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        if self.redirect_blobs_to is None:
            return await super()._blob(request)
        self.requests.append(
            Seen(
                request.method, request.path, MultiDict(request.query), CIMultiDict(request.headers)
            )
        )
        location = f"{self.redirect_blobs_to}/blob/{request.match_info['digest']}"
        return web.Response(status=307, headers={"Location": location})

    def _challenge(self, route: str) -> web.Response:
        if self.realm is None:
            return super()._challenge(route)
        header = (
            f'Bearer realm="{self.realm}",service="fake-registry",scope="{self.scope_for[route]}"'
        )
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]}, status=401, headers={"WWW-Authenticate": header}
        )


def storage_on(host: str) -> FakeStorage:
    storage = FakeStorage(host)
    storage.blobs.update(BLOBS)
    return storage


Server = FakeRegistry | FakeStorage | FakeTokenService


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """`await serve(server, port=None)`: start a fake server (on `port` if given); all are
    closed at teardown."""
    started: list[Server] = []

    async def start(server: Server, port: int | None = None) -> Any:
        if port is None:
            await server.start()
        else:
            server.server = TestServer(server.app, host=server.host, port=port)
            await server.server.start_server()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.close()


def port_of(server: Server) -> int:
    assert server.server is not None and server.server.port is not None
    return server.server.port


def assert_untouched(connections: Connections, *servers: Server) -> None:
    """No request reached the servers, and no connection was even opened to them."""
    for server in servers:
        assert server.requests == [], (
            f"{server.host} was asked: {[r.path for r in server.requests]}"
        )
        assert (server.host, port_of(server)) not in connections.made, (
            f"{server.authority} was connected to"
        )


def sends_no_credentials(requests: Sequence[Seen]) -> bool:
    return all("Authorization" not in r.headers for r in requests)


# -- level 1: Sources.open → UpstreamClient ------------------------------------------------


@dataclass
class Harness:
    services: Services
    registry_id: int

    def sources(
        self,
        policy: EgressPolicy,
        upstreams: Mapping[str, UpstreamHost],
        resolver: ScriptedResolver | None = None,
    ) -> Sources:
        def inner() -> ScriptedResolver:
            # No name in these tests is resolved by the system.
            return resolver if resolver is not None else ScriptedResolver({})

        return Sources(
            self.services.meta,
            self.services.store,
            upstreams,
            retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01, jitter=0.0),
            max_manifest_bytes=1 << 20,
            read_timeout=5.0,
            egress=EgressPolicies(policy, inner_resolver=inner),
        )

    async def read_image(
        self, sources: Sources, host: str, credentials: Credentials | None = None
    ) -> None:
        """Open `host`, read `library/app:v1` and both blobs, checking the bytes."""
        spec = SourceSpec(host, None, REPO, "v1")
        async with sources.open(spec, credentials, self.registry_id) as source:
            fetched = await source.get_manifest("v1")
            assert fetched.content == MANIFEST
            for digest, data in BLOBS.items():
                writer = MemoryWriter()
                await source.fetch_blob(Digest.parse(digest), len(data), writer)
                assert bytes(writer.data) == data

    async def refused(
        self, sources: Sources, host: str, credentials: Credentials | None = None
    ) -> ImportFailure:
        with pytest.raises(ImportFailure) as caught:
            await self.read_image(sources, host, credentials)
        failure = caught.value
        assert failure.code == "EgressDenied", (failure.code, failure.message)
        assert failure.retryable is False
        return failure


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    services = await build_services(make_settings(tmp_path / "data", None))
    try:
        identity = services.identity
        record, _ = await services.registries.create(
            identity.subscription_id, identity.resource_group, "myregistry", "local"
        )
        yield Harness(services, record.id)
    finally:
        await services.close()


def plain_http(*hosts: str) -> dict[str, UpstreamHost]:
    return {host: UpstreamHost(insecure=True) for host in hosts}


Serve = Callable[..., Awaitable[Any]]


async def test_sources_refuse_an_ip_literal_upstream_before_connecting(
    harness: Harness, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream(DENIED))
    sources = harness.sources(DENY_3, plain_http(upstream.authority))
    failure = await harness.refused(sources, upstream.authority)
    assert failure.step is Step.RESOLVE
    assert failure.obj == DENIED
    assert DENIED in failure.message and DENY_RULE in failure.message
    assert_untouched(loopback_only, upstream)


async def test_sources_allow_the_same_upstream_without_the_rule(
    harness: Harness, serve: Serve
) -> None:
    upstream: Upstream = await serve(Upstream(DENIED))
    await harness.read_image(
        harness.sources(EgressPolicy(deny_private=False), plain_http(upstream.authority)),
        upstream.authority,
    )
    assert upstream.seen("manifest") and len(upstream.seen("blob")) == 2


async def test_sources_refuse_a_name_resolving_to_a_denied_address(
    harness: Harness, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream(DENIED))
    host = f"registry.egress.test:{port_of(upstream)}"
    resolver = ScriptedResolver({"registry.egress.test": [[DENIED]]})
    failure = await harness.refused(harness.sources(DENY_3, plain_http(host), resolver), host)
    assert failure.step is Step.PLAN
    assert (
        failure.message
        == f"egress to registry.egress.test ({DENIED}) is denied by rule: {DENY_RULE}"
    )
    assert [name for name, _, _ in resolver.asked] == ["registry.egress.test"]
    assert_untouched(loopback_only, upstream)


async def test_sources_follow_a_name_resolving_to_an_allowed_address(
    harness: Harness, serve: Serve
) -> None:
    upstream: Upstream = await serve(Upstream(ALLOWED))
    host = f"registry.egress.test:{port_of(upstream)}"
    resolver = ScriptedResolver({"registry.egress.test": [[DENIED, ALLOWED]]})
    await harness.read_image(harness.sources(DENY_3, plain_http(host), resolver), host)
    assert len(upstream.seen("blob")) == 2


async def test_dns_rebinding_between_imports_is_refused(
    harness: Harness, serve: Serve, loopback_only: Connections
) -> None:
    """The same name answers 127.0.0.2 (allowed) to the first lookup and 127.0.0.3 (denied)
    to the next; both addresses serve the image on the same port. The second import is
    refused and the denied server sees nothing."""
    good: Upstream = await serve(Upstream(ALLOWED))
    port = port_of(good)
    evil: Upstream = await serve(Upstream(DENIED), port=port)
    host = f"rebind.egress.test:{port}"
    resolver = ScriptedResolver({"rebind.egress.test": [[ALLOWED], [DENIED]]})
    sources = harness.sources(DENY_3, plain_http(host), resolver)

    spec = SourceSpec(host, None, REPO, "v1")
    async with sources.open(spec, None, harness.registry_id) as source:
        assert (await source.get_manifest("v1")).content == MANIFEST
    # A HEAD (the tag's digest: no pull spent when the target holds it), then the GET.
    asked = [s.method for s in good.seen("manifest")]
    assert asked == ["HEAD", "GET"]

    failure = await harness.refused(sources, host)
    assert f"rebind.egress.test ({DENIED})" in failure.message and DENY_RULE in failure.message
    assert len(resolver.asked) == 2
    assert_untouched(loopback_only, evil)
    assert len(good.seen("manifest")) == len(asked)


@pytest.mark.parametrize("form", ["literal", "mapped-ipv6", "name"])
async def test_a_redirect_from_an_allowed_host_to_a_denied_one_is_refused(
    form: str, harness: Harness, serve: Serve, loopback_only: Connections
) -> None:
    storage: FakeStorage = await serve(storage_on(DENIED))
    target = {
        "literal": storage.url,
        "mapped-ipv6": f"http://[::ffff:{DENIED}]:{port_of(storage)}",
        "name": f"http://storage.egress.test:{port_of(storage)}",
    }[form]
    upstream: Upstream = await serve(Upstream(ALLOWED, redirect_blobs_to=target))
    resolver = ScriptedResolver({"storage.egress.test": [[DENIED]]})
    failure = await harness.refused(
        harness.sources(DENY_3, plain_http(upstream.authority), resolver), upstream.authority
    )
    assert failure.step is Step.COPY
    assert DENY_RULE in failure.message, failure.message
    where = {"literal": DENIED, "mapped-ipv6": "::ffff:", "name": f"storage.egress.test ({DENIED})"}
    assert where[form] in failure.message, failure.message
    assert upstream.seen("manifest") and upstream.seen("blob"), "the allowed host was not asked"
    assert_untouched(loopback_only, storage)


@pytest.mark.parametrize("form", ["literal", "name"])
async def test_a_redirect_to_an_allowed_storage_host_still_works(
    form: str, harness: Harness, serve: Serve
) -> None:
    storage: FakeStorage = await serve(storage_on("127.0.0.4"))
    target = storage.url if form == "literal" else f"http://storage.egress.test:{port_of(storage)}"
    upstream: Upstream = await serve(Upstream(ALLOWED, redirect_blobs_to=target))
    resolver = ScriptedResolver({"storage.egress.test": [["127.0.0.4"]]})
    await harness.read_image(
        harness.sources(DENY_3, plain_http(upstream.authority), resolver), upstream.authority
    )
    assert len(storage.requests) == 2


@pytest.mark.parametrize("form", ["literal", "name"])
async def test_a_token_realm_on_a_denied_host_gets_no_credentials(
    form: str, harness: Harness, serve: Serve, loopback_only: Connections
) -> None:
    upstream = Upstream(ALLOWED, auth="bearer")
    tokens: FakeTokenService = await serve(FakeTokenService(upstream, host=DENIED))
    if form == "name":
        upstream.realm = f"http://auth.egress.test:{port_of(tokens)}/token"
    await serve(upstream)
    resolver = ScriptedResolver({"auth.egress.test": [[DENIED]]})
    sources = harness.sources(DENY_3, plain_http(upstream.authority), resolver)
    failure = await harness.refused(sources, upstream.authority, Credentials(USERNAME, PASSWORD))
    assert DENY_RULE in failure.message, failure.message
    assert (f"auth.egress.test ({DENIED})" if form == "name" else DENIED) in failure.message
    assert PASSWORD not in failure.message
    assert_untouched(loopback_only, tokens)
    assert upstream.seen("manifest"), "the registry was not asked"
    assert sends_no_credentials(upstream.requests)


async def test_a_token_realm_on_an_allowed_host_still_works(harness: Harness, serve: Serve) -> None:
    upstream = Upstream(ALLOWED, auth="bearer")
    tokens: FakeTokenService = await serve(FakeTokenService(upstream, host="127.0.0.4"))
    await serve(upstream)
    sources = harness.sources(DENY_3, plain_http(upstream.authority))
    await harness.read_image(sources, upstream.authority, Credentials(USERNAME, PASSWORD))
    assert len(tokens.token_requests) == 1
    assert tokens.token_requests[0].headers["Authorization"].startswith("Basic ")


# -- level 2: whole imports through the server ---------------------------------------------


def import_body(host: str, credentials: dict[str, str] | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"registryUri": host, "sourceImage": f"{REPO}:v1"}
    if credentials is not None:
        source["credentials"] = credentials
    return {"source": source, "targetTags": ["app:v1"]}


async def assert_denied(env: ImportEnv, final: dict[str, Any], *parts: str) -> dict[str, Any]:
    error = assert_failed(final, "EgressDenied")
    for part in parts:
        assert part in error["message"], error["message"]
    assert (await env.manifest("app", "v1")).status == 404
    return error


async def assert_landed(env: ImportEnv) -> None:
    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == MANIFEST


def inject_resolver(monkeypatch: pytest.MonkeyPatch, resolver: ScriptedResolver) -> None:
    """Build the in-process server with `resolver` behind its egress policy (the composition
    root's `inner_resolver` seam)."""
    real = support_app.build_services

    async def build(settings: Settings, **options: Any) -> Services:
        return await real(settings, inner_resolver=lambda: resolver, **options)

    monkeypatch.setattr(support_app, "build_services", build)


async def test_import_from_a_denied_address_fails_and_the_upstream_sees_nothing(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream(DENIED))
    env = await import_env(egress=EGRESS_DENY_3, upstreams=insecure(upstream.authority))
    final = await env.run_import(import_body(upstream.authority))
    await assert_denied(env, final, DENIED, DENY_RULE)
    failure = final["properties"]["failure"]
    assert failure["step"] == "resolve" and failure["object"] == DENIED, failure
    assert_untouched(loopback_only, upstream)


async def test_import_from_a_name_resolving_to_a_denied_address_fails(
    import_env: ImportEnvFactory,
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: Connections,
) -> None:
    upstream: Upstream = await serve(Upstream(DENIED))
    host = f"registry.egress.test:{port_of(upstream)}"
    resolver = ScriptedResolver({"registry.egress.test": [[DENIED]]})
    inject_resolver(monkeypatch, resolver)
    env = await import_env(egress=EGRESS_DENY_3, upstreams=insecure(host))
    final = await env.run_import(import_body(host))
    await assert_denied(env, final, f"registry.egress.test ({DENIED})", DENY_RULE)
    assert [name for name, _, _ in resolver.asked] == ["registry.egress.test"]
    assert_untouched(loopback_only, upstream)


async def test_import_through_a_redirect_to_a_denied_host_fails(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    storage: FakeStorage = await serve(storage_on(DENIED))
    upstream: Upstream = await serve(Upstream(ALLOWED, redirect_blobs_to=storage.url))
    env = await import_env(egress=EGRESS_DENY_3, upstreams=insecure(upstream.authority))
    final = await env.run_import(import_body(upstream.authority))
    await assert_denied(env, final, DENIED, DENY_RULE)
    assert final["properties"]["failure"]["step"] == "copy"
    assert upstream.seen("blob"), "the allowed upstream was not asked for a blob"
    assert_untouched(loopback_only, storage)


async def test_import_with_a_token_realm_on_a_denied_host_fails_without_sending_credentials(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    upstream = Upstream(ALLOWED, auth="bearer")
    tokens: FakeTokenService = await serve(FakeTokenService(upstream, host=DENIED))
    await serve(upstream)
    env = await import_env(egress=EGRESS_DENY_3, upstreams=insecure(upstream.authority))
    final = await env.run_import(
        import_body(upstream.authority, {"username": USERNAME, "password": PASSWORD})
    )
    await assert_denied(env, final, DENIED, DENY_RULE)
    assert PASSWORD not in json.dumps(final)
    assert_untouched(loopback_only, tokens)
    assert upstream.seen("manifest") and sends_no_credentials(upstream.requests)


async def test_import_from_allowed_hosts_succeeds_under_an_allowlist(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    """Default deny, with the registry, its token service and its blob storage allowed: a
    bearer-authenticated import whose blobs are redirected to another host works."""
    storage: FakeStorage = await serve(storage_on("127.0.0.4"))
    upstream = Upstream(ALLOWED, auth="bearer", redirect_blobs_to=storage.url)
    tokens: FakeTokenService = await serve(FakeTokenService(upstream, host="127.0.0.5"))
    await serve(upstream)
    egress = {
        "default": "deny",
        "rules": [
            {"action": "allow", "target": f"{ALLOWED}/32"},
            {"action": "allow", "target": "127.0.0.4"},
            {"action": "allow", "target": "127.0.0.5/32"},
        ],
    }
    env = await import_env(egress=egress, upstreams=insecure(upstream.authority))
    final = await env.run_import(
        import_body(upstream.authority, {"username": USERNAME, "password": PASSWORD})
    )
    assert_succeeded(final)
    await assert_landed(env)
    assert tokens.token_requests and len(storage.requests) == 2
    # The guard saw the import's connections (so it is live), all to the allowed hosts.
    assert {ALLOWED, "127.0.0.4", "127.0.0.5"} <= loopback_only.hosts()
    assert DENIED not in loopback_only.hosts()
    await env.assert_consistent()


async def test_deny_private_alone_blocks_an_import_from_an_unconfigured_loopback_host(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    """No `[upstreams]` entry names the host, so nothing trusts it: `deny_private` refuses
    it before any connection (over https, as an unconfigured host is reached)."""
    upstream: Upstream = await serve(Upstream("127.0.0.1"))
    env = await import_env(egress={"deny_private": True})
    final = await env.run_import(import_body(upstream.authority))
    await assert_denied(
        env, final, "egress to 127.0.0.1 ", "egress.deny_private: loopback 127.0.0.0/8"
    )
    assert_untouched(loopback_only, upstream)


async def test_a_per_registry_policy_blocks_imports_into_that_registry_only(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream(DENIED))
    # Registry names keep their case; the policy applies whatever case either side uses.
    env = await import_env(
        egress_registries={"strictreg": EGRESS_DENY_3}, upstreams=insecure(upstream.authority)
    )
    await env.admin.create_registry("StrictReg")
    denied = await env.admin.run_import("StrictReg", import_body(upstream.authority))
    error = assert_failed(denied, "EgressDenied")
    assert DENIED in error["message"] and DENY_RULE in error["message"], error
    assert_untouched(loopback_only, upstream)

    allowed = await env.admin.run_import(TARGET, import_body(upstream.authority))
    assert_succeeded(allowed)
    await assert_landed(env)
    assert upstream.seen("manifest")
