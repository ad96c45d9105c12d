"""Import job rows: claiming with leases and the service-wide concurrency limits, and the
manifests a job is queued with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.metadata import migrated_store
from transship.errors import Conflict
from transship.metadata.queries import MetadataStore
from transship.metadata.records import JobFailure, JobProgress, ManifestRecord
from transship.metadata.scope import utcnow
from transship.oci.digest import Digest

LEASE = timedelta(seconds=30)


@pytest.fixture
async def meta(tmp_path: Path, database_url: str | None) -> AsyncIterator[MetadataStore]:
    async with migrated_store(database_url, tmp_path) as store:
        async with store.writing() as q:
            await q.create_registry("second", "second.localhost")
        yield store


async def claim(
    meta: MetadataStore, owner: str = "a" * 32, lease: timedelta = LEASE, **limits: int
) -> str | None:
    limits = {"max_running": 10, "max_running_per_registry": 10, **limits}
    async with meta.writing() as q:
        job = await q.jobs.claim_job(owner, lease, **limits)
    return None if job is None else job.id


async def add(meta: MetadataStore, job_id: str, registry_id: int = 1) -> None:
    async with meta.writing() as q:
        await q.jobs.create_job(job_id, registry_id, "{}", b"sealed")


async def test_jobs_are_claimed_oldest_first_and_once(meta: MetadataStore) -> None:
    for n in "123":
        await add(meta, n * 32)
    assert [await claim(meta) for _ in range(4)] == ["1" * 32, "2" * 32, "3" * 32, None]


async def test_per_registry_and_service_wide_limits(meta: MetadataStore) -> None:
    for n, registry in (("1", 1), ("2", 1), ("3", 2), ("4", 2)):
        await add(meta, n * 32, registry)
    assert await claim(meta, max_running_per_registry=1) == "1" * 32
    assert await claim(meta, max_running_per_registry=1) == "3" * 32  # registry 1 is busy
    assert await claim(meta, max_running_per_registry=1) is None
    assert await claim(meta, max_running=2) is None  # two are running service-wide


async def test_an_expired_lease_is_taken_over_and_the_old_owner_loses_it(
    meta: MetadataStore,
) -> None:
    await add(meta, "1" * 32)
    assert await claim(meta, owner="a" * 32, lease=timedelta(seconds=-1)) == "1" * 32
    assert await claim(meta, owner="b" * 32) == "1" * 32  # the first owner died
    async with meta.writing() as q:
        jobs = q.jobs
        assert await jobs.renew_leases("a" * 32, LEASE, {"1" * 32: JobProgress()}) == {}
        assert not await jobs.finish_job("1" * 32, "a" * 32, "succeeded", JobProgress())
        assert await jobs.finish_job(
            "1" * 32, "b" * 32, "failed", JobProgress(bytes_done=5), JobFailure("X", "why", "copy")
        )
        record = await jobs.job("1" * 32)
    assert record is not None
    assert (record.state, record.attempts, record.error_code, record.bytes_done) == (
        "failed",
        2,
        "X",
        5,
    )
    assert record.credentials is None  # forgotten when the job ends


async def test_one_statement_renews_the_leases_of_many_jobs_and_reports_cancels(
    meta: MetadataStore,
) -> None:
    for n in "1234":
        await add(meta, n * 32)
    for _ in "123":
        await claim(meta, owner="a" * 32)
    await claim(meta, owner="b" * 32)  # "4…": another process's job
    async with meta.writing() as q:
        await q.jobs.request_cancel("2" * 32)
    progress = {n * 32: JobProgress(bytes_total=int(n) * 100, blobs_done=int(n)) for n in "1234"}
    async with meta.writing() as q:
        answer = await q.jobs.renew_leases("a" * 32, LEASE, progress)
    assert answer == {"1" * 32: False, "2" * 32: True, "3" * 32: False}  # not "4…": not ours
    async with meta.reading() as q:
        records = {n: await q.jobs.job(n * 32) for n in "1234"}
    for n in "123":
        record = records[n]
        assert record is not None and (record.bytes_total, record.blobs_done) == (
            int(n) * 100,
            int(n),
        )
    other = records["4"]
    assert other is not None and other.bytes_total == 0  # another owner's job is untouched


async def test_cancel_of_a_queued_job_is_immediate(meta: MetadataStore) -> None:
    await add(meta, "1" * 32)
    async with meta.writing() as q:
        record = await q.jobs.request_cancel("1" * 32)
    assert record is not None and record.state == "canceled" and record.credentials is None
    assert await claim(meta) is None


async def test_pin_present_pins_what_the_job_may_link_in_one_go(meta: MetadataStore) -> None:
    """Linked in the target registry (1), or in the named source repository: pinned. Only
    held by the store, or linked in another registry's other repository: not (knowing a
    digest is never access). Absent: not."""
    await add(meta, "1" * 32)
    mine, theirs, source, loose, absent = (Digest.parse("sha256:" + c * 64) for c in "abcde")
    async with meta.writing() as q:
        for digest in (mine, theirs, source, loose):
            await q.record_blob(digest, 10)
        await q.link_blob(await q.ensure_repository(1, "app"), mine)
        await q.link_blob(await q.ensure_repository(2, "private"), theirs)
        await q.link_blob(await q.ensure_repository(2, "public"), source)
    everything = [mine, theirs, source, loose, absent]
    async with meta.writing() as q:
        jobs = q.jobs
        assert await jobs.pin_present("1" * 32, everything, 1) == {mine}
        assert await jobs.pin_present("1" * 32, everything, 1, (2, "public")) == {mine, source}
        assert await jobs.pin_present("1" * 32, [mine], 1) == {mine}  # idempotent
        # What the job pinned before (an earlier attempt) stays its own, whatever the scope.
        assert await jobs.pin_present("1" * 32, everything, 2) == {mine, theirs, source}
    async with meta.writing() as q:
        # Pinned: garbage collection may not delete it, however old.
        assert not await q.delete_blob_row_if_orphan(mine, utcnow() + timedelta(days=1))
        assert await q.delete_blob_row_if_orphan(loose, utcnow() + timedelta(days=1))


async def test_jobs_page_newest_first(meta: MetadataStore) -> None:
    for n in "12345":
        await add(meta, n * 32)
    async with meta.reading() as q:
        jobs = q.jobs
        first = [j.id[0] for j in await jobs.jobs_of(1, 2)]
        second = [j.id[0] for j in await jobs.jobs_of(1, 2, after="4" * 32)]
        rest = [j.id[0] for j in await jobs.jobs_of(1, 10, after="2" * 32)]
    assert (first, second, rest) == (["5", "4"], ["3", "2"], ["1"])


def _manifest(n: int) -> ManifestRecord:
    content = b'{"schemaVersion":2,"n":%d}' % n
    return ManifestRecord(Digest.of(content), "application/vnd.oci.image.manifest.v1+json", content)


async def _held(meta: MetadataStore, registry_id: int, digest: Digest) -> ManifestRecord | None:
    async with meta.reading() as q:
        return await q.held_manifest(registry_id, digest)


async def test_the_manifests_a_job_is_queued_with_are_held_for_its_registry_until_it_ends(
    meta: MetadataStore,
) -> None:
    index, child = _manifest(1), _manifest(2)
    async with meta.writing() as q:
        await q.jobs.create_job("1" * 32, 1, "{}", None, [index, child])
        await q.jobs.create_job("2" * 32, 1, "{}", None, [_manifest(3)])
    held = await _held(meta, 1, child.digest)
    assert held is not None
    assert (held.digest, held.media_type, held.content) == (
        child.digest,
        child.media_type,
        child.content,
    )
    assert await _held(meta, 2, child.digest) is None  # another registry's job has none
    assert await claim(meta) == "1" * 32
    async with meta.writing() as q:
        assert await q.jobs.finish_job("1" * 32, "a" * 32, "failed", JobProgress())
    assert await _held(meta, 1, index.digest) is None
    assert await _held(meta, 1, child.digest) is None
    # A queued job canceled before it ran lets go of its manifests too.
    assert await _held(meta, 1, _manifest(3).digest) is not None
    async with meta.writing() as q:
        canceled = await q.jobs.request_cancel("2" * 32)
    assert canceled is not None and canceled.state == "canceled"
    assert await _held(meta, 1, _manifest(3).digest) is None


async def test_a_job_that_cannot_be_queued_leaves_no_manifest(meta: MetadataStore) -> None:
    await add(meta, "1" * 32)
    with pytest.raises(Conflict):
        async with meta.writing() as q:
            await q.jobs.create_job("1" * 32, 1, "{}", None, [_manifest(1)])
    assert await _held(meta, 1, _manifest(1).digest) is None
