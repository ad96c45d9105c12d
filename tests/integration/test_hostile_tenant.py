"""The standing "hostile tenant" scenario (issue 10): tenant B, an ordinary account (a service
principal with Owner on its own subscription only), attacks tenant A's registry `victimreg` on a
real server process with data-plane authentication on, on SQLite and PostgreSQL.

One server per database serves the whole module (`world`); every attack is its own test, so a
failure names the attack, and an attack that succeeds (creates a registry it should not) is
undone before the test ends, so one broken defence does not cascade into the other tests.
Upstream registries the server imports from are in-process aiohttp servers
(:class:`tests.support.static_upstream.StaticUpstream`) on ports reserved before the server
starts, because its configuration names them (`[upstreams."…"]`). Only the per-address
password-guessing limit gets a server of its own (`transship_factory`): every client here is
127.0.0.1, so that limit would otherwise throttle the rest of the module.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import stat
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.integration.test_import_authorization import run_import
from tests.peers.ports import free_port
from tests.peers.postgres import PostgresCluster
from tests.peers.transship import TransshipServer
from tests.support.app import OCI_MANIFEST, push_image, sha256
from tests.support.identity import (
    Credential,
    IdentityClient,
    basic,
    owner_credential,
    registry_token,
)
from tests.support.static_upstream import StaticUpstream

TENANT_B = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"
PRIVATE_REPO = "private/app"
AUTH_FAILURE_LIMIT = 20
HEADER_TIMEOUT = 2


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def oci_code(self) -> str | None:
        try:
            return str(self.json()["errors"][0]["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None


@dataclass(frozen=True)
class World:
    """What the module's setup built: the server, its two tenants and A's private image."""

    server: TransshipServer
    database: str
    root: Credential  # the service owner (Owner at the service root)
    a: Credential  # tenant A's service principal: Owner on A's subscription
    b: Credential  # tenant B's service principal: Owner on B's subscription only
    a_subscription: str
    b_subscription: str
    hub_port: int  # the docker.io stand-in's port ([upstreams."docker.io"])
    evil_port: int  # B's own upstream's port ([upstreams."127.0.0.1:<port>"] insecure)
    private_manifest: str  # digest of A's private image in victimreg
    private_layer: bytes  # its layer: A's secret bytes
    default_marker: str  # digest of an image in the default registry

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def login_server(self, name: str) -> str:
        return f"{name}.localhost:{self.port}"

    @property
    def victim(self) -> str:
        return self.login_server("victimreg")

    @property
    def breg(self) -> str:
        return self.login_server("tenantbreg")

    @property
    def layer_digest(self) -> str:
        return sha256(self.private_layer)

    def registry_id(self, subscription: str, name: str) -> str:
        return IdentityClient.registry_id(subscription, "default", name)

    @property
    def victim_id(self) -> str:
        return self.registry_id(self.a_subscription, "victimreg")

    @property
    def breg_id(self) -> str:
        return self.registry_id(self.b_subscription, "tenantbreg")


# -- the server --------------------------------------------------------------------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.peers)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One server per database for the module, with tenants A and B set up."""
    database_url: str | None = None
    cluster: PostgresCluster | None = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres")
        database_url = cluster.new_database()
    workdir = tmp_path_factory.mktemp(f"hostile-{request.param}")
    hub_port, evil_port = free_port(), free_port()
    config = workdir / "transship.toml"
    config.write_text(
        f'[upstreams."docker.io"]\nendpoint = "http://127.0.0.1:{hub_port}"\ninsecure = true\n\n'
        f'[upstreams."127.0.0.1:{evil_port}"]\ninsecure = true\n'
    )
    server = TransshipServer(
        workdir,
        database_url=database_url,
        data_plane_auth=True,
        env={
            "TRANSSHIP_CONFIG": str(config),
            "TRANSSHIP_GC_INTERVAL_SECONDS": "0",
            "TRANSSHIP_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "TRANSSHIP_HTTP_BODY_IDLE_TIMEOUT_SECONDS": "2",
            "TRANSSHIP_HTTP_MAX_CONNECTIONS_PER_CLIENT": "200",
            # Every client of the suite is 127.0.0.1: the per-address limit stays out of the
            # way; the per-principal one is what test_password_guessing_is_throttled meets.
            "TRANSSHIP_AUTH_FAILURE_LIMIT_PER_CLIENT": "100000",
            "TRANSSHIP_AUTH_FAILURE_LIMIT_PER_PRINCIPAL": str(AUTH_FAILURE_LIMIT),
        },
    )
    server.start()
    try:
        yield asyncio.run(_build_world(server, str(request.param), hub_port, evil_port))
    finally:
        server.stop()
        if cluster is not None and database_url is not None:
            cluster.drop_database(database_url.rsplit("/", 1)[1])


async def _build_world(
    server: TransshipServer, database: str, hub_port: int, evil_port: int
) -> World:
    root = owner_credential(server.data_dir)
    async with aiohttp.ClientSession() as http:
        owner = IdentityClient(http, server.url, root)
        a_sub = root.subscription_id
        a_sp = await owner.create_service_principal("tenant-a")
        await owner.assign(f"/subscriptions/{a_sub}", a_sp.object_id, "Owner")
        b_admin = IdentityClient(http, server.url, await owner.create_tenant(TENANT_B, "Tenant B"))
        b_sub = b_admin.credential.subscription_id
        b_sp = await b_admin.create_service_principal("tenant-b")
        await b_admin.assign(f"/subscriptions/{b_sub}", b_sp.object_id, "Owner")
        a = Credential(a_sp.tenant_id, a_sp.client_id, a_sp.secret, a_sp.object_id, a_sub)
        b = Credential(b_sp.tenant_id, b_sp.client_id, b_sp.secret, b_sp.object_id, b_sub)
        a_client = IdentityClient(http, server.url, a)
        b_client = IdentityClient(http, server.url, b)
        victim = await a_client.create_registry(a_sub, "default", "victimreg")
        await b_client.create_registry(b_sub, "default", "tenantbreg")
        victim_host = victim["properties"]["loginServer"]
        assert victim_host == f"victimreg.localhost:{server.port}", victim
        manifest = await push_image(http, server.url, victim_host, a.basic, PRIVATE_REPO, "1")
        # push_image's layer is derived from the repository name (see its source).
        layer = b"layer of " + PRIVATE_REPO.encode() * 50
        marker = await push_image(
            http, server.url, f"localhost:{server.port}", root.basic, "marker", "1"
        )
    return World(
        server, database, root, a, b, a_sub, b_sub, hub_port, evil_port, manifest, layer, marker
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- helpers -----------------------------------------------------------------------------------


async def call(
    http: aiohttp.ClientSession,
    world: World,
    method: str,
    path: str,
    host: str | None,
    authorization: str | None = None,
    **kwargs: Any,
) -> Answer:
    """One request to the server with a chosen Host header; the answer read whole."""
    headers = dict(kwargs.pop("headers", {}))
    if host is not None:
        headers["Host"] = host
    if authorization is not None:
        headers["Authorization"] = authorization
    async with http.request(
        method, world.url + path, headers=headers, allow_redirects=False, **kwargs
    ) as r:
        return Answer(r.status, dict(r.headers), await r.read())


async def dp_token(
    http: aiohttp.ClientSession, world: World, host: str, authorization: str, *scopes: str
) -> tuple[int, str | None]:
    """(status, access token or None) from `GET /oauth2/token` addressed to `host`."""
    status, body = await registry_token(http, world.url, authorization, list(scopes), host=host)
    if status == 200 and isinstance(body, dict) and body.get("access_token"):
        return status, str(body["access_token"])
    return status, None


def client(http: aiohttp.ClientSession, world: World, credential: Credential) -> IdentityClient:
    return IdentityClient(http, world.url, credential)


def path_of(location: str) -> str:
    """The path and query of a `Location` header, absolute or not."""
    return URL(location).path_qs if location.startswith("http") else location


def registry_body(**properties: Any) -> dict[str, Any]:
    return {"location": "local", "sku": {"name": "Premium"}, "properties": properties}


async def delete_if_created(b: IdentityClient, registry_id: str, status: int) -> None:
    """Undo an attack that succeeded, so later tests see the world as it should be."""
    if status in (200, 201):
        await b.call("DELETE", registry_id)


async def eventually(
    probe: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.25
) -> float | None:
    """Seconds until `probe()` was true (polled), or None if it never was within `timeout`."""
    began = time.monotonic()
    while True:
        if await probe():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            return None
        await asyncio.sleep(interval)


def arm_error(body: Any) -> dict[str, Any]:
    return (
        dict(body["error"])
        if isinstance(body, dict) and isinstance(body.get("error"), dict)
        else {}
    )


# -- 1. the login server is derived, never chosen ------------------------------------------------


async def test_login_server_is_derived_never_chosen(
    http: aiohttp.ClientSession, world: World
) -> None:
    b = client(http, world, world.b)
    chosen = [
        f"victimreg.localhost:{world.port}/",
        "docker.io",
        "mcr.microsoft.com",
        f"127.0.0.1:{world.port}",
        f"localhost:{world.port}",
    ]
    problems = []
    for i, login_server in enumerate(chosen):
        registry_id = world.registry_id(world.b_subscription, f"bclaim{i}")
        status, body = await b.call("PUT", registry_id, registry_body(loginServer=login_server))
        try:
            error = arm_error(body)
            if (status, error.get("code"), error.get("target")) != (
                400,
                "InvalidParameter",
                "properties.loginServer",
            ):
                problems.append(f"loginServer {login_server!r}: {status} {body}")
            got, _ = await b.call("GET", registry_id)
            if got != 404:
                problems.append(f"loginServer {login_server!r}: GET after the PUT answered {got}")
        finally:
            await delete_if_created(b, registry_id, status)
    assert not problems, "\n".join(problems)

    # The derived value itself is accepted (what the Azure CLI sends back on an update).
    derived_id = world.registry_id(world.b_subscription, "bderived")
    status, body = await b.call(
        "PUT", derived_id, registry_body(loginServer=world.login_server("bderived"))
    )
    try:
        assert status in (200, 201), body
        assert body["properties"]["loginServer"] == world.login_server("bderived"), body
    finally:
        await delete_if_created(b, derived_id, status)

    # Names are global and case-insensitive: B cannot create A's `victimreg` as `VictimReg`.
    clash_id = world.registry_id(world.b_subscription, "VictimReg")
    status, body = await b.call("PUT", clash_id, registry_body())
    try:
        assert status == 409 and arm_error(body).get("code") == "AlreadyInUse", (status, body)
    finally:
        await delete_if_created(b, clash_id, status)


# -- 2. a token B obtains from any Host does not reach victimreg -----------------------------------


async def test_token_from_any_host_does_not_reach_victimreg(
    http: aiohttp.ClientSession, world: World
) -> None:
    b = client(http, world, world.b)
    # The attack of issue 10 #1: a registry of B's whose login server is A's plus a slash.
    slash_id = world.registry_id(world.b_subscription, "bslash")
    created, _ = await b.call("PUT", slash_id, registry_body(loginServer=f"{world.victim}/"))
    try:
        hosts = [
            world.breg,
            f"{world.victim}/",
            world.victim.upper(),
            f"{world.victim.upper()}/",
            f"VictimReg.localhost:{world.port}",
            f"127.0.0.1:{world.port}",
        ]
        scope = f"repository:{PRIVATE_REPO}:pull,push,delete"
        problems = []
        for host in hosts:
            _, token = await dp_token(http, world, host, world.b.basic, scope)
            if token is None:
                continue  # refused outright: nothing to use
            bearer = f"Bearer {token}"
            attempts = [
                ("GET", f"/v2/{PRIVATE_REPO}/manifests/1", {"headers": {"Accept": OCI_MANIFEST}}),
                ("POST", f"/v2/{PRIVATE_REPO}/blobs/uploads/", {}),
                ("DELETE", f"/v2/{PRIVATE_REPO}/manifests/{world.private_manifest}", {}),
            ]
            for method, path, extra in attempts:
                got = await call(http, world, method, path, world.victim, bearer, **extra)
                if got.status != 401:
                    problems.append(
                        f"token from Host {host!r}: {method} {path} on victimreg → {got.status}"
                    )
        assert not problems, "\n".join(problems)
    finally:
        await delete_if_created(b, slash_id, created)
        # Where the DELETE went through, put A's image back (same bytes, same digest) so the
        # tests after this one still find it.
        restored = await push_image(http, world.url, world.victim, world.a.basic, PRIVATE_REPO, "1")
        assert restored == world.private_manifest

    # Control: A's own token reads its image.
    _, token = await dp_token(
        http, world, world.victim, world.a.basic, f"repository:{PRIVATE_REPO}:pull"
    )
    assert token is not None
    got = await call(
        http,
        world,
        "GET",
        f"/v2/{PRIVATE_REPO}/manifests/1",
        world.victim,
        f"Bearer {token}",
        headers={"Accept": OCI_MANIFEST},
    )
    assert got.status == 200 and sha256(got.body) == world.private_manifest, got


# -- 3. import source spoofing -------------------------------------------------------------------


async def test_import_from_docker_io_never_resolves_to_a_local_registry(
    http: aiohttp.ClientSession, world: World
) -> None:
    a, b = client(http, world, world.a), client(http, world, world.b)
    hub_config = json.dumps({"architecture": "amd64", "os": "linux", "from": "the hub"}).encode()
    hub_layer = b"the real hello-world " + secrets.token_bytes(64)
    spoof_id = world.registry_id(world.b_subscription, "tenantbhub")
    async with StaticUpstream(world.hub_port) as hub:
        real = hub.add_image("library/hello-world", "latest", hub_config, [hub_layer])
        status, body = await b.call(
            "PUT", spoof_id, registry_body(loginServer="docker.io", anonymousPullEnabled=True)
        )
        spoofed = status in (200, 201)
        try:
            if spoofed:  # the attack went through: B's fake image at docker.io/library/hello-world
                await push_image(
                    http, world.url, "docker.io", world.b.basic, "library/hello-world", "latest"
                )
            final = await _import_hello(a, world)
        finally:
            await delete_if_created(b, spoof_id, status)
        assert final["status"] == "Succeeded", final
        got = await call(
            http,
            world,
            "GET",
            "/v2/hello/manifests/1",
            world.victim,
            world.a.basic,
            headers={"Accept": OCI_MANIFEST},
        )
        assert got.status == 200, got
        assert got.body == real, (
            "A's import of docker.io/library/hello-world did not come from the upstream"
        )
        assert any(
            line.startswith("GET /v2/library/hello-world/blobs/") for line in hub.requests
        ), hub.requests
    assert not spoofed, f"B created a registry with login server docker.io: {status} {body}"


async def _import_hello(a: IdentityClient, world: World) -> dict[str, Any]:
    body = {
        "source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:latest"},
        "targetTags": ["hello:1"],
        "mode": "Force",
    }
    status, final = await run_import(a, world.victim_id, body)
    assert status == 202, final
    return dict(final)


# -- 4. address takeover -------------------------------------------------------------------------


async def test_service_addresses_cannot_be_taken_over(
    http: aiohttp.ClientSession, world: World
) -> None:
    b = client(http, world, world.b)
    addresses = [f"127.0.0.1:{world.port}", f"localhost:{world.port}"]
    outcomes = []
    for i, address in enumerate(addresses):
        registry_id = world.registry_id(world.b_subscription, f"btakeover{i}")
        status, body = await b.call("PUT", registry_id, registry_body(loginServer=address))
        outcomes.append((registry_id, status, body))
    try:
        for address in addresses:
            got = await call(
                http,
                world,
                "GET",
                "/v2/marker/manifests/1",
                address,
                world.root.basic,
                headers={"Accept": OCI_MANIFEST},
            )
            assert got.status == 200 and sha256(got.body) == world.default_marker, (address, got)
        for registry_id, status, body in outcomes:
            assert status == 400, f"B created {registry_id} on a service address: {status} {body}"
    finally:
        for registry_id, status, _ in outcomes:
            await delete_if_created(b, registry_id, status)

    # A Host naming no registry is not the default registry.
    nowhere = f"nosuchreg.localhost:{world.port}"
    got = await call(
        http,
        world,
        "GET",
        "/v2/marker/manifests/1",
        nowhere,
        world.root.basic,
        headers={"Accept": OCI_MANIFEST},
    )
    assert got.status == 404 and got.oci_code() == "NAME_UNKNOWN", got


# -- 5. tokens do not outlive their registry ------------------------------------------------------


async def test_token_does_not_outlive_its_registry(
    http: aiohttp.ClientSession, world: World
) -> None:
    a, b = client(http, world, world.a), client(http, world, world.b)
    name = f"reused{uuid.uuid4().hex[:8]}"
    host = world.login_server(name)
    a_id, b_id = (
        world.registry_id(world.a_subscription, name),
        world.registry_id(world.b_subscription, name),
    )
    await a.create_registry(world.a_subscription, "default", name)
    _, old = await dp_token(http, world, host, world.a.basic, "repository:app:pull,push")
    assert old is not None
    assert (await call(http, world, "GET", "/v2/app/tags/list", host, f"Bearer {old}")).status in (
        200,
        404,
    )
    await a.ok("DELETE", a_id)

    await b.create_registry(world.b_subscription, "default", name)
    try:
        pushed = await push_image(http, world.url, host, world.b.basic, "app", "1")
        for method, path in (
            ("GET", "/v2/app/manifests/1"),
            ("GET", "/v2/app/tags/list"),
            ("POST", "/v2/app/blobs/uploads/"),
            ("DELETE", f"/v2/app/manifests/{pushed}"),
        ):
            got = await call(http, world, method, path, host, f"Bearer {old}")
            assert got.status == 401, (
                f"A's token of the deleted registry: {method} {path} → {got.status}"
            )
    finally:
        await b.call("DELETE", b_id)


# -- 6 and 7. knowing a digest gives no bytes ------------------------------------------------------


async def test_import_of_a_manifest_naming_a_foreign_digest_gets_no_bytes(
    http: aiohttp.ClientSession, world: World
) -> None:
    b = client(http, world, world.b)
    config = json.dumps({"architecture": "amd64", "os": "linux", "by": "tenant b"}).encode()
    async with StaticUpstream(world.evil_port) as evil:
        # A control image the upstream serves whole: the upstream is reachable and importable.
        evil.add_image("fine", "1", config, [b"an honest layer " + secrets.token_bytes(32)])
        # The attack: A's private layer digest and size, never served.
        evil.add_image("evil", "latest", config, [world.private_layer], serve=False)
        evil.blobs[sha256(config)] = config

        def body(image: str, tag: str) -> dict[str, Any]:
            return {
                "source": {"registryUri": evil.host, "sourceImage": image},
                "targetTags": [tag],
                "mode": "Force",
            }

        status, final = await run_import(b, world.breg_id, body("fine:1", "fine:1"))
        assert status == 202 and final["status"] == "Succeeded", final
        status, final = await run_import(b, world.breg_id, body("evil:latest", "stolen:1"))
        assert status == 202, final
        assert final["status"] == "Failed", f"the import of a manifest naming A's layer: {final}"

    _, token = await dp_token(http, world, world.breg, world.b.basic, "repository:stolen:pull")
    assert token is not None
    got = await call(
        http, world, "GET", f"/v2/stolen/blobs/{world.layer_digest}", world.breg, f"Bearer {token}"
    )
    assert got.status == 404 and got.oci_code() == "BLOB_UNKNOWN", (got.status, got.body[:200])


async def test_mount_of_a_foreign_digest_is_an_upload_not_a_link(
    http: aiohttp.ClientSession, world: World
) -> None:
    _, token = await dp_token(http, world, world.breg, world.b.basic, "repository:a:pull,push")
    assert token is not None
    bearer = f"Bearer {token}"
    for query in (f"mount={world.layer_digest}", f"mount={world.layer_digest}&from={PRIVATE_REPO}"):
        got = await call(http, world, "POST", f"/v2/a/blobs/uploads/?{query}", world.breg, bearer)
        assert got.status == 202, (
            f"POST /v2/a/blobs/uploads/?{query} → {got.status} (201 = A's blob linked)"
        )
        location = got.headers.get("Location", "")
        assert "/blobs/uploads/" in location, got.headers
        await call(
            http,
            world,
            "DELETE",
            path_of(location),
            world.breg,
            bearer,
        )
    got = await call(http, world, "HEAD", f"/v2/a/blobs/{world.layer_digest}", world.breg, bearer)
    assert got.status == 404, got


# -- 8. revocation --------------------------------------------------------------------------------


async def test_expired_registry_token_password_stops_working(
    http: aiohttp.ClientSession, world: World
) -> None:
    a = client(http, world, world.a)
    name = f"short{uuid.uuid4().hex[:8]}"
    await a.ok(
        "PUT",
        f"{world.victim_id}/scopeMaps/{name}-map",
        {"properties": {"actions": [f"repositories/{PRIVATE_REPO}/content/read"]}},
    )
    await a.ok(
        "PUT",
        f"{world.victim_id}/tokens/{name}",
        {"properties": {"scopeMapId": f"{world.victim_id}/scopeMaps/{name}-map"}},
    )
    lifetime = 4
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
    created = await a.ok(
        "POST",
        f"{world.victim_id}/generateCredentials",
        {"tokenId": f"{world.victim_id}/tokens/{name}", "name": "password1", "expiry": expiry},
    )
    password = created["passwords"][0]["value"]
    authorization = basic(name, password)
    path = f"/v2/{PRIVATE_REPO}/tags/list"
    assert (await call(http, world, "GET", path, world.victim, authorization)).status == 200

    async def refused() -> bool:
        return (await call(http, world, "GET", path, world.victim, authorization)).status == 401

    # Used successfully right up to the expiry (which keeps any verification cache warm).
    waited = await eventually(refused, timeout=lifetime + 10, interval=0.5)
    assert waited is not None, (
        f"the password still works {lifetime + 10} s after its {lifetime} s expiry"
    )


async def _revocation_setup(
    http: aiohttp.ClientSession, world: World, label: str
) -> tuple[IdentityClient, Credential, dict[str, Any], Callable[[], Awaitable[bool]]]:
    """A new service principal of A's tenant with AcrPush on victimreg, its data-plane
    access token (used once, successfully), and a probe that is true once the token is refused."""
    root = client(http, world, world.root)
    sp = await root.create_service_principal(f"{label}-{uuid.uuid4().hex[:6]}")
    assignment = await root.assign(world.victim_id, sp.object_id, "AcrPush")
    _, token = await dp_token(
        http, world, world.victim, sp.basic, f"repository:{PRIVATE_REPO}:pull,push"
    )
    assert token is not None
    path = f"/v2/{PRIVATE_REPO}/manifests/1"
    used = await call(
        http, world, "GET", path, world.victim, f"Bearer {token}", headers={"Accept": OCI_MANIFEST}
    )
    assert used.status == 200, used

    async def refused() -> bool:
        got = await call(
            http,
            world,
            "GET",
            path,
            world.victim,
            f"Bearer {token}",
            headers={"Accept": OCI_MANIFEST},
        )
        return got.status == 401

    return root, sp, assignment, refused


async def test_access_token_dies_with_its_principal(
    http: aiohttp.ClientSession, world: World
) -> None:
    root, sp, _, refused = await _revocation_setup(http, world, "deleted")
    status, body = await root.call("DELETE", f"/transship/v1/servicePrincipals/{sp.object_id}")
    assert status in (200, 204), body
    waited = await eventually(refused, timeout=12)
    assert waited is not None, "a deleted principal's data-plane token still works 12 s later"


async def test_access_token_dies_with_its_role_assignment(
    http: aiohttp.ClientSession, world: World
) -> None:
    root, _, assignment, refused = await _revocation_setup(http, world, "unassigned")
    status, body = await root.call("DELETE", assignment["id"])
    assert status in (200, 204), body
    waited = await eventually(refused, timeout=12)
    assert waited is not None, (
        "a data-plane token still works 12 s after its role assignment was removed"
    )


# -- 9. token confusion ---------------------------------------------------------------------------


async def test_tokens_work_only_where_they_were_issued(
    http: aiohttp.ClientSession, world: World
) -> None:
    a = client(http, world, world.a)
    _, data_plane = await dp_token(
        http, world, world.victim, world.a.basic, f"repository:{PRIVATE_REPO}:pull"
    )
    assert data_plane is not None
    # On the management API, addressed to the service and to the token's own login server.
    for host in (None, world.victim):
        got = await call(
            http,
            world,
            "GET",
            f"{world.victim_id}?api-version=2025-04-01",
            host,
            f"Bearer {data_plane}",
        )
        assert got.status == 401, ("a data-plane token on the management API", host, got)
    status, body = await a.call("GET", world.victim_id)  # control: A's management token
    assert status == 200, body

    # Entra tokens on the data plane: for the management API, for ACR (only good for the
    # exchange), and for the login server's own origin.
    path = f"/v2/{PRIVATE_REPO}/manifests/1"
    for scope in (
        None,
        "https://containerregistry.azure.net/.default",
        f"http://{world.victim}/.default",
    ):
        status, body = await a.token(scope)
        if status != 200:
            assert scope is not None and "containerregistry" not in scope, body
            continue  # not issued at all: nothing to misuse
        entra = f"Bearer {body['access_token']}"
        got = await call(
            http, world, "GET", path, world.victim, entra, headers={"Accept": OCI_MANIFEST}
        )
        assert got.status == 401, ("an Entra token on the data plane", scope, got.status)

    _, b_token = await dp_token(
        http, world, world.breg, world.b.basic, f"repository:{PRIVATE_REPO}:pull"
    )
    assert b_token is not None
    got = await call(
        http,
        world,
        "GET",
        path,
        world.victim,
        f"Bearer {b_token}",
        headers={"Accept": OCI_MANIFEST},
    )
    assert got.status == 401, ("B's registry's token with A's Host", got.status)
    # Control: the same kind of token, where it was issued, is accepted (404: B has no such image).
    got = await call(
        http, world, "GET", path, world.breg, f"Bearer {b_token}", headers={"Accept": OCI_MANIFEST}
    )
    assert got.status == 404, got


# -- 10. slow clients -----------------------------------------------------------------------------


async def test_slow_clients_are_timed_out(http: aiohttp.ClientSession, world: World) -> None:
    count = 100
    opened = [await asyncio.open_connection("127.0.0.1", world.port) for _ in range(count)]
    began = time.monotonic()
    for _, writer in opened:
        writer.write(b"GET /v2/mark")  # half a request line, then nothing
        await writer.drain()

    async def closed(reader: asyncio.StreamReader) -> float:
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        return time.monotonic() - began

    waiting = asyncio.gather(*(closed(reader) for reader, _ in opened))
    try:
        healthy = await call(http, world, "GET", "/healthz", None)
        assert healthy.status == 200, healthy
        try:
            times = await asyncio.wait_for(waiting, timeout=HEADER_TIMEOUT + 8)
        except TimeoutError:
            pytest.fail(
                f"{count} stalled connections were not all closed within {HEADER_TIMEOUT + 8} s"
            )
        assert max(times) <= HEADER_TIMEOUT + 8, times
    finally:
        waiting.cancel()
        for _, writer in opened:
            writer.close()


async def test_a_slow_but_progressing_upload_is_not_cut(
    http: aiohttp.ClientSession, world: World
) -> None:
    """The body-idle timeout (2 s here) counts silence, not the whole body: a blob sent in
    pieces 1 s apart, 4 s in all, is stored."""
    pieces = [secrets.token_bytes(4096) for _ in range(5)]
    blob = b"".join(pieces)
    got = await call(
        http, world, "POST", "/v2/slow/upload/blobs/uploads/", world.victim, world.a.basic
    )
    assert got.status == 202, got

    async def trickle() -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(HEADER_TIMEOUT / 2)  # the slow client itself, not a wait
            yield piece

    location = path_of(got.headers["Location"])
    separator = "&" if "?" in location else "?"
    got = await call(
        http,
        world,
        "PUT",
        f"{location}{separator}digest={sha256(blob)}",
        world.victim,
        world.a.basic,
        data=trickle(),
    )
    assert got.status == 201, (got.status, got.body[:300])


async def test_password_guessing_from_one_address_is_throttled(
    http: aiohttp.ClientSession,
    transship_factory: Callable[..., TransshipServer],
    database_url: str | None,
) -> None:
    """Wrong passwords for several real principals, round robin, from one address (its own
    server, as every client of this suite is 127.0.0.1): the address is throttled before any
    one principal reaches its own limit."""
    limit = 10
    server = await asyncio.to_thread(
        transship_factory,
        database_url=database_url,
        data_plane_auth=True,
        env={"TRANSSHIP_AUTH_FAILURE_LIMIT_PER_CLIENT": str(limit)},
    )
    owner = IdentityClient(http, server.url, owner_credential(server.data_dir))
    targets = [owner.credential.client_id] + [
        (await owner.create_service_principal(f"target{i}")).client_id for i in range(4)
    ]
    statuses = []
    last: tuple[int, dict[str, str], bytes] | None = None
    for i in range(limit * 3):
        guess = basic(targets[i % len(targets)], secrets.token_urlsafe(16))
        async with http.get(f"{server.url}/v2/", headers={"Authorization": guess}) as r:
            last = (r.status, dict(r.headers), await r.read())
        statuses.append(last[0])
        if last[0] == 429:
            break
    assert last is not None and last[0] == 429, f"no 429 after {len(statuses)} guesses: {statuses}"
    assert set(statuses[:-1]) <= {401}, statuses
    assert json.loads(last[2])["errors"][0]["code"] == "TOOMANYREQUESTS", last[2]
    assert int(last[1].get("Retry-After", "0")) > 0, last[1]


# -- 11. password guessing -------------------------------------------------------------------------


async def test_password_guessing_is_throttled(http: aiohttp.ClientSession, world: World) -> None:
    root = client(http, world, world.root)
    sp = await root.create_service_principal(f"guessed-{uuid.uuid4().hex[:6]}")
    await root.assign(world.victim_id, sp.object_id, "AcrPull")
    statuses = []
    last: Answer | None = None
    for _ in range(AUTH_FAILURE_LIMIT * 2):
        last = await call(
            http, world, "GET", "/v2/", world.victim, basic(sp.client_id, secrets.token_urlsafe(16))
        )
        statuses.append(last.status)
        if last.status == 429:
            break
    assert last is not None and last.status == 429, (
        f"no 429 after {len(statuses)} wrong passwords: {statuses}"
    )
    assert set(statuses[:-1]) <= {401}, statuses
    assert last.oci_code() == "TOOMANYREQUESTS", last.body
    assert int(last.headers.get("Retry-After", "0")) > 0, last.headers


# -- 12. metrics ----------------------------------------------------------------------------------


async def test_metrics_labels_never_come_from_request_paths(
    http: aiohttp.ClientSession, world: World
) -> None:
    async def metrics() -> str:
        got = await call(http, world, "GET", "/metrics", None)
        if got.status in (401, 403):
            got = await call(http, world, "GET", "/metrics", None, world.root.basic)
        assert got.status == 200, got
        return got.body.decode()

    def counted(text: str) -> int:
        return sum(1 for line in text.splitlines() if "transship_http_requests_total" in line)

    before = counted(await metrics())
    async with http.get(URL(f"{world.url}/v2/a%0a%23evil/x", encoded=True)) as r:
        await r.read()
    segments = [f"zz{secrets.token_hex(6)}" for _ in range(50)]
    for segment in segments:
        await call(http, world, "GET", f"/{segment}/{segment}", None)
    text = await metrics()
    assert not [line for line in text.splitlines() if line.startswith("#evil")], text
    assert "evil" not in text, [line for line in text.splitlines() if "evil" in line]
    leaked = [s for s in segments if s in text]
    assert not leaked, f"{len(leaked)} request path segments became label values"
    assert counted(text) - before <= 5, (
        f"requests_total lines grew from {before} to {counted(text)}"
    )


# -- 13. hygiene ----------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_files_are_private(world: World) -> None:
    data_dir = world.server.data_dir
    assert _mode(data_dir) == 0o700, oct(_mode(data_dir))
    if world.database == "sqlite":
        assert _mode(data_dir / "metadata.db") == 0o600, oct(_mode(data_dir / "metadata.db"))
    blobs = [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]
    assert blobs
    readable = [f"{p.relative_to(data_dir)} {oct(_mode(p))}" for p in blobs if _mode(p) & 0o077]
    assert not readable, readable


async def test_control_character_in_a_name_is_a_400(world: World) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    try:
        writer.write(
            (
                f"GET /v2/a%0d/manifests/v1 HTTP/1.1\r\nHost: {world.victim}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.1 400 ", head), response[:300]
    assert b"NAME_INVALID" in body, response[:600]


async def test_cancelling_an_upload_needs_push_not_delete(
    http: aiohttp.ClientSession, world: World
) -> None:
    a = client(http, world, world.a)
    repo = "uploads/cancel"

    async def registry_token_basic(label: str, actions: list[str]) -> str:
        name = f"{label}{uuid.uuid4().hex[:6]}"
        password = await a.create_token(
            world.victim_id, name, [f"repositories/{repo}/{x}" for x in actions]
        )
        return basic(name, password)

    pusher = await registry_token_basic("pusher", ["content/read", "content/write"])
    deleter = await registry_token_basic("deleter", ["content/read", "content/delete"])

    async def new_upload() -> str:
        got = await call(http, world, "POST", f"/v2/{repo}/blobs/uploads/", world.victim, pusher)
        assert got.status == 202, got
        return path_of(got.headers["Location"])

    upload = await new_upload()
    got = await call(http, world, "DELETE", upload, world.victim, deleter)
    assert got.status in (401, 403), f"delete without push cancelled an upload: {got.status}"
    got = await call(http, world, "DELETE", upload, world.victim, pusher)
    assert got.status == 204, f"push could not cancel its upload: {got.status} {got.body[:200]!r}"
