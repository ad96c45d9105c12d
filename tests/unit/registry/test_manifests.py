"""ManifestService against a real MetadataStore (SQLite) and a real FilesystemBlobStore.

Manifests are stored byte-for-byte, refused whole (nothing stored) when anything they
reference is missing, and tags move only to complete content.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.app import OCI_INDEX, OCI_MANIFEST, descriptor, image_manifest
from transship.errors import Conflict, DomainError, Invalid, LimitExceeded, NotFound, TooLarge
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.oci.digest import Digest
from transship.registry.blobs import BlobService
from transship.registry.manifests import MAX_TAGS_PER_PUT, ManifestService, parse_reference
from transship.storage.filesystem import FilesystemBlobStore

MAX_MANIFEST = 4096
MAX_CHILDREN = 3
CONFIG, LAYER = b'{"architecture":"amd64"}', b"layer bytes"


@pytest.fixture
def blobs(meta: MetadataStore, tmp_path: Path) -> BlobService:
    return BlobService(
        meta, FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)
    )


@pytest.fixture
def manifests(meta: MetadataStore) -> ManifestService:
    return ManifestService(meta, MAX_MANIFEST, page_max=100, max_index_children=MAX_CHILDREN)


@pytest.fixture
async def registry(meta: MetadataStore) -> RegistryRecord:
    async with meta.writing() as q:
        return await q.create_registry("one", "one.localhost:5000")


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def push_blobs(
    blobs: BlobService, registry: RegistryRecord, repository: str, *items: bytes
) -> None:
    for data in items:
        await blobs.upload_whole(registry, repository, Digest.of(data), body(data), len(data))


@pytest.fixture
async def image(blobs: BlobService, registry: RegistryRecord) -> bytes:
    """An image manifest whose config and layer are in repository `app`."""
    await push_blobs(blobs, registry, "app", CONFIG, LAYER)
    return image_manifest(CONFIG, [LAYER])


def index_of(*children: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, c) for c in children],
        }
    ).encode()


async def assert_manifest_unknown(
    manifests: ManifestService, registry: RegistryRecord, repository: str, reference: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await manifests.get(registry, repository, reference)
    assert caught.value.subject == "manifest"


async def assert_repository_unknown(
    manifests: ManifestService, registry: RegistryRecord, repository: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await manifests.tags(registry, repository, None, None)
    assert caught.value.subject == "repository"


# -- references -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reference", "writing", "error", "field"),
    [
        ("sha256:abc", False, Invalid, "digest"),
        ("sha256:abc", True, Invalid, "digest"),
        ("-bad-tag", False, NotFound, None),
        ("-bad-tag", True, Invalid, "tag"),
        ("x" * 129, True, Invalid, "tag"),
    ],
)
def test_parse_reference_refuses(
    reference: str, writing: bool, error: type[DomainError], field: str | None
) -> None:
    with pytest.raises(error) as caught:
        parse_reference(reference, writing=writing)
    assert caught.value.field == field
    if isinstance(caught.value, NotFound):
        assert caught.value.subject == "manifest"


def test_parse_reference_accepts_tags_and_digests() -> None:
    digest = Digest.of(b"x")
    assert parse_reference(str(digest), writing=True) == digest
    assert parse_reference("v1.0_rc-1", writing=False) == "v1.0_rc-1"


# -- push and pull --------------------------------------------------------------------------
async def test_a_manifest_pushed_by_tag_is_served_byte_for_byte(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    content = image.replace(b'"schemaVersion": 2', b'"schemaVersion":   2')  # odd spacing kept
    pushed = await manifests.put(registry, "app", "v1", content, OCI_MANIFEST)
    assert pushed.digest == Digest.of(content)
    assert pushed.tags == ("v1",) and pushed.subject is None
    for reference in ("v1", str(pushed.digest)):
        record = await manifests.get(registry, "app", reference)
        assert record.content == content
        assert record.digest == pushed.digest and record.media_type == OCI_MANIFEST
    assert (await manifests.tags(registry, "app", None, None)).items == ["v1"]


async def test_a_manifest_pushed_by_digest_has_no_tag(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    digest = str(Digest.of(image))
    pushed = await manifests.put(registry, "app", digest, image, None)
    assert pushed.tags == ()
    assert (await manifests.get(registry, "app", digest)).content == image
    assert (await manifests.tags(registry, "app", None, None)).items == []


async def test_a_manifest_pushed_by_a_sha512_digest_is_verified_with_sha512(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    digest = str(Digest.of(image, "sha512"))
    pushed = await manifests.put(registry, "app", digest, image, None)
    assert str(pushed.digest) == digest
    assert (await manifests.get(registry, "app", digest)).content == image


async def test_a_manifest_whose_bytes_do_not_match_the_digest_is_refused(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    claimed = str(Digest.of(b"something else"))
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "app", claimed, image, None)
    assert caught.value.field == "digest"
    assert caught.value.detail == {"digest": claimed}
    await assert_manifest_unknown(manifests, registry, "app", str(Digest.of(image)))


async def test_extra_tags_are_set_together_and_deduplicated(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    pushed = await manifests.put(registry, "app", "v1", image, None, ("latest", "v1", "stable"))
    assert pushed.tags == ("v1", "latest", "stable")
    assert (await manifests.tags(registry, "app", None, None)).items == ["latest", "stable", "v1"]


async def test_a_digest_as_an_extra_tag_is_refused(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "app", "v1", image, None, (str(Digest.of(image)),))
    assert caught.value.field == "tag"
    await assert_manifest_unknown(manifests, registry, "app", "v1")
    await assert_manifest_unknown(manifests, registry, "app", str(Digest.of(image)))


async def test_too_many_tags_in_one_put_are_refused(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    extra = tuple(f"t{i}" for i in range(MAX_TAGS_PER_PUT))  # plus the reference: one too many
    with pytest.raises(LimitExceeded) as caught:
        await manifests.put(registry, "app", "v1", image, None, extra)
    assert caught.value.subject == "manifest"
    await assert_manifest_unknown(manifests, registry, "app", "v1")
    await manifests.put(registry, "app", "v1", image, None, extra[:-1])
    assert len((await manifests.tags(registry, "app", None, None)).items) == MAX_TAGS_PER_PUT


async def test_a_tag_moves_to_the_newest_manifest(
    manifests: ManifestService, blobs: BlobService, registry: RegistryRecord, image: bytes
) -> None:
    first = await manifests.put(registry, "app", "v1", image, None)
    await push_blobs(blobs, registry, "app", b"layer two")
    second_content = image_manifest(CONFIG, [LAYER, b"layer two"])
    second = await manifests.put(registry, "app", "v1", second_content, None)
    assert (await manifests.get(registry, "app", "v1")).digest == second.digest
    assert (await manifests.get(registry, "app", str(first.digest))).content == image
    assert (await manifests.tags(registry, "app", None, None)).items == ["v1"]


# -- refusals -------------------------------------------------------------------------------
async def test_a_manifest_over_the_size_limit_is_refused_with_413(
    manifests: ManifestService, registry: RegistryRecord
) -> None:
    content = image_manifest(CONFIG, [LAYER], annotations={"pad": "x" * MAX_MANIFEST})
    with pytest.raises(TooLarge) as caught:
        await manifests.put(registry, "app", "v1", content, None)

    assert caught.value.subject == "manifest"
    await assert_repository_unknown(manifests, registry, "app")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    ],
)
async def test_an_invalid_manifest_is_refused(
    manifests: ManifestService, registry: RegistryRecord, content: bytes
) -> None:
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "app", "v1", content, OCI_MANIFEST)
    assert caught.value.field == "manifest"
    await assert_repository_unknown(manifests, registry, "app")


async def test_an_invalid_tag_is_refused_when_pushing(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "app", "-bad", image, None)
    assert caught.value.field == "tag"


async def test_a_manifest_referencing_an_unknown_blob_stores_nothing(
    manifests: ManifestService, blobs: BlobService, registry: RegistryRecord
) -> None:
    await push_blobs(blobs, registry, "app", CONFIG)
    content = image_manifest(CONFIG, [b"never pushed"])
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "app", "v1", content, None)
    assert caught.value.reason == "missing_reference"
    assert caught.value.detail == {"digest": str(Digest.of(b"never pushed"))}
    await assert_manifest_unknown(manifests, registry, "app", "v1")
    await assert_manifest_unknown(manifests, registry, "app", str(Digest.of(content)))


async def test_a_blob_of_another_repository_does_not_count(
    manifests: ManifestService, blobs: BlobService, registry: RegistryRecord, image: bytes
) -> None:
    """The blobs are in `app`; a manifest in `other` cannot reference them by digest alone."""
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "other", "v1", image, None)
    assert caught.value.reason == "missing_reference"
    await assert_repository_unknown(manifests, registry, "other")


async def test_a_foreign_layer_need_not_be_pushed(
    manifests: ManifestService, blobs: BlobService, registry: RegistryRecord
) -> None:
    await push_blobs(blobs, registry, "app", CONFIG)
    foreign = descriptor(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        b"windows base layer",
        urls=["https://example.com/layer"],
    )
    content = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
            "layers": [foreign],
        }
    ).encode()
    pushed = await manifests.put(registry, "app", "win", content, None)
    assert (await manifests.get(registry, "app", "win")).digest == pushed.digest


# -- indexes --------------------------------------------------------------------------------
async def test_an_index_is_stored_when_its_children_are(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    await manifests.put(registry, "app", str(Digest.of(image)), image, None)
    index = index_of(image)
    pushed = await manifests.put(registry, "app", "multi", index, OCI_INDEX)
    record = await manifests.get(registry, "app", "multi")
    assert record.content == index and record.media_type == OCI_INDEX
    assert record.digest == pushed.digest


async def test_an_index_with_a_missing_child_stores_nothing(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    await manifests.put(registry, "app", str(Digest.of(image)), image, None)
    missing = image_manifest(CONFIG, [])
    with pytest.raises(Invalid) as caught:
        await manifests.put(registry, "app", "multi", index_of(image, missing), None)
    assert caught.value.reason == "missing_reference"
    assert caught.value.detail == {"digest": str(Digest.of(missing))}
    await assert_manifest_unknown(manifests, registry, "app", "multi")


async def test_an_index_over_the_children_limit_is_refused(
    manifests: ManifestService, registry: RegistryRecord
) -> None:
    children = [image_manifest(CONFIG, [bytes([i])]) for i in range(MAX_CHILDREN + 1)]
    with pytest.raises(LimitExceeded) as caught:
        await manifests.put(registry, "app", "multi", index_of(*children), None)
    assert caught.value.subject == "manifest"
    assert str(MAX_CHILDREN) in caught.value.message


async def test_a_child_of_an_index_cannot_be_deleted_before_the_index(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    child = str(Digest.of(image))
    await manifests.put(registry, "app", child, image, None)
    index = await manifests.put(registry, "app", "multi", index_of(image), None)
    with pytest.raises(Conflict) as caught:
        await manifests.delete(registry, "app", child)
    assert caught.value.reason == "in_use"
    assert caught.value.detail == {"digest": child, "index": str(index.digest)}
    assert (await manifests.get(registry, "app", child)).content == image
    await manifests.delete(registry, "app", str(index.digest))
    await manifests.delete(registry, "app", child)
    await assert_manifest_unknown(manifests, registry, "app", child)


# -- deletes --------------------------------------------------------------------------------
async def test_deleting_a_tag_keeps_the_manifest(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    pushed = await manifests.put(registry, "app", "v1", image, None, ("v2",))
    await manifests.delete(registry, "app", "v1")
    await assert_manifest_unknown(manifests, registry, "app", "v1")
    assert (await manifests.get(registry, "app", "v2")).digest == pushed.digest
    assert (await manifests.get(registry, "app", str(pushed.digest))).content == image


async def test_deleting_by_digest_removes_the_manifest_and_its_tags(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    pushed = await manifests.put(registry, "app", "v1", image, None, ("v2",))
    await manifests.delete(registry, "app", str(pushed.digest))
    for reference in ("v1", "v2", str(pushed.digest)):
        await assert_manifest_unknown(manifests, registry, "app", reference)
    assert (await manifests.tags(registry, "app", None, None)).items == []


@pytest.mark.parametrize(
    ("repository", "reference"),
    [
        ("app", "absent"),
        ("app", str(Digest.of(b"absent"))),
        ("nowhere", "v1"),
        ("nowhere", str(Digest.of(b"x"))),
    ],
)
async def test_deleting_what_is_not_there_is_manifest_unknown(
    manifests: ManifestService,
    registry: RegistryRecord,
    image: bytes,
    repository: str,
    reference: str,
) -> None:
    await manifests.put(registry, "app", "v1", image, None)
    with pytest.raises(NotFound) as caught:
        await manifests.delete(registry, repository, reference)
    assert caught.value.subject == "manifest"
    assert (await manifests.get(registry, "app", "v1")).content == image


async def test_manifests_are_scoped_to_their_registry(
    meta: MetadataStore, manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    pushed = await manifests.put(registry, "app", "v1", image, None)
    async with meta.writing() as q:
        other = await q.create_registry("two", "two.localhost:5000")
    await assert_manifest_unknown(manifests, other, "app", "v1")
    await assert_manifest_unknown(manifests, other, "app", str(pushed.digest))
    with pytest.raises(NotFound):
        await manifests.delete(other, "app", "v1")
    assert (await manifests.catalog(other, None, None)).items == []
    assert (await manifests.catalog(registry, None, None)).items == ["app"]


# -- listings -------------------------------------------------------------------------------
async def test_tags_are_paginated_in_lexical_order(
    manifests: ManifestService, registry: RegistryRecord, image: bytes
) -> None:
    await manifests.put(registry, "app", "c", image, None, ("a", "b", "d"))
    first = await manifests.tags(registry, "app", None, 2)
    assert (first.items, first.more) == (["a", "b"], True)
    rest = await manifests.tags(registry, "app", "b", 2)
    assert (rest.items, rest.more) == (["c", "d"], False)
    empty = await manifests.tags(registry, "app", None, 0)
    assert (empty.items, empty.more) == ([], False)


# -- referrers ------------------------------------------------------------------------------
async def test_referrers_list_manifests_with_a_subject(
    manifests: ManifestService, blobs: BlobService, registry: RegistryRecord, image: bytes
) -> None:
    subject = await manifests.put(registry, "app", "v1", image, None)
    await push_blobs(blobs, registry, "app", b"{}", b"signature")
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [descriptor("application/octet-stream", b"signature")],
            "subject": descriptor(OCI_MANIFEST, image),
            "annotations": {"org.example.signed-by": "me"},
        }
    ).encode()
    pushed = await manifests.put(registry, "app", str(Digest.of(signature)), signature, None)
    assert pushed.subject == subject.digest

    answer = json.loads(await manifests.referrers(registry, "app", str(subject.digest), None))
    assert answer["mediaType"] == OCI_INDEX and answer["schemaVersion"] == 2
    assert answer["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": str(pushed.digest),
            "size": len(signature),
            "artifactType": "application/vnd.example.signature",
            "annotations": {"org.example.signed-by": "me"},
        }
    ]
    filtered = json.loads(
        await manifests.referrers(
            registry, "app", str(subject.digest), "application/vnd.example.sbom"
        )
    )
    assert filtered["manifests"] == []
    kept = json.loads(
        await manifests.referrers(
            registry, "app", str(subject.digest), "application/vnd.example.signature"
        )
    )
    assert [m["digest"] for m in kept["manifests"]] == [str(pushed.digest)]
    elsewhere = json.loads(await manifests.referrers(registry, "other", str(subject.digest), None))
    assert elsewhere["manifests"] == []


async def test_referrers_of_an_invalid_digest_are_refused(
    manifests: ManifestService, registry: RegistryRecord
) -> None:
    with pytest.raises(Invalid) as caught:
        await manifests.referrers(registry, "app", "sha256:nothex", None)
    assert caught.value.field == "digest"
