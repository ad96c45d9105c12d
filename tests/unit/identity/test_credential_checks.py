"""Credential checks of the directory (service principals, users) and of registries (tokens):
every hash on the credential pool, failed checks throttled per address and per principal
before any hashing, a remembered success still passing, and a remembered token password
forgotten when it expires."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from transship.identity import secrets as s
from transship.identity.directory import Directory
from transship.identity.registry_access import RegistryAccess
from transship.identity.throttle import FailureThrottle, TooManyFailures
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.metadata.scope import utcnow

PASSWORD = "a long user password"


@dataclass
class World:
    meta: MetadataStore
    directory: Directory
    registry_access: RegistryAccess
    registry: RegistryRecord
    tenant: str
    client_id: str
    secret: str
    hashed_on: list[str]  # the thread of each verification, in order


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    original = s.verify_secret
    hashed_on: list[str] = []

    def spy(secret: str, encoded: str) -> bool:
        hashed_on.append(threading.current_thread().name)
        return original(secret, encoded)

    monkeypatch.setattr(s, "verify_secret", spy)
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    # The cheapest cost: these tests count checks and threads, not scrypt's work.
    hasher = s.SecretHasher(workers=2, max_waiting=8, cost=s.MIN_HASH_COST)
    throttle = FailureThrottle(per_client=3, per_principal=5, window_seconds=60)
    try:
        meta = MetadataStore(database)
        directory = Directory(meta, hasher=hasher, throttle=throttle)
        registry_access = RegistryAccess(
            meta, s.SecretBox(Fernet.generate_key()), hasher=hasher, throttle=throttle
        )
        tenant, subscription, owner = await directory.create_tenant("A")
        await directory.create_user(tenant.id, "dana", PASSWORD)
        async with meta.writing() as q:
            registry = await q.create_registry("one", "one.example", subscription.id, "default")
        assert owner.secret is not None and owner.principal.app_id is not None
        yield World(
            meta,
            directory,
            registry_access,
            registry,
            tenant.id,
            owner.principal.app_id,
            owner.secret.value,
            hashed_on,
        )
    finally:
        hasher.close()
        await database.close()


async def test_every_verification_runs_on_the_credential_pool(world: World) -> None:
    assert await world.directory.authenticate_client(world.client_id, world.secret)
    assert await world.directory.authenticate_user(world.tenant, "dana", PASSWORD)
    assert await world.directory.authenticate_user(world.tenant, "dana", "wrong") is None
    assert len(world.hashed_on) == 3
    assert all(t.startswith(s.HASHER_THREAD_PREFIX) for t in world.hashed_on), world.hashed_on


async def test_an_address_over_its_limit_is_refused_without_hashing(world: World) -> None:
    for _ in range(3):
        found = await world.directory.authenticate_client(
            world.client_id, "guess", address="10.0.0.9"
        )
        assert found is None
    hashed = len(world.hashed_on)
    with pytest.raises(TooManyFailures) as refused:
        # Even a right secret: the check is refused before it is made.
        await world.directory.authenticate_user(world.tenant, "dana", PASSWORD, address="10.0.0.9")
    assert len(world.hashed_on) == hashed
    assert 59 <= refused.value.retry_after <= 60
    # Another address signs in; the guesser's failures were not counted against dana.
    assert await world.directory.authenticate_user(
        world.tenant, "DANA", PASSWORD, address="10.0.0.10"
    )


async def test_a_principal_over_its_limit_is_refused_from_anywhere_unless_remembered(
    world: World,
) -> None:
    # Remembered before the attack: a success the directory need not hash again.
    assert await world.directory.authenticate_user(
        world.tenant, "dana", PASSWORD, address="10.1.0.1"
    )
    for i in range(5):
        assert (
            await world.directory.authenticate_user(
                world.tenant, "Dana", f"guess {i}", address=f"10.0.0.{i}"
            )
            is None
        )
    hashed = len(world.hashed_on)
    with pytest.raises(TooManyFailures, match="user name or client id"):
        await world.directory.authenticate_user(world.tenant, "dana", "guess", address="10.2.0.1")
    assert len(world.hashed_on) == hashed
    assert await world.directory.authenticate_user(
        world.tenant, "dana", PASSWORD, address="10.3.0.1"
    )
    # Unknown names cost no hash and are not counted; other principals are not affected.
    assert await world.directory.authenticate_client(world.client_id, world.secret)


async def test_registry_token_guesses_are_throttled_per_address(world: World) -> None:
    access = world.registry_access
    await access.save_token(world.registry, "ci-bot", "_repositories_pull", True)
    password = (
        await access.generate_token_passwords(world.registry, "ci-bot", ["password1"], None)
    )["password1"]
    for _ in range(3):
        assert (
            await access.authenticate(world.registry, "ci-bot", "guess", address="10.0.0.7") is None
        )
    with pytest.raises(TooManyFailures):
        await access.authenticate(world.registry, "ci-bot", password, address="10.0.0.7")
    # The same address is refused on the directory too: one window per address.
    with pytest.raises(TooManyFailures):
        await world.directory.authenticate_client(world.client_id, world.secret, address="10.0.0.7")
    found = await access.authenticate(world.registry, "CI-BOT", password, address="10.0.0.8")
    assert found is not None and found.name == "ci-bot"


async def test_a_remembered_token_password_is_refused_once_it_expires(world: World) -> None:
    access = world.registry_access
    await access.save_token(world.registry, "short-lived", "_repositories_pull", True)
    expiry = utcnow() + timedelta(seconds=1)
    password = (
        await access.generate_token_passwords(world.registry, "short-lived", ["password1"], expiry)
    )["password1"]
    assert await access.authenticate(world.registry, "short-lived", password) is not None
    # Waiting for the clock is the point of this test: the password's own expiry.
    await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()) + 0.05)
    assert await access.authenticate(world.registry, "short-lived", password) is None


async def test_a_remembered_token_password_without_expiry_needs_no_second_hash(
    world: World,
) -> None:
    access = world.registry_access
    await access.save_token(world.registry, "long-lived", "_repositories_pull", True)
    password = (
        await access.generate_token_passwords(world.registry, "long-lived", ["password1"], None)
    )["password1"]
    assert await access.authenticate(world.registry, "long-lived", password) is not None
    hashed = len(world.hashed_on)
    assert await access.authenticate(world.registry, "long-lived", password) is not None
    assert len(world.hashed_on) == hashed


async def test_concurrent_sign_ins_beyond_the_limit_all_pass(world: World) -> None:
    """Only failures count: ten parallel sign-ins of a CI system from one address pass a
    limit of three."""
    results = await asyncio.gather(
        *(
            world.directory.authenticate_client(world.client_id, world.secret, address="10.0.0.5")
            for _ in range(10)
        )
    )
    assert all(r is not None for r in results)
