"""Fixtures of the registry layer's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    """A migrated SQLite metadata store of the test's own."""
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        yield MetadataStore(database)
    finally:
        await database.close()
