"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.metadata import migrated_store
from transship.metadata.queries import MetadataStore


@pytest.fixture
async def meta(tmp_path: Path, database_url: str | None) -> AsyncIterator[MetadataStore]:
    """A migrated store with the default registry, on SQLite and on PostgreSQL (a test
    module that defines its own `meta` uses that one instead)."""
    async with migrated_store(database_url, tmp_path) as store:
        yield store
