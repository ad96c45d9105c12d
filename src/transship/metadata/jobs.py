"""Queries over import jobs and the blob pins they hold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, case, delete, func, insert, or_, select, text, update

from transship.errors import Conflict
from transship.metadata import schema as s
from transship.metadata.changes import Topic
from transship.metadata.records import ImportJobRecord, JobFailure, JobProgress, ManifestRecord
from transship.metadata.scope import QueryScope, as_utc, utcnow
from transship.oci.digest import Digest

FINAL_STATES = ("succeeded", "failed", "canceled")
# The job row's columns that hold a JobProgress (same names).
JOB_PROGRESS_COLUMNS = tuple(f.name for f in fields(JobProgress))
# PostgreSQL advisory lock serialising claims across processes (any constant unused elsewhere;
# the migration lock is 7347242).
CLAIM_LOCK_KEY = 7347243


def _claim_statements() -> tuple[Any, Any, Any]:
    """The claim's three statements, built once: building them (an alias and its column
    collection, the comparisons) cost more CPU than running them, and a worker claims
    after every import. Parameters: `now`, `max_per_registry`, `job_id`, `owner`,
    `expires`."""
    j = s.import_jobs
    now = bindparam("now", type_=j.c.lease_expires_at.type)
    claimable = (j.c.state == "queued") | (
        (j.c.state == "running") & (or_(j.c.lease_expires_at.is_(None), j.c.lease_expires_at < now))
    )
    live = (
        select(func.count())
        .select_from(j)
        .where(j.c.state == "running", j.c.lease_expires_at >= now)
    )
    other = j.alias("other")
    busy = (
        select(func.count())
        .select_from(other)
        .where(
            other.c.registry_id == j.c.registry_id,
            other.c.state == "running",
            other.c.lease_expires_at >= now,
        )
        .scalar_subquery()
    )
    candidate = (
        select(j.c.id)
        .where(claimable, busy < bindparam("max_per_registry"))
        .order_by(j.c.created_at)
        .limit(1)
    )
    claim = (
        update(j)
        .where(j.c.id == bindparam("job_id"), claimable)
        .values(
            state="running",
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires", type_=j.c.lease_expires_at.type),
            attempts=j.c.attempts + 1,
            started_at=now,
        )
    )
    return live, candidate, claim


LIVE_JOBS, CLAIM_CANDIDATE, CLAIM_JOB = _claim_statements()


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


class JobQueries(QueryScope):
    @staticmethod
    def _job(row: Row[Any]) -> ImportJobRecord:
        return ImportJobRecord(
            id=row.id,
            registry_id=row.registry_id,
            request=row.request,
            credentials=row.credentials,
            state=row.state,
            bytes_total=row.bytes_total,
            bytes_done=row.bytes_done,
            blobs_total=row.blobs_total,
            blobs_done=row.blobs_done,
            manifests_total=row.manifests_total,
            manifests_done=row.manifests_done,
            bytes_fetched=row.bytes_fetched,
            error_code=row.error_code,
            error_message=row.error_message,
            error_step=row.error_step,
            error_object=row.error_object,
            error_upstream_status=row.error_upstream_status,
            cancel_requested=row.cancel_requested,
            attempts=row.attempts,
            created_at=as_utc(row.created_at),
            started_at=_opt_utc(row.started_at),
            ended_at=_opt_utc(row.ended_at),
            waiting_until=_opt_utc(row.waiting_until),
            waiting_for=row.waiting_for,
            result=row.result,
        )

    async def create_job(
        self,
        job_id: str,
        registry_id: int,
        request: str,
        credentials: bytes | None,
        manifests: Iterable[ManifestRecord] = (),
    ) -> None:
        """Queue a job; `manifests`, verified by the caller, are what it starts with
        (`held_manifest` finds them until the job ends)."""
        await self.changed(Topic.IMPORTS)
        await self._exec(
            insert(s.import_jobs).values(
                id=job_id,
                registry_id=registry_id,
                request=request,
                credentials=credentials,
                state="queued",
                cancel_requested=False,
                attempts=0,
                created_at=utcnow(),
            )
        )
        rows = [
            {
                "job_id": job_id,
                "digest": m.digest,
                "registry_id": registry_id,
                "media_type": m.media_type,
                "content": m.content,
            }
            for m in manifests
        ]
        if rows:
            await self._exec(insert(s.job_manifests), rows)

    async def job(self, job_id: str) -> ImportJobRecord | None:
        row = (await self._exec(select(s.import_jobs).where(s.import_jobs.c.id == job_id))).first()
        return None if row is None else self._job(row)

    async def jobs_of(
        self, registry_id: int, limit: int = 100, after: str | None = None
    ) -> list[ImportJobRecord]:
        """A registry's jobs, newest first, starting after the job `after` (paging)."""
        j = s.import_jobs
        stmt = select(j).where(j.c.registry_id == registry_id)
        if after is not None:
            anchor = (await self._exec(select(j.c.created_at).where(j.c.id == after))).scalar()
            if anchor is not None:
                stmt = stmt.where(
                    (j.c.created_at < anchor) | ((j.c.created_at == anchor) & (j.c.id < after))
                )
        rows = await self._exec(stmt.order_by(j.c.created_at.desc(), j.c.id.desc()).limit(limit))
        return [self._job(r) for r in rows]

    async def claim_job(
        self, owner: str, lease: timedelta, *, max_running: int, max_running_per_registry: int
    ) -> ImportJobRecord | None:
        """Take the oldest queued job, or a running one whose owner stopped renewing its lease
        (a crashed process), unless the service or that job's registry already runs as many
        imports as allowed. Returns it as running, or None.

        The limits hold across every process claiming from the database: on PostgreSQL the
        claim takes a transaction-scoped advisory lock first (read committed would otherwise
        let two processes count the same running jobs and both claim); SQLite's write
        transactions are serialised already (BEGIN IMMEDIATE)."""
        if self.conn.dialect.name == "postgresql":
            await self._exec(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
        now = utcnow()
        if (await self._exec(LIVE_JOBS, {"now": now})).scalar_one() >= max_running:
            return None
        candidate = (
            await self._exec(
                CLAIM_CANDIDATE, {"now": now, "max_per_registry": max_running_per_registry}
            )
        ).scalar()
        if candidate is None:
            return None
        result = await self._exec(
            CLAIM_JOB,
            {"now": now, "job_id": candidate, "owner": owner, "expires": now + lease},
        )
        if not result.rowcount:
            return None  # another process claimed it between the two statements
        return await self.job(candidate)

    async def renew_leases(
        self, owner: str, lease: timedelta, progress: Mapping[str, JobProgress]
    ) -> dict[str, bool]:
        """The heartbeat of one process, in one statement whatever the number of jobs: extend
        the lease of each job in `progress` that `owner` still runs and record its progress.
        Returns, for each of those jobs, whether a cancel was requested; a job missing from
        the answer is no longer ours (another process took it over after the lease expired)."""
        if not progress:
            return {}
        j = s.import_jobs
        ids = sorted(progress)
        counters = {
            column: case(
                {job_id: getattr(progress[job_id], column) for job_id in ids},
                value=j.c.id,
                else_=j.c[column],
            )
            for column in JOB_PROGRESS_COLUMNS
        }
        rows = await self._exec(
            update(j)
            .where(j.c.id.in_(ids), j.c.lease_owner == owner, j.c.state == "running")
            .values(lease_expires_at=utcnow() + lease, **counters)
            .returning(j.c.id, j.c.cancel_requested)
        )
        return {row.id: bool(row.cancel_requested) for row in rows}

    async def finish_job(
        self,
        job_id: str,
        owner: str,
        state: str,
        progress: JobProgress,
        failure: JobFailure | None = None,
        result: str | None = None,
    ) -> bool:
        """Record the outcome (`result`: the JSON of what a succeeded import copied besides
        the image) and forget the credentials. False if the job is no longer ours."""
        await self.changed(Topic.IMPORTS)
        j = s.import_jobs
        values: dict[str, Any] = {
            "state": state,
            "ended_at": utcnow(),
            "lease_owner": None,
            "lease_expires_at": None,
            "credentials": None,
            "waiting_until": None,
            "waiting_for": None,
            "result": result,
            **asdict(progress),
        }
        if failure is not None:
            values.update(
                error_code=failure.code,
                error_message=failure.message,
                error_step=failure.step,
                error_object=failure.obj,
                error_upstream_status=failure.upstream_status,
            )
        updated = await self._exec(
            update(j)
            .where(j.c.id == job_id, j.c.lease_owner == owner, j.c.state == "running")
            .values(**values)
        )
        if not updated.rowcount:
            return False
        await self._exec(delete(s.blob_pins).where(s.blob_pins.c.job_id == job_id))
        await self._forget_manifests(job_id)
        return True

    async def _forget_manifests(self, job_id: str) -> None:
        await self._exec(delete(s.job_manifests).where(s.job_manifests.c.job_id == job_id))

    async def set_waiting(self, job_id: str, until: datetime | None, host: str | None) -> bool:
        """Record that the running job waits for `host`'s rate-limit budget until `until`
        (None, None: it no longer waits); one statement. False when the job is not
        running."""
        j = s.import_jobs
        result = await self._exec(
            update(j)
            .where(j.c.id == job_id, j.c.state == "running")
            .values(waiting_until=until, waiting_for=host if until is not None else None)
        )
        return bool(result.rowcount)

    async def release_job(self, job_id: str, owner: str) -> None:
        """Hand a running job back to the queue (a graceful shutdown)."""
        await self.changed(Topic.IMPORTS)
        j = s.import_jobs
        await self._exec(
            update(j)
            .where(j.c.id == job_id, j.c.lease_owner == owner, j.c.state == "running")
            .values(
                state="queued",
                lease_owner=None,
                lease_expires_at=None,
                waiting_until=None,
                waiting_for=None,
            )
        )

    async def request_cancel(self, job_id: str) -> ImportJobRecord | None:
        """Ask a job to stop. A queued job is canceled at once; a running one when its runner
        next looks. Returns the job after the change (None if unknown)."""
        j = s.import_jobs
        canceled = await self._exec(
            update(j)
            .where(j.c.id == job_id, j.c.state == "queued")
            .values(state="canceled", ended_at=utcnow(), credentials=None, cancel_requested=True)
        )
        if canceled.rowcount:
            await self._forget_manifests(job_id)
        await self._exec(
            update(j).where(j.c.id == job_id, j.c.state == "running").values(cancel_requested=True)
        )
        return await self.job(job_id)

    async def pin_blob(self, job_id: str, digest: Digest) -> bool:
        """Keep a blob from garbage collection while the job runs; False if the blob is gone."""
        try:
            async with self._nested():
                await self.pin_recorded_blob(job_id, digest)
        except Conflict:
            return False
        return True

    async def pin_recorded_blob(self, job_id: str, digest: Digest) -> None:
        """`pin_blob` of a blob whose row this transaction wrote, so it cannot be gone: no
        savepoint around the insert (two statements fewer per imported blob)."""
        await self._insert_ignore(
            s.blob_pins, {"job_id": job_id, "digest": digest}, ["job_id", "digest"]
        )

    async def unpin_blob(self, job_id: str, digest: Digest) -> None:
        """Drop the job's pin of a blob that something else now holds (a link). A pin put
        after the job ended would otherwise outlive it: its end drops only the pins it has."""
        p = s.blob_pins
        await self._exec(delete(p).where(p.c.job_id == job_id, p.c.digest == digest))

    async def linked_blobs(
        self,
        digests: Iterable[Digest],
        registry_id: int,
        source: tuple[int, str] | None = None,
        pinned_by: str | None = None,
    ) -> set[Digest]:
        """Those of `digests` that some repository of registry `registry_id` links, that the
        repository `source` = (registry id, repository name) links, or that the import job
        `pinned_by` has pinned, in one statement keyed by the digest indexes: which blobs an
        import may link without receiving their bytes."""
        wanted = list(set(digests))
        if not wanted:
            return set()
        rb, repo, pins = s.repository_blobs, s.repositories, s.blob_pins
        where = repo.c.registry_id == registry_id
        if source is not None:
            where = where | ((repo.c.registry_id == source[0]) & (repo.c.name == source[1]))
        stmt: Any = (
            select(rb.c.digest)
            .select_from(rb.join(repo, repo.c.id == rb.c.repository_id))
            .where(rb.c.digest.in_(wanted), where)
        )
        if pinned_by is not None:
            stmt = stmt.union(
                select(pins.c.digest).where(pins.c.job_id == pinned_by, pins.c.digest.in_(wanted))
            )
        return {r.digest for r in await self._exec(stmt)}

    async def pin_present(
        self,
        job_id: str,
        digests: list[Digest],
        registry_id: int,
        source: tuple[int, str] | None = None,
    ) -> set[Digest]:
        """Pin every listed blob the job may link without fetching it, in one batch; returns
        those pinned. Knowing a digest is never access, so that is only a blob linked to some
        repository of the target registry `registry_id`, to the source repository `source` =
        (registry id, repository name) of a same-service import (whose pull right the import
        policy checked), or already pinned by this job (verified by an earlier attempt).
        (A blob collected meanwhile makes the batch fail; then each is pinned on its own.)"""
        allowed = await self.linked_blobs(digests, registry_id, source, pinned_by=job_id)
        if not allowed:
            return set()
        stmt = self._insert(s.blob_pins).on_conflict_do_nothing(index_elements=["job_id", "digest"])
        try:
            async with self._nested():
                await self._exec(
                    stmt, [{"job_id": job_id, "digest": d} for d in sorted(allowed, key=str)]
                )
        except Conflict:
            return {d for d in allowed if await self.pin_blob(job_id, d)}
        return allowed

    async def stuck_jobs(self, before: datetime) -> list[ImportJobRecord]:
        """Running jobs whose lease expired before `before` (for `transship check`)."""
        j = s.import_jobs
        rows = await self._exec(
            select(j).where(j.c.state == "running", j.c.lease_expires_at < before)
        )
        return [self._job(r) for r in rows]
