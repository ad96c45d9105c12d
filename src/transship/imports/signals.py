"""In-process wake-ups around the import job queue: the claiming loop is woken when a job is
queued here (or a slot frees up), and followers of a job (the progress long poll) when this
process changes it.

They only shorten waits: every waiter also wakes after a timeout and reads the database,
which stays the truth. The queue's wake-up also comes from other processes: a job queued or
ended anywhere reaches every process through the change feed (`transship.metadata.changes`,
topic IMPORTS), so an idle worker elsewhere claims it within a second; the timeout is left
for expired leases and for a feed that is down. Job progress written by another process is
still found by the followers' timeout.

One instance per process, made in the composition root and shared by the ImportService
(which signals) and the worker loop and API handlers (which wait).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator


class ChangeWatch:
    """A follower's registration for one job: set by every change signalled for the job
    after the watch began, cleared by `wait`. Registering before reading the job means a
    change committed between the read and the wait is never missed."""

    __slots__ = ("_changed", "job_id")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._changed = asyncio.Event()

    def fire(self) -> None:
        self._changed.set()

    async def wait(self, timeout: float) -> bool:
        """Return True when a change was signalled since the last wait (at once if one was
        already pending), False after `timeout` seconds without one."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns instead of raising
        # when the event fires in the same loop turn as a cancellation, swallowing it.
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class JobSignals:
    """The queue's wake-up for the claiming loop and the per-job change signals for
    followers. `close()` (server shutdown) releases every follower at once, and makes later
    follows return without waiting, so a long poll never holds a shutdown up."""

    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._watches: dict[str, set[ChangeWatch]] = {}
        self._closed = False

    # -- the queue -----------------------------------------------------------------------
    def work_available(self) -> None:
        """There may be work to claim: a job was queued, or a running one freed its slot."""
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when `work_available` is signalled, or after `timeout` seconds (jobs queued
        by other processes and expired leases are found by that poll)."""
        with contextlib.suppress(TimeoutError):  # asyncio.timeout: see ChangeWatch.wait
            async with asyncio.timeout(timeout):
                await self._work.wait()
        # Cleared after the wait, before the caller's claim round: a signal during that round
        # is kept for the next wait, never lost.
        self._work.clear()

    # -- followers of a job -------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """Whether the process is shutting down (followers must answer without waiting)."""
        return self._closed

    def job_changed(self, job_id: str) -> None:
        """This process changed the job (state, progress, cancel request): wake its
        followers."""
        for watch in self._watches.get(job_id, ()):
            watch.fire()

    def jobs_changed(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.job_changed(job_id)

    def some_job_changed(self) -> None:
        """Another process queued or ended a job (the change feed does not say which):
        wake every follower to read its job again, one keyed read each."""
        for watches in self._watches.values():
            for watch in watches:
                watch.fire()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[ChangeWatch]:
        """A ChangeWatch on `job_id` for the block; it fires at once when the signals are
        (or become) closed."""
        watch = ChangeWatch(job_id)
        if self._closed:
            watch.fire()
        self._watches.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches.get(job_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[job_id]

    def close(self) -> None:
        """Shutdown: wake every follower now and never make one wait again."""
        self._closed = True
        self.some_job_changed()

    @property
    def followers(self) -> int:
        """How many watches are registered now (for tests and diagnostics)."""
        return sum(len(w) for w in self._watches.values())
