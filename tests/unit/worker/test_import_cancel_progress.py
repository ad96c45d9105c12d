"""Issue 12: after `import cancel`, the progress counters must not jump backwards. A job is
canceled while its blobs are in flight (the real engine, the worker's claim and heartbeat
loops, SQLite and PostgreSQL); every counter the job's record ever shows, read by a
follower and written by the worker, only grows, and the canceled job keeps the bytes it had
received. A resumed job starts from the counters its earlier attempt published."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import astuple, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.imports.doubles import MemorySink, MemorySource
from tests.unit.imports.test_engine import OneSource
from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits
from transship.imports.ports import BlobWriter
from transship.imports.service import ImportService, RunnerSettings, job_progress, job_version
from transship.metadata.jobs import JobQueries
from transship.metadata.queries import MetadataStore
from transship.metadata.records import ImportJobRecord, JobProgress
from transship.oci.digest import Digest
from transship.worker.import_loop import ImportWorker

REQUEST = ImportRequest(
    SourceSpec("upstream.example", None, "app", "v1"), (TargetTag("app", "v1"),), (), False
)
LAYER = 40_000  # bytes per layer; each stalls half way


class StallingSource(MemorySource):
    """Serves small blobs whole; of a layer, the first half, then nothing more until the
    fetch is cancelled: transfers in flight at the moment of the cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.halfway = 0
        self.stalled = asyncio.Event()

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        data = self.blobs[str(digest)]
        if size < LAYER:
            await super().fetch_blob(digest, size, writer)
            return

        async def chunks() -> AsyncIterator[bytes]:
            yield data[: size // 2]
            self.halfway += 1
            if self.halfway == 3:
                self.stalled.set()
            await asyncio.Event().wait()  # never set: held until cancelled
            yield data[size // 2 :]

        await writer.append(chunks())


def counters(job: ImportJobRecord) -> tuple[int, ...]:
    return astuple(job_progress(job))


def assert_never_decreasing(seen: list[tuple[int, ...]]) -> None:
    names = [f.name for f in fields(JobProgress)]
    for before, after in itertools.pairwise(seen):
        for name, old, new in zip(names, before, after, strict=True):
            assert new >= old, f"{name} went from {old} back to {new}: {seen}"


async def test_counters_never_go_back_when_a_job_is_canceled_with_blobs_in_flight(
    meta: MetadataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = StallingSource()
    layers = [source.blob(bytes([i]) * LAYER) for i in range(1, 4)]
    source.image("a", tag="v1", extra_layers=layers)  # config, its own layer and three more
    engine = ImportEngine(
        MemorySink(), OneSource(source), blob_concurrency=4, limits=ImportLimits()
    )
    imports = ImportService(
        meta,
        engine,
        SecretBox.from_key_file(tmp_path / "key"),
        RunnerSettings(workers=1, heartbeat_seconds=0.02, idle_poll_seconds=60),
    )
    written: list[tuple[int, ...]] = []  # every snapshot the worker writes, in order
    renew, finish = JobQueries.renew_leases, JobQueries.finish_job

    async def recorded_renew(self: JobQueries, owner: str, lease: Any, progress: Any) -> Any:
        written.extend(astuple(p) for p in progress.values())
        return await renew(self, owner, lease, progress)

    async def recorded_finish(
        self: JobQueries, job_id: str, owner: str, state: str, progress: Any, *rest: Any
    ) -> Any:
        written.append(astuple(progress))
        return await finish(self, job_id, owner, state, progress, *rest)

    monkeypatch.setattr(JobQueries, "renew_leases", recorded_renew)
    monkeypatch.setattr(JobQueries, "finish_job", recorded_finish)

    job = await imports.submit(1, REQUEST, None)
    worker = ImportWorker(imports)
    loops = [
        asyncio.create_task(worker.claim_forever(lambda: None)),
        asyncio.create_task(worker.heartbeat_forever(lambda: None)),
    ]
    read: list[tuple[int, ...]] = []  # every version a follower was answered
    try:
        async with asyncio.timeout(60):
            await source.stalled.wait()
            in_flight = 3 * (LAYER // 2)  # the three layers' first halves, nothing committed
            followed: ImportJobRecord | None = job
            # Follow (as the long poll does) until a heartbeat has published the bytes in flight.
            while followed is not None and followed.bytes_done < in_flight:
                followed = await imports.follow(job.id, job_version(followed), 5)
                assert followed is not None
                read.append(counters(followed))
            assert followed is not None and followed.state == "running"
            published = followed.bytes_done

            await imports.cancel(job.id)
            while followed is not None and followed.state != "canceled":
                followed = await imports.follow(job.id, job_version(followed), 5)
                assert followed is not None
                read.append(counters(followed))
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await worker.close()

    assert followed is not None and followed.state == "canceled"
    # The bytes received before the cancel stay counted; the blobs stay unfinished.
    assert followed.bytes_done >= published >= in_flight
    assert followed.bytes_fetched >= in_flight
    assert followed.blobs_done < followed.blobs_total
    assert_never_decreasing(written)
    assert_never_decreasing(read)
    assert written[-1] == counters(followed)


async def test_a_resumed_job_starts_from_the_counters_it_had_published(
    meta: MetadataStore, tmp_path: Path
) -> None:
    engine = ImportEngine(
        MemorySink(), OneSource(MemorySource()), blob_concurrency=1, limits=ImportLimits()
    )
    # A lease that has always expired: the next claim takes the job over, as another
    # process does after a crash.
    imports = ImportService(
        meta, engine, SecretBox.from_key_file(tmp_path / "key"), RunnerSettings(lease=timedelta(0))
    )
    job = await imports.submit(1, REQUEST, None)
    first = await imports.claim()
    assert first is not None and first.id == job.id
    progress = imports.progress_for(first)
    progress.bytes_total, progress.blobs_total, progress.bytes_completed = 900, 3, 600
    progress.blobs_done = 2
    await imports.renew({job.id: progress})
    # Taken over: the new attempt has counted less than the first had published.
    again = await imports.claim()
    assert again is not None and again.attempts == 2
    resumed = imports.progress_for(again)
    resumed.bytes_total, resumed.blobs_total, resumed.bytes_completed = 900, 3, 300
    await imports.renew({job.id: resumed})
    after = await imports.get(job.id)
    assert after is not None
    assert (after.bytes_total, after.bytes_done, after.blobs_done) == (900, 600, 2)
