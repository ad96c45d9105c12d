"""Database engines for SQLite (embedded default) and PostgreSQL, and schema migration."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Dialect, Result, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from transship.filemodes import PRIVATE_FILE, private_dir, private_file, tighten

_MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
# Idle connections of the SQLite read pool each process keeps (aiosqlite: one thread each).
_SQLITE_READERS = 8
# Threads (and connections) of the SQLite one-step reads (`Database.read_in_thread`).
_SQLITE_READ_THREADS = 4

T = TypeVar("T")

# Marks a connection, in its `info`, as running a `Database.write()` transaction: only its
# statements are worth a task each to survive a cancellation (see finish_then_cancel); the
# reads of the pull path are not slowed by it.
WRITING = "transship.writing"


async def finish_then_cancel(
    operation: Awaitable[T], undo: Callable[[T], Awaitable[object]] | None = None
) -> T:
    """Await a driver operation that a cancellation must not cut short: when the caller is
    cancelled meanwhile, the operation still runs to its end (then `undo`, given, runs on
    its result: a connection checked out for nobody is closed), then CancelledError is raised.

    SQLAlchemy invalidates a connection whose statement was interrupted by a cancellation,
    but the driver's thread (aiosqlite) or socket goes on with the statement: on SQLite the
    abandoned connection kept its BEGIN IMMEDIATE lock, and the next write waited out the
    60 s busy timeout and failed (a shutdown that cancelled a heartbeat mid-write could then
    not hand its jobs back to the queue). Raises what the operation raises."""
    task = asyncio.ensure_future(operation)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            result = await task
            if undo is not None:
                await undo(result)
        raise


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
        return str(
            parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        )
    raise DatabaseUrlError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://"
    )


CompiledStatements = dict[int, tuple[ClauseElement, str, tuple[str, ...]]]
"""Each prebuilt statement's SQL text and the order of its parameters, by the statement's
identity (the statement is kept too, so a reused id is never mistaken for it)."""


class InlineConnection:
    """A synchronous SQLite connection behind the async `execute` the queries use, so a
    query method runs to its end without suspending: on the loop for `Database.fast_read()`
    (prebuilt keyed lookups only), on the write thread for `Database.write_in_thread()`, on
    a read thread for `Database.read_in_thread()`.

    Under WAL a reader never waits for writers and a keyed lookup takes tens of
    microseconds, while a hop through aiosqlite's thread costs about a millisecond: the pull
    path (manifest and blob lookups) is twenty times faster run inline on the loop. Anything
    that scans (listings, counts, garbage collection) would hold the loop for as long as it
    runs, so it goes through `Database.read()` instead.
    """

    def __init__(self, conn: Connection, compiled: CompiledStatements) -> None:
        """`compiled`: the database's cache of prebuilt statements' SQL (see `first_row`)."""
        self._conn = conn
        self._compiled = compiled
        self.dialect: Dialect = conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        return self._conn.execute(statement, parameters)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A savepoint of this connection's transaction (a one-step write's, on the write
        thread): rolled back alone when the block raises, the error propagating. Never
        suspends, so a one-step write may use it."""
        with self._conn.begin_nested():
            yield

    def first_row(
        self, statement: ClauseElement, parameters: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of a prebuilt statement, straight from the driver: SQLAlchemy's
        execution and result layers cost several times the lookup itself on the pull path.
        So the row is as SQLite keeps it (no type processing: a digest is text, a boolean
        0 or 1), and `parameters` must be plain str or int values."""
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled[0] is not statement:
            built = statement.compile(dialect=self.dialect)
            assert isinstance(built, SQLCompiler)  # SQLite binds by position (qmark)
            compiled = (statement, built.string, tuple(built.positiontup or ()))
            self._compiled[id(statement)] = compiled
        _, sql, order = compiled
        raw = self._conn.connection.driver_connection
        assert raw is not None, "a checked-out connection"
        row: tuple[Any, ...] | None = raw.execute(sql, [parameters[n] for n in order]).fetchone()
        return row


class Database:
    """Engines over one database: `read()` for snapshots, `write()` for transactions, and
    `fast_read()` for the pull path's prebuilt keyed lookups.

    On SQLite, write transactions start with BEGIN IMMEDIATE and share one pooled connection,
    so writers queue in the pool instead of failing with "database is locked"; reads go
    through a separate async (aiosqlite) pool, so a long scan runs on the driver's thread and
    never on the event loop; only `fast_read()` runs synchronously, on a small pool of its
    own (see InlineConnection). PostgreSQL uses one async pool for all three.
    """

    def __init__(self, url: str, *, durable: bool = True) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._durable = durable
        # At `--log-level debug` aiosqlite logs each call with its arguments, and SQLAlchemy's
        # errors (logged with their traceback) quote statements: never with their parameters,
        # which include secrets' scrypt hashes.
        _quiet_driver_logs()
        # Compiled once per database for the inline reads (InlineConnection.first_row).
        self._compiled: CompiledStatements = {}
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                _private_sqlite_file(Path(database))
            self._writer = create_async_engine(
                self.url, pool_size=1, max_overflow=0, pool_timeout=600, hide_parameters=True
            )
            _configure_sqlite(self._writer.sync_engine, "BEGIN IMMEDIATE", durable)
            # Reads run in autocommit: each statement sees one consistent snapshot, and the
            # BEGIN/ROLLBACK pair per checkout cost more than the lookup itself. The pool keeps
            # as many connections as a busy process reads with at once (an import's manifests
            # and blobs, several imports): an overflow connection is opened (a thread of its
            # own, the pragmas) and closed again for every burst past the pool's size.
            self._reader = create_async_engine(
                self.url,
                pool_size=_SQLITE_READERS,
                max_overflow=_SQLITE_READERS,
                pool_reset_on_return=None,
                hide_parameters=True,
            )
            _configure_sqlite(self._reader.sync_engine, None, durable)
            sync_url = make_url(self.url).set(drivername="sqlite+pysqlite")
            self._sync_reader: Engine | None = create_engine(
                sync_url,
                pool_size=4,
                max_overflow=4,
                pool_reset_on_return=None,
                hide_parameters=True,
            )
            _configure_sqlite(self._sync_reader, None, durable)
            # One thread owns the one-step writes (`write_in_thread`): they queue there, and a
            # busy wait for the file's write lock is that thread's, never the loop's.
            self._sync_writer: Engine | None = create_engine(
                sync_url, pool_size=1, max_overflow=0, hide_parameters=True
            )
            _configure_sqlite(self._sync_writer, "BEGIN IMMEDIATE", durable)
            self._write_thread: ThreadPoolExecutor | None = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="transship-sqlite-write"
            )
            # The one-step reads: a pool of their own, one connection per thread, so they
            # never take the connection a loop's `fast_read` needs.
            self._thread_reader: Engine | None = create_engine(
                sync_url,
                pool_size=_SQLITE_READ_THREADS,
                max_overflow=0,
                pool_reset_on_return=None,
                hide_parameters=True,
            )
            _configure_sqlite(self._thread_reader, None, durable)
            self._read_threads: ThreadPoolExecutor | None = ThreadPoolExecutor(
                max_workers=_SQLITE_READ_THREADS, thread_name_prefix="transship-sqlite-read"
            )
        else:
            self._writer = create_async_engine(
                self.url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
            )
            self._reader = self._writer
            self._sync_reader = None
            self._sync_writer = None
            self._write_thread = None
            self._thread_reader = None
            self._read_threads = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads of any size, through the async driver; its snapshot ends
        when the block exits."""
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def fast_read(self) -> AsyncIterator[AsyncConnection | InlineConnection]:
        """A connection for a prebuilt keyed lookup of the pull path, run inline on the loop
        on SQLite. Never for a statement whose cost grows with the data (see
        InlineConnection); `MetadataStore.fast_read()` and the change feed's poll of its
        few counters (`ChangeListener`) are its only callers."""
        if self._sync_reader is not None:
            with self._sync_reader.connect() as sync_conn:
                yield InlineConnection(sync_conn, self._compiled)
            return
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction committed when the block exits normally, rolled back on error
        (a cancellation included). Beginning, committing and rolling back run to their end
        even when the caller is cancelled meanwhile (see finish_then_cancel), as must every
        statement run in the block (QueryScope._exec does it)."""
        conn = await finish_then_cancel(self._writer.connect(), undo=AsyncConnection.close)
        try:
            transaction = await finish_then_cancel(conn.begin())
            conn.info[WRITING] = True
            try:
                yield conn
            except BaseException:
                await finish_then_cancel(transaction.rollback())
                raise
            await finish_then_cancel(transaction.commit())
        finally:
            # The info dict outlives the checkout (it is the pooled connection's), and on
            # PostgreSQL reads share the pool.
            conn.info.pop(WRITING, None)
            await finish_then_cancel(conn.close())

    @property
    def writes_in_thread(self) -> bool:
        """Whether `write_in_thread` is available (SQLite)."""
        return self._sync_writer is not None

    async def write_in_thread(self, work: Callable[[InlineConnection], T]) -> T:
        """Run `work` as one write transaction on the database's own thread, in one step: a
        short write of a request path holds SQLite's file-wide write lock for the statements
        alone. Through `write()`, each statement, the BEGIN and the COMMIT is a hop back to
        the loop, and under load a hop waits for a whole turn of a busy loop (tens of
        milliseconds) while the lock is held and every other writer of the service, other
        processes included, waits for it.

        `work` gets a synchronous connection (it must not wait on anything else: it runs
        outside the loop); committed when it returns, rolled back when it raises. Runs to
        its end even when the caller is cancelled meanwhile (see finish_then_cancel). Raises
        what `work` or the driver raises; RuntimeError on PostgreSQL (`writes_in_thread`
        is false there: use `write()`)."""
        engine, thread = self._sync_writer, self._write_thread
        if engine is None or thread is None:
            raise RuntimeError("write_in_thread needs SQLite")

        # SQLite answers BEGIN IMMEDIATE "database is locked" without waiting out the busy
        # timeout in a few cases (a CI soak saw it twice within 0.7 s of a start after a
        # kill -9, the other connections of the process opening meanwhile): nothing was done
        # yet, so it is tried again.
        def transaction() -> T:
            with engine.connect() as conn, _retry_while_locked(conn.begin):
                return work(InlineConnection(conn, self._compiled))

        loop = asyncio.get_running_loop()
        return await finish_then_cancel(loop.run_in_executor(thread, transaction))

    @property
    def reads_in_thread(self) -> bool:
        """Whether `read_in_thread` is available (SQLite)."""
        return self._thread_reader is not None

    async def read_in_thread(self, work: Callable[[InlineConnection], T]) -> T:
        """Run `work`'s reads, of any size, in one step on a read thread of the database's
        own: through `read()` each statement is four hops between the loop and aiosqlite's
        thread (cursor, execute, fetch, close), here the whole of `work` is one. Each
        statement sees its own snapshot, as in `read()` (autocommit).

        `work` gets a synchronous connection and must not wait on anything else. Raises
        what `work` or the driver raises; RuntimeError on PostgreSQL (`reads_in_thread` is
        false there: use `read()`)."""
        engine, threads = self._thread_reader, self._read_threads
        if engine is None or threads is None:
            raise RuntimeError("read_in_thread needs SQLite")

        def read() -> T:
            with engine.connect() as conn:
                return work(InlineConnection(conn, self._compiled))

        return await asyncio.get_running_loop().run_in_executor(threads, read)

    @asynccontextmanager
    async def dedicated(self, application_name: str) -> AsyncIterator[AsyncConnection]:
        """A PostgreSQL connection of its own, outside the pools, for a session that lives
        as long as its user (the change feed's LISTEN): held in a pool it would take a slot
        from the requests for good. `application_name` names it in `pg_stat_activity`.
        Closed when the block exits; closing one the server already cut raises nothing (the
        block's own error, if any, propagates)."""
        engine = create_async_engine(
            self.url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={"server_settings": {"application_name": application_name}},
        )
        try:
            conn = await engine.connect()
            try:
                yield conn
            finally:
                try:
                    await conn.close()
                except Exception:
                    log.debug("closing a dedicated connection failed", exc_info=True)
        finally:
            await engine.dispose()

    async def ping(self) -> None:
        """Run a trivial statement through the async driver (the readiness probe). Returns
        when the database answers; raises the driver's error when it does not."""
        async with self._reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to the newest revision. Safe when several processes start at once.

        Alembic is synchronous Python (importing itself, loading the revision scripts,
        building each step's DDL) that held the calling loop for ~60 ms of CPU (~180 ms the
        first time), so it runs on a worker thread with its own connection and loop; the
        caller's loop only awaits it. Raises the driver's or Alembic's error when the
        migration fails (nothing is committed)."""
        await asyncio.to_thread(self._migrate_on_private_loop)

    def _migrate_on_private_loop(self) -> None:
        # The async drivers need a loop. This one serves nothing but the migration (no request
        # waits on it), so it is a plain one, not the policy's (which a test's stall guard
        # watches for loops that requests share).
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(self._migrate())

    async def _migrate(self) -> None:
        engine = create_async_engine(self.url, poolclass=NullPool, hide_parameters=True)
        if self.is_sqlite:
            # Alembic's batch mode rebuilds a table (copy, drop, rename); with foreign keys on,
            # dropping the old `registries` cascaded into every repository, tag and manifest.
            # SQLite's own procedure for schema changes: keys off, then a check before commit.
            _configure_sqlite(
                engine.sync_engine, "BEGIN IMMEDIATE", self._durable, foreign_keys=False
            )
        try:
            async with engine.begin() as conn:
                if not self.is_sqlite:
                    # Serialise concurrent starters; released at commit.
                    await conn.execute(text("SELECT pg_advisory_xact_lock(7347242)"))
                if await conn.run_sync(_at_head):
                    return  # nothing to do: Alembic not even loaded
                await conn.run_sync(_upgrade)
                if self.is_sqlite:
                    broken = (await conn.execute(text("PRAGMA foreign_key_check"))).all()
                    if broken:
                        raise RuntimeError(
                            f"the migration left {len(broken)} rows whose foreign keys point "
                            f"at nothing (first: {tuple(broken[0])}); nothing was committed"
                        )
        finally:
            await engine.dispose()

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
        if self._sync_reader is not None:
            self._sync_reader.dispose()
        if self._sync_writer is not None and self._write_thread is not None:
            # The thread first: a write still running there ends before its engine goes.
            await asyncio.to_thread(self._write_thread.shutdown)
            self._sync_writer.dispose()
        if self._thread_reader is not None and self._read_threads is not None:
            await asyncio.to_thread(self._read_threads.shutdown)
            self._thread_reader.dispose()


class _NoResultRows(logging.Filter):
    """Drops SQLAlchemy's DEBUG records of result rows: rows hold secrets' hashes (and
    `hide_parameters` covers only the parameters). Statements are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(("Row ", "Col ")))


def _quiet_driver_logs() -> None:
    """Keep SQL values out of the logs at every level an operator may choose: aiosqlite's
    DEBUG records (each shows a call with its arguments, the SQL parameters) are off unless
    someone configured that logger on purpose (its level is not NOTSET), and SQLAlchemy's
    records of result rows are dropped."""
    driver = logging.getLogger("aiosqlite")
    if driver.level == logging.NOTSET:
        driver.setLevel(logging.INFO)
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, _NoResultRows) for f in engine.filters):
        engine.addFilter(_NoResultRows())


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite would make it 0644, and it
    gives its -wal and -shm files the database file's mode), in a directory created 0700
    when missing (an existing one is the operator's); tighten existing files to 0600."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix), PRIVATE_FILE)


def _alembic_config() -> Any:
    # Imported here: Alembic is only needed at start-up and costs ~11 MB resident.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


@functools.cache
def _head_revisions() -> frozenset[str]:
    """The newest revisions of the migration scripts (read once per process: loading the
    scripts is most of what a migration that has nothing to do costs)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(_alembic_config()).get_heads())


def _at_head(connection: Connection) -> bool:
    """Whether the database's schema is at the newest revision already."""
    if not inspect(connection).has_table("alembic_version"):
        return False
    stamped = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return frozenset(stamped) == _head_revisions()


def _upgrade(connection: Connection) -> None:
    from alembic import command

    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _retry_while_locked(step: Callable[[], T], *, seconds: float = 60.0) -> T:
    """`step()`, tried again (10 ms, doubling to 0.5 s apart) while it fails with SQLite's
    "database is locked", for at most `seconds`; then that error, or any other at once.
    Blocking: for threads of the database, never the event loop. Only for steps that do
    nothing when they fail so (a BEGIN, a PRAGMA)."""
    delay = 0.01
    deadline = time.monotonic() + seconds
    while True:
        try:
            return step()
        except Exception as exc:  # the driver's OperationalError, bare or wrapped
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL. Changing the journal mode does not wait for a busy database
    (SQLite ignores busy_timeout there), so several processes starting on a new file retry
    here instead of failing with "database is locked"."""

    def switch() -> bool:
        for statement in ("PRAGMA journal_mode", "PRAGMA journal_mode=WAL"):
            cursor.execute(statement)
            if str(cursor.fetchone()[0]).lower() == "wal":
                return True
        return False

    while not _retry_while_locked(switch):
        time.sleep(0.01)  # another process switched it back meanwhile: try again


def _skip_idle_rollbacks(engine: Engine) -> None:
    """Make the ROLLBACK with which SQLAlchemy closes every connection a no-op when the
    driver's connection is in no transaction: the read pools run in autocommit and never
    begin one, and through aiosqlite each ROLLBACK was one more hop to the connection's
    thread and back per `reading()` block. A connection that is in a transaction (nothing
    of ours begins one there) is still rolled back."""
    dialect = engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        if getattr(driver, "in_transaction", True):
            rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def _configure_sqlite(
    engine: Engine, begin: str | None, durable: bool, foreign_keys: bool = True
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so `begin` below decides the mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enable_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    if begin is None:
        _skip_idle_rollbacks(engine)
        return

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)
