"""The import loops under supervision: a transient database error no longer ends imports in
the process (the regression of issue 11), and the leases of all running jobs are renewed in
one statement per heartbeat interval, which also delivers cancels and take-overs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Engine

from tests.support.app import make_settings, running_registry
from tests.support.imports import Management, assert_succeeded
from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine, Progress
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.service import ImportService, RunnerSettings
from transship.metadata import schema as s
from transship.metadata.jobs import JobQueries
from transship.metadata.queries import MetadataStore
from transship.worker.import_loop import ImportWorker


async def test_imports_continue_after_a_transient_error_in_claim_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = asyncio.Event()
    claim_job = JobQueries.claim_job

    async def flaky(self: JobQueries, *args: Any, **kwargs: Any) -> Any:
        if not failed.is_set():
            failed.set()
            raise OSError("the database connection was reset")
        return await claim_job(self, *args, **kwargs)

    monkeypatch.setattr(JobQueries, "claim_job", flaky)
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        await asyncio.wait_for(failed.wait(), 30)  # the first claim round, at startup
        admin = Management(reg, tmp_path / "data")
        await admin.create_registry("myregistry")
        status, source, _ = await admin.call("GET", f"{admin.base}/default")
        assert status == 200, source
        await reg.push_image("app", "v1")
        # Queued after the error: only a claim loop that outlived it can run this job.
        final = await admin.run_import(
            "myregistry",
            {
                "source": {
                    "registryUri": source["properties"]["loginServer"],
                    "sourceImage": "app:v1",
                },
                "targetTags": ["app:v1"],
            },
            timeout=30,
        )
        assert_succeeded(final)


REQUEST = ImportRequest(
    SourceSpec("upstream.example", None, "app", "v1"), (TargetTag("app", "v1"),), (), True
)


class HeldEngine:
    """Stands in for ImportEngine: each job publishes its own progress, then holds until
    `release` is set."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started: list[str] = []
        self.all_started = asyncio.Event()
        self.release = asyncio.Event()

    async def run(
        self,
        job_id: str,
        registry_id: int,
        request: ImportRequest,
        credentials: Any,
        progress: Progress,
        *,
        resumed: bool = False,
    ) -> None:
        self.started.append(job_id)
        progress.bytes_total = 1000 * len(self.started)
        progress.bytes_completed = 10 * len(self.started)
        if len(self.started) == self.expected:
            self.all_started.set()
        await self.release.wait()


@contextmanager
def job_updates() -> Iterator[list[str]]:
    """Every UPDATE of import_jobs any engine sends while the block runs."""
    seen: list[str] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("UPDATE IMPORT_JOBS"):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_the_leases_of_all_running_jobs_are_renewed_in_one_statement_per_interval(
    meta: MetadataStore, tmp_path: Path
) -> None:
    jobs = 3
    engine = HeldEngine(jobs)
    settings = RunnerSettings(workers=jobs, heartbeat_seconds=0.01, idle_poll_seconds=60)
    imports = ImportService(
        meta, cast(ImportEngine, engine), SecretBox.from_key_file(tmp_path / "key"), settings
    )
    ids = [(await imports.submit(1, REQUEST, None)).id for _ in range(jobs)]
    worker = ImportWorker(imports)
    ended: dict[str, asyncio.Event] = {job_id: asyncio.Event() for job_id in ids}
    execute = imports.execute

    async def watched_execute(job: Any, progress: Progress, stop: Any) -> None:
        try:
            await execute(job, progress, stop)
        finally:
            ended[job.id].set()

    imports.execute = watched_execute  # type: ignore[method-assign]
    claiming = asyncio.create_task(worker.claim_forever(lambda: None))
    try:
        await asyncio.wait_for(engine.all_started.wait(), 30)
        assert worker.running == set(ids)

        per_beat: list[int] = []
        four_beats = asyncio.Event()
        with job_updates() as updates:

            def beat() -> None:
                per_beat.append(len(updates))
                if len(per_beat) == 4:
                    four_beats.set()

            heartbeat = asyncio.create_task(worker.heartbeat_forever(beat))
            await asyncio.wait_for(four_beats.wait(), 30)
            heartbeat.cancel()
            with pytest.raises(asyncio.CancelledError):
                await heartbeat
        # One statement per interval for the three jobs (not one per job).
        assert per_beat[:4] == [1, 2, 3, 4]
        async with meta.reading() as q:
            rows = {job_id: await q.jobs.job(job_id) for job_id in ids}
        by_order = {job_id: engine.started.index(job_id) + 1 for job_id in ids}
        for job_id, row in rows.items():
            assert row is not None and row.state == "running"
            assert (row.bytes_total, row.bytes_done) == (
                1000 * by_order[job_id],
                10 * by_order[job_id],
            )

        # A cancel and a take-over reach their jobs through the same one statement.
        canceled, lost, kept = ids
        await imports.cancel(canceled)
        async with meta.writing() as q:
            await q.conn.execute(
                update(s.import_jobs).where(s.import_jobs.c.id == lost).values(lease_owner="f" * 32)
            )
        heartbeat = asyncio.create_task(worker.heartbeat_forever(lambda: None))
        await asyncio.wait_for(asyncio.gather(ended[canceled].wait(), ended[lost].wait()), 30)
        heartbeat.cancel()
        assert worker.running == {kept}
        async with meta.reading() as q:
            jq = q.jobs
            done, taken = await jq.job(canceled), await jq.job(lost)
        assert done is not None and done.state == "canceled"
        assert taken is not None and taken.state == "running"  # the new owner's; nothing written

        # Shutdown hands the job still running back to the queue.
        claiming.cancel()
        await worker.close()
        async with meta.reading() as q:
            requeued = await q.jobs.job(kept)
        assert requeued is not None and requeued.state == "queued"
    finally:
        claiming.cancel()
        await worker.close()
