"""Database engines for SQLite (embedded default) and PostgreSQL, and schema migration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUrlError(ValueError):
    """The database URL names a database this service cannot use."""


def async_url(url: str) -> str:
    """Map `sqlite:///…` and `postgresql://…` to their async drivers.

    Raises DatabaseUrlError for any other scheme.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False))
    if backend in ("postgresql", "postgres"):
        return str(parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False))
    raise DatabaseUrlError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")


class Database:
    """Two engines over one database: `read()` for snapshots, `write()` for transactions.

    On SQLite, write transactions start with BEGIN IMMEDIATE and share one pooled connection,
    so writers queue in the pool instead of failing with "database is locked"; reads run
    concurrently under WAL. PostgreSQL uses one pool for both.
    """

    def __init__(self, url: str, *, durable: bool = True) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._writer = create_async_engine(self.url, pool_size=1, max_overflow=0, pool_timeout=600)
            self._reader = create_async_engine(self.url, pool_size=8, max_overflow=8)
            _configure_sqlite(self._writer, "BEGIN IMMEDIATE", durable)
            _configure_sqlite(self._reader, "BEGIN", durable)
        else:
            self._writer = create_async_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self._reader = self._writer

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; its snapshot ends when the block exits."""
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction committed when the block exits normally, rolled back on error."""
        async with self._writer.begin() as conn:
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest revision. Safe when several processes start at once."""
        async with self._writer.begin() as conn:
            if not self.is_sqlite:
                # Serialise concurrent starters; released at commit.
                await conn.execute(text("SELECT pg_advisory_xact_lock(7347242)"))
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _configure_sqlite(engine: AsyncEngine, begin: str, durable: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so `begin` below decides the mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)
