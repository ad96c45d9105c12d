"""`Database`: the readiness ping answers through the async driver, and fails loudly; the
schema migration runs off the event loop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from transship.metadata import db as db_module
from transship.metadata.db import Database


async def test_ping_answers_when_the_database_is_reachable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    try:
        await database.ping()
    finally:
        await database.close()


async def test_ping_raises_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    # The database file becomes a directory before the first connection: SQLite cannot open it.
    (tmp_path / "m.db").unlink()
    (tmp_path / "m.db").mkdir()
    try:
        with pytest.raises(Exception) as raised:
            await database.ping()
        assert "unable to open database file" in str(raised.value)
    finally:
        await database.close()


@pytest.mark.empty_database
async def test_the_migration_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alembic is synchronous Python (60 ms of CPU per run here, 180 ms the first time): run
    on the loop's thread it would stall every request of a starting process."""
    threads: list[int] = []
    upgrade = db_module._upgrade

    def recording_upgrade(connection: Any) -> None:
        threads.append(threading.get_ident())
        upgrade(connection)

    monkeypatch.setattr(db_module, "_upgrade", recording_upgrade)
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    try:
        await database.migrate()
        async with database.read() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await database.close()
    assert version is not None, "the schema was migrated"
    assert threads and threading.get_ident() not in threads


@pytest.mark.empty_database
async def test_a_database_at_the_newest_revision_is_not_migrated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alembic is loaded only when there is something to do: a restart (or a copy of a
    migrated database) costs one query, not a walk through every revision script. (An
    older revision is still upgraded: tests/unit/metadata/test_migrations.py.)"""
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    upgrades: list[int] = []
    upgrade = db_module._upgrade

    def counting_upgrade(connection: Any) -> None:
        upgrades.append(1)
        upgrade(connection)

    monkeypatch.setattr(db_module, "_upgrade", counting_upgrade)
    try:
        await database.migrate()
        assert upgrades == [1]
        await database.migrate()
        assert upgrades == [1], "migrated again at the newest revision"
        async with database.read() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert {version} == db_module._head_revisions()
    finally:
        await database.close()
