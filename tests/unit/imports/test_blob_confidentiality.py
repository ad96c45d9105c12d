"""Knowing a digest is never access (issue 10, item 5): the engine links a blob without
fetching it only when it is already linked in the target registry, in the local source
repository, or pinned by the same job; a blob the shared store holds for another registry is
fetched from the import's own source and verified, so a source that lists it and never
serves it makes the import fail. SQLite and PostgreSQL, the real sink and store."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.unit.imports.doubles import OCI_MANIFEST, MemorySource, sha
from transship.imports.budgets import WaitReporter
from transship.imports.engine import ImportEngine, Progress
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits
from transship.imports.ports import BlobWriter, Credentials, ImageSource, LinkScope
from transship.imports.sink import RegistrySink
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.oci.digest import Digest
from transship.registry.blobs import BlobService
from transship.storage.filesystem import FilesystemBlobStore

PRIVATE = b"tenant A's private layer " * 400
UPSTREAM = "upstream.example"


class WithholdingSource(MemorySource):
    """Lists blobs in its manifests that it answers 404 for (`withheld`), as an upstream
    built to harvest another tenant's layer would."""

    def __init__(self) -> None:
        super().__init__()
        self.withheld: set[str] = set()
        self._fetching: dict[str, asyncio.Event] = {}

    def fetching(self, digest: str) -> asyncio.Event:
        """Set once a fetch of `digest` has started."""
        return self._fetching.setdefault(digest, asyncio.Event())

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        self.fetching(str(digest)).set()
        if str(digest) in self.withheld:
            self.fetches.append(str(digest))
            raise ImportFailure(
                "BlobUnknown",
                f"upstream has no blob {digest}",
                step=Step.COPY,
                obj=str(digest),
                upstream_status=404,
            )
        await super().fetch_blob(digest, size, writer)

    def listing(self, digest: str, size: int, tag: str) -> None:
        """An image at `tag` whose one layer is `digest` (withheld), with a served config."""
        config = self.blob(
            json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        )
        layer = {"mediaType": "application/octet-stream", "digest": digest, "size": size}
        self.withheld.add(digest)
        self.manifest(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]},
            OCI_MANIFEST,
            tag,
        )


class WatchingSink(RegistrySink):
    """The real sink, telling the test when an import found it may not link a blob (it then
    fetches it, or waits for a concurrent fetch) and which blobs were linked from another
    import's fetch."""

    def __init__(self, meta: MetadataStore, store: FilesystemBlobStore) -> None:
        super().__init__(meta, store)
        self._missed: dict[tuple[str, str], asyncio.Event] = {}
        self.shared: list[tuple[str, str]] = []

    def missed(self, job_id: str, digest: str) -> asyncio.Event:
        return self._missed.setdefault((job_id, digest), asyncio.Event())

    async def pin_existing(self, scope: LinkScope, digest: Digest) -> bool:
        pinned = await super().pin_existing(scope, digest)
        if not pinned:
            self.missed(scope.job_id, str(digest)).set()
        return pinned

    async def pin_fetched(self, job_id: str, digest: Digest) -> bool:
        pinned = await super().pin_fetched(job_id, digest)
        if pinned:
            self.shared.append((job_id, str(digest)))
        return pinned


class BySourceRepository:
    """A SourceFactory handing out one source per source repository name."""

    def __init__(self, sources: dict[str, ImageSource]) -> None:
        self.sources = sources

    @asynccontextmanager
    async def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        on_wait: WaitReporter | None = None,
    ) -> AsyncIterator[ImageSource]:
        yield self.sources[spec.repository]


class Service:
    """Two registries of one service over one store: the target (`mine`) and a victim's."""

    def __init__(
        self,
        meta: MetadataStore,
        store: FilesystemBlobStore,
        mine: RegistryRecord,
        victim: RegistryRecord,
    ) -> None:
        self.meta = meta
        self.store = store
        self.mine = mine
        self.victim = victim
        self.blobs = BlobService(meta, store)
        self.sources: dict[str, ImageSource] = {}
        self.sink = WatchingSink(meta, store)
        self.engine = ImportEngine(
            self.sink, BySourceRepository(self.sources), blob_concurrency=4, limits=ImportLimits()
        )

    async def push(self, registry: RegistryRecord, repository: str, data: bytes) -> str:
        """Push a blob the way a client does (verified, linked to `repository`)."""

        async def body() -> AsyncIterator[bytes]:
            yield data

        await self.blobs.upload_whole(
            registry, repository, Digest.parse(sha(data)), body(), len(data)
        )
        return sha(data)

    async def job(self, registry_id: int) -> str:
        job_id = hashlib.md5(str(asyncio.get_running_loop().time()).encode()).hexdigest()
        async with self.meta.writing() as q:
            await q.jobs.create_job(job_id, registry_id, "{}", None)
        return job_id

    async def run(
        self,
        source_repository: str,
        *,
        into: RegistryRecord | None = None,
        local: RegistryRecord | None = None,
        job_id: str | None = None,
    ) -> None:
        """Import `<source_repository>:v1` into `app:v1` of `into` (default: `mine`), from
        a remote source, or from registry `local` of this service."""
        target = into or self.mine
        spec = SourceSpec(
            None if local else UPSTREAM,
            None if local is None else local.id,
            source_repository,
            "v1",
        )
        request = ImportRequest(spec, (TargetTag("app", "v1"),), (), True)
        await self.engine.run(
            job_id or await self.job(target.id), target.id, request, None, Progress()
        )

    async def visible(self, registry: RegistryRecord, repository: str, digest: str) -> bool:
        async with self.meta.reading() as q:
            return await q.repository_blob_size(registry.id, repository, digest) is not None

    def source(self, repository: str) -> WithholdingSource:
        source = WithholdingSource()
        self.sources[repository] = source
        return source


@pytest.fixture
async def service(tmp_path: Path, database_url: str | None) -> AsyncIterator[Service]:
    db = Database(database_url or f"sqlite:///{tmp_path}/m.db", durable=False)
    await db.migrate()
    meta = MetadataStore(db)
    async with meta.writing() as q:
        mine = await q.ensure_default_registry("mine")
        victim = await q.create_registry("victim", "victim.example")
    try:
        yield Service(
            meta,
            FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False),
            mine,
            victim,
        )
    finally:
        await db.close()


async def test_a_blob_held_only_by_another_registry_is_fetched_and_a_withholding_source_fails(
    service: Service,
) -> None:
    digest = await service.push(service.victim, "private", PRIVATE)
    evil = service.source("evil")
    evil.listing(digest, len(PRIVATE), "v1")
    with pytest.raises(ImportFailure) as caught:
        await service.run("evil")
    assert caught.value.code == "BlobUnknown" and caught.value.obj == digest
    assert digest in caught.value.message
    assert evil.fetches.count(digest) == 1  # asked its own source, did not link the victim's
    assert not await service.visible(service.mine, "app", digest)
    assert await service.visible(service.victim, "private", digest)  # the victim is untouched


async def test_a_blob_linked_in_the_target_registry_is_linked_without_fetching(
    service: Service,
) -> None:
    digest = await service.push(service.mine, "elsewhere", PRIVATE)
    source = service.source("upstream")
    source.listing(digest, len(PRIVATE), "v1")
    await service.run("upstream")
    assert digest not in source.fetches
    assert await service.visible(service.mine, "app", digest)


async def test_a_local_source_repository_is_linked_without_fetching(service: Service) -> None:
    """The same-service import stays zero-copy: the blob is in the source repository."""
    digest = await service.push(service.victim, "shared", PRIVATE)
    source = service.source("shared")
    source.listing(digest, len(PRIVATE), "v1")
    await service.run("shared", local=service.victim)
    assert digest not in source.fetches
    assert await service.visible(service.mine, "app", digest)


async def test_a_local_source_gives_only_its_own_repository(service: Service) -> None:
    """Another repository of the source registry (one the importer was not checked
    against) does not count: the blob must come from the named source repository."""
    digest = await service.push(service.victim, "private", PRIVATE)
    source = service.source("public")
    source.listing(digest, len(PRIVATE), "v1")
    with pytest.raises(ImportFailure) as caught:
        await service.run("public", local=service.victim)
    assert caught.value.obj == digest and source.fetches.count(digest) == 1
    assert not await service.visible(service.mine, "app", digest)


async def test_a_resumed_job_links_what_it_already_fetched(service: Service) -> None:
    """Pins of the job itself are bytes it verified: a restarted attempt does not refetch."""
    source = service.source("upstream")
    source.listing(sha(PRIVATE), len(PRIVATE), "v1")
    job_id = await service.job(service.mine.id)
    staged = RegistrySink(service.meta, service.store).pending_blob(
        job_id, Digest.parse(sha(PRIVATE)), len(PRIVATE)
    )

    async def body() -> AsyncIterator[bytes]:
        yield PRIVATE

    await staged.append(body())
    await staged.commit()  # the interrupted first attempt got this far
    await service.run("upstream", job_id=job_id)
    assert sha(PRIVATE) not in source.fetches
    assert await service.visible(service.mine, "app", sha(PRIVATE))


async def test_a_fetch_for_another_registry_is_not_shared(service: Service) -> None:
    """While the victim's own import fetches its layer, an import into another registry that
    lists the same digest fetches from its own source (and fails), instead of waiting for
    the victim's bytes and linking them."""
    honest = service.source("honest")
    honest.image("victim", tag="v1")
    layer = next(d for d in honest.blobs if honest.blobs[d].startswith(b"layer"))
    honest.gate = asyncio.Event()
    victim_import = asyncio.create_task(service.run("honest", into=service.victim))
    evil_job = await service.job(service.mine.id)
    try:
        await honest.fetching(layer).wait()  # the victim's fetch is in flight, held by the gate
        evil = service.source("evil")
        evil.listing(layer, len(honest.blobs[layer]), "v1")
        evil_import = asyncio.create_task(service.run("evil", job_id=evil_job))
        await service.sink.missed(
            evil_job, layer
        ).wait()  # it now fetches, or waits for the victim's
    finally:
        honest.gate.set()
        await victim_import
    with pytest.raises(ImportFailure) as caught:
        await evil_import
    assert caught.value.obj == layer and evil.fetches.count(layer) == 1
    assert not await service.visible(service.mine, "app", layer)
    assert await service.visible(service.victim, "app", layer)


async def test_a_fetch_for_the_same_registry_is_shared(service: Service) -> None:
    """Two imports into one registry still fetch a shared blob once, even from sources
    that differ: the second links what the first fetched and verified."""
    first, second = service.source("first"), service.source("second")
    first.image("same", tag="v1")
    layer = next(d for d in first.blobs if first.blobs[d].startswith(b"layer"))
    second.listing(layer, len(first.blobs[layer]), "v1")
    first.gate = asyncio.Event()
    one = asyncio.create_task(service.run("first"))
    second_job = await service.job(service.mine.id)
    try:
        await first.fetching(layer).wait()
        two = asyncio.create_task(service.run("second", job_id=second_job))
        await service.sink.missed(second_job, layer).wait()  # the second waits on the first's fetch
    finally:
        first.gate.set()
    await asyncio.gather(one, two)
    assert layer not in second.fetches
    assert service.sink.shared == [(second_job, layer)]
    assert await service.visible(service.mine, "app", layer)


async def test_a_failed_fetch_is_not_shared(service: Service) -> None:
    """When the fetch another import of the same registry waited on fails (wrong bytes),
    the waiting import fetches the blob itself."""
    first, second = service.source("first"), service.source("second")
    first.image("same", tag="v1")
    layer = next(d for d in first.blobs if first.blobs[d].startswith(b"layer"))
    second.blobs[layer] = first.blobs[layer]
    second.image("same", tag="v1")
    first.corrupt.add(layer)
    first.gate = asyncio.Event()
    one = asyncio.create_task(service.run("first"))
    second_job = await service.job(service.mine.id)
    try:
        await first.fetching(layer).wait()
        two = asyncio.create_task(service.run("second", job_id=second_job))
        await service.sink.missed(second_job, layer).wait()
    finally:
        first.gate.set()
    with pytest.raises(ImportFailure) as caught:
        await one
    assert caught.value.code == "DIGEST_INVALID"
    await two
    # The failed layer was fetched again, not shared (blobs of the first import's that
    # were fetched and verified may be, depending on timing).
    assert second.fetches.count(layer) == 1
    assert str(layer) not in [digest for _, digest in service.sink.shared]
    assert await service.visible(service.mine, "app", layer)
