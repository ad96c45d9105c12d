"""`Database`: the readiness ping answers through the async driver, and fails loudly; the
schema migration runs off the event loop."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

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


def test_a_locked_step_is_tried_again_and_any_other_error_is_raised_at_once() -> None:
    calls: list[int] = []

    def locked_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert db_module._retry_while_locked(locked_twice) == "done" and len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nowhere")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        db_module._retry_while_locked(broken)
    assert len(calls) == 1

    def always_locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db_module._retry_while_locked(always_locked, seconds=0.05)


async def test_a_write_whose_begin_finds_the_database_locked_is_tried_again(
    tmp_path: Path,
) -> None:
    """SQLite may answer BEGIN IMMEDIATE "database is locked" at once, without waiting out
    the busy timeout (seen right after a restart that followed a kill -9): the write on the
    database's thread begins again instead of failing its request. Here the writer's busy
    timeout is 0, so every BEGIN while another connection writes fails so at once."""
    path = tmp_path / "m.db"
    database = Database(f"sqlite:///{path}", durable=False)
    await database.migrate()
    engine = database._sync_writer
    assert engine is not None

    @event.listens_for(engine, "connect")
    def impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")  # after the database's own 60 s

    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        assert await database.write_in_thread(lambda _conn: 7) == 7
        assert not release.is_alive(), "it began before the other writer was done"
    finally:
        release.join()
        other.close()
        await database.close()
