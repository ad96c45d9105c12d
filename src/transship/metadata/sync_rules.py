"""Rows of scheduled sync (`transship.cache.sync`): the rules of each registry, their runs
(a bounded history per rule), and what each rule copied per tag (the upstream digest it saw
and the digest its import stored), which is how a run tells what changed.

The tables join the schema's MetaData here, beside their queries, so the sync feature is one
module of rows (migration 0014 creates them).

A rule is run by one process at a time: `claim_rule` takes its lease with one conditional
UPDATE, which only one of any number of racing processes wins, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from transship.metadata import schema as s
from transship.metadata.scope import QueryScope, as_utc, utcnow
from transship.oci.digest import Digest

sync_rules = Table(
    "sync_rules",
    s.metadata,
    Column("id", String(32), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    # The SyncRuleSpec as JSON (no secrets).
    Column("definition", Text, nullable=False),
    # The upstream credentials, sealed with the service key (None: anonymous).
    Column("credentials", LargeBinary, nullable=True),
    Column("next_run_at", s.UtcDateTime(), nullable=True),
    Column("lease_owner", String(32), nullable=True),
    Column("lease_until", s.UtcDateTime(), nullable=True),
    Column("created_at", s.UtcDateTime(), nullable=False),
    Column("updated_at", s.UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name", name="uq_sync_rules_registry_name"),
    Index("ix_sync_rules_next_run", "next_run_at"),
)

sync_runs = Table(
    "sync_runs",
    s.metadata,
    Column("id", String(32), primary_key=True),
    Column("rule_id", String(32), ForeignKey("sync_rules.id", ondelete="CASCADE"), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", s.UtcDateTime(), nullable=False),
    Column("started_at", s.UtcDateTime(), nullable=True),
    Column("ended_at", s.UtcDateTime(), nullable=True),
    # The import batch that copied what changed (None: nothing to copy, or not yet).
    Column("batch_id", String(32), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    # The per-tag report as JSON (see transship.cache.sync.TagReport).
    Column("report", Text, nullable=False),
    # The upstream requests the run's listing and HEADs sent, as JSON (None: not yet).
    Column("requests", Text, nullable=True),
    Index("ix_sync_runs_rule", "rule_id", "created_at"),
)

sync_tags = Table(
    "sync_tags",
    s.metadata,
    Column(
        "rule_id", String(32), ForeignKey("sync_rules.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("source_repository", String(256), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("target_repository", String(256), nullable=False),
    # What the upstream named when the rule last copied the tag (None: its HEAD did not say).
    Column("upstream_digest", s.DIGEST, nullable=True),
    # What the rule's import stored under the target tag.
    Column("local_digest", s.DIGEST, nullable=False),
    Column("updated_at", s.UtcDateTime(), nullable=False),
)

# Run states; `queued` and `running` are unfinished.
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
COMPLETED_WITH_FAILURES = "completedWithFailures"
FAILED = "failed"
RUN_STATES = (QUEUED, RUNNING, SUCCEEDED, COMPLETED_WITH_FAILURES, FAILED)
UNFINISHED = (QUEUED, RUNNING)


@dataclass(frozen=True, slots=True)
class SyncRuleRecord:
    id: str
    registry_id: int
    name: str
    definition: str
    credentials: bytes | None
    next_run_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SyncRunRecord:
    id: str
    rule_id: str
    trigger: str
    state: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    batch_id: str | None
    error_code: str | None
    error_message: str | None
    report: str
    requests: str | None = None


@dataclass(frozen=True, slots=True)
class SyncedTag:
    """What a rule copied for one upstream tag."""

    source_repository: str
    tag: str
    target_repository: str
    upstream_digest: Digest | None
    local_digest: Digest


def _at(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _rule(r: Row[Any]) -> SyncRuleRecord:
    return SyncRuleRecord(
        id=r.id,
        registry_id=r.registry_id,
        name=r.name,
        definition=r.definition,
        credentials=r.credentials,
        next_run_at=_at(r.next_run_at),
        lease_owner=r.lease_owner,
        lease_until=_at(r.lease_until),
        created_at=as_utc(r.created_at),
        updated_at=as_utc(r.updated_at),
    )


def _run(r: Row[Any]) -> SyncRunRecord:
    return SyncRunRecord(
        id=r.id,
        rule_id=r.rule_id,
        trigger=r.trigger,
        state=r.state,
        created_at=as_utc(r.created_at),
        started_at=_at(r.started_at),
        ended_at=_at(r.ended_at),
        batch_id=r.batch_id,
        error_code=r.error_code,
        error_message=r.error_message,
        report=r.report,
        requests=r.requests,
    )


class SyncRuleQueries(QueryScope):
    # -- rules ---------------------------------------------------------------------------------
    async def rule(self, registry_id: int, name: str) -> SyncRuleRecord | None:
        """The registry's rule of that name, or None."""
        r = sync_rules
        row = (
            await self._exec(select(r).where(r.c.registry_id == registry_id, r.c.name == name))
        ).first()
        return None if row is None else _rule(row)

    async def rule_by_id(self, rule_id: str) -> SyncRuleRecord | None:
        """The rule, or None when it was deleted."""
        row = (await self._exec(select(sync_rules).where(sync_rules.c.id == rule_id))).first()
        return None if row is None else _rule(row)

    async def rules_of(self, registry_id: int) -> list[SyncRuleRecord]:
        """The registry's rules, by name."""
        r = sync_rules
        rows = await self._exec(select(r).where(r.c.registry_id == registry_id).order_by(r.c.name))
        return [_rule(row) for row in rows]

    async def put_rule(
        self,
        rule_id: str,
        registry_id: int,
        name: str,
        definition: str,
        credentials: bytes | None,
        next_run_at: datetime | None,
    ) -> bool:
        """Create the rule, or replace the definition, credentials and next run of the one
        of that name. True when it was created. Raises Conflict when another transaction
        created it meanwhile."""
        now = utcnow()
        r = sync_rules
        result = await self._exec(
            update(r)
            .where(r.c.registry_id == registry_id, r.c.name == name)
            .values(
                definition=definition,
                credentials=credentials,
                next_run_at=next_run_at,
                updated_at=now,
            )
        )
        if result.rowcount:
            return False
        await self._exec(
            insert(r).values(
                id=rule_id,
                registry_id=registry_id,
                name=name,
                definition=definition,
                credentials=credentials,
                next_run_at=next_run_at,
                created_at=now,
                updated_at=now,
            )
        )
        return True

    async def delete_rule(self, rule_id: str) -> bool:
        """Delete the rule, its runs and its per-tag records (the tags it made stay)."""
        await self._exec(delete(sync_tags).where(sync_tags.c.rule_id == rule_id))
        await self._exec(delete(sync_runs).where(sync_runs.c.rule_id == rule_id))
        result = await self._exec(delete(sync_rules).where(sync_rules.c.id == rule_id))
        return bool(result.rowcount)

    async def due_rules(self, now: datetime, limit: int) -> list[str]:
        """Ids of rules whose lease is free and that have a queued run or whose next
        scheduled run is due, oldest due first."""
        r, u = sync_rules, sync_runs
        queued = select(u.c.rule_id).where(u.c.state == QUEUED).scalar_subquery()
        rows = await self._exec(
            select(r.c.id)
            .where(
                or_(r.c.lease_until.is_(None), r.c.lease_until < now),
                or_(r.c.id.in_(queued), r.c.next_run_at <= now),
            )
            .order_by(r.c.next_run_at)
            .limit(limit)
        )
        return [row.id for row in rows]

    async def claim_rule(self, rule_id: str, owner: str, lease: timedelta) -> bool:
        """Take the rule's lease for `owner` when it is free (or expired): one conditional
        UPDATE, so of racing processes exactly one wins. True when `owner` holds it now."""
        now = utcnow()
        r = sync_rules
        result = await self._exec(
            update(r)
            .where(r.c.id == rule_id, or_(r.c.lease_until.is_(None), r.c.lease_until < now))
            .values(lease_owner=owner, lease_until=now + lease)
        )
        return bool(result.rowcount)

    async def renew_rule(self, rule_id: str, owner: str, lease: timedelta) -> bool:
        """Extend `owner`'s lease; False when it holds it no longer."""
        r = sync_rules
        result = await self._exec(
            update(r)
            .where(r.c.id == rule_id, r.c.lease_owner == owner)
            .values(lease_until=utcnow() + lease)
        )
        return bool(result.rowcount)

    async def release_rule(self, rule_id: str, owner: str, next_run_at: datetime | None) -> None:
        """Give the lease back and set the next scheduled run."""
        r = sync_rules
        await self._exec(
            update(r)
            .where(r.c.id == rule_id, r.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, next_run_at=next_run_at)
        )

    # -- runs ----------------------------------------------------------------------------------
    async def queued_run(self, rule_id: str) -> SyncRunRecord | None:
        """The oldest queued run of the rule."""
        u = sync_runs
        row = (
            await self._exec(
                select(u)
                .where(u.c.rule_id == rule_id, u.c.state == QUEUED)
                .order_by(u.c.created_at)
                .limit(1)
            )
        ).first()
        return None if row is None else _run(row)

    async def create_run(self, run_id: str, rule_id: str, trigger: str, state: str) -> None:
        """A run of the rule, `queued` or `running` (started now), with an empty report."""
        now = utcnow()
        await self._exec(
            insert(sync_runs).values(
                id=run_id,
                rule_id=rule_id,
                trigger=trigger,
                state=state,
                created_at=now,
                started_at=now if state == RUNNING else None,
                report="[]",
            )
        )

    async def start_run(self, run_id: str) -> None:
        """A queued run starts now."""
        await self._exec(
            update(sync_runs)
            .where(sync_runs.c.id == run_id)
            .values(state=RUNNING, started_at=utcnow())
        )

    async def update_run(
        self,
        run_id: str,
        *,
        report: str,
        batch_id: str | None = None,
        state: str | None = None,
        error: tuple[str, str] | None = None,
        requests: str | None = None,
    ) -> None:
        """Set the run's report, and what else is given; a final `state` ends it now."""
        values: dict[str, object] = {"report": report}
        if requests is not None:
            values["requests"] = requests
        if batch_id is not None:
            values["batch_id"] = batch_id
        if state is not None:
            values["state"] = state
            if state not in UNFINISHED:
                values["ended_at"] = utcnow()
        if error is not None:
            values["error_code"], values["error_message"] = error
        await self._exec(update(sync_runs).where(sync_runs.c.id == run_id).values(**values))

    async def run(self, run_id: str) -> SyncRunRecord | None:
        """The run, or None (unknown, or trimmed from the history)."""
        row = (await self._exec(select(sync_runs).where(sync_runs.c.id == run_id))).first()
        return None if row is None else _run(row)

    async def runs_of(self, rule_id: str, limit: int) -> list[SyncRunRecord]:
        """The rule's runs, newest first."""
        u = sync_runs
        rows = await self._exec(
            select(u)
            .where(u.c.rule_id == rule_id)
            .order_by(u.c.created_at.desc(), u.c.id)
            .limit(limit)
        )
        return [_run(row) for row in rows]

    async def last_runs(self, rule_ids: Sequence[str]) -> dict[str, SyncRunRecord]:
        """The newest run of each rule that has one."""
        if not rule_ids:
            return {}
        u = sync_runs
        newest = (
            select(u.c.rule_id, func.max(u.c.created_at).label("at"))
            .where(u.c.rule_id.in_(list(rule_ids)))
            .group_by(u.c.rule_id)
            .subquery()
        )
        rows = await self._exec(
            select(u).join(
                newest, and_(u.c.rule_id == newest.c.rule_id, u.c.created_at == newest.c.at)
            )
        )
        return {row.rule_id: _run(row) for row in rows}

    async def trim_runs(self, rule_id: str, keep: int) -> None:
        """Delete the rule's finished runs beyond the newest `keep`."""
        u = sync_runs
        kept = (
            select(u.c.id)
            .where(u.c.rule_id == rule_id)
            .order_by(u.c.created_at.desc(), u.c.id)
            .limit(keep)
        )
        await self._exec(
            delete(u).where(
                u.c.rule_id == rule_id,
                u.c.state.not_in(UNFINISHED),
                u.c.id.not_in(kept.scalar_subquery()),
            )
        )

    async def abandon_runs(self, rule_id: str) -> None:
        """Mark the rule's runs left `running` by a process that lost its lease as failed
        (the claimer calls it: nobody else runs the rule now)."""
        u = sync_runs
        await self._exec(
            update(u)
            .where(u.c.rule_id == rule_id, u.c.state == RUNNING)
            .values(
                state=FAILED,
                ended_at=utcnow(),
                error_code="SyncRunInterrupted",
                error_message="the process running it stopped before the run ended",
            )
        )

    # -- per-tag records -----------------------------------------------------------------------
    async def synced_tags(self, rule_id: str) -> list[SyncedTag]:
        """Every tag the rule copied and still records."""
        t = sync_tags
        rows = await self._exec(select(t).where(t.c.rule_id == rule_id))
        return [
            SyncedTag(
                row.source_repository,
                row.tag,
                row.target_repository,
                row.upstream_digest,
                row.local_digest,
            )
            for row in rows
        ]

    async def record_tags(self, rule_id: str, tags: Sequence[SyncedTag]) -> None:
        """Set what the rule copied for each tag (replacing what it had)."""
        if not tags:
            return
        t = sync_tags
        await self._exec(
            delete(t).where(
                t.c.rule_id == rule_id,
                or_(
                    *(
                        and_(t.c.source_repository == tag.source_repository, t.c.tag == tag.tag)
                        for tag in tags
                    )
                ),
            )
        )
        now = utcnow()
        await self._exec(
            insert(t),
            [
                {
                    "rule_id": rule_id,
                    "source_repository": tag.source_repository,
                    "tag": tag.tag,
                    "target_repository": tag.target_repository,
                    "upstream_digest": tag.upstream_digest,
                    "local_digest": tag.local_digest,
                    "updated_at": now,
                }
                for tag in tags
            ],
        )

    async def forget_tags(self, rule_id: str, tags: Sequence[tuple[str, str]]) -> None:
        """Drop the records of (source repository, tag) pairs."""
        if not tags:
            return
        t = sync_tags
        await self._exec(
            delete(t).where(
                t.c.rule_id == rule_id,
                or_(*(and_(t.c.source_repository == r, t.c.tag == g) for r, g in tags)),
            )
        )
