"""Import claims from several processes at once (each its own Database, as `transship
worker` processes are) start exactly as many imports as the service-wide and per-registry
limits allow: never more, and not fewer either. On PostgreSQL, read committed would let
concurrent claims count the same running jobs (too many) or all race for the same oldest
job (too few: measured, one of two slots filled); the claim's advisory lock serialises
them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import JobProgress

LEASE = timedelta(seconds=30)
PROCESSES = 4
CLAIMS_PER_PROCESS = 4
ROUNDS = 6


@pytest.fixture
async def stores(tmp_path: Path, database_url: str | None) -> AsyncIterator[list[MetadataStore]]:
    url = database_url or f"sqlite:///{tmp_path}/m.db"
    databases = [Database(url, durable=False) for _ in range(PROCESSES)]
    await databases[0].migrate()
    try:
        yield [MetadataStore(db) for db in databases]
    finally:
        for db in databases:
            await db.close()


async def test_concurrent_claims_respect_both_limits(stores: list[MetadataStore]) -> None:
    first = stores[0]
    async with first.writing() as q:
        await q.ensure_default_registry("default")
        registries = [1] + [
            (await q.create_registry(name, f"{name}.localhost")).id for name in ("two", "three")
        ]
    for number in range(ROUNDS):
        async with first.writing() as q:
            for index, registry in enumerate(registries * 2):
                await q.jobs.create_job(f"{number:02d}{index:030d}", registry, "{}", b"sealed")

        async def claim(meta: MetadataStore, owner: str) -> tuple[str, int] | None:
            async with meta.writing() as q:
                job = await q.jobs.claim_job(
                    owner, LEASE, max_running=2, max_running_per_registry=1
                )
            return None if job is None else (owner, job.registry_id)

        claimed = [
            found
            for found in await asyncio.gather(
                *(
                    claim(meta, f"{p:032d}")
                    for p, meta in enumerate(stores)
                    for _ in range(CLAIMS_PER_PROCESS)
                )
            )
            if found is not None
        ]
        per_registry = Counter(registry for _, registry in claimed)
        assert len(claimed) == 2, claimed
        assert max(per_registry.values()) == 1, per_registry
        # End this round's imports, freeing the slots for the next.
        async with first.writing() as q:
            for job in await q.jobs.jobs_of(registries[0], 100) + [
                job for r in registries[1:] for job in await q.jobs.jobs_of(r, 100)
            ]:
                if job.state == "running":
                    assert await q.jobs.finish_job(
                        job.id, _owner_of(claimed, job.registry_id), "succeeded", JobProgress()
                    )


def _owner_of(claimed: list[tuple[str, int]], registry: int) -> str:
    return next(owner for owner, r in claimed if r == registry)
