"""An upload session served by several processes (two BlobServices over one database and
one blob store, as `serve --workers N` or replicas run): a chunk that failed on one process
leaves bytes past the session's offset, and the other process, whose saved hash state is
still at that offset, must not append after them — the blob would commit bytes its digest
never covered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.storage.memory_store import MemoryBlobStore
from transship.errors import Invalid
from transship.metadata.queries import MetadataStore
from transship.oci.digest import Digest
from transship.registry.blobs import BlobService
from transship.storage.base import BlobStore
from transship.storage.filesystem import FilesystemBlobStore


@pytest.fixture(params=["filesystem", "memory"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_a_chunk_that_failed_elsewhere_leaves_nothing_in_the_blob(
    meta: MetadataStore, store: BlobStore
) -> None:
    first, second = BlobService(meta, store), BlobService(meta, store)
    async with meta.writing() as q:
        registry = await q.create_registry("one", "one.localhost:5000")
    upload = await first.start_upload(registry, "app")
    await first.append(registry, "app", upload.id, body(b"a" * 100), 0, 100)
    # The same offset's PATCH on the other process: the body ends short of its length, so
    # it fails after staging its bytes.
    with pytest.raises(Invalid):
        await second.append(registry, "app", upload.id, body(b"X" * 50), 100, 80)
    # Back on the first process, which still holds the hash state at offset 100.
    content = b"a" * 100 + b"b" * 100
    digest = Digest.of(content)
    location = await first.finish(registry, "app", upload.id, digest, body(b"b" * 100), 100, 100)
    assert location.size == 200
    stored = b"".join([chunk async for chunk in store.read(digest)])
    assert stored == content
