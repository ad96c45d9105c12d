"""Image locking (ACR's changeable attributes) through the registry services, on SQLite and
PostgreSQL: a locked repository, tag or manifest refuses what its attributes forbid on
every path (push, tag and manifest delete, repository delete, import with force, pull,
listings, garbage collection), refuses it whole, and unlocking makes the operation work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.support.app import image_manifest
from transship.errors import Denied, NotFound
from transship.imports.budgets import WaitReporter
from transship.imports.engine import ImportEngine, Progress
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits, ImportPlan, PlannedManifest
from transship.imports.ports import Credentials, FetchedManifest, ImageSource
from transship.imports.sink import RegistrySink
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import Attributes, RegistryRecord
from transship.oci.digest import Digest
from transship.oci.manifest import parse_manifest
from transship.registry.blobs import BlobService
from transship.registry.gc import GarbageCollector
from transship.registry.listings import AttributeChanges, ListingService
from transship.registry.manifests import ManifestService
from transship.storage.filesystem import FilesystemBlobStore

CONFIG, LAYER, OTHER_LAYER = b'{"architecture":"amd64"}', b"layer bytes", b"other layer"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LOCK = AttributeChanges(write_enabled=False)
NO_DELETE = AttributeChanges(delete_enabled=False)
UNLOCK = AttributeChanges(write_enabled=True, delete_enabled=True)


@pytest.fixture
async def meta(database_url: str | None, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    database = Database(database_url or f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        yield MetadataStore(database)
    finally:
        await database.close()


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


@pytest.fixture
def manifests(meta: MetadataStore) -> ManifestService:
    return ManifestService(meta, 1 << 16, page_max=100)


@pytest.fixture
def listings(meta: MetadataStore, store: FilesystemBlobStore) -> ListingService:
    return ListingService(meta, store)


@pytest.fixture
async def registry(meta: MetadataStore) -> RegistryRecord:
    async with meta.writing() as q:
        return await q.create_registry("one", "one.localhost:5000")


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def push(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    registry: RegistryRecord,
    repository: str,
    tag: str,
    layer: bytes = LAYER,
) -> Digest:
    blobs = BlobService(meta, store)
    for data in (CONFIG, layer):
        await blobs.upload_whole(registry, repository, Digest.of(data), _body(data), len(data))
    content = image_manifest(CONFIG, [layer])
    pushed = await manifests.put(registry, repository, tag, content, OCI_MANIFEST)
    return pushed.digest


@pytest.fixture
async def image(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    registry: RegistryRecord,
) -> Digest:
    """`app:v1` and `app:latest` on one image."""
    digest = await push(meta, store, manifests, registry, "app", "v1")
    await manifests.put(registry, "app", "latest", image_manifest(CONFIG, [LAYER]), OCI_MANIFEST)
    return digest


def assert_locked(caught: pytest.ExceptionInfo[Denied], subject: str, attribute: str) -> None:
    assert caught.value.reason == "locked"
    assert caught.value.subject == subject
    assert caught.value.detail is not None and caught.value.detail["attribute"] == attribute
    assert "disallowed" in caught.value.message
    assert f"--{attribute.replace('Enabled', '')}-enabled true" in caught.value.message


async def tags_of(listings: ListingService, registry: RegistryRecord) -> dict[str, Digest]:
    page = await listings.tags(registry, "app", "key", None, None)
    return {tag.name: tag.digest for tag in page.items}


# -- storing and answering the attributes ------------------------------------------------------
async def test_new_content_is_unlocked_and_updates_change_only_what_they_name(
    listings: ListingService, registry: RegistryRecord, image: Digest
) -> None:
    assert (await listings.summary(registry, "app")).attributes == Attributes()
    updated = await listings.update_attributes(
        registry, "app", "tag", "v1", AttributeChanges(write_enabled=False, list_enabled=False)
    )
    assert updated == Attributes(write_enabled=False, list_enabled=False)
    again = await listings.update_attributes(
        registry, "app", "tag", "v1", AttributeChanges(read_enabled=False)
    )
    assert again == Attributes(write_enabled=False, read_enabled=False, list_enabled=False)
    # The tag's record carries them; the other tag and the manifest are untouched.
    tag = await listings.tag(registry, "app", "v1")
    assert tag is not None and tag.attributes == again
    other = await listings.tag(registry, "app", "latest")
    assert other is not None and other.attributes == Attributes()
    manifest = await listings.manifest(registry, "app", image)
    assert manifest is not None and manifest.attributes == Attributes()
    locked = await listings.update_attributes(registry, "app", "manifest", image, NO_DELETE)
    assert locked == Attributes(delete_enabled=False)
    manifest = await listings.manifest(registry, "app", image)
    assert manifest is not None and manifest.attributes == locked
    repository = await listings.update_attributes(registry, "app", "repository", None, LOCK)
    assert (await listings.summary(registry, "app")).attributes == repository
    assert repository == Attributes(write_enabled=False)


async def test_updating_what_does_not_exist_is_not_found(
    listings: ListingService, registry: RegistryRecord, image: Digest
) -> None:
    with pytest.raises(NotFound) as caught:
        await listings.update_attributes(registry, "app", "tag", "nope", LOCK)
    assert caught.value.subject == "tag"
    with pytest.raises(NotFound) as caught:
        await listings.update_attributes(registry, "app", "manifest", Digest.of(b"absent"), LOCK)
    assert caught.value.subject == "manifest"
    with pytest.raises(NotFound) as caught:
        await listings.update_attributes(registry, "nothere", "repository", None, LOCK)
    assert caught.value.subject == "repository"


# -- writes --------------------------------------------------------------------------------------
async def test_a_write_locked_tag_cannot_be_moved_but_other_tags_can(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    await listings.update_attributes(registry, "app", "tag", "v1", LOCK)
    blobs = BlobService(meta, store)
    await blobs.upload_whole(
        registry, "app", Digest.of(OTHER_LAYER), _body(OTHER_LAYER), len(OTHER_LAYER)
    )
    other = image_manifest(CONFIG, [OTHER_LAYER])
    with pytest.raises(Denied) as caught:
        await manifests.put(registry, "app", "v1", other, OCI_MANIFEST)
    assert_locked(caught, "tag", "writeEnabled")
    assert "app:v1" in caught.value.message
    # Through the multi-tag form too (`?tag=`), and nothing of the refused push is stored:
    # neither the new manifest nor the unlocked tag named with it.
    with pytest.raises(Denied):
        await manifests.put(registry, "app", "v2", other, OCI_MANIFEST, extra_tags=("v1",))
    assert await tags_of(listings, registry) == {"v1": image, "latest": image}
    assert await listings.manifest(registry, "app", Digest.of(other)) is None
    # A manifest lock does not pin its other tags (ACR: only the locked tag is immutable).
    await listings.update_attributes(registry, "app", "manifest", image, LOCK)
    moved = await manifests.put(registry, "app", "latest", other, OCI_MANIFEST)
    assert (await tags_of(listings, registry))["latest"] == moved.digest
    # Unlocked, the tag moves.
    await listings.update_attributes(registry, "app", "tag", "v1", UNLOCK)
    await manifests.put(registry, "app", "v1", other, OCI_MANIFEST)
    assert (await tags_of(listings, registry))["v1"] == moved.digest


async def test_a_delete_locked_tag_still_moves(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    """deleteEnabled false protects from deletion but allows updates (ACR's documented
    `--delete-enabled false --write-enabled true`)."""
    await listings.update_attributes(registry, "app", "tag", "v1", NO_DELETE)
    moved = await push(meta, store, manifests, registry, "app", "v1", OTHER_LAYER)
    assert (await tags_of(listings, registry))["v1"] == moved


async def test_a_write_locked_repository_takes_no_manifest_at_all(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    await listings.update_attributes(registry, "app", "repository", None, LOCK)
    with pytest.raises(Denied) as caught:
        await push(meta, store, manifests, registry, "app", "new", OTHER_LAYER)
    assert_locked(caught, "repository", "writeEnabled")
    assert set(await tags_of(listings, registry)) == {"v1", "latest"}
    await listings.update_attributes(registry, "app", "repository", None, UNLOCK)
    await push(meta, store, manifests, registry, "app", "new", OTHER_LAYER)
    assert set(await tags_of(listings, registry)) == {"v1", "latest", "new"}


# -- deletes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes", [LOCK, NO_DELETE], ids=["write", "delete"])
async def test_a_locked_tag_cannot_be_deleted_nor_its_manifest(
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
    changes: AttributeChanges,
) -> None:
    await listings.update_attributes(registry, "app", "tag", "v1", changes)
    attribute = "writeEnabled" if changes is LOCK else "deleteEnabled"
    with pytest.raises(Denied) as caught:
        await manifests.delete(registry, "app", "v1")
    assert_locked(caught, "tag", attribute)
    # Deleting the manifest would delete the locked tag with it.
    with pytest.raises(Denied) as caught:
        await manifests.delete(registry, "app", str(image))
    assert_locked(caught, "tag", attribute)
    assert await tags_of(listings, registry) == {"v1": image, "latest": image}
    # The unlocked tag on the same image can go.
    await manifests.delete(registry, "app", "latest")
    await listings.update_attributes(registry, "app", "tag", "v1", UNLOCK)
    await manifests.delete(registry, "app", str(image))
    assert await tags_of(listings, registry) == {}
    assert await listings.manifest(registry, "app", image) is None


@pytest.mark.parametrize("changes", [LOCK, NO_DELETE], ids=["write", "delete"])
async def test_a_locked_manifest_cannot_be_deleted_but_its_tags_can(
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
    changes: AttributeChanges,
) -> None:
    await listings.update_attributes(registry, "app", "manifest", image, changes)
    with pytest.raises(Denied) as caught:
        await manifests.delete(registry, "app", str(image))
    assert_locked(caught, "manifest", "writeEnabled" if changes is LOCK else "deleteEnabled")
    assert str(image) in caught.value.message
    await manifests.delete(registry, "app", "v1")
    assert await tags_of(listings, registry) == {"latest": image}
    assert await listings.manifest(registry, "app", image) is not None


@pytest.mark.parametrize(
    ("subject", "changes"),
    [
        ("repository", LOCK),
        ("repository", NO_DELETE),
        ("tag", LOCK),
        ("tag", NO_DELETE),
        ("manifest", LOCK),
        ("manifest", NO_DELETE),
    ],
)
async def test_a_repository_with_anything_locked_is_not_deleted_at_all(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
    subject: str,
    changes: AttributeChanges,
) -> None:
    unlocked = await push(meta, store, manifests, registry, "app", "free", OTHER_LAYER)
    key = {"repository": None, "tag": "v1", "manifest": image}[subject]
    await listings.update_attributes(registry, "app", subject, key, changes)  # type: ignore[arg-type]
    with pytest.raises(Denied) as caught:
        await listings.delete_repository(registry, "app")
    assert caught.value.reason == "locked" and caught.value.subject == subject
    # Nothing went: not even the unlocked tag and manifest.
    assert await tags_of(listings, registry) == {"v1": image, "latest": image, "free": unlocked}
    assert (await listings.summary(registry, "app")).manifest_count == 2
    await listings.update_attributes(registry, "app", subject, key, UNLOCK)  # type: ignore[arg-type]
    deleted = await listings.delete_repository(registry, "app")
    assert sorted(deleted.tags) == ["free", "latest", "v1"]


async def test_a_delete_locked_repository_refuses_every_delete_in_it(
    manifests: ManifestService, listings: ListingService, registry: RegistryRecord, image: Digest
) -> None:
    await listings.update_attributes(registry, "app", "repository", None, NO_DELETE)
    for reference in ("v1", str(image)):
        with pytest.raises(Denied) as caught:
            await manifests.delete(registry, "app", reference)
        assert_locked(caught, "repository", "deleteEnabled")
    assert set(await tags_of(listings, registry)) == {"v1", "latest"}


# -- reads and listings --------------------------------------------------------------------------
async def test_read_disabled_content_is_not_pulled(
    manifests: ManifestService, listings: ListingService, registry: RegistryRecord, image: Digest
) -> None:
    await listings.update_attributes(
        registry, "app", "tag", "v1", AttributeChanges(read_enabled=False)
    )
    with pytest.raises(Denied) as caught:
        await manifests.get(registry, "app", "v1")
    assert caught.value.reason == "locked" and "app:v1" in caught.value.message
    # The same manifest by another tag or by digest: the tag's flag is the tag's.
    assert (await manifests.get(registry, "app", "latest")).digest == image
    assert (await manifests.get(registry, "app", str(image))).digest == image
    await listings.update_attributes(
        registry, "app", "manifest", image, AttributeChanges(read_enabled=False)
    )
    for reference in ("latest", str(image)):
        with pytest.raises(Denied):
            await manifests.get(registry, "app", reference)
    await listings.update_attributes(
        registry, "app", "manifest", image, AttributeChanges(read_enabled=True)
    )
    await listings.update_attributes(
        registry, "app", "repository", None, AttributeChanges(read_enabled=False)
    )
    with pytest.raises(Denied):
        await manifests.get(registry, "app", "latest")
    await listings.update_attributes(
        registry, "app", "repository", None, AttributeChanges(read_enabled=True)
    )
    assert (await manifests.get(registry, "app", "latest")).digest == image


async def test_list_disabled_content_is_left_out_of_listings(
    manifests: ManifestService, listings: ListingService, registry: RegistryRecord, image: Digest
) -> None:
    hidden = AttributeChanges(list_enabled=False)
    await listings.update_attributes(registry, "app", "tag", "v1", hidden)
    assert set(await tags_of(listings, registry)) == {"latest"}
    assert (await manifests.tags(registry, "app", None, None)).items == ["latest"]
    # Still there when asked by name.
    assert await listings.tag(registry, "app", "v1") is not None
    await listings.update_attributes(registry, "app", "manifest", image, hidden)
    assert (await listings.manifests(registry, "app", "key", None, None)).items == []
    assert await listings.manifest(registry, "app", image) is not None
    assert (await manifests.catalog(registry, None, None)).items == ["app"]
    await listings.update_attributes(registry, "app", "repository", None, hidden)
    assert (await manifests.catalog(registry, None, None)).items == []


# -- imports and garbage collection --------------------------------------------------------------
def _plan(content: bytes) -> ImportPlan:
    fetched = FetchedManifest(content, OCI_MANIFEST, Digest.of(content))
    root = PlannedManifest(fetched, parse_manifest(content, OCI_MANIFEST))
    return ImportPlan(root, (root,), (), ())


def _request(*targets: str, force: bool) -> ImportRequest:
    source = SourceSpec("upstream.example", None, "library/app", "v9")
    return ImportRequest(source, tuple(TargetTag("app", tag) for tag in targets), (), force)


async def test_an_import_with_force_does_not_move_a_locked_tag(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    sink = RegistrySink(meta, store)
    other = image_manifest(CONFIG, [LAYER, CONFIG])
    await listings.update_attributes(registry, "app", "tag", "v1", LOCK)
    with pytest.raises(ImportFailure) as caught:
        await sink.commit(registry.id, _plan(other), _request("latest", "v1", force=True))
    assert caught.value.code == "OperationDisallowed"
    assert "app:v1" in caught.value.message and "locked" in caught.value.message
    # One transaction: the unlocked target tag did not move either.
    assert await tags_of(listings, registry) == {"v1": image, "latest": image}
    assert await listings.manifest(registry, "app", Digest.of(other)) is None
    await listings.update_attributes(registry, "app", "tag", "v1", UNLOCK)
    await sink.commit(registry.id, _plan(other), _request("latest", "v1", force=True))
    assert set((await tags_of(listings, registry)).values()) == {Digest.of(other)}


async def test_an_import_into_a_write_locked_repository_is_refused(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    sink = RegistrySink(meta, store)
    await listings.update_attributes(registry, "app", "repository", None, LOCK)
    with pytest.raises(ImportFailure) as caught:
        await sink.commit(
            registry.id, _plan(image_manifest(CONFIG, [CONFIG])), _request("new", force=False)
        )
    assert caught.value.code == "OperationDisallowed"
    assert set(await tags_of(listings, registry)) == {"v1", "latest"}


class _NoSource:
    """An import engine's source factory that must not be reached."""

    def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        on_wait: WaitReporter | None = None,
    ) -> AbstractAsyncContextManager[ImageSource]:
        raise AssertionError("the upstream was contacted before the target was checked")


async def test_an_import_onto_a_locked_target_fails_before_anything_is_fetched(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    sink = RegistrySink(meta, store)
    engine = ImportEngine(sink, _NoSource(), blob_concurrency=1, limits=ImportLimits())
    await listings.update_attributes(registry, "app", "tag", "v1", LOCK)
    for request in (_request("v1", force=True), _request("latest", "v1", force=False)):
        with pytest.raises(ImportFailure) as caught:
            await engine.run("job", registry.id, request, None, Progress())
        assert (caught.value.code, caught.value.step) == ("OperationDisallowed", Step.RESOLVE)
        assert "app:v1" in caught.value.message and "locked" in caught.value.message
    await listings.update_attributes(registry, "app", "tag", "v1", UNLOCK)
    await listings.update_attributes(registry, "app", "repository", None, LOCK)
    with pytest.raises(ImportFailure) as caught:
        await engine.run("job", registry.id, _request("new", force=True), None, Progress())
    assert (caught.value.code, caught.value.step) == ("OperationDisallowed", Step.RESOLVE)
    await listings.update_attributes(registry, "app", "repository", None, UNLOCK)
    # Unlocked: an existing tag without force is still refused up front, with force the
    # check lets the import go on (to the upstream, here a source that must not be reached).
    with pytest.raises(ImportFailure) as caught:
        await engine.run("job", registry.id, _request("v1", force=False), None, Progress())
    assert (caught.value.code, caught.value.step) == ("TagAlreadyExists", Step.RESOLVE)
    with pytest.raises(AssertionError, match="upstream was contacted"):
        await engine.run("job", registry.id, _request("v1", force=True), None, Progress())


async def test_garbage_collection_keeps_locked_content(
    meta: MetadataStore,
    store: FilesystemBlobStore,
    manifests: ManifestService,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
) -> None:
    """A locked manifest, untagged, survives a collection with no grace period, and so do
    the blobs it references."""
    await listings.update_attributes(registry, "app", "manifest", image, NO_DELETE)
    await manifests.delete(registry, "app", "v1")
    await manifests.delete(registry, "app", "latest")
    gc = GarbageCollector(meta, store, grace_seconds=0, upload_expiry_seconds=0)
    await asyncio.sleep(0.01)
    await gc.run()
    listing = await listings.manifest(registry, "app", image)
    assert listing is not None and listing.attributes.delete_enabled is False
    for data in (CONFIG, LAYER):
        assert await store.size(Digest.of(data)) == len(data)


async def test_a_lock_and_a_concurrent_delete_never_both_win(
    manifests: ManifestService, listings: ListingService, registry: RegistryRecord, image: Digest
) -> None:
    """The lock and the delete serialise on the repository: either the delete ran first
    (the tag is gone and the lock answers NotFound) or the lock did (the delete is refused)."""
    lock = listings.update_attributes(registry, "app", "tag", "v1", NO_DELETE)
    delete = manifests.delete(registry, "app", "v1")
    locked, deleted = await asyncio.gather(lock, delete, return_exceptions=True)
    remaining = await tags_of(listings, registry)
    if isinstance(deleted, Denied):
        assert locked == Attributes(delete_enabled=False) and "v1" in remaining
    else:
        assert deleted is None and isinstance(locked, NotFound) and "v1" not in remaining


@pytest.mark.parametrize("subject", ["repository", "tag", "manifest"])
async def test_the_delete_query_itself_keeps_locked_manifests(
    meta: MetadataStore,
    listings: ListingService,
    registry: RegistryRecord,
    image: Digest,
    subject: str,
) -> None:
    """Defence in depth for retention and any other caller of the raw query: a locked
    manifest is kept even when no service-level check ran."""
    key = {"repository": None, "tag": "v1", "manifest": image}[subject]
    await listings.update_attributes(registry, "app", subject, key, NO_DELETE)  # type: ignore[arg-type]
    async with meta.writing() as q:
        repo_id = await q.repository_id(registry.id, "app")
        assert repo_id is not None
        assert await q.deletion_locked(repo_id, image)
        assert await q.delete_manifest(repo_id, image) is False
    assert await listings.manifest(registry, "app", image) is not None
    assert set(await tags_of(listings, registry)) == {"v1", "latest"}
    await listings.update_attributes(registry, "app", subject, key, UNLOCK)  # type: ignore[arg-type]
    async with meta.writing() as q:
        assert not await q.deletion_locked(repo_id, image)
        assert await q.delete_manifest(repo_id, image) is True
