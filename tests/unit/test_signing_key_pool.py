"""The worker's pool of signing keys (tests/support/signing_key_pool.py) and its use by the
services tests start in-process (tests/conftest.py)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import cast

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.signing_key_pool import SigningKeyPool
from transship.identity import tokens
from transship.identity.secrets import SecretBox
from transship.identity.tokens import SigningKeys
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore


class Maker:
    """Stand-in keys told apart by their number (the pool never looks inside a key)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> rsa.RSAPrivateKey:
        self.calls += 1
        return cast(rsa.RSAPrivateKey, self.calls)


def test_the_first_keys_are_made_then_handed_out_again_in_turn() -> None:
    maker = Maker()
    pool = SigningKeyPool(maker, size=3)
    taken = [pool.take() for _ in range(8)]
    assert taken == [1, 2, 3, 1, 2, 3, 1, 2]
    assert maker.calls == 3
    assert all(a != b for a, b in itertools.pairwise(taken))  # never twice in a row


def test_a_pool_too_small_to_rotate_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than 2"):
        SigningKeyPool(Maker(), size=1)


def test_threads_taking_at_once_fill_the_pool_once() -> None:
    maker = Maker()
    pool = SigningKeyPool(maker, size=4)
    taken: list[rsa.RSAPrivateKey] = []
    threads = [threading.Thread(target=lambda: taken.append(pool.take())) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert maker.calls == 4
    assert sorted(cast(list[int], taken)) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


async def _kids(path: Path, rotations: int) -> list[str]:
    database = Database(f"sqlite:///{path}", durable=False)
    await database.migrate()
    try:
        keys = SigningKeys(MetadataStore(database), SecretBox(Fernet.generate_key()))
        await keys.load()
        kids = [keys.jwks()["keys"][0]["kid"]]
        for _ in range(rotations):
            kids.append(await keys.rotate())
        return kids
    finally:
        await database.close()


async def test_services_take_their_keys_from_the_pool(
    tmp_path: Path, signing_key_pool: SigningKeyPool
) -> None:
    assert tokens.new_signing_key == signing_key_pool.take
    first = await _kids(tmp_path / "a.db", rotations=2)
    assert len(set(first)) == 3  # a rotation never gets the key it retires


@pytest.mark.fresh_signing_keys
async def test_a_test_marked_fresh_signing_keys_makes_its_own(
    tmp_path: Path, signing_key_pool: SigningKeyPool
) -> None:
    assert tokens.new_signing_key != signing_key_pool.take
    assert len(set(await _kids(tmp_path / "b.db", rotations=1))) == 2
