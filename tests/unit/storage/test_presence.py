"""`held_digests`: which of many blobs a store holds, local files looked at in one hop."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hops import count_hops
from tests.unit.storage.blobstore_contract import BlobStoreContract
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.oci.digest import Digest
from transship.storage.base import BlobStore
from transship.storage.filesystem import FilesystemBlobStore
from transship.storage.presence import held_digests


@pytest.fixture(params=["filesystem", "memory"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


async def test_the_held_ones_in_their_order(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = [await BlobStoreContract.put(store, f"blob {n}".encode()) for n in range(3)]
    absent = [Digest.of(b"never stored"), Digest.of(b"nor this")]
    asked = [held[2], absent[0], held[0], absent[1], held[1]]
    hops = count_hops(monkeypatch)
    assert await held_digests(store, asked) == [held[2], held[0], held[1]]
    if isinstance(store, FilesystemBlobStore):
        assert len(hops) == 1  # every file looked at in one thread's turn
    assert await held_digests(store, []) == []
    assert await held_digests(store, absent) == []
