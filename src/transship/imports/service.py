"""Import jobs: submit, inspect, cancel, and the runner that executes them with leases, so a
job interrupted by a restart (or a crash) resumes on the next process that looks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine, Progress
from transship.imports.errors import ImportFailure
from transship.imports.model import ImportRequest
from transship.imports.ports import Credentials
from transship.metadata.jobs import JobQueries
from transship.metadata.queries import MetadataStore
from transship.metadata.records import ImportJobRecord, JobFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    workers: int = 4  # in this process
    max_running: int = 16  # service-wide
    max_running_per_registry: int = 4  # service-wide, per target registry
    lease: timedelta = timedelta(seconds=15)
    heartbeat_seconds: float = 0.5
    idle_poll_seconds: float = 1.0


class ImportService:
    def __init__(self, meta: MetadataStore, engine: ImportEngine, box: SecretBox, settings: RunnerSettings) -> None:
        self._meta = meta
        self._engine = engine
        self._box = box
        self._settings = settings
        self._owner = uuid.uuid4().hex  # this process, as lease holder
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}

    # -- requests ----------------------------------------------------------------------------
    async def submit(self, registry_id: int, request: ImportRequest, credentials: Credentials | None) -> ImportJobRecord:
        """Queue a job. Credentials are kept encrypted only until the job ends."""
        job_id = uuid.uuid4().hex
        sealed = None
        if credentials is not None:
            sealed = self._box.seal(json.dumps({"username": credentials.username, "password": credentials.password}).encode())
        async with self._meta.writing() as q:
            jobs = JobQueries(q.conn)
            await jobs.create_job(job_id, registry_id, request.to_json(), sealed)
            record = await jobs.job(job_id)
        assert record is not None
        self._wake.set()
        return record

    async def get(self, job_id: str) -> ImportJobRecord | None:
        async with self._meta.reading() as q:
            return await JobQueries(q.conn).job(job_id)

    async def list(self, registry_id: int, limit: int = 100, after: str | None = None) -> list[ImportJobRecord]:
        async with self._meta.reading() as q:
            return await JobQueries(q.conn).jobs_of(registry_id, limit, after)

    async def cancel(self, job_id: str) -> ImportJobRecord | None:
        async with self._meta.writing() as q:
            record = await JobQueries(q.conn).request_cancel(job_id)
        task = self._running.get(job_id)
        if task is not None:
            self._wake.set()
        return record

    # -- the runner --------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Claim and run jobs until cancelled. On cancellation (shutdown), running jobs are
        handed back to the queue so the next process resumes them at once."""
        try:
            while True:
                while len(self._running) < self._settings.workers:
                    async with self._meta.writing() as q:
                        job = await JobQueries(q.conn).claim_job(
                            self._owner,
                            self._settings.lease,
                            max_running=self._settings.max_running,
                            max_running_per_registry=self._settings.max_running_per_registry,
                        )
                    if job is None:
                        break
                    self._running[job.id] = asyncio.create_task(self._run(job))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.idle_poll_seconds)
        finally:
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: ImportJobRecord) -> None:
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            await self._release(job.id)
            raise
        except Exception:
            log.exception("import job %s crashed", job.id)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()

    async def _execute(self, job: ImportJobRecord) -> None:
        request = ImportRequest.from_json(job.request)
        credentials = self._credentials(job)
        progress = Progress()
        work = asyncio.create_task(
            self._engine.run(job.id, job.registry_id, request, credentials, progress, resumed=job.attempts > 1)
        )
        try:
            canceled = await self._supervise(job, work, progress)
        except asyncio.CancelledError:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            raise
        if canceled is None:
            log.warning("import job %s was taken over by another process", job.id)
            return
        state, failure = "succeeded", None
        if canceled:
            state = "canceled"
        else:
            try:
                work.result()
            except ImportFailure as exc:
                state = "failed"
                failure = JobFailure(exc.code, exc.message, exc.step.value, exc.obj, exc.upstream_status)
            except Exception as exc:
                log.exception("import job %s failed unexpectedly", job.id)
                state = "failed"
                failure = JobFailure("InternalServerError", f"the import failed unexpectedly: {type(exc).__name__}")
        async with self._meta.writing() as q:
            await JobQueries(q.conn).finish_job(job.id, self._owner, state, progress.snapshot(), failure)
        log.info("import job %s %s", job.id, state if failure is None else f"{state}: {failure.code}")

    async def _supervise(self, job: ImportJobRecord, work: asyncio.Task[object], progress: Progress) -> bool | None:
        """Renew the lease and publish progress until the work ends. True when a cancel was
        requested (the work is then stopped), None when another process took the job over."""
        while not work.done():
            await asyncio.wait({work}, timeout=self._settings.heartbeat_seconds)
            if work.done():
                break
            async with self._meta.writing() as q:
                jobs = JobQueries(q.conn)
                still_ours = await jobs.renew_lease(job.id, self._owner, self._settings.lease, progress.snapshot())
                canceled = still_ours and await jobs.cancel_requested(job.id)
            if not still_ours or canceled:
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                return None if not still_ours else True
        return False

    def _credentials(self, job: ImportJobRecord) -> Credentials | None:
        if job.credentials is None:
            return None
        data = json.loads(self._box.open(job.credentials))
        return Credentials(data["username"], data["password"])

    async def _release(self, job_id: str) -> None:
        """Shutdown: give the job back to the queue (its committed blobs stay pinned)."""
        with contextlib.suppress(Exception):
            async with self._meta.writing() as q:
                await JobQueries(q.conn).release_job(job_id, self._owner)
