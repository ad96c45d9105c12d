"""Garbage collection over 20,000 blobs runs in pieces: no step of it holds the event loop
(the stall guard, tests/support/loop_stall.py, held to a tighter bound here)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from tests.support.app import make_settings, running_registry
from tests.unit.registry.test_gc import LATER, age_files
from transship.metadata.queries import utcnow

_BLOBS = 20_000


def _write_blob_files(blob_dir: Path, digests: list[str]) -> None:
    for digest in digests:
        hexdigest = digest.split(":")[1]
        directory = blob_dir / "sha256" / hexdigest[:2]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / hexdigest).write_bytes(b"x")


@pytest.mark.slow
@pytest.mark.loop_stall_ms(20)
async def test_a_dry_run_over_20000_orphans_never_holds_the_loop(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None)
    async with running_registry(settings) as reg:
        digests = ["sha256:" + hashlib.sha256(str(i).encode()).hexdigest() for i in range(_BLOBS)]
        async with reg.services.meta.writing() as q:
            for digest in digests:
                await q.record_blob(digest, 1)
        await asyncio.to_thread(_write_blob_files, settings.blob_dir, digests)
        await asyncio.to_thread(age_files, tmp_path, LATER.total_seconds())
        report = await reg.services.gc.run(dry_run=True, now=utcnow() + LATER)
        assert len(report.deleted_blobs) == _BLOBS
