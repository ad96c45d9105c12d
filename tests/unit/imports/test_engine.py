"""The import engine with an in-memory source and the real sink (SQLite and PostgreSQL):
plan order, foreign layers, limits, de-duplicated fetches, verification and resumption;
and over an in-memory sink, which the engine's ImageSink Protocol is enough for."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.unit.imports.doubles import MemorySink, MemorySource, sha
from transship.imports.budgets import WaitReporter
from transship.imports.engine import ImportEngine, Progress
from transship.imports.errors import ImportFailure
from transship.imports.model import BlobOrder, ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits, build_plan
from transship.imports.ports import BlobWriter, Credentials, ImageSink, ImageSource, LinkScope
from transship.imports.sink import RegistrySink
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.oci.digest import Digest
from transship.registry.check import Checker
from transship.storage.filesystem import FilesystemBlobStore


class OneSource:
    def __init__(self, source: ImageSource) -> None:
        self.source = source

    @asynccontextmanager
    async def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        on_wait: WaitReporter | None = None,
    ) -> AsyncIterator[ImageSource]:
        yield self.source


class CountingSink(RegistrySink):
    """The real sink, counting the blobs an import found it could not link (it then fetches
    each, or waits for a concurrent fetch of it: the engine decides with no await between)."""

    def __init__(self, meta: MetadataStore, store: FilesystemBlobStore) -> None:
        super().__init__(meta, store)
        self.misses = 0
        self._missed = asyncio.Event()

    async def pin_existing(self, scope: LinkScope, digest: Digest) -> bool:
        pinned = await super().pin_existing(scope, digest)
        if not pinned:
            self.misses += 1
            self._missed.set()
        return pinned

    async def wait_for_misses(self, count: int) -> None:
        while self.misses < count:
            self._missed.clear()
            await self._missed.wait()


class World:
    def __init__(
        self, meta: MetadataStore, store: FilesystemBlobStore, source: MemorySource
    ) -> None:
        self.meta = meta
        self.store = store
        self.source = source
        self.sink = CountingSink(meta, store)
        self.engine = ImportEngine(
            self.sink, OneSource(source), blob_concurrency=4, limits=ImportLimits(max_manifests=10)
        )

    async def job(self, registry_id: int = 1) -> str:
        job_id = hashlib.md5(str(asyncio.get_running_loop().time()).encode()).hexdigest()
        async with self.meta.writing() as q:
            await q.jobs.create_job(job_id, registry_id, "{}", None)
        return job_id

    async def run(
        self, reference: str, *targets: str, force: bool = False, resumed: bool = False
    ) -> Any:
        request = ImportRequest(
            SourceSpec("upstream.example", None, "app", reference),
            tuple(TargetTag(*t.split(":")) for t in targets),
            (),
            force,
        )
        return await self.engine.run(
            await self.job(), 1, request, None, Progress(), resumed=resumed
        )

    async def tag(self, repository: str, tag: str) -> str | None:
        async with self.meta.reading() as q:
            repo_id = await q.repository_id(1, repository)
            digest = None if repo_id is None else await q.tag_digest(repo_id, tag)
        return None if digest is None else str(digest)


@pytest.fixture
async def world(tmp_path: Path, database_url: str | None) -> AsyncIterator[World]:
    db = Database(database_url or f"sqlite:///{tmp_path}/m.db", durable=False)
    await db.migrate()
    meta = MetadataStore(db)
    async with meta.writing() as q:
        await q.ensure_default_registry("default")
    try:
        yield World(
            meta,
            FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False),
            MemorySource(),
        )
    finally:
        await db.close()


async def test_nested_index_is_planned_children_first(world: World) -> None:
    src = world.source
    leaf_a, leaf_b = src.image("a"), src.image("b")
    inner = src.index([leaf_a])
    root = src.index([inner, leaf_b], tag="v1")
    plan = await build_plan(src, "v1", ImportLimits(max_manifests=10))
    order = [str(m.digest) for m in plan.manifests]
    assert (
        order.index(leaf_a["digest"]) < order.index(inner["digest"]) < order.index(root["digest"])
    )
    assert order.index(leaf_b["digest"]) < order.index(root["digest"])
    assert order[-1] == root["digest"] and len(order) == 4
    assert len(plan.blobs) == 4


async def test_import_commits_everything_and_fetches_each_blob_once(world: World) -> None:
    src = world.source
    shared = src.blob(b"shared base layer" * 100)
    root = src.index(
        [src.image("a", extra_layers=[shared]), src.image("b", extra_layers=[shared])], tag="v1"
    )
    await world.run("v1", "app:v1")
    assert await world.tag("app", "v1") == root["digest"]
    assert sorted(src.fetches) == sorted(set(src.fetches)) and len(src.fetches) == 5
    assert (await Checker(world.meta, world.store).run(verify_digests=True)).ok


async def test_blobs_are_fetched_largest_first(world: World) -> None:
    src = world.source
    small, big, middle = (src.blob(bytes([n]) * size) for n, size in ((1, 10), (2, 9000), (3, 500)))
    root = src.index(
        [src.image("a", extra_layers=[small, big]), src.image("b", extra_layers=[middle])],
        tag="v1",
    )
    world.engine = ImportEngine(  # no small-blob lanes: the large lanes alone decide the order
        world.sink,
        OneSource(src),
        blob_concurrency=4,
        limits=ImportLimits(max_manifests=10),
        small_blob_lanes=0,
    )
    await world.run("v1", "app:v1")
    assert await world.tag("app", "v1") == root["digest"]
    sizes = {d: len(data) for d, data in src.blobs.items()}
    fetched = [sizes[digest] for digest in src.fetches]
    # Admitted in order of size, 4 at a time, not in manifest order. The 4 admitted together
    # reach the source in any order (each first asks the database whether it is present).
    window = 4
    assert all(
        fetched[i] >= fetched[j]
        for i in range(len(fetched))
        for j in range(i + window, len(fetched))
    ), fetched
    assert 9000 in fetched[:window] and 10 in fetched[-window:], fetched


async def test_a_pull_through_import_fetches_its_images_in_turn_the_largest_of_each_first() -> None:
    src = MemorySource()
    shared, small_a, big_a, big_b = (
        src.blob(bytes([n]) * size) for n, size in ((1, 700), (2, 10), (3, 9000), (4, 8000))
    )
    first = src.image("a", extra_layers=[small_a, shared, big_a])
    second = src.image("b", extra_layers=[shared, big_b])  # `shared` belongs to the first
    src.index([first, second], tag="v1")
    engine = ImportEngine(  # one lane: the fetches reach the source in the queue's order
        MemorySink(), OneSource(src), blob_concurrency=1, limits=ImportLimits(), small_blob_lanes=0
    )
    request = memory_request("v1", "app:v1", BlobOrder.IMAGE_BY_IMAGE)
    await engine.run("job-1", 1, request, None, Progress())
    plan = await build_plan(src, "v1", ImportLimits())
    images = [m for m in plan.manifests if not m.parsed.is_index]
    expected = [
        str(d.digest)
        for image in images
        for d in sorted(image.parsed.blobs, key=lambda d: d.size, reverse=True)
        if not (image is images[1] and str(d.digest) == shared["digest"])
    ]
    assert src.fetches == expected
    assert src.fetches.index(big_b["digest"]) > src.fetches.index(small_a["digest"])


async def test_image_by_image_small_lanes_take_the_first_small_blob_in_turn() -> None:
    src = HeldLargeBlobs(limit=100)
    first = src.image("a", extra_layers=[src.blob(b"A" * 5000)])
    tiny_b = src.blob(b"b")
    second = src.image("b", extra_layers=[src.blob(b"B" * 6000), tiny_b])
    src.index([first, second], tag="v1")
    configs = [
        d for d, data in src.blobs.items() if len(data) <= src.limit and d != tiny_b["digest"]
    ]
    engine = ImportEngine(
        MemorySink(),
        OneSource(src),
        blob_concurrency=1,
        limits=ImportLimits(),
        small_blob_lanes=1,
        small_blob_bytes=src.limit,
    )
    run = asyncio.create_task(
        engine.run(
            "job-1", 1, memory_request("v1", "app:v1", BlobOrder.IMAGE_BY_IMAGE), None, Progress()
        )
    )
    while len(src.fetches) < 3:  # the small lane's three, while the large lane is held
        await asyncio.sleep(0)
        assert not run.done()
    # The first image's config, then the second's small blobs in its order (config, then
    # the larger first), not the smallest of all first.
    assert src.fetches == [configs[0], configs[1], tiny_b["digest"]]
    src.release.set()
    await run


class HeldLargeBlobs(MemorySource):
    """Fetches of blobs larger than `limit` wait for `release`; records which began."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.release = asyncio.Event()
        self.large_started: list[str] = []

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        if size > self.limit:
            self.large_started.append(str(digest))
            await self.release.wait()
        await super().fetch_blob(digest, size, writer)


def held_engine(src: HeldLargeBlobs, sink: MemorySink) -> ImportEngine:
    """2 large lanes and 2 small ones, small meaning at most `src.limit` bytes."""
    return ImportEngine(
        sink,
        OneSource(src),
        blob_concurrency=2,
        limits=ImportLimits(max_manifests=10),
        small_blob_lanes=2,
        small_blob_bytes=src.limit,
    )


async def test_small_blobs_are_fetched_and_committed_while_the_large_ones_transfer() -> None:
    src = HeldLargeBlobs(limit=100)
    large = [src.blob(bytes([n]) * (1000 + n)) for n in range(3)]
    root = src.index(
        [src.image("a", extra_layers=large[:2]), src.image("b", extra_layers=large[2:])],
        tag="v1",
    )
    small = {d for d, data in src.blobs.items() if len(data) <= src.limit}
    assert len(small) == 2  # the configs; the images' own layers are larger
    sink = MemorySink()
    engine = held_engine(src, sink)
    run = asyncio.create_task(
        engine.run("job-1", 1, memory_request("v1", "app:v1"), None, Progress())
    )
    while not (small <= set(sink.blobs) and len(src.large_started) == 2):
        await asyncio.sleep(0)
        assert not run.done()
    # The small ones are stored while the 2 large lanes hold the 2 largest blobs; the rest wait.
    sizes = sorted((len(src.blobs[d]) for d in src.blobs if d not in small), reverse=True)
    assert sorted((len(src.blobs[d]) for d in src.large_started), reverse=True) == sizes[:2]
    src.release.set()
    await run
    assert sink.tags == {(1, "app", "v1"): Digest.parse(root["digest"])}
    assert sorted(src.fetches) == sorted(src.blobs)  # each fetched once


async def test_a_small_lane_failure_stops_the_large_transfers_and_commits_nothing() -> None:
    src = HeldLargeBlobs(limit=100)
    src.index([src.image("a", extra_layers=[src.blob(b"L" * 5000)])], tag="v1")
    config = next(d for d, data in src.blobs.items() if len(data) <= src.limit)
    src.corrupt.add(config)
    sink = MemorySink()
    engine = held_engine(src, sink)
    with pytest.raises(ImportFailure) as caught:
        await engine.run("job-1", 1, memory_request("v1", "app:v1"), None, Progress())
    assert caught.value.code == "DIGEST_INVALID" and caught.value.obj == config
    assert src.large_started and not src.release.is_set()  # stopped, never released
    assert sink.tags == {} and config not in sink.blobs


async def test_foreign_layers_are_recorded_not_fetched(world: World) -> None:
    src = world.source
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": sha(b"far away"),
        "size": 8,
        "urls": ["https://example.invalid/l"],
    }
    src.image("win", tag="ltsc", extra_layers=[foreign])
    await world.run("ltsc", "win:ltsc")
    assert sha(b"far away") not in src.fetches
    assert await world.tag("win", "ltsc") is not None


async def test_too_many_manifests(world: World) -> None:
    src = world.source
    src.index([src.image(str(i)) for i in range(12)], tag="big")
    with pytest.raises(ImportFailure) as caught:
        await world.run("big", "big:v1")
    assert caught.value.code == "TooManyManifests"
    assert src.fetches == []


async def test_wrong_bytes_fail_naming_the_blob_and_commit_nothing(world: World) -> None:
    src = world.source
    manifest = src.image("x", tag="v1")
    layer = json.loads(src.manifests[manifest["digest"]][0])["layers"][0]["digest"]
    src.corrupt.add(layer)
    with pytest.raises(ImportFailure) as caught:
        await world.run("v1", "app:v1")
    assert caught.value.code == "DIGEST_INVALID" and caught.value.obj == layer
    assert await world.tag("app", "v1") is None
    async with world.meta.reading() as q:
        assert await q.repository_id(1, "app") is None


async def test_two_concurrent_imports_fetch_a_shared_blob_once(world: World) -> None:
    src = world.source
    src.image("same", tag="v1")
    src.gate = asyncio.Event()
    first = asyncio.create_task(world.run("v1", "one:v1"))
    second = asyncio.create_task(world.run("v1", "two:v1"))
    # Both imports are past the link check of both blobs (config and layer): each blob is
    # being fetched by one of them, held at the gate, and waited for by the other.
    await asyncio.wait_for(world.sink.wait_for_misses(4), timeout=30)
    assert len(src.fetches) == 2
    src.gate.set()
    await asyncio.gather(first, second)
    assert len(src.fetches) == len(set(src.fetches)) == 2
    assert await world.tag("one", "v1") == await world.tag("two", "v1") is not None


async def test_noforce_conflict_unless_a_resumed_attempt_already_moved_the_tag(
    world: World,
) -> None:
    src = world.source
    image = src.image("v", tag="v1")
    await world.run("v1", "app:v1")
    with pytest.raises(ImportFailure) as caught:
        await world.run("v1", "app:v1")
    assert caught.value.code == "TagAlreadyExists"
    assert caught.value.message == (
        "Tag app:v1 already exists in target registry. Import with --force (mode Force) to "
        "overwrite it."
    )
    await world.run("v1", "app:v1", resumed=True)  # the interrupted attempt had committed
    other = src.image("w", tag="v2")
    with pytest.raises(ImportFailure):
        await world.run("v2", "app:v1", resumed=True)  # a different image is still a conflict
    await world.run("v2", "app:v1", force=True)
    assert await world.tag("app", "v1") == other["digest"] != image["digest"]


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        (ImportLimits(max_index_depth=1), "IndexTooDeep"),
        (ImportLimits(max_index_children=2), "TooManyChildren"),
        (ImportLimits(max_bytes=100), "ImageTooLarge"),
    ],
)
async def test_limits_fail_the_plan_before_any_blob_is_fetched(
    world: World, limits: ImportLimits, code: str
) -> None:
    src = world.source
    src.index([src.index([src.image("a"), src.image("b"), src.image("c")])], tag="nested")
    engine = ImportEngine(
        RegistrySink(world.meta, world.store), OneSource(src), blob_concurrency=2, limits=limits
    )
    request = ImportRequest(
        SourceSpec("upstream.example", None, "app", "nested"), (TargetTag("app", "v1"),), (), False
    )
    with pytest.raises(ImportFailure) as caught:
        await engine.run(await world.job(), 1, request, None, Progress())
    assert caught.value.code == code
    assert (
        str(
            getattr(
                limits,
                {
                    "IndexTooDeep": "max_index_depth",
                    "TooManyChildren": "max_index_children",
                    "ImageTooLarge": "max_bytes",
                }[code],
            )
        )
        in caught.value.message
    )
    assert src.fetches == []


# -- the engine over the sink protocol alone: an in-memory sink, no database ------------------
def memory_request(
    reference: str, target: str, order: BlobOrder = BlobOrder.LARGEST_FIRST
) -> ImportRequest:
    return ImportRequest(
        SourceSpec("upstream.example", None, "app", reference),
        (TargetTag(*target.split(":")),),
        (),
        False,
        blob_order=order,
    )


@pytest.fixture
def memory() -> tuple[ImportEngine, MemorySink, MemorySource]:
    sink, source = MemorySink(), MemorySource()
    sink_port: ImageSink = sink  # the engine needs nothing beyond the Protocol
    engine = ImportEngine(
        sink_port, OneSource(source), blob_concurrency=4, limits=ImportLimits(max_manifests=10)
    )
    return engine, sink, source


async def test_an_in_memory_sink_receives_the_verified_image(
    memory: tuple[ImportEngine, MemorySink, MemorySource],
) -> None:
    engine, sink, src = memory
    root = src.index([src.image("a"), src.image("b")], tag="v1")
    await engine.run("job-1", 1, memory_request("v1", "app:v1"), None, Progress())
    assert sink.tags == {(1, "app", "v1"): Digest.parse(root["digest"])}
    assert sink.links[(1, "app")] == set(src.blobs) == set(sink.blobs)
    assert sorted(src.fetches) == sorted(src.blobs)


async def test_a_reimport_links_what_the_registry_has_and_another_registry_fetches_again(
    memory: tuple[ImportEngine, MemorySink, MemorySource],
) -> None:
    engine, _, src = memory
    src.image("a", tag="v1")
    await engine.run("job-1", 1, memory_request("v1", "app:v1"), None, Progress())
    fetched = len(src.fetches)
    await engine.run("job-2", 1, memory_request("v1", "copy:v1"), None, Progress())
    assert len(src.fetches) == fetched
    # Knowing a digest is never access: the bytes of registry 1 do not serve registry 2.
    await engine.run("job-3", 2, memory_request("v1", "app:v1"), None, Progress())
    assert len(src.fetches) == 2 * fetched


async def test_wrong_bytes_reach_no_repository_of_an_in_memory_sink(
    memory: tuple[ImportEngine, MemorySink, MemorySource],
) -> None:
    engine, sink, src = memory
    manifest = src.image("x", tag="v1")
    layer = json.loads(src.manifests[manifest["digest"]][0])["layers"][0]["digest"]
    src.corrupt.add(layer)
    with pytest.raises(ImportFailure) as caught:
        await engine.run("job-1", 1, memory_request("v1", "app:v1"), None, Progress())
    assert caught.value.code == "DIGEST_INVALID" and caught.value.obj == layer
    assert sink.tags == {} and sink.links == {} and layer not in sink.blobs
