"""This process's share of the import jobs: two loops over one set of running jobs.

- `claim_forever` claims queued jobs (or ones whose lease expired) while the process has
  free slots, and starts each as a task; it waits for a wake-up (a job queued in this
  process, a slot freed: `JobSignals`) or, for jobs queued by another process and expired
  leases, polls every `idle_poll_seconds`.
- `heartbeat_forever` renews the leases of all the running jobs, records their progress and
  learns which were canceled or taken over, in one statement per interval.

Both run under the Supervisor: a transient database error in either is a crash that is
restarted, and the running jobs go on meanwhile (their leases outlast a few restarts). The
running jobs are stopped, and handed back to the queue, by `close()` at shutdown only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from transship.imports.engine import Progress
from transship.imports.service import ImportService, Stop
from transship.metadata.records import ImportJobRecord
from transship.worker.supervisor import Beat

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Running:
    job: ImportJobRecord
    stop: asyncio.Future[Stop]
    progress: Progress
    task: asyncio.Task[None] | None = None


class ImportWorker:
    """Claims and runs import jobs in this process (at most `settings.workers` at once)."""

    def __init__(self, imports: ImportService) -> None:
        self._imports = imports
        self._settings = imports.settings
        self._running: dict[str, _Running] = {}

    @property
    def running(self) -> frozenset[str]:
        """The ids of the jobs this process runs now."""
        return frozenset(self._running)

    async def claim_forever(self, beat: Beat) -> None:
        """Claim and start jobs until cancelled; beats after each claim round. Raises what
        claiming raises (the supervisor restarts the loop; running jobs are not touched)."""
        while True:
            while len(self._running) < self._settings.workers:
                job = await self._imports.claim()
                if job is None:
                    break
                self._start(job)
            beat()
            await self._imports.wait_for_work(self._settings.idle_poll_seconds)

    async def heartbeat_forever(self, beat: Beat) -> None:
        """Every `heartbeat_seconds`, renew the leases of all running jobs in one statement,
        and stop those canceled or taken over; beats after each renewal. Raises what the
        renewal raises."""
        while True:
            # A timer, not synchronisation: the interval is the heartbeat's period.
            await asyncio.sleep(self._settings.heartbeat_seconds)
            running = dict(self._running)
            if running:
                answer = await self._imports.renew(
                    {job_id: run.progress for job_id, run in running.items()}
                )
                for job_id, run in running.items():
                    if run.stop.done():
                        continue
                    if job_id not in answer:
                        run.stop.set_result(Stop.LOST)
                    elif answer[job_id]:
                        run.stop.set_result(Stop.CANCELED)
            beat()

    async def close(self) -> None:
        """Shutdown: stop every running job; each hands itself back to the queue."""
        tasks = [run.task for run in self._running.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, job: ImportJobRecord) -> None:
        run = _Running(
            job, asyncio.get_running_loop().create_future(), self._imports.progress_for(job)
        )
        self._running[job.id] = run
        run.task = asyncio.create_task(self._run(run), name=f"import:{job.id}")

    async def _run(self, run: _Running) -> None:
        try:
            await self._imports.execute(run.job, run.progress, run.stop)
        except Exception:
            # Recording the outcome failed: the lease expires and the job resumes elsewhere.
            log.exception("import job %s crashed", run.job.id)
        finally:
            self._running.pop(run.job.id, None)
            self._imports.wake()  # a slot is free
