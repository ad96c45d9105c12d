"""What every query group builds on: one connection, commit callbacks, dialect helpers,
and the translation of the driver's IntegrityError into the domain's Conflict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from transship.errors import Conflict
from transship.metadata import schema as s
from transship.metadata.changes import ChangeHub, Topic, notify_statement
from transship.metadata.db import WRITING, InlineConnection, finish_then_cancel

# Rows converted per turn of the event loop when a scan is streamed (`_scan`): ~0.5 ms of
# row and column-type processing, where a 20,000-row list built at once held the loop ~20 ms.
SCAN_SLICE = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def conflict_from(exc: IntegrityError) -> Conflict:
    """The domain error for a constraint violation. Not the driver's text: PostgreSQL's
    detail quotes the key's values (the IntegrityError stays the cause, for logs)."""
    return Conflict(
        f"a unique key is taken or a referenced row is gone ({type(exc.orig).__name__})"
    )


class QueryScope:
    """Queries bound to one connection. Methods never commit; the scope does."""

    def __init__(
        self, conn: AsyncConnection | InlineConnection, changes: ChangeHub | None = None
    ) -> None:
        """`changes`: the process's hub, told after the commit which topics the transaction
        changed (None: no process-local subscribers, only the other processes learn)."""
        self.conn = conn
        self._on_commit: list[Callable[[], None]] = []
        self._changes = changes
        self._changed: set[Topic] = set()

    @classmethod
    def joining(cls, other: QueryScope) -> Any:
        """A scope of this kind in `other`'s transaction, sharing its commit callbacks and
        change topics."""
        scope = cls(other.conn, other._changes)
        scope._on_commit = other._on_commit
        scope._changed = other._changed
        return scope

    async def changed(self, topic: Topic) -> None:
        """Announce, at commit, that this transaction changed rows cached under `topic`:
        every process of the service drops the entries (see `transship.metadata.changes`).
        Once per topic and transaction; nothing is announced if it rolls back. Not inside a
        savepoint that may roll back alone: the announcement would go with it, and a later
        call for the same topic in this transaction would be taken as done."""
        if topic in self._changed:
            return
        self._changed.add(topic)
        if self.conn.dialect.name == "postgresql":
            await self._exec(notify_statement(topic))
        else:
            counters = s.change_counters
            await self._exec(
                sqlite.insert(counters)
                .values(topic=topic.value, counter=1)
                .on_conflict_do_update(
                    index_elements=["topic"], set_={"counter": counters.c.counter + 1}
                )
            )
        hub = self._changes
        if hub is not None:
            self.on_commit(lambda: hub.publish((topic,)))

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction commits; never when it rolls back. Only
        write scopes (`MetadataStore.writing()`) commit: for a cache that must not change
        before the rows it mirrors, whichever transaction the write joined."""
        self._on_commit.append(callback)

    def committed(self) -> None:
        """Called by the store after the commit: run the `on_commit` callbacks."""
        callbacks, self._on_commit[:] = list(self._on_commit), []
        for callback in callbacks:
            callback()

    async def _exec(self, statement: Any, parameters: Any = None) -> Any:
        """Run a statement on either kind of connection (Result rows are typed Any).
        Raises Conflict when it violates a unique or foreign key."""
        try:
            if isinstance(self.conn, AsyncConnection) and self.conn.info.get(WRITING):
                return await finish_then_cancel(self.conn.execute(statement, parameters))
            return await self.conn.execute(statement, parameters)
        except IntegrityError as exc:
            raise conflict_from(exc) from exc

    async def _scan(self, statement: Any) -> AsyncIterator[Any]:
        """The rows of a statement that may return many (a GC scan), streamed from the
        database a slice at a time, letting other callbacks run between slices: the rows
        arrive and are converted on the loop's thread, so a list built in one go would hold
        the loop for as long as it takes to convert them all."""
        conn = self.conn
        assert isinstance(conn, AsyncConnection), "scans run through the async driver"
        streaming = conn.stream(statement)
        result = await (finish_then_cancel(streaming) if conn.info.get(WRITING) else streaming)
        async for partition in result.partitions(SCAN_SLICE):
            for row in partition:
                yield row
            await asyncio.sleep(0)

    def _nested(self) -> Any:
        """A savepoint of a write scope: `writing()`'s (an async connection) or a one-step
        write's (`MetadataStore.write_at_once` on SQLite: an inline connection)."""
        if isinstance(self.conn, InlineConnection):
            return self.conn.savepoint()
        assert isinstance(self.conn, AsyncConnection), "savepoints exist only in write scopes"
        return self.conn.begin_nested()

    # -- dialect helpers ---------------------------------------------------------------------
    def _insert(self, table: Table) -> Any:
        dialect = self.conn.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _insert_ignore(
        self, table: Table, values: dict[str, Any], keys: Sequence[str]
    ) -> bool:
        """Insert unless a row with the same `keys` exists; True when a row was inserted."""
        stmt = (
            self._insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
        )
        result = await self._exec(stmt)
        return bool(result.rowcount)
