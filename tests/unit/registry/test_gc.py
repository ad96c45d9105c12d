"""Garbage collection on SQLite and PostgreSQL, driven through the real HTTP API."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.app import (
    RunningRegistry,
    image_manifest,
    make_settings,
    running_registry,
    sha256,
)
from transship.metadata.scope import utcnow
from transship.oci.digest import Digest
from transship.registry.gc import _SCAN_SLICE, GarbageCollector

LATER = timedelta(hours=2)  # past the one-hour default grace period


@pytest.fixture
async def reg(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningRegistry]:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as running:
        yield running


def blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "data" / "blobs").rglob("*") if p.is_file()}


def age_files(root: Path, seconds: float) -> None:
    """Backdate every file under the data directory (the orphan sweeps go by mtime)."""
    old = time.time() - seconds
    for path in (root / "data").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


async def test_unreferenced_blobs_go_and_referenced_ones_stay(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    _, _, kept = await reg.push_image("app", "v1")
    loose = await reg.push_blob("app", b"never referenced")
    age_files(tmp_path, LATER.total_seconds())
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert report.deleted_blobs == [Digest.parse(loose)]
    assert blob_files(tmp_path) == {d.split(":")[1] for d in kept}
    async with reg.request("HEAD", f"/v2/app/blobs/{loose}") as r:
        assert r.status == 404
    for digest in kept:
        async with reg.request("HEAD", f"/v2/app/blobs/{digest}") as r:
            assert r.status == 200
    assert (await reg.services.checker.run(verify_digests=True)).ok


async def test_content_younger_than_the_grace_period_is_kept(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    loose = await reg.push_blob("app", b"in-flight push")
    report = await reg.services.gc.run()
    assert report.deleted_blobs == [] and report.dropped_links == []
    async with reg.request("HEAD", f"/v2/app/blobs/{loose}") as r:
        assert r.status == 200


async def test_dry_run_reports_and_removes_nothing(reg: RunningRegistry, tmp_path: Path) -> None:
    loose = await reg.push_blob("app", b"loose")
    before = blob_files(tmp_path)
    report = await reg.services.gc.run(dry_run=True, now=utcnow() + LATER)
    assert report.deleted_blobs == [Digest.parse(loose)]
    assert report.freed_bytes == len(b"loose")
    assert blob_files(tmp_path) == before
    async with reg.request("HEAD", f"/v2/app/blobs/{loose}") as r:
        assert r.status == 200


async def test_a_blob_shared_with_another_repository_survives(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    _, _, blobs = await reg.push_image("keeper", "v1")
    await reg.push_blob("dropper", b"layer-" + b"x" * 100)  # same bytes as keeper's layer
    age_files(tmp_path, LATER.total_seconds())
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert len(report.dropped_links) == 1
    assert report.deleted_blobs == []
    async with reg.request("HEAD", f"/v2/dropper/blobs/{blobs[1]}") as r:
        assert r.status == 404
    async with reg.request("HEAD", f"/v2/keeper/blobs/{blobs[1]}") as r:
        assert r.status == 200


async def test_blobs_of_a_deleted_manifest_become_collectable(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    digest, _, blobs = await reg.push_image("app", "v1")
    async with reg.request("DELETE", f"/v2/app/manifests/{digest}") as r:
        assert r.status == 202
    age_files(tmp_path, LATER.total_seconds())
    report = await reg.services.gc.run(now=utcnow() + LATER)
    assert sorted(map(str, report.deleted_blobs)) == sorted(blobs)
    assert blob_files(tmp_path) == set()


async def test_expired_sessions_and_stray_staging_files(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
        stale = r.headers["Location"]
    staging = tmp_path / "data" / "uploads"
    stray = staging / ("f" * 32)
    stray.write_bytes(b"left by a crash during a monolithic upload")
    age_files(tmp_path, LATER.total_seconds())
    report = await reg.services.gc.run(now=utcnow() + timedelta(days=2))
    assert len(report.expired_uploads) == 1
    assert report.stray_staging == ["f" * 32]
    assert list(staging.iterdir()) == []
    async with reg.request("GET", stale) as r:
        assert r.status == 404


async def test_expiring_a_session_drops_its_in_process_hash_state(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request(
        "PATCH",
        location,
        data=b"first chunk",
        headers={"Content-Type": "application/octet-stream", "Content-Range": "0-10"},
    ) as r:
        assert r.status == 202, await r.text()
    upload_id = location.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    # The hash state BlobService keeps so a PATCH need not re-read earlier chunks.
    states = reg.services.blobs._hash_states
    assert upload_id in states

    dry = await reg.services.gc.run(dry_run=True, now=utcnow() + timedelta(days=2))
    assert dry.expired_uploads == [upload_id]
    assert upload_id in states  # a dry run removes nothing

    report = await reg.services.gc.run(now=utcnow() + timedelta(days=2))
    assert report.expired_uploads == [upload_id]
    assert upload_id not in states
    reg.services.blobs.forget_upload(upload_id)  # idempotent


async def test_fresh_sessions_are_kept(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
        location = r.headers["Location"]
    report = await reg.services.gc.run()
    assert report.expired_uploads == []
    async with reg.request("GET", location) as r:
        assert r.status == 204


async def test_orphan_files_without_rows_are_removed_when_old(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    digest = sha256(b"orphan")
    path = tmp_path / "data" / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"orphan")
    assert (await reg.services.gc.run()).orphan_files == []  # young: maybe a commit in flight
    age_files(tmp_path, LATER.total_seconds())
    assert (await reg.services.gc.run(now=utcnow() + LATER)).orphan_files == [Digest.parse(digest)]
    assert not path.exists()


async def test_collection_concurrent_with_pushes_never_leaves_a_tag_on_missing_content(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    """With no grace period at all, collection races every push; pushes may fail, but what a
    tag points at must always be complete."""
    reg.services.gc._grace = timedelta(0)
    stop = asyncio.Event()

    async def collect() -> int:
        runs = 0
        while not stop.is_set():
            await reg.services.gc.run()
            runs += 1
            await asyncio.sleep(0)
        return runs

    async def push(i: int) -> None:
        config = f'{{"n":{i}}}'.encode()
        layer = os.urandom(4096)
        for data in (config, layer):
            async with reg.request(
                "POST", f"/v2/race{i % 3}/blobs/uploads/?digest={sha256(data)}", data=data
            ) as r:
                assert r.status == 201
        answer = await reg.push_manifest(f"race{i % 3}", f"t{i}", image_manifest(config, [layer]))
        assert answer.status in (201, 400), answer.body
        if answer.status == 400:
            assert answer.error_code() == "MANIFEST_BLOB_UNKNOWN"

    collector = asyncio.create_task(collect())
    await asyncio.gather(*(push(i) for i in range(30)))
    stop.set()
    assert await collector > 0
    report = await reg.services.checker.run(verify_digests=True)
    assert report.ok, report.problems


class _ManyFilesStore:
    """A blob store of `count` recent files and no staging area, which counts the event
    loop's turns (`ticks`, advanced by a ticker task) while the sweep walks its files."""

    def __init__(self, count: int, ticks: list[int]) -> None:
        self.count = count
        self.ticks = ticks
        self.turns_during_sweep: int | None = None

    async def list_staging(self) -> list[str]:
        return []

    async def iter_blobs(self) -> AsyncIterator[tuple[Digest, float]]:
        started, now = self.ticks[0], time.time()
        for i in range(self.count):
            yield Digest.parse(f"sha256:{i:064x}"), now  # recent: skipped without an await
        self.turns_during_sweep = self.ticks[0] - started


async def test_the_orphan_file_sweep_lets_the_loop_run_between_slices(
    reg: RunningRegistry,
) -> None:
    """Walking 20,000 files that all stay took ~35 ms in one loop callback: the sweep now
    yields to the loop every `_SCAN_SLICE` files (counted, not timed)."""
    ticks = [0]
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks[0] += 1
            await asyncio.sleep(0)

    store = _ManyFilesStore(20_000, ticks)
    collector = GarbageCollector(
        reg.services.meta,
        store,  # type: ignore[arg-type]
        grace_seconds=3600,
        upload_expiry_seconds=3600,
    )
    running = asyncio.create_task(ticker())
    try:
        report = await collector.run(dry_run=True)
    finally:
        done.set()
        await running
    assert report.orphan_files == []
    assert store.turns_during_sweep is not None
    assert store.turns_during_sweep >= 20_000 // _SCAN_SLICE - 1
