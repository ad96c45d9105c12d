"""The in-memory driver of the tests passes the shared BlobStore contract, without the
optional local-files capability: the protocol alone is enough for a driver."""

from __future__ import annotations

import pytest

from tests.unit.storage.blobstore_contract import BlobStoreContract
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.storage.base import BlobStore, LocalBlobFiles


class TestMemoryBlobStoreContract(BlobStoreContract):
    @pytest.fixture
    def store(self) -> BlobStore:
        return MemoryBlobStore()


def test_has_no_local_files() -> None:
    assert not isinstance(MemoryBlobStore(), LocalBlobFiles)
