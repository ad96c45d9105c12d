"""BlobService against a real MetadataStore (SQLite) and each blob store driver: the
filesystem one, and an in-memory one with no local files (nothing here needs a path).

Uploads (monolithic and chunked) commit only verified bytes and leave nothing on failure;
mounts link only what a repository may see; deletes refuse to strand a manifest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.app import image_manifest
from tests.support.hops import count_hops
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.errors import Conflict, Invalid, NotFound, TooLarge
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.oci.digest import Digest
from transship.registry.blobs import BlobService, ChunkOutOfOrder
from transship.registry.manifests import ManifestService
from transship.storage.base import BlobStore
from transship.storage.filesystem import FilesystemBlobStore

MAX_BLOB = 10_000


@pytest.fixture(params=["filesystem", "memory"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


async def stored(store: BlobStore, digest: Digest) -> bytes:
    return b"".join([chunk async for chunk in store.read(digest)])


@pytest.fixture
def blobs(meta: MetadataStore, store: BlobStore) -> BlobService:
    return BlobService(meta, store, max_blob_bytes=MAX_BLOB)


@pytest.fixture
async def registry(meta: MetadataStore) -> RegistryRecord:
    async with meta.writing() as q:
        return await q.create_registry("one", "one.localhost:5000")


@pytest.fixture
async def other_registry(meta: MetadataStore) -> RegistryRecord:
    async with meta.writing() as q:
        return await q.create_registry("two", "two.localhost:5000")


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def blob_files(store: BlobStore) -> list[Digest]:
    return [digest async for digest, _ in store.iter_blobs()]


async def staged_files(store: BlobStore) -> list[str]:
    return await store.list_staging()


async def push(
    blobs: BlobService, registry: RegistryRecord, repository: str, data: bytes
) -> Digest:
    digest = Digest.of(data)
    await blobs.upload_whole(registry, repository, digest, body(data), len(data))
    return digest


async def assert_unknown(
    blobs: BlobService, registry: RegistryRecord, repository: str, digest: Digest
) -> None:
    with pytest.raises(NotFound) as caught:
        await blobs.stat(registry, repository, digest)
    assert caught.value.subject == "blob"
    assert caught.value.detail == {"digest": str(digest)}


# -- monolithic uploads ---------------------------------------------------------------------
async def test_a_monolithic_upload_commits_the_verified_bytes(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    data = b"layer bytes" * 10
    digest = Digest.of(data)
    location = await blobs.upload_whole(
        registry, "app", digest, body(data[:7], data[7:]), len(data)
    )
    assert (location.digest, location.size) == (digest, len(data))
    assert await stored(store, location.digest) == data
    stat = await blobs.stat(registry, "app", digest)
    assert stat.size == len(data)
    assert await staged_files(store) == []


async def test_a_small_monolithic_upload_takes_two_hops_to_threads(
    meta: MetadataStore,
    registry: RegistryRecord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With SQLite and local files: the staging file made, written, hashed and synced in
    one hop; the row, the link, the file's move into place and the staging file's deletion
    in one step on the write thread. Not seven (create, write, sync, commit, delete)."""
    store = FilesystemBlobStore(tmp_path / "own-blobs", tmp_path / "own-uploads", durable=True)
    blobs = BlobService(meta, store, max_blob_bytes=MAX_BLOB)
    hops = count_hops(monkeypatch)
    data = b"a small layer" * 100
    await blobs.upload_whole(registry, "app", Digest.of(data), body(data), len(data))
    assert len(hops) == 2
    assert await stored(store, Digest.of(data)) == data
    assert await staged_files(store) == []


async def test_a_monolithic_upload_with_the_wrong_digest_leaves_nothing(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    claimed = Digest.of(b"what the client said")
    with pytest.raises(Invalid) as caught:
        await blobs.upload_whole(registry, "app", claimed, body(b"what it sent"), None)
    assert caught.value.field == "digest"
    assert caught.value.detail == {"digest": str(claimed)}
    assert await blob_files(store) == [] and await staged_files(store) == []
    await assert_unknown(blobs, registry, "app", claimed)
    await assert_unknown(blobs, registry, "app", Digest.of(b"what it sent"))


async def test_a_monolithic_upload_shorter_than_declared_is_refused(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    data = b"short"
    with pytest.raises(Invalid) as caught:
        await blobs.upload_whole(registry, "app", Digest.of(data), body(data), len(data) + 1)
    assert caught.value.field == "size"
    assert await blob_files(store) == [] and await staged_files(store) == []


@pytest.mark.parametrize("declared", [MAX_BLOB + 1, None])
async def test_a_blob_over_the_size_limit_is_refused_with_413(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore, declared: int | None
) -> None:
    data = b"x" * (MAX_BLOB + 1)
    with pytest.raises(TooLarge) as caught:
        await blobs.upload_whole(
            registry, "app", Digest.of(data), body(data[:5000], data[5000:]), declared
        )
    assert caught.value.subject == "blob"
    assert await blob_files(store) == [] and await staged_files(store) == []


async def test_a_blob_is_seen_only_by_the_repository_it_was_pushed_to(
    blobs: BlobService, registry: RegistryRecord, other_registry: RegistryRecord
) -> None:
    digest = await push(blobs, registry, "app", b"private")
    await assert_unknown(blobs, registry, "other", digest)
    await assert_unknown(blobs, other_registry, "app", digest)


# -- upload sessions ------------------------------------------------------------------------
async def test_a_chunked_upload_commits_and_closes_the_session(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    data = bytes(range(256)) * 20
    session = await blobs.start_upload(registry, "app")
    assert session.offset == 0 and len(session.id) == 32
    first = await blobs.append(registry, "app", session.id, body(data[:1000]), 0, 1000)
    assert first.offset == 1000
    second = await blobs.append(registry, "app", session.id, body(data[1000:3000]), None, None)
    assert second.offset == 3000
    assert (await blobs.status(registry, "app", session.id)).offset == 3000
    digest = Digest.of(data)
    location = await blobs.finish(
        registry, "app", session.id, digest, body(data[3000:]), 3000, None
    )
    assert location.size == len(data)
    assert await stored(store, location.digest) == data
    assert (await blobs.stat(registry, "app", digest)).size == len(data)
    assert await staged_files(store) == []
    with pytest.raises(NotFound) as caught:
        await blobs.status(registry, "app", session.id)
    assert caught.value.subject == "upload"


async def test_an_out_of_order_chunk_is_refused_and_the_session_kept(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    data = b"0123456789" * 50
    session = await blobs.start_upload(registry, "app")
    await blobs.append(registry, "app", session.id, body(data[:200]), 0, 200)
    with pytest.raises(ChunkOutOfOrder) as caught:
        await blobs.append(registry, "app", session.id, body(data[300:]), 300, None)
    assert (caught.value.field, caught.value.reason) == ("range", "out_of_order")
    assert (caught.value.offset, caught.value.upload_id) == (200, session.id)
    with pytest.raises(ChunkOutOfOrder):
        await blobs.finish(
            registry, "app", session.id, Digest.of(data), body(data[100:]), 100, None
        )
    assert (await blobs.status(registry, "app", session.id)).offset == 200
    await blobs.append(registry, "app", session.id, body(data[200:]), 200, None)
    location = await blobs.finish(registry, "app", session.id, Digest.of(data), body(), None, None)
    assert location.size == len(data)


async def test_a_chunk_shorter_than_declared_leaves_the_offset(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    data = b"abcdefghij" * 10
    session = await blobs.start_upload(registry, "app")
    await blobs.append(registry, "app", session.id, body(data[:50]), 0, 50)
    with pytest.raises(Invalid) as caught:
        await blobs.append(registry, "app", session.id, body(b"zz"), 50, 11)
    assert caught.value.field == "size"
    assert (await blobs.status(registry, "app", session.id)).offset == 50
    await blobs.append(registry, "app", session.id, body(data[50:]), 50, 50)
    location = await blobs.finish(registry, "app", session.id, Digest.of(data), body(), None, None)
    assert await stored(store, location.digest) == data


async def test_finishing_with_the_wrong_digest_discards_the_session_and_stores_nothing(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    session = await blobs.start_upload(registry, "app")
    await blobs.append(registry, "app", session.id, body(b"some bytes"), 0, None)
    wrong = Digest.of(b"other bytes")
    with pytest.raises(Invalid) as caught:
        await blobs.finish(registry, "app", session.id, wrong, body(b"!"), None, None)
    assert caught.value.field == "digest"
    assert await blob_files(store) == [] and await staged_files(store) == []
    await assert_unknown(blobs, registry, "app", Digest.of(b"some bytes!"))
    with pytest.raises(NotFound) as gone:
        await blobs.status(registry, "app", session.id)
    assert gone.value.subject == "upload"


async def test_a_session_verifies_a_digest_of_another_algorithm(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    data = b"sha512 content"
    session = await blobs.start_upload(registry, "app")
    digest = Digest.of(data, "sha512")
    location = await blobs.finish(registry, "app", session.id, digest, body(data), 0, len(data))
    assert location.digest == digest
    assert (await blobs.stat(registry, "app", digest)).size == len(data)


async def test_a_session_continues_on_another_service_instance(
    meta: MetadataStore, store: BlobStore, blobs: BlobService, registry: RegistryRecord
) -> None:
    """The hash state is rebuilt from the staged bytes (a restart, or another process)."""
    data = b"resumable" * 100
    session = await blobs.start_upload(registry, "app")
    await blobs.append(registry, "app", session.id, body(data[:400]), 0, None)
    fresh = BlobService(meta, store)
    location = await fresh.finish(
        registry, "app", session.id, Digest.of(data), body(data[400:]), 400, None
    )
    assert await stored(store, location.digest) == data


async def test_an_unknown_algorithm_is_refused(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    with pytest.raises(Invalid) as caught:
        await blobs.start_upload(registry, "app", "md5")
    assert caught.value.field == "digest"


@pytest.mark.parametrize("where", ["repository", "registry", "id"])
async def test_a_session_is_unknown_outside_its_repository(
    blobs: BlobService, registry: RegistryRecord, other_registry: RegistryRecord, where: str
) -> None:
    session = await blobs.start_upload(registry, "app")
    reg, repository, upload_id = {
        "repository": (registry, "other", session.id),
        "registry": (other_registry, "app", session.id),
        "id": (registry, "app", "not-a-session"),
    }[where]
    with pytest.raises(NotFound) as caught:
        await blobs.append(reg, repository, upload_id, body(b"x"), 0, None)
    assert caught.value.subject == "upload"
    with pytest.raises(NotFound):
        await blobs.cancel(reg, repository, upload_id)
    assert (await blobs.status(registry, "app", session.id)).offset == 0


async def test_cancel_drops_the_session_and_its_staged_bytes(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    session = await blobs.start_upload(registry, "app")
    await blobs.append(registry, "app", session.id, body(b"staged"), 0, None)
    assert await staged_files(store) != []
    await blobs.cancel(registry, "app", session.id)
    assert await staged_files(store) == []
    with pytest.raises(NotFound) as caught:
        await blobs.status(registry, "app", session.id)
    assert caught.value.subject == "upload"


async def test_a_session_whose_staged_bytes_vanished_is_expired(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    session = await blobs.start_upload(registry, "app")
    await store.delete_staging(session.id)
    with pytest.raises(NotFound) as caught:
        await blobs.append(registry, "app", session.id, body(b"x"), 0, None)
    assert caught.value.subject == "upload"


# -- mounts ---------------------------------------------------------------------------------
async def test_a_mount_from_a_source_links_its_blob(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    digest = await push(blobs, registry, "source", b"shared layer")
    assert await blobs.mount(registry, "target", digest, "source")
    assert (await blobs.stat(registry, "target", digest)).size == len(b"shared layer")


async def test_a_mount_from_a_source_without_the_blob_links_nothing(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    digest = await push(blobs, registry, "holder", b"held elsewhere")
    await push(blobs, registry, "source", b"something else")
    assert not await blobs.mount(registry, "target", digest, "source")
    assert not await blobs.mount(registry, "target", digest, "no-such-repository")
    await assert_unknown(blobs, registry, "target", digest)


async def test_a_mount_never_crosses_registries(
    blobs: BlobService, registry: RegistryRecord, other_registry: RegistryRecord
) -> None:
    digest = await push(blobs, registry, "source", b"registry one only")
    assert not await blobs.mount(other_registry, "target", digest, "source")
    await assert_unknown(blobs, other_registry, "target", digest)


async def test_an_automatic_mount_links_only_a_blob_the_repository_has(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    """Knowing a digest is never access: another repository holding the bytes is not enough."""
    digest = await push(blobs, registry, "victim", b"secret layer")
    assert not await blobs.mount(registry, "attacker", digest, None)
    await assert_unknown(blobs, registry, "attacker", digest)
    own = await push(blobs, registry, "attacker", b"own layer")
    assert await blobs.mount(registry, "attacker", own, None)


async def test_a_mount_of_a_blob_whose_bytes_are_gone_links_nothing(
    blobs: BlobService, registry: RegistryRecord, store: BlobStore
) -> None:
    digest = await push(blobs, registry, "source", b"lost bytes")
    for stored_digest in await blob_files(store):
        await store.delete(stored_digest)
    assert not await blobs.mount(registry, "target", digest, "source")
    await assert_unknown(blobs, registry, "target", digest)


# -- deletes --------------------------------------------------------------------------------
async def test_delete_unlinks_from_one_repository_only(
    blobs: BlobService, registry: RegistryRecord
) -> None:
    digest = await push(blobs, registry, "app", b"twice")
    await push(blobs, registry, "other", b"twice")
    await blobs.delete(registry, "app", digest)
    await assert_unknown(blobs, registry, "app", digest)
    assert (await blobs.stat(registry, "other", digest)).size == len(b"twice")
    with pytest.raises(NotFound) as caught:
        await blobs.delete(registry, "app", digest)
    assert caught.value.subject == "blob"
    with pytest.raises(NotFound) as unknown_repo:
        await blobs.delete(registry, "no-such-repository", digest)
    assert unknown_repo.value.subject == "blob"


async def test_a_blob_a_manifest_needs_cannot_be_deleted(
    meta: MetadataStore, blobs: BlobService, registry: RegistryRecord
) -> None:
    config, layer = b"{}", b"layer"
    await push(blobs, registry, "app", config)
    layer_digest = await push(blobs, registry, "app", layer)
    manifests = ManifestService(meta, max_manifest_bytes=4096, page_max=100)
    pushed = await manifests.put(registry, "app", "v1", image_manifest(config, [layer]), None)
    with pytest.raises(Conflict) as caught:
        await blobs.delete(registry, "app", layer_digest)
    assert caught.value.reason == "in_use"
    assert caught.value.detail == {"digest": str(layer_digest), "manifest": str(pushed.digest)}
    assert (await blobs.stat(registry, "app", layer_digest)).size == len(layer)
    await manifests.delete(registry, "app", str(pushed.digest))
    await blobs.delete(registry, "app", layer_digest)
    await assert_unknown(blobs, registry, "app", layer_digest)
