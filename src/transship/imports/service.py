"""Import jobs: submit, inspect and cancel them, and the steps a worker takes to run them
under leases (claim a job, execute it, renew the leases of running jobs in one batch, hand a
job back at shutdown), so a job interrupted by a restart (or a crash) resumes on the next
process that looks. The loops that drive these steps live in `transship.worker.import_loop`.

`follow` is the progress long poll: it answers as soon as a job differs from the version a
follower already has. The in-process JobSignals make that (and the claiming of a job just
queued) immediate; a job queued or ended by another process wakes the claiming loop through
the change feed (`transship.metadata.changes`); progress another process writes is seen by
polling the database."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from typing import Any

from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine, Progress
from transship.imports.errors import ImportFailure
from transship.imports.model import ImportRequest, ImportResult
from transship.imports.plan import ImportPlan
from transship.imports.ports import Credentials, FetchedManifest
from transship.imports.signals import JobSignals
from transship.metadata.changes import Topic
from transship.metadata.jobs import FINAL_STATES
from transship.metadata.queries import MetadataStore, Transaction
from transship.metadata.records import ImportJobRecord, JobFailure, JobProgress, ManifestRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    workers: int = 4  # in this process
    max_running: int = 16  # service-wide
    max_running_per_registry: int = 4  # service-wide, per target registry
    lease: timedelta = timedelta(seconds=15)
    # One lease renewal (and progress write) per interval for all of the process's jobs.
    heartbeat_seconds: float = 0.5
    # The claiming loop's poll when nothing wakes it (jobs queued by another process,
    # expired leases); a job queued in this process is claimed at once.
    idle_poll_seconds: float = 1.0
    # A follower's re-read of its job when nothing wakes it (a job another process runs
    # publishes its progress once per heartbeat).
    follow_poll_seconds: float = 0.5
    # The longest a follower may ask to wait for a change.
    max_follow_seconds: float = 30.0


class Stop(enum.Enum):
    """Why a running job must stop before its work ends."""

    CANCELED = "canceled"  # a cancel was requested: the job ends as canceled
    LOST = "lost"  # another process holds the job now: this one records nothing


def job_progress(job: ImportJobRecord) -> JobProgress:
    """The counters the job's record holds (what its last attempt published)."""
    return JobProgress(
        bytes_total=job.bytes_total,
        bytes_done=job.bytes_done,
        blobs_total=job.blobs_total,
        blobs_done=job.blobs_done,
        manifests_total=job.manifests_total,
        manifests_done=job.manifests_done,
        bytes_fetched=job.bytes_fetched,
    )


def job_version(job: ImportJobRecord) -> str:
    """A short fingerprint of everything a follower sees change in a job (state, attempts,
    counters, outcome, end): equal versions, same answer."""
    parts = [
        job.state,
        job.attempts,
        *astuple(job_progress(job)),
        job.error_code,
        job.error_message,
        job.error_step,
        job.error_object,
        job.error_upstream_status,
        None if job.ended_at is None else job.ended_at.isoformat(),
        None if job.waiting_until is None else job.waiting_until.isoformat(),
        job.waiting_for,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


class ImportService:
    def __init__(
        self,
        meta: MetadataStore,
        engine: ImportEngine,
        box: SecretBox,
        settings: RunnerSettings,
        *,
        signals: JobSignals | None = None,
    ) -> None:
        """`signals`: the process's JobSignals (the composition root shares one with the
        API); a service of its own when None."""
        self._meta = meta
        self._engine = engine
        self._box = box
        self.settings = settings
        self._owner = uuid.uuid4().hex  # this process, as lease holder
        self.signals = signals if signals is not None else JobSignals()
        # A job queued, or a slot freed, by any process wakes this one's claiming loop, and
        # a job ended by another process (a worker) answers its followers here at once.
        meta.changes.subscribe(Topic.IMPORTS, self._imports_changed)

    # -- requests ----------------------------------------------------------------------------
    async def submit(
        self,
        registry_id: int,
        request: ImportRequest,
        credentials: Credentials | None,
        manifests: Iterable[FetchedManifest] = (),
    ) -> ImportJobRecord:
        """Queue a job. Credentials are kept encrypted only until the job ends, and so are
        `manifests`: verified manifests of the source the caller already fetched, which the
        job, in whichever process claims it, reads instead of fetching them again."""
        job_id = uuid.uuid4().hex
        sealed = self.seal(credentials)
        given = [ManifestRecord(m.digest, m.media_type, m.content) for m in manifests]

        async def create(q: Transaction) -> ImportJobRecord | None:
            await q.jobs.create_job(job_id, registry_id, request.to_json(), sealed, given)
            return await q.jobs.job(job_id)

        # In one step: POSTs arriving at a loaded server must not hold the database's write
        # lock, which the workers' progress writes wait for, across turns of its loop.
        record = await self._meta.write_at_once(create)
        assert record is not None
        self.signals.work_available()
        return record

    def seal(self, credentials: Credentials | None) -> bytes | None:
        """The credentials as a job row keeps them: encrypted with the service key."""
        if credentials is None:
            return None
        return self._box.seal(
            json.dumps(
                {"username": credentials.username, "password": credentials.password}
            ).encode()
        )

    async def get(self, job_id: str) -> ImportJobRecord | None:
        # One step on SQLite's read thread: followers read the job at each change.
        return await self._meta.read_at_once(lambda q: q.jobs.job(job_id))

    async def list(
        self, registry_id: int, limit: int = 100, after: str | None = None
    ) -> list[ImportJobRecord]:
        async with self._meta.reading() as q:
            return await q.jobs.jobs_of(registry_id, limit, after)

    async def cancel(self, job_id: str) -> ImportJobRecord | None:
        """Ask a job to stop: a queued one is canceled at once, a running one at its runner's
        next heartbeat. Returns the job after the change (None if unknown)."""
        job = await self._meta.write_at_once(lambda q: q.jobs.request_cancel(job_id))
        self.signals.job_changed(job_id)
        return job

    async def follow(
        self, job_id: str, seen_version: str | None, wait_seconds: float
    ) -> ImportJobRecord | None:
        """The job as soon as its version (`job_version`) differs from `seen_version`, the
        one the follower already has; at once when `seen_version` is None, the job has
        ended (it will not change again) or the process is shutting down. After
        `wait_seconds` (at most `settings.max_follow_seconds`) without a change, the job
        as it is, unchanged. None when there is no such job. Raises what the database
        raises."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait_seconds, 0.0), self.settings.max_follow_seconds)
        # Watching before each read: a change committed between the read and the wait wakes
        # the wait instead of being missed.
        with self.signals.watch(job_id) as watch:
            while True:
                job = await self.get(job_id)
                if (
                    job is None
                    or seen_version is None
                    or job.state in FINAL_STATES
                    or job_version(job) != seen_version
                    or self.signals.closed
                ):
                    return job
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return job
                await watch.wait(min(remaining, self.settings.follow_poll_seconds))

    # -- the worker's steps -----------------------------------------------------------------
    def _imports_changed(self) -> None:
        self.wake()
        self.signals.some_job_changed()

    def wake(self) -> None:
        """Tell the claiming loop there may be work (a job was queued, a slot freed)."""
        self.signals.work_available()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when woken, or after `timeout` seconds (jobs queued by other processes and
        expired leases are found by polling)."""
        await self.signals.wait_for_work(timeout)

    async def claim(self) -> ImportJobRecord | None:
        """Take the next claimable job as this process's (see JobQueries.claim_job), or None.
        Raises what the database raises."""
        job = await self._meta.write_at_once(
            lambda q: q.jobs.claim_job(
                self._owner,
                self.settings.lease,
                max_running=self.settings.max_running,
                max_running_per_registry=self.settings.max_running_per_registry,
            )
        )
        if job is not None:
            self.signals.job_changed(job.id)
        return job

    def progress_for(self, job: ImportJobRecord) -> Progress:
        """Live counters for a claimed job, starting from what its earlier attempts
        published (so a resumed job's counters do not restart from zero); its rate-limit
        waits are recorded on the job as they start and end."""
        return Progress(floor=job_progress(job), on_wait=functools.partial(self._waiting, job.id))

    async def _waiting(self, job_id: str, until: datetime | None, host: str) -> None:
        """Record (one statement) that the job waits for `host`'s budget until `until`, or
        (None) no longer waits, and wake its followers."""
        await self._meta.write_at_once(lambda q: q.jobs.set_waiting(job_id, until, host))
        self.signals.job_changed(job_id)

    async def renew(self, progress: Mapping[str, Progress]) -> dict[str, bool]:
        """The heartbeat of all of this process's running jobs, one statement: extend their
        leases and record their progress. Returns {job id: cancel requested} for the jobs
        still ours; a job missing from it was taken over. Raises what the database raises."""
        snapshots = {job_id: p.snapshot() for job_id, p in progress.items()}
        answer = await self._meta.write_at_once(
            lambda q: q.jobs.renew_leases(self._owner, self.settings.lease, snapshots)
        )
        self.signals.jobs_changed(answer)
        return answer

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
        state, failure, result = "succeeded", None, None
        if not work.done():
            # Fixed before the transfers are torn down: their in-flight bytes, already
            # published, must not be taken back by the cleanup.
            progress.freeze()
            await self._halt(work)
            if stop.result() is Stop.LOST:
                log.warning("import job %s was taken over by another process", job.id)
                return
            state = "canceled"
        else:
            try:
                outcome = work.result()
                if request.referrers is not None and isinstance(outcome, ImportPlan):
                    result = ImportResult(outcome.referrers, outcome.referrer_tags).to_json()
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
        snapshot = progress.snapshot()
        await self._meta.write_at_once(
            lambda q: q.jobs.finish_job(job.id, self._owner, state, snapshot, failure, result)
        )
        self.signals.job_changed(job.id)
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
        """Shutdown: give the job back to the queue (its committed blobs stay pinned). When
        that fails, the job resumes elsewhere once its lease expires."""
        try:
            await self._meta.write_at_once(lambda q: q.jobs.release_job(job_id, self._owner))
        except Exception:
            log.warning(
                "import job %s could not be handed back to the queue; it resumes when its "
                "lease expires",
                job_id,
                exc_info=True,
            )
        self.signals.job_changed(job_id)
