"""Two real `transship serve` processes over one database (PostgreSQL, or the embedded SQLite
file of a shared data directory): a revocation made through one is refused by the other
within a second, although the other had just cached the grant (its caches live 5 to 60 s).
On PostgreSQL, the listener's connection is then cut (`pg_terminate_backend`): it reconnects,
`/readyz` shows the restart, and revocations reach the process again.

Checked through the public API only: a service principal's role assignment (management
plane), a registry token's Docker login (data plane), a service principal's reset secret."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.peers.postgres import PostgresCluster
from tests.peers.transship import TransshipServer
from tests.support.identity import (
    Credential,
    IdentityClient,
    basic,
    owner_credential,
    registry_token,
)

pytestmark = pytest.mark.peers

WITHIN = 1.0  # the feature's bound
GROUP = "rgfeed"


@dataclass
class Pair:
    first: TransshipServer  # where changes are made
    second: TransshipServer  # where they must take effect
    data_dir: Path
    database_url: str | None


@pytest.fixture
def pair(tmp_path: Path, database_url: str | None) -> Iterator[Pair]:
    """Two servers sharing one data directory (its service key, owner credential and, without
    a database URL, its SQLite file) and one database."""
    data_dir = tmp_path / "shared"
    servers = [
        TransshipServer(
            tmp_path / name, database_url=database_url, data_dir=data_dir, data_plane_auth=True
        )
        for name in ("first", "second")
    ]
    try:
        for server in servers:  # one after the other: the first start bootstraps the service
            server.start()
        yield Pair(servers[0], servers[1], data_dir, database_url)
    finally:
        for server in servers:
            server.stop()


@dataclass
class World:
    pair: Pair
    http: aiohttp.ClientSession
    owner: IdentityClient  # on the first server
    registry_id: str
    login_server: str

    def on_second(self, credential: Credential) -> IdentityClient:
        return IdentityClient(self.http, self.pair.second.url, credential)


@pytest.fixture
async def world(pair: Pair) -> AsyncIterator[World]:
    async with aiohttp.ClientSession() as http:
        owner = IdentityClient(http, pair.first.url, owner_credential(pair.data_dir))
        subscription = owner.credential.subscription_id
        await owner.create_group(subscription, GROUP)
        created = await owner.create_registry(subscription, GROUP, "feedreg")
        yield World(
            pair,
            http,
            owner,
            owner.registry_id(subscription, GROUP, "feedreg"),
            created["properties"]["loginServer"],
        )


async def within(check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll `check` until it holds; fail when it still does not after WITHIN seconds. The
    seconds it took."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > WITHIN:
            pytest.fail(f"{what}: not within {WITHIN} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def readiness(http: aiohttp.ClientSession, server: TransshipServer) -> dict[str, Any]:
    async with http.get(f"{server.url}/readyz") as answer:
        body: dict[str, Any] = await answer.json(content_type=None)
        body["status_code"] = answer.status
        return body


def change_feed(body: dict[str, Any]) -> dict[str, Any]:
    return next(loop for loop in body["loops"] if loop["name"] == "change-feed")


async def revoke_role_assignment(world: World, name: str) -> None:
    """Reader on the registry, used on the second server (cached there), removed on the
    first: the second refuses within the bound."""
    principal = await world.owner.create_service_principal(name)
    assignment = await world.owner.assign(world.registry_id, principal.object_id, "Reader")
    client = world.on_second(principal)

    async def allowed() -> bool:
        return (await client.call("GET", world.registry_id))[0] == 200

    await within(allowed, "the assignment")
    assert await allowed()  # and cached now
    status, _ = await world.owner.call("DELETE", assignment["id"])
    assert status == 200

    async def refused() -> bool:
        return (await client.call("GET", world.registry_id))[0] == 403

    await within(refused, "the revoked role assignment on the other server")


async def test_a_revoked_role_assignment_is_refused_by_the_other_server(world: World) -> None:
    await revoke_role_assignment(world, "revokee")
    body = await readiness(world.http, world.pair.second)
    assert body["status_code"] == 200, body
    assert change_feed(body)["state"] == "running"


async def test_a_deleted_token_is_refused_by_the_other_server(world: World) -> None:
    password = await world.owner.create_token(
        world.registry_id, "feedtoken", ["repositories/app/content/read"]
    )
    login = basic("feedtoken", password)

    async def status() -> int:
        answer, _ = await registry_token(
            world.http,
            world.pair.second.url,
            login,
            ["repository:app:pull"],
            host=world.login_server,
        )
        return answer

    assert await status() == 200  # the password is remembered there now
    answer, _ = await world.owner.call("DELETE", f"{world.registry_id}/tokens/feedtoken")
    assert answer in (200, 202, 204)

    async def refused() -> bool:
        return await status() == 401

    await within(refused, "the deleted token on the other server")


async def test_a_reset_secret_is_refused_by_the_other_server(world: World) -> None:
    principal = await world.owner.create_service_principal("rotated")
    client = world.on_second(principal)
    assert (await client.token())[0] == 200  # the secret is remembered there now
    await world.owner.ok(
        "POST",
        f"/transship/v1/servicePrincipals/{principal.object_id}/credentials/reset",
        {"append": False},
    )

    async def refused() -> bool:
        return (await client.token())[0] != 200

    await within(refused, "the reset secret on the other server")


async def test_the_listener_reconnects_after_postgresql_cuts_it(
    world: World, postgres: PostgresCluster
) -> None:
    url = world.pair.database_url
    if url is None:
        pytest.skip("SQLite polls its counters; there is no connection to cut")
    database = url.rsplit("/", 1)[1]
    killed = await asyncio.to_thread(
        postgres.psql,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE application_name = 'transship change feed' AND datname = '{database}'",
    )
    assert killed.strip() == "2", killed  # one listener per server

    async def restarted() -> bool:
        feed = change_feed(await readiness(world.http, world.pair.second))
        return feed["restarts"] >= 1 and feed["state"] == "running"

    deadline = time.monotonic() + 10
    while not await restarted():
        assert time.monotonic() < deadline, await readiness(world.http, world.pair.second)
        await asyncio.sleep(0.05)
    feed = change_feed(await readiness(world.http, world.pair.second))
    assert feed["lastError"] == "transship.metadata.changes.ChangeFeedLost", feed
    # The feed resumed: a revocation reaches the other server within the bound again.
    await revoke_role_assignment(world, "after-reconnect")
