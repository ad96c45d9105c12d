"""ImportService.follow, the progress long poll, and the JobSignals it waits on (SQLite and
PostgreSQL): it answers at once when the follower is behind, is woken by a change this
process makes (not by its poll), sees a change another process makes by polling, ends with
its wait, and releases every follower when the signals close (shutdown).

No engine runs here (`workers` is never started): the jobs stay queued unless a test moves
them, so every change is one the test makes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.service import ImportService, RunnerSettings, job_version
from transship.imports.signals import JobSignals
from transship.metadata.queries import MetadataStore

REQUEST = ImportRequest(
    SourceSpec("upstream.example", None, "app", "v1"), (TargetTag("app", "v1"),), (), False
)
# Longer than any test may take: a follower that returns did not wait this out.
LONG = 60.0


def service(
    meta: MetadataStore, tmp_path: Path, *, follow_poll_seconds: float = LONG
) -> ImportService:
    """A service whose followers re-read the database only every `follow_poll_seconds`
    (by default never during a test: only a signal can wake them)."""
    settings = RunnerSettings(follow_poll_seconds=follow_poll_seconds, max_follow_seconds=LONG)
    box = SecretBox.from_key_file(tmp_path / "key")
    return ImportService(meta, cast(ImportEngine, None), box, settings, signals=JobSignals())


async def test_a_follower_behind_or_with_an_ended_job_is_answered_at_once(
    meta: MetadataStore, tmp_path: Path
) -> None:
    imports = service(meta, tmp_path)
    job = await imports.submit(1, REQUEST, None)
    async with asyncio.timeout(10):
        assert await imports.follow(job.id, None, LONG) == job
        assert await imports.follow(job.id, "an older version", LONG) == job
        assert await imports.follow("f" * 32, job_version(job), LONG) is None
        ended = await imports.cancel(job.id)
        assert ended is not None and ended.state == "canceled"
        # Ended: it will never change again, so even its own version is answered at once.
        assert await imports.follow(job.id, job_version(ended), LONG) == ended
    assert imports.signals.followers == 0


async def test_the_wait_ends_unchanged_when_nothing_happens(
    meta: MetadataStore, tmp_path: Path
) -> None:
    imports = service(meta, tmp_path, follow_poll_seconds=0.05)
    job = await imports.submit(1, REQUEST, None)
    loop = asyncio.get_running_loop()
    began = loop.time()
    same = await imports.follow(job.id, job_version(job), 0.3)
    assert same == job
    assert loop.time() - began >= 0.25  # it did wait
    assert imports.signals.followers == 0


async def test_a_change_in_this_process_wakes_the_follower_without_its_poll(
    meta: MetadataStore, tmp_path: Path
) -> None:
    imports = service(meta, tmp_path)  # the poll would take LONG
    job = await imports.submit(1, REQUEST, None)
    follower = asyncio.create_task(imports.follow(job.id, job_version(job), LONG))
    await asyncio.sleep(0.05)
    assert not follower.done() and imports.signals.followers == 1
    claimed = await imports.claim()  # queued -> running, in this process
    assert claimed is not None and claimed.id == job.id
    async with asyncio.timeout(10):
        woken = await follower
    assert woken is not None and woken.state == "running" and woken.attempts == 1

    follower = asyncio.create_task(imports.follow(job.id, job_version(woken), LONG))
    await asyncio.sleep(0.05)
    await imports.cancel(job.id)  # a cancel request on a running job changes no column
    # the follower sees, so it is woken, reads, and waits again.
    await asyncio.sleep(0.05)
    assert not follower.done()
    progress = imports.progress_for(woken)
    progress.bytes_total, progress.bytes_completed = 100, 40
    await imports.renew({job.id: progress})  # the heartbeat publishes progress
    async with asyncio.timeout(10):
        moved = await follower
    assert moved is not None and (moved.bytes_total, moved.bytes_done) == (100, 40)
    assert imports.signals.followers == 0


async def test_a_change_by_another_process_is_seen_by_polling(
    meta: MetadataStore, tmp_path: Path
) -> None:
    here = service(meta, tmp_path, follow_poll_seconds=0.05)
    elsewhere = service(meta, tmp_path)  # its own signals: it cannot wake `here`'s followers
    job = await here.submit(1, REQUEST, None)
    follower = asyncio.create_task(here.follow(job.id, job_version(job), LONG))
    await asyncio.sleep(0.05)
    await elsewhere.cancel(job.id)
    async with asyncio.timeout(10):
        seen = await follower
    assert seen is not None and seen.state == "canceled"


async def test_closing_the_signals_releases_followers_and_later_ones_do_not_wait(
    meta: MetadataStore, tmp_path: Path
) -> None:
    imports = service(meta, tmp_path)
    job = await imports.submit(1, REQUEST, None)
    followers = [
        asyncio.create_task(imports.follow(job.id, job_version(job), LONG)) for _ in range(3)
    ]
    await asyncio.sleep(0.05)
    assert imports.signals.followers == 3
    imports.signals.close()
    async with asyncio.timeout(10):
        assert await asyncio.gather(*followers) == [job] * 3
        assert await imports.follow(job.id, job_version(job), LONG) == job
    assert imports.signals.followers == 0


async def test_the_claiming_loop_is_woken_by_a_submit_and_otherwise_polls() -> None:
    signals = JobSignals()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await signals.wait_for_work(0.1)  # nothing queued: the poll's timeout
    assert loop.time() - began >= 0.09
    waiting = asyncio.create_task(signals.wait_for_work(LONG))
    await asyncio.sleep(0.01)
    signals.work_available()
    async with asyncio.timeout(10):
        await waiting
    # A signal while no one waits is kept for the next wait.
    signals.work_available()
    async with asyncio.timeout(10):
        await signals.wait_for_work(LONG)
