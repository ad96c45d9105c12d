"""Queries over batch imports: a batch row and its items, each an ordinary import job
(`transship.metadata.jobs`), so the worker claims, retries, cancels and resumes an item as
any import."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, tuple_, update

from transship.metadata import schema as s
from transship.metadata.changes import Topic
from transship.metadata.jobs import JobQueries
from transship.metadata.records import ImportJobRecord
from transship.metadata.scope import QueryScope, as_utc, utcnow
from transship.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class BatchItemRecord:
    """One item of a batch: its position in the request, its job, and the digest its first
    target named when the batch was queued (None: the target named nothing)."""

    position: int
    job: ImportJobRecord
    prior_digest: Digest | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    registry_id: int
    cancel_requested: bool
    created_at: datetime
    items: tuple[BatchItemRecord, ...]


@dataclass(frozen=True, slots=True)
class NewBatchItem:
    """What `create_batch` writes for one item (the job's request is JSON, credentials
    sealed)."""

    job_id: str
    request: str
    credentials: bytes | None
    prior_digest: Digest | None


class BatchQueries(QueryScope):
    async def create_batch(
        self, batch_id: str, registry_id: int, items: Sequence[NewBatchItem]
    ) -> None:
        """Queue the batch and one import job per item, in this transaction: all or none."""
        jobs = JobQueries.joining(self)
        await self._exec(
            insert(s.import_batches).values(
                id=batch_id, registry_id=registry_id, cancel_requested=False, created_at=utcnow()
            )
        )
        for item in items:
            await jobs.create_job(item.job_id, registry_id, item.request, item.credentials)
        await self._exec(
            insert(s.import_batch_items),
            [
                {
                    "batch_id": batch_id,
                    "position": position,
                    "job_id": item.job_id,
                    "prior_digest": item.prior_digest,
                }
                for position, item in enumerate(items)
            ],
        )

    async def batch(self, batch_id: str) -> BatchRecord | None:
        """The batch with its items in request order, or None."""
        b, i, j = s.import_batches, s.import_batch_items, s.import_jobs
        head = (await self._exec(select(b).where(b.c.id == batch_id))).first()
        if head is None:
            return None
        rows = await self._exec(
            select(j, i.c.position, i.c.prior_digest)
            .select_from(i.join(j, j.c.id == i.c.job_id))
            .where(i.c.batch_id == batch_id)
            .order_by(i.c.position)
        )
        return BatchRecord(
            id=head.id,
            registry_id=head.registry_id,
            cancel_requested=bool(head.cancel_requested),
            created_at=as_utc(head.created_at),
            items=tuple(
                BatchItemRecord(r.position, JobQueries._job(r), r.prior_digest) for r in rows
            ),
        )

    async def request_cancel(self, batch_id: str) -> None:
        """Ask every item of the batch to stop: queued items are canceled at once, running
        ones when their runner next looks (as JobQueries.request_cancel, for all at once)."""
        await self.changed(Topic.IMPORTS)
        i, j = s.import_batch_items, s.import_jobs
        await self._exec(
            update(s.import_batches)
            .where(s.import_batches.c.id == batch_id)
            .values(cancel_requested=True)
        )
        members = select(i.c.job_id).where(i.c.batch_id == batch_id).scalar_subquery()
        await self._exec(
            update(j)
            .where(j.c.id.in_(members), j.c.state == "queued")
            .values(state="canceled", ended_at=utcnow(), credentials=None, cancel_requested=True)
        )
        await self._exec(
            update(j)
            .where(j.c.id.in_(members), j.c.state == "running")
            .values(cancel_requested=True)
        )

    async def tag_digests(
        self, registry_id: int, targets: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Digest]:
        """The digest each (repository, tag) of the registry names now, for those that
        exist, in one statement."""
        wanted = sorted(set(targets))
        if not wanted:
            return {}
        t, r = s.tags, s.repositories
        rows = await self._exec(
            select(r.c.name, t.c.name.label("tag"), t.c.digest)
            .select_from(t.join(r, r.c.id == t.c.repository_id))
            .where(r.c.registry_id == registry_id, tuple_(r.c.name, t.c.name).in_(wanted))
        )
        return {(row.name, row.tag): row.digest for row in rows}

    async def held_digests(
        self, registry_id: int, targets: Sequence[tuple[str, Digest]]
    ) -> set[tuple[str, Digest]]:
        """Those (repository, manifest digest) pairs the registry holds, in one statement."""
        wanted = sorted(set(targets), key=str)
        if not wanted:
            return set()
        m, r = s.manifests, s.repositories
        rows = await self._exec(
            select(r.c.name, m.c.digest)
            .select_from(m.join(r, r.c.id == m.c.repository_id))
            .where(
                r.c.registry_id == registry_id,
                tuple_(r.c.name, m.c.digest).in_([(n, str(d)) for n, d in wanted]),
            )
        )
        return {(row.name, row.digest) for row in rows}
