"""Import jobs: submit, inspect and cancel them, and the steps a worker takes to run them
under leases (claim a job, execute it, renew the leases of running jobs in one batch, hand a
job back at shutdown), so a job interrupted by a restart (or a crash) resumes on the next
process that looks. The loops that drive these steps live in `transship.worker.import_loop`."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine, Progress
from transship.imports.errors import ImportFailure
from transship.imports.model import ImportRequest
from transship.imports.ports import Credentials
from transship.metadata.queries import MetadataStore
from transship.metadata.records import ImportJobRecord, JobFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    workers: int = 4  # in this process
    max_running: int = 16  # service-wide
    max_running_per_registry: int = 4  # service-wide, per target registry
    lease: timedelta = timedelta(seconds=15)
    # One lease renewal (and progress write) per interval for all of the process's jobs.
    heartbeat_seconds: float = 0.5
    idle_poll_seconds: float = 1.0


class Stop(enum.Enum):
    """Why a running job must stop before its work ends."""

    CANCELED = "canceled"  # a cancel was requested: the job ends as canceled
    LOST = "lost"  # another process holds the job now: this one records nothing


class ImportService:
    def __init__(
        self, meta: MetadataStore, engine: ImportEngine, box: SecretBox, settings: RunnerSettings
    ) -> None:
        self._meta = meta
        self._engine = engine
        self._box = box
        self.settings = settings
        self._owner = uuid.uuid4().hex  # this process, as lease holder
        self._wake = asyncio.Event()

    # -- requests ----------------------------------------------------------------------------
    async def submit(
        self, registry_id: int, request: ImportRequest, credentials: Credentials | None
    ) -> ImportJobRecord:
        """Queue a job. Credentials are kept encrypted only until the job ends."""
        job_id = uuid.uuid4().hex
        sealed = None
        if credentials is not None:
            sealed = self._box.seal(
                json.dumps(
                    {"username": credentials.username, "password": credentials.password}
                ).encode()
            )
        async with self._meta.writing() as q:
            jobs = q.jobs
            await jobs.create_job(job_id, registry_id, request.to_json(), sealed)
            record = await jobs.job(job_id)
        assert record is not None
        self._wake.set()
        return record

    async def get(self, job_id: str) -> ImportJobRecord | None:
        async with self._meta.reading() as q:
            return await q.jobs.job(job_id)

    async def list(
        self, registry_id: int, limit: int = 100, after: str | None = None
    ) -> list[ImportJobRecord]:
        async with self._meta.reading() as q:
            return await q.jobs.jobs_of(registry_id, limit, after)

    async def cancel(self, job_id: str) -> ImportJobRecord | None:
        """Ask a job to stop: a queued one is canceled at once, a running one at its runner's
        next heartbeat. Returns the job after the change (None if unknown)."""
        async with self._meta.writing() as q:
            return await q.jobs.request_cancel(job_id)

    # -- the worker's steps -----------------------------------------------------------------
    def wake(self) -> None:
        """Tell the claiming loop there may be work (a job was queued, a slot freed)."""
        self._wake.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when woken, or after `timeout` seconds (jobs queued by other processes and
        expired leases are found by polling)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        # Cleared after the wait, before the next claim round: a wake during that round is
        # kept for the next wait, never lost.
        self._wake.clear()

    async def claim(self) -> ImportJobRecord | None:
        """Take the next claimable job as this process's (see JobQueries.claim_job), or None.
        Raises what the database raises."""
        async with self._meta.writing() as q:
            return await q.jobs.claim_job(
                self._owner,
                self.settings.lease,
                max_running=self.settings.max_running,
                max_running_per_registry=self.settings.max_running_per_registry,
            )

    async def renew(self, progress: Mapping[str, Progress]) -> dict[str, bool]:
        """The heartbeat of all of this process's running jobs, one statement: extend their
        leases and record their progress. Returns {job id: cancel requested} for the jobs
        still ours; a job missing from it was taken over. Raises what the database raises."""
        snapshots = {job_id: p.snapshot() for job_id, p in progress.items()}
        async with self._meta.writing() as q:
            return await q.jobs.renew_leases(self._owner, self.settings.lease, snapshots)

    async def execute(
        self, job: ImportJobRecord, progress: Progress, stop: asyncio.Future[Stop]
    ) -> None:
        """Run one claimed job to its end and record the outcome. `progress` is the job's live
        counters (the heartbeat publishes them). When `stop` resolves before the work ends,
        the work is stopped: Stop.CANCELED records the job as canceled, Stop.LOST records
        nothing. Cancelling this coroutine (shutdown) hands the job back to the queue, so the
        next process resumes it at once. An engine failure becomes the job's failure; raises
        only what recording the outcome raises (the lease then expires and the job resumes
        elsewhere)."""
        request = ImportRequest.from_json(job.request)
        credentials = self._credentials(job)
        work: asyncio.Task[object] = asyncio.create_task(
            self._engine.run(
                job.id, job.registry_id, request, credentials, progress, resumed=job.attempts > 1
            )
        )
        try:
            either: set[asyncio.Future[Any]] = {work, stop}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self._halt(work)
            await self._release(job.id)
            raise
        state, failure = "succeeded", None
        if not work.done():
            await self._halt(work)
            if stop.result() is Stop.LOST:
                log.warning("import job %s was taken over by another process", job.id)
                return
            state = "canceled"
        else:
            try:
                work.result()
            except ImportFailure as exc:
                state = "failed"
                failure = JobFailure(
                    exc.code, exc.message, exc.step.value, exc.obj, exc.upstream_status
                )
            except Exception as exc:
                log.exception("import job %s failed unexpectedly", job.id)
                state = "failed"
                failure = JobFailure(
                    "InternalServerError", f"the import failed unexpectedly: {type(exc).__name__}"
                )
        async with self._meta.writing() as q:
            await q.jobs.finish_job(job.id, self._owner, state, progress.snapshot(), failure)
        log.info(
            "import job %s %s", job.id, state if failure is None else f"{state}: {failure.code}"
        )

    @staticmethod
    async def _halt(work: asyncio.Task[object]) -> None:
        work.cancel()
        with contextlib.suppress(BaseException):
            await work

    def _credentials(self, job: ImportJobRecord) -> Credentials | None:
        if job.credentials is None:
            return None
        data = json.loads(self._box.open(job.credentials))
        return Credentials(data["username"], data["password"])

    async def _release(self, job_id: str) -> None:
        """Shutdown: give the job back to the queue (its committed blobs stay pinned)."""
        with contextlib.suppress(Exception):
            async with self._meta.writing() as q:
                await q.jobs.release_job(job_id, self._owner)
