"""A follower in one process is answered as soon as another process (a `transship worker`)
ends the job: the change feed's `imports` topic wakes it, not its slow re-read. Two
metadata stores with their own change hubs over one database stand for the two processes
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from tests.support.metadata import migrated_database
from transship.identity.secrets import SecretBox
from transship.imports.engine import ImportEngine
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.service import ImportService, RunnerSettings, job_version
from transship.metadata.changes import ChangeHub, ChangeListener
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import JobProgress
from transship.worker.supervisor import Supervisor

REQUEST = ImportRequest(
    SourceSpec("upstream.example", None, "app", "v1"), (TargetTag("app", "v1"),), (), False
)
LONG = 60.0  # the followers' re-read: never within a test


@pytest.fixture
async def db(tmp_path: Path, database_url: str | None) -> AsyncIterator[Database]:
    async with migrated_database(database_url, tmp_path) as database:
        yield database


async def test_a_job_ended_by_another_process_answers_its_followers(
    db: Database, tmp_path: Path
) -> None:
    here_meta, worker_meta = MetadataStore(db, ChangeHub()), MetadataStore(db, ChangeHub())
    async with here_meta.writing() as q:
        registry = await q.ensure_default_registry("default")
    settings = RunnerSettings(follow_poll_seconds=LONG, max_follow_seconds=LONG)
    box = SecretBox.from_key_file(tmp_path / "key")
    here = ImportService(here_meta, cast(ImportEngine, None), box, settings)
    job = await here.submit(registry.id, REQUEST, None)
    async with worker_meta.writing() as q:
        claimed = await q.jobs.claim_job(
            "worker", timedelta(seconds=30), max_running=4, max_running_per_registry=4
        )
    assert claimed is not None and claimed.id == job.id

    supervisor = Supervisor()
    supervisor.add("change-feed", ChangeListener(db, here_meta.changes).run_forever)
    supervisor.start()
    try:
        await asyncio.wait_for(
            supervisor.wait_for(lambda s: s["change-feed"].heartbeat_age_seconds is not None), 5
        )
        followers = [
            asyncio.create_task(here.follow(job.id, job_version(claimed), LONG)) for _ in range(3)
        ]
        await asyncio.sleep(0.3)
        assert not any(f.done() for f in followers)  # nothing changed yet: they wait
        async with worker_meta.writing() as q:
            assert await q.jobs.finish_job(job.id, "worker", "succeeded", JobProgress())
        async with asyncio.timeout(10):  # the feed: milliseconds, or a 0.25 s SQLite poll
            seen = await asyncio.gather(*followers)
        assert all(s is not None and s.state == "succeeded" for s in seen)
        assert here.signals.followers == 0
    finally:
        await supervisor.stop()
