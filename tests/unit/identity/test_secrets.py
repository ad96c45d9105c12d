"""Stored-credential hashing, generated secrets, sealing, and private files."""

from __future__ import annotations

import asyncio
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from transship.identity import secrets as s


def test_a_hash_verifies_its_secret_only() -> None:
    encoded = s.hash_secret("correct horse")
    assert encoded.startswith("scrypt$") and "correct horse" not in encoded
    assert s.verify_secret("correct horse", encoded)
    assert not s.verify_secret("correct horsf", encoded)
    assert s.hash_secret("correct horse") != encoded  # salted


def test_a_hash_records_its_cost_and_verifies_whatever_the_cost_of_new_hashes() -> None:
    default = s.hash_secret("correct horse")
    assert default.split("$")[1] == str(s.DEFAULT_HASH_COST) == "16384"
    cheap = s.hash_secret("correct horse", cost=s.MIN_HASH_COST)
    assert cheap.split("$")[1] == "1024"
    assert s.verify_secret("correct horse", cheap) and s.verify_secret("correct horse", default)
    assert not s.verify_secret("correct horsf", cheap)


def test_a_costly_hash_needs_more_than_openssls_default_memory_and_gets_it() -> None:
    # N = 2**15 takes 32 MiB, past OpenSSL's default limit for scrypt.
    encoded = s.hash_secret("correct horse", cost=2**15)
    assert s.verify_secret("correct horse", encoded)


@pytest.mark.parametrize("cost", [0, 512, 1000, 3 * 1024, 2**21])
def test_a_cost_that_is_no_power_of_two_in_range_is_refused(cost: int) -> None:
    with pytest.raises(ValueError, match=f"scrypt cost {cost} "):
        s.hash_secret("x", cost=cost)
    with pytest.raises(ValueError, match="scrypt cost"):
        s.SecretHasher(cost=cost)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "scrypt$1$2",
        "bcrypt$16384$8$1$AA$AA",
        "scrypt$x$8$1$AA$AA",
        # Costs no hash of Transship has: never an attempt to allocate their memory.
        "scrypt$16$8$1$AA$AA",
        "scrypt$4194304$8$1$AA$AA",
    ],
)
def test_a_malformed_hash_verifies_nothing(encoded: str) -> None:
    assert not s.verify_secret("anything", encoded)


def test_generated_secrets_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    values: Iterator[str] = iter(["-looks-like-an-option", "-again", "fine-value"])
    monkeypatch.setattr(s.secrets, "token_urlsafe", lambda n: next(values))
    assert s.new_secret() == "fine-value"


def test_generated_secrets_are_long_and_distinct() -> None:
    made = {s.new_secret() for _ in range(200)}
    assert len(made) == 200 and all(len(v) >= 43 and not v.startswith("-") for v in made)


def test_sealed_secrets_open_with_their_key_only(tmp_path: Path) -> None:
    box = s.SecretBox.from_key_file(tmp_path / "service.key")
    assert stat.S_IMODE((tmp_path / "service.key").stat().st_mode) == 0o600
    sealed = box.seal(b"upstream password")
    assert b"upstream password" not in sealed
    assert box.open(sealed) == b"upstream password"
    assert s.SecretBox.from_key_file(tmp_path / "service.key").open(sealed) == b"upstream password"
    with pytest.raises(ValueError, match="cannot be opened"):
        s.SecretBox.from_key_file(tmp_path / "other.key").open(sealed)


def test_private_files_are_created_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "owner-credential.json"
    s.write_private_file(path, "{}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- the credential-hashing pool ---------------------------------------------------------------


async def test_the_hasher_hashes_and_verifies_on_threads_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = s.verify_secret
    threads: list[str] = []

    def spy(secret: str, encoded: str) -> bool:
        threads.append(threading.current_thread().name)
        return original(secret, encoded)

    monkeypatch.setattr(s, "verify_secret", spy)
    hasher = s.SecretHasher(workers=2, max_waiting=4)
    try:
        encoded = await hasher.hash("correct horse")
        assert encoded.split("$")[1] == str(s.DEFAULT_HASH_COST)
        assert original("correct horse", encoded)
        assert await hasher.verify("correct horse", encoded)
        assert not await hasher.verify("correct horsf", encoded)
    finally:
        hasher.close()
    assert len(threads) == 2
    assert all(name.startswith(s.HASHER_THREAD_PREFIX + "_") for name in threads), threads


async def test_the_hasher_refuses_at_once_when_its_queue_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck(secret: str, encoded: str) -> bool:
        started.set()
        release.wait(timeout=30)
        return secret == "right"

    monkeypatch.setattr(s, "verify_secret", stuck)
    hasher = s.SecretHasher(workers=1, max_waiting=1)
    try:
        running = asyncio.ensure_future(hasher.verify("right", "x"))
        waiting = asyncio.ensure_future(hasher.verify("wrong", "x"))
        await asyncio.sleep(0)  # both submitted: one on the thread, one queued
        assert await asyncio.to_thread(started.wait, 10)
        with pytest.raises(s.CredentialChecksBusy) as refused:
            await hasher.verify("third", "x")
        assert refused.value.retry_after == 1
        assert "third" not in refused.value.message
        release.set()
        assert await running is True
        assert await waiting is False
        assert await hasher.verify("right", "x")  # the slots were given back
    finally:
        release.set()
        hasher.close()


async def test_a_check_whose_caller_gave_up_holds_its_slot_until_the_hash_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    monkeypatch.setattr(s, "verify_secret", lambda secret, encoded: release.wait(timeout=30))
    hasher = s.SecretHasher(workers=1, max_waiting=0)
    try:
        abandoned = asyncio.ensure_future(hasher.verify("a", "x"))
        await asyncio.sleep(0)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        with pytest.raises(s.CredentialChecksBusy):  # the thread is still hashing
            await hasher.verify("b", "x")
        release.set()
        await asyncio.to_thread(hasher.close)  # waits for the running hash
    finally:
        release.set()
        hasher.close()


@pytest.mark.parametrize(("workers", "max_waiting"), [(0, 1), (1, -1)])
def test_the_hasher_needs_a_thread(workers: int, max_waiting: int) -> None:
    with pytest.raises(ValueError):
        s.SecretHasher(workers, max_waiting)


async def test_the_hasher_hashes_at_its_cost() -> None:
    hasher = s.SecretHasher(workers=1, max_waiting=0, cost=2048)
    try:
        encoded = await hasher.hash("correct horse")
    finally:
        hasher.close()
    assert encoded.split("$")[1] == "2048"
    assert s.verify_secret("correct horse", encoded)
