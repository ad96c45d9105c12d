"""Caches follow the change feed: two sets of services over one database stand for two
processes (each with its own change hub, the second with its listener running). What the
first revokes or changes, the second stops trusting within a second, although every one
of its caches had just been filled and their times to live are 5 to 60 s. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from cryptography.fernet import Fernet

from transship.identity.access import AccessControl
from transship.identity.directory import Directory
from transship.identity.model import Principal
from transship.identity.rbac import Actions, builtin_role
from transship.identity.registry_access import RegistryAccess
from transship.identity.secrets import SecretBox
from transship.identity.tokens import SigningKeys, TokenService
from transship.imports.engine import ImportEngine
from transship.imports.service import ImportService, RunnerSettings
from transship.metadata.changes import ChangeHub, ChangeListener
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.worker.supervisor import Supervisor

WITHIN = 1.0  # the feature's bound


@dataclass
class Process:
    meta: MetadataStore
    directory: Directory
    access: AccessControl
    registry_access: RegistryAccess
    imports: ImportService


@dataclass
class World:
    here: Process  # writes
    there: Process  # caches, and listens
    registry: RegistryRecord
    scope: str
    app: Principal
    secret: str
    box: SecretBox


def _process(db: Database, box: SecretBox) -> Process:
    meta = MetadataStore(db, ChangeHub())
    # The engine is never reached: these tests only queue jobs and wait for the wake-up.
    engine = cast(ImportEngine, object())
    return Process(
        meta,
        Directory(meta),
        AccessControl(meta),
        RegistryAccess(meta, box),
        ImportService(meta, engine, box, RunnerSettings()),
    )


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    db = Database(database_url or f"sqlite:///{tmp_path}/m.db", durable=False)
    await db.migrate()
    box = SecretBox(Fernet.generate_key())
    here, there = _process(db, box), _process(db, box)
    supervisor = Supervisor()
    supervisor.add("change-feed", ChangeListener(db, there.meta.changes).run_forever)
    try:
        tenant, subscription, _ = await here.directory.create_tenant("A")
        app = await here.directory.create_service_principal(tenant.id, "app")
        assert app.secret is not None
        async with here.meta.writing() as q:
            registry = await q.create_registry("one", "one.example", subscription.id, "default")
        supervisor.start()
        await asyncio.wait_for(
            supervisor.wait_for(lambda s: s["change-feed"].heartbeat_age_seconds is not None),
            5,
        )
        scope = (
            f"/subscriptions/{subscription.id}/resourceGroups/default"
            "/providers/Microsoft.ContainerRegistry/registries/one"
        )
        yield World(here, there, registry, scope, app.principal, app.secret.value, box)
    finally:
        await supervisor.stop()
        await db.close()


async def within(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; fail when it still does not after WITHIN seconds."""
    deadline = time.monotonic() + WITHIN
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WITHIN} s")
        await asyncio.sleep(0.02)


async def test_a_revoked_role_assignment_stops_working_in_the_other_process(
    world: World,
) -> None:
    reader = builtin_role("Reader")
    assert reader is not None
    record = await world.here.access.assign(None, world.scope, world.app, reader)
    there = world.there.access

    async def allowed() -> bool:
        return await there.allowed(world.app, Actions.REGISTRIES_READ, world.scope)

    await within(allowed, "the assignment made elsewhere")  # also: a grant arrives too
    assert await allowed()  # cached now
    await world.here.access.unassign(record.id)

    async def refused() -> bool:
        return not await allowed()

    await within(refused, "the revocation made elsewhere")


async def test_a_reset_service_principal_secret_stops_working_in_the_other_process(
    world: World,
) -> None:
    there = world.there.directory
    assert await there.authenticate_client(world.app.app_id or "", world.secret) is not None
    await world.here.directory.reset_secret(world.app, append=False)

    async def refused() -> bool:
        return await there.authenticate_client(world.app.app_id or "", world.secret) is None

    await within(refused, "the secret reset elsewhere")


async def test_a_deleted_registry_token_stops_working_in_the_other_process(
    world: World,
) -> None:
    here, there = world.here.registry_access, world.there.registry_access
    await here.save_token(world.registry, "puller", "_repositories_pull", True)
    passwords = await here.generate_token_passwords(world.registry, "puller", ["password1"], None)
    password = passwords["password1"]
    assert await there.authenticate(world.registry, "puller", password) is not None
    await here.delete_token(world.registry, "puller")

    async def refused() -> bool:
        return await there.authenticate(world.registry, "puller", password) is None

    await within(refused, "the token deleted elsewhere")


async def test_registry_settings_changed_elsewhere_apply_in_the_other_process(
    world: World,
) -> None:
    there = world.there.registry_access
    assert not (await there.settings(world.registry)).anonymous_pull  # cached now
    await world.here.registry_access.update(
        world.registry, anonymous_pull=True, default_action="Deny", ip_rules=["10.0.0.0/8"]
    )

    async def applied() -> bool:
        settings = await there.settings(world.registry)
        return settings.anonymous_pull and settings.network.default_action == "Deny"

    await within(applied, "the settings changed elsewhere")


async def test_a_job_queued_elsewhere_wakes_the_idle_claiming_loop(world: World) -> None:
    there = world.there.imports
    # A claiming loop idles far longer than the bound: only the feed can wake it in time.
    waiting = asyncio.create_task(there.wait_for_work(30))
    await asyncio.sleep(0)
    async with world.here.meta.writing() as q:
        await q.jobs.create_job("a" * 32, world.registry.id, "{}", None)
    await asyncio.wait_for(waiting, WITHIN)


async def test_a_key_rotated_elsewhere_verifies_at_once(world: World) -> None:
    here_keys = SigningKeys(world.here.meta, world.box)
    await here_keys.load()
    there_keys = SigningKeys(world.there.meta, world.box)
    await there_keys.load()
    there = TokenService(there_keys)
    # As if a token with an unknown key id had just made it reload: rate-limited for 5 s.
    there._refreshed_at = time.monotonic()
    await here_keys.rotate()
    token, _ = TokenService(here_keys).issue(
        {"aud": "svc", "iss": "https://svc"}, timedelta(minutes=5)
    )

    async def told() -> bool:
        return there_keys.rotated

    await within(told, "the rotation elsewhere")
    claims = await there.verify(token, audiences={"svc"})
    assert claims["aud"] == "svc"
