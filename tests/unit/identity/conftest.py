"""Fixtures of the identity unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from transship.identity.secrets import MIN_HASH_COST, SecretHasher


@pytest.fixture
def hasher() -> Iterator[SecretHasher]:
    """A credential hasher at scrypt's lowest cost, for tests about what is checked, not
    what a check costs (at the default every tenant's owner secret takes ~50 ms of CPU to
    hash; test_secrets.py covers the default)."""
    made = SecretHasher(cost=MIN_HASH_COST)
    try:
        yield made
    finally:
        made.close()
