"""The change feed: how every process of a service learns, within a second, that another
process committed a write its caches mirror (a revoked role assignment, a deleted token, a
registry's network rules, an import job queued).

- A write that changes cached rows calls `QueryScope.changed(topic)` in its transaction. On
  PostgreSQL that is a `NOTIFY` on `CHANNEL`, which the server delivers at commit only (never
  for a rollback); on SQLite it bumps the topic's row of `change_counters` in the same
  transaction. After the commit the writing process publishes the topic to its own
  `ChangeHub` at once.
- Every process runs a `ChangeListener` (a supervised loop, "change-feed" in `/readyz`) that
  publishes what other processes committed: on PostgreSQL a dedicated connection that
  `LISTEN`s (a notification arrives within milliseconds), on SQLite a poll of the counters
  every `poll_seconds`, inline on the loop like the pull path's lookups (`Database.fast_read`:
  one read of a few rows, cheaper than a hop through the async driver's thread).
- Whenever the listener (re)starts it drops every cache (`ChangeHub.reset`): notifications
  sent while it was not listening are lost, the counters it had not seen yet unknown.

Caches subscribe to the topics they mirror and drop entries when told. A cache that fills
itself from a read must not store what it read if the topic changed meanwhile (the read may
predate the commit the notification announced): it takes `ChangeHub.version` before the read
and stores only if `ChangeHub.unchanged` after it. Each cache keeps its time-to-live as a
backstop for a listener that is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import select, text

from transship.metadata import schema as s
from transship.metadata.db import Database

log = logging.getLogger(__name__)

# The PostgreSQL notification channel; the payload is a Topic's value.
CHANNEL = "transship_changes"
# The listener's connection, as `pg_stat_activity.application_name` shows it.
APPLICATION_NAME = "transship change feed"

# How often the SQLite counters are read: a change reaches every process within this.
POLL_SECONDS = 0.25
# How often the PostgreSQL listener checks that its connection still answers (a connection
# cut without a FIN would otherwise look idle forever).
KEEPALIVE_SECONDS = 2.0


class Topic(StrEnum):
    """What changed, as coarse as the caches that mirror it."""

    ROLES = "roles"  # role definitions and assignments, principals deleted
    CREDENTIALS = "credentials"  # secrets, tokens and their passwords, scope maps, admin user
    REGISTRIES = "registries"  # registries (login servers) and their access settings
    IMPORTS = "imports"  # a job queued, or one ended (a slot freed)
    SIGNING_KEYS = "signing-keys"  # a token-signing key added (a rotation)
    SYNC = "sync"  # a sync run queued, or a sync rule written (it may be due now)
    CACHE_RULES = "cache-rules"  # a cache rule created, deleted or pointed at another set


Callback = Callable[[], None]


class ChangeHub:
    """This process's subscribers by topic. `publish` runs them on the event loop; each must
    be quick (drop entries, set an event) and not raise: a callback that raises is logged
    and the others still run."""

    def __init__(self) -> None:
        self._subscribers: dict[Topic, list[Callback]] = {topic: [] for topic in Topic}
        self._generations: dict[Topic, int] = dict.fromkeys(Topic, 0)

    def subscribe(self, topic: Topic, callback: Callback) -> None:
        """Call `callback` whenever `topic` changes, and at every `reset`."""
        self._subscribers[topic].append(callback)

    def version(self, *topics: Topic) -> int:
        """A number that grows whenever one of `topics` changes: take it before a read that
        fills a cache, then check `unchanged` before storing."""
        return sum(self._generations[topic] for topic in topics)

    def unchanged(self, version: int, *topics: Topic) -> bool:
        """Whether none of `topics` changed since `version` was taken (with the same topics)."""
        return self.version(*topics) == version

    def publish(self, topics: Iterable[Topic]) -> None:
        """Tell the subscribers of each of `topics` that it changed."""
        for topic in dict.fromkeys(topics):
            self._generations[topic] += 1
            for callback in self._subscribers[topic]:
                try:
                    callback()
                except Exception:
                    log.exception("a cache failed to drop its entries for %s", topic.value)

    def reset(self) -> None:
        """Every topic may have changed (the feed missed what happened meanwhile)."""
        self.publish(Topic)


def topic_of(payload: str) -> Topic | None:
    """The Topic a notification's payload names, None for one this version does not know."""
    try:
        return Topic(payload)
    except ValueError:
        return None


class ChangeFeedLost(ConnectionError):
    """The listener's database connection closed or stopped answering; the supervisor
    restarts the listener (with its backoff), which then drops every cache."""


class ChangeListener:
    """Publishes to `hub` the changes other processes commit (see the module's docstring).
    `run_forever` is the supervised loop; it beats after each poll or keepalive."""

    def __init__(
        self,
        db: Database,
        hub: ChangeHub,
        *,
        poll_seconds: float = POLL_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._db = db
        self._hub = hub
        self._poll_seconds = poll_seconds
        self._keepalive_seconds = keepalive_seconds

    async def run_forever(self, beat: Callback) -> None:
        """Listen (PostgreSQL) or poll (SQLite) until cancelled. Raises ChangeFeedLost when
        the PostgreSQL connection drops, and what the driver raises."""
        if self._db.is_sqlite:
            await self._poll(beat)
        else:
            await self._listen(beat)

    async def _poll(self, beat: Callback) -> None:
        seen: dict[str, int] | None = None
        counters = select(s.change_counters.c.topic, s.change_counters.c.counter)
        while True:
            # Inline on the loop (SQLite): a keyed read of one row per topic, which a hop
            # through the driver's thread would cost several times over, in every process.
            async with self._db.fast_read() as conn:
                rows = (await conn.execute(counters)).all()
            now = {str(row.topic): int(row.counter) for row in rows}
            if seen is None:
                self._hub.reset()  # changes before this first read were never seen
            else:
                changed = [name for name, counter in now.items() if seen.get(name) != counter]
                self._publish(changed)
            seen = now
            beat()
            # A timer, not synchronisation: the poll's period.
            await asyncio.sleep(self._poll_seconds)

    async def _listen(self, beat: Callback) -> None:
        async with self._db.dedicated(APPLICATION_NAME) as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None, "a dedicated connection is open"
            lost = asyncio.Event()

            def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                self._publish([payload])

            def terminated(_conn: Any) -> None:
                lost.set()

            raw.add_termination_listener(terminated)
            await raw.add_listener(CHANNEL, notified)
            # Listening from here on: whatever changed before is unknown, so drop it all.
            self._hub.reset()
            beat()
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # cancellation that stops the loop when its awaitable finishes at that moment.
                try:
                    async with asyncio.timeout(self._keepalive_seconds):
                        await lost.wait()
                except TimeoutError:
                    pass
                else:
                    raise ChangeFeedLost("the change feed's database connection closed")
                try:
                    # Straight on the driver: through SQLAlchemy it would open a transaction,
                    # and PostgreSQL holds notifications back while one is open.
                    await raw.fetchval("SELECT 1", timeout=self._keepalive_seconds)
                except Exception as exc:
                    raise ChangeFeedLost(
                        f"the change feed's database connection stopped answering "
                        f"({type(exc).__name__})"
                    ) from None
                beat()

    def _publish(self, payloads: Iterable[str]) -> None:
        topics = [topic_of(payload) for payload in payloads]
        if any(topic is None for topic in topics):
            self._hub.reset()  # a newer process's topic: drop everything to be safe
        else:
            self._hub.publish(topic for topic in topics if topic is not None)


def notify_statement(topic: Topic) -> Any:
    """PostgreSQL: the statement announcing `topic` at commit."""
    return text("SELECT pg_notify(:channel, :topic)").bindparams(channel=CHANNEL, topic=topic.value)
