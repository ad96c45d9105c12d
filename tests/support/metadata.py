"""A migrated metadata store for tests of the layers above the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore


@asynccontextmanager
async def migrated_database(database_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database over `database_url` (None: a new SQLite file under `tmp_path`),
    closed when the block exits."""
    db = Database(database_url or f"sqlite:///{tmp_path}/m.db", durable=False)
    await db.migrate()
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def migrated_store(database_url: str | None, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    """A store over `database_url` (None: a new SQLite file under `tmp_path`), migrated and
    holding the default registry; its engines are closed when the block exits."""
    async with migrated_database(database_url, tmp_path) as db:
        store = MetadataStore(db)
        async with store.writing() as q:
            await q.ensure_default_registry("default")
        yield store
