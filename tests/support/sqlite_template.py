"""A migrated SQLite metadata file that tests copy instead of migrating each new database.

Migrating a new SQLite file runs every Alembic revision (~85 ms of CPU, ~250 ms on a loaded
worker), and most tests start from a new file: hundreds of times per worker. The template
is migrated once, by the real `Database.migrate`, and copied into each new empty database
file a test migrates; `migrate` then runs as usual and finds the schema at its newest
revision (its own check, no Alembic). PostgreSQL tests do the same with
``CREATE DATABASE … TEMPLATE`` (``postgres_template`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from transship.metadata.db import Database

Migrate = Callable[[Database], Awaitable[None]]


class SqliteTemplate:
    """The template file in `directory`, migrated by `migrate` on first use."""

    def __init__(self, directory: Path, migrate: Migrate) -> None:
        self._path = directory / "template.db"
        self._migrate = migrate
        self._lock = threading.Lock()

    def copy_into(self, target: Path) -> None:
        """Overwrite `target` (a new, empty database file) with the template's bytes,
        keeping `target`'s file mode. Blocking: call it on a thread."""
        with self._lock:
            if not self._path.exists():
                asyncio.run(self._make())
        shutil.copyfile(self._path, target)

    async def _make(self) -> None:
        database = Database(f"sqlite:///{self._path}", durable=False)
        try:
            await self._migrate(database)
        finally:
            await database.close()  # checkpoints the WAL: the file alone holds the schema

    def wrapping(self, migrate: Migrate) -> Migrate:
        """`migrate`, first copying the template into a database that is a new SQLite file."""

        async def from_template(database: Database) -> None:
            target = _new_sqlite_file(database)
            if target is not None:
                await asyncio.to_thread(self.copy_into, target)
            await migrate(database)

        return from_template


def _new_sqlite_file(database: Database) -> Path | None:
    """The database's file when it is SQLite and nothing was written to it yet (`Database`
    creates it empty, mode 0600, before the first connection)."""
    if not database.is_sqlite:
        return None
    name = make_url(database.url).database
    if not name or name == ":memory:":
        return None
    path = Path(name)
    siblings = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))
    try:
        empty = path.stat().st_size == 0
    except FileNotFoundError:
        return None
    return path if empty and not any(s.exists() for s in siblings) else None
