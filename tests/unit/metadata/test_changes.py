"""The change feed on SQLite and PostgreSQL: two stores over one database stand for two
processes (each has its own hub, as each process has); what one commits reaches the other's
subscribers within a second, a rollback announces nothing, and the listener drops every
cache when it (re)starts, also after PostgreSQL cut its connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.support.metadata import migrated_database
from transship.metadata.changes import (
    APPLICATION_NAME,
    ChangeFeedLost,
    ChangeHub,
    ChangeListener,
    Topic,
    topic_of,
)
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.worker.supervisor import Backoff, LoopState, Supervisor

# The feature's bound: a change reaches every process within a second.
WITHIN = 1.0


@dataclass
class Seen:
    """What a hub's subscribers were told, per topic, with an event per arrival."""

    counts: dict[Topic, int] = field(default_factory=lambda: dict.fromkeys(Topic, 0))
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def subscribe(self, hub: ChangeHub) -> None:
        for topic in Topic:
            hub.subscribe(topic, lambda topic=topic: self._told(topic))

    def _told(self, topic: Topic) -> None:
        self.counts[topic] += 1
        self.arrived.set()

    async def until(self, topic: Topic, count: int) -> None:
        """Return once `topic` was told `count` times; fail after WITHIN seconds."""

        async def wait() -> None:
            while self.counts[topic] < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(wait(), WITHIN)


@dataclass
class Process:
    meta: MetadataStore
    seen: Seen


@pytest.fixture
async def db(tmp_path: Path, database_url: str | None) -> AsyncIterator[Database]:
    async with migrated_database(database_url, tmp_path) as database:
        yield database


def process(db: Database) -> Process:
    seen = Seen()
    meta = MetadataStore(db, ChangeHub())
    seen.subscribe(meta.changes)
    return Process(meta, seen)


@contextlib.asynccontextmanager
async def listening(
    db: Database, hub: ChangeHub, backoff: Backoff | None = None
) -> AsyncIterator[Supervisor]:
    """A supervised listener feeding `hub`, started and running (its first reset done)."""
    supervisor = Supervisor(backoff or Backoff(initial_seconds=0.05, max_seconds=0.2))
    supervisor.add("change-feed", ChangeListener(db, hub, poll_seconds=0.05).run_forever)
    supervisor.start()
    try:
        await asyncio.wait_for(
            supervisor.wait_for(lambda s: s["change-feed"].heartbeat_age_seconds is not None),
            5,
        )
        yield supervisor
    finally:
        await supervisor.stop()


async def change(meta: MetadataStore, *topics: Topic) -> None:
    async with meta.writing() as q:
        for topic in topics:
            await q.changed(topic)


class Rollback(Exception):
    pass


# -- the hub ---------------------------------------------------------------------------------


def test_versions_grow_with_their_topics_only() -> None:
    hub = ChangeHub()
    roles = hub.version(Topic.ROLES)
    both = hub.version(Topic.ROLES, Topic.CREDENTIALS)
    hub.publish([Topic.IMPORTS])
    assert hub.unchanged(roles, Topic.ROLES)
    hub.publish([Topic.CREDENTIALS])
    assert hub.unchanged(roles, Topic.ROLES)
    assert not hub.unchanged(both, Topic.ROLES, Topic.CREDENTIALS)
    hub.reset()
    assert not hub.unchanged(roles, Topic.ROLES)


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    hub = ChangeHub()
    told: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    hub.subscribe(Topic.ROLES, broken)
    hub.subscribe(Topic.ROLES, lambda: told.append("after"))
    hub.publish([Topic.ROLES, Topic.ROLES])  # one topic twice: told once
    assert told == ["after"]


def test_payloads_name_topics() -> None:
    assert topic_of("roles") is Topic.ROLES
    assert topic_of("something-newer") is None


# -- one process -------------------------------------------------------------------------------


async def test_the_writer_is_told_at_commit_and_never_on_rollback(db: Database) -> None:
    writer = process(db)
    async with writer.meta.writing() as q:
        await q.changed(Topic.ROLES)
        await q.changed(Topic.ROLES)
        assert writer.seen.counts[Topic.ROLES] == 0  # not before the commit
    assert writer.seen.counts[Topic.ROLES] == 1
    with pytest.raises(Rollback):
        async with writer.meta.writing() as q:
            await q.changed(Topic.CREDENTIALS)
            raise Rollback
    assert writer.seen.counts[Topic.CREDENTIALS] == 0


async def test_a_joined_scope_announces_with_the_outer_transaction(db: Database) -> None:
    writer = process(db)
    async with writer.meta.writing() as outer:
        async with writer.meta.writing(within=outer.identity) as inner:
            await inner.identity.changed(Topic.REGISTRIES)
        assert writer.seen.counts[Topic.REGISTRIES] == 0
    assert writer.seen.counts[Topic.REGISTRIES] == 1


# -- two processes -----------------------------------------------------------------------------


async def test_a_commit_reaches_the_other_process_and_a_rollback_does_not(db: Database) -> None:
    writer, reader = process(db), process(db)
    async with listening(db, reader.meta.changes):
        assert reader.seen.counts[Topic.ROLES] == 1  # the start dropped everything
        with pytest.raises(Rollback):
            async with writer.meta.writing() as q:
                await q.changed(Topic.CREDENTIALS)
                raise Rollback
        await change(writer.meta, Topic.ROLES)
        await reader.seen.until(Topic.ROLES, 2)
        await change(writer.meta, Topic.IMPORTS, Topic.REGISTRIES)
        await reader.seen.until(Topic.IMPORTS, 2)
        await reader.seen.until(Topic.REGISTRIES, 2)
        # The rolled-back change was announced before the later commits: never told.
        assert reader.seen.counts[Topic.CREDENTIALS] == 1


async def test_concurrent_writers_are_all_seen(db: Database) -> None:
    reader = process(db)
    writers = [process(db) for _ in range(4)]
    async with listening(db, reader.meta.changes):
        await asyncio.gather(*(change(w.meta, Topic.IMPORTS) for w in writers))
        await change(writers[0].meta, Topic.ROLES)
        await reader.seen.until(Topic.ROLES, 2)
        # At least once after the start's reset (SQLite's poll folds changes together).
        await reader.seen.until(Topic.IMPORTS, 2)


async def test_an_unknown_topic_drops_everything(db: Database) -> None:
    if db.is_sqlite:
        statement = text("INSERT INTO change_counters (topic, counter) VALUES ('newer', 1)")
    else:
        statement = text("SELECT pg_notify('transship_changes', 'newer')")
    writer, reader = process(db), process(db)
    async with listening(db, reader.meta.changes):
        async with writer.meta.writing() as q:
            await q.conn.execute(statement)
        for topic in Topic:
            await reader.seen.until(topic, 2)


async def test_the_listener_reconnects_after_postgresql_cut_it(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite polls; it has no connection to lose")
    writer, reader = process(db), process(db)
    async with listening(db, reader.meta.changes) as supervisor:
        async with writer.meta.writing() as q:
            killed = (
                await q.conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": APPLICATION_NAME},
                )
            ).scalar_one()
        assert killed == 1
        # Lost, restarted after the backoff; the restart drops every cache.
        await asyncio.wait_for(
            supervisor.wait_for(lambda s: s["change-feed"].restarts >= 1),
            5,
        )
        for topic in Topic:
            await reader.seen.until(topic, 2)
        status = supervisor.status()["change-feed"]
        assert status.last_error == f"{ChangeFeedLost.__module__}.ChangeFeedLost"
        # The feed resumed: a later change arrives.
        await change(writer.meta, Topic.CREDENTIALS)
        await reader.seen.until(Topic.CREDENTIALS, 3)
        assert supervisor.status()["change-feed"].state is LoopState.RUNNING
