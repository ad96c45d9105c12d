"""Upgrades of a database that holds content, on SQLite and PostgreSQL: from every earlier
revision the content survives (a table rebuilt by a migration once cascaded into every
repository on SQLite); migration 0007 (changeable attributes) leaves existing content
unlocked, and its downgrade removes the attributes again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from transship.metadata import db as metadata_db
from transship.metadata.db import Database, async_url
from transship.metadata.queries import MetadataStore
from transship.metadata.records import Attributes
from transship.metadata.schema import CHANGEABLE_ATTRIBUTES
from transship.oci.digest import Digest

DIGEST = Digest.of(b"manifest")
TABLES = ("repositories", "tags", "manifests")


def _alembic(connection: Connection, action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(metadata_db._MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


def _columns(connection: Connection) -> dict[str, set[str]]:
    found = inspect(connection)
    return {table: {c["name"] for c in found.get_columns(table)} for table in TABLES}


async def _on(url: str, action: str, revision: str, *, rows: bool = False) -> dict[str, set[str]]:
    """Migrate `url` to `revision` (`action` upgrade or downgrade), optionally adding one
    repository with a tagged manifest; the columns of the three tables afterwards."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, action, revision)
            if rows:
                now = datetime(2026, 1, 1, tzinfo=UTC)
                # `uid` came with 0004: a database from before it has none.
                has_uid = "uid" in await conn.run_sync(
                    lambda c: {col["name"] for col in inspect(c).get_columns("registries")}
                )
                await conn.execute(
                    text(
                        "INSERT INTO registries (name, is_default, created_at, location, sku"
                        + (
                            ", uid) VALUES ('old', false, :now, 'local', 'Premium', 'u1')"
                            if has_uid
                            else ") VALUES ('old', false, :now, 'local', 'Premium')"
                        )
                    ),
                    {"now": now},
                )
                await conn.execute(
                    text(
                        "INSERT INTO repositories (registry_id, name, created_at)"
                        " SELECT id, 'app', :now FROM registries WHERE name = 'old'"
                    ),
                    {"now": now},
                )
                await conn.execute(
                    text(
                        "INSERT INTO manifests (repository_id, digest, media_type, size, content,"
                        " created_at) SELECT id, :digest, 'm', 1, :content, :now FROM repositories"
                    ),
                    {"digest": str(DIGEST), "content": b"{}", "now": now},
                )
                await conn.execute(
                    text(
                        "INSERT INTO tags (repository_id, name, digest, created_at, updated_at)"
                        " SELECT id, 'v1', :digest, :now, :now FROM repositories"
                    ),
                    {"digest": str(DIGEST), "now": now},
                )
            return await conn.run_sync(_columns)
    finally:
        await engine.dispose()


def _in_thread(url: str, action: str, revision: str, *, rows: bool = False) -> dict[str, set[str]]:
    # Alembic is synchronous: run it on a loop of its own, off the test's.
    return asyncio.run(_on(url, action, revision, rows=rows))


@pytest.mark.empty_database
async def test_existing_content_is_unlocked_and_the_downgrade_removes_the_columns(
    database_url: str | None, tmp_path: Path
) -> None:
    url = database_url or f"sqlite:///{tmp_path}/m.db"
    before = await asyncio.to_thread(_in_thread, url, "upgrade", "0004", rows=True)
    assert not any(set(CHANGEABLE_ATTRIBUTES) & columns for columns in before.values())

    database = Database(url, durable=False)
    await database.migrate()
    try:
        meta = MetadataStore(database)
        async with meta.reading() as q:
            registry = await q.registry_by_name("old")
            assert registry is not None
            repo_id = await q.repository_id(registry.id, "app")
            assert repo_id is not None
            assert await q.attributes("repository", repo_id) == Attributes()
            assert await q.attributes("tag", repo_id, "v1") == Attributes()
            assert await q.attributes("manifest", repo_id, DIGEST) == Attributes()
        async with meta.writing() as q:
            locked = await q.set_attributes("tag", repo_id, "v1", {"write_enabled": False})
        assert locked == Attributes(write_enabled=False)
    finally:
        await database.close()

    after = await asyncio.to_thread(_in_thread, url, "downgrade", "0004")
    assert after == before


@pytest.mark.empty_database
@pytest.mark.parametrize("start", ["0003", "0004", "0005", "0006"])
async def test_an_upgrade_keeps_every_repository_tag_and_manifest(
    database_url: str | None, tmp_path: Path, start: str
) -> None:
    url = database_url or f"sqlite:///{tmp_path}/m.db"
    await asyncio.to_thread(_in_thread, url, "upgrade", start, rows=True)

    database = Database(url, durable=False)
    await database.migrate()
    try:
        async with MetadataStore(database).reading() as q:
            registry = await q.registry_by_name("old")
            assert registry is not None
            repo_id = await q.repository_id(registry.id, "app")
            assert repo_id is not None, f"the upgrade from {start} lost the repository"
            assert await q.tag_digest(repo_id, "v1") == DIGEST
            assert await q.existing_manifests(repo_id, [DIGEST])
    finally:
        await database.close()
