"""Direct blob writes (`DirectBlobWrites`) against real object stores: S3 on SeaweedFS,
where an abort must also leave no incomplete multipart upload, and Azure Blob on Azurite."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.integration.test_object_store_contract import azure_store, s3_store
from tests.peers.object_stores import Azurite, SeaweedFS
from tests.unit.storage.direct_write_contract import DirectWriteContract
from transship.storage.base import BlobStore


class TestS3DirectWrites(DirectWriteContract):
    @pytest.fixture
    def store(self, seaweedfs: SeaweedFS) -> BlobStore:
        self.seaweedfs = seaweedfs
        self.prefix = seaweedfs.new_prefix("direct")
        return s3_store(seaweedfs, self.prefix)

    async def leftover_uploads(self, store: BlobStore) -> list[str]:
        # ListMultipartUploads (SeaweedFS answers it without signing when it has no
        # identities configured), limited to this test's prefix.
        url = f"{self.seaweedfs.endpoint}/{self.seaweedfs.bucket}?uploads&prefix={self.prefix}/"
        with urllib.request.urlopen(url, timeout=10) as response:
            listing = response.read().decode()
        return re.findall(r"<Key>([^<]*)</Key>", listing)


class TestAzureDirectWrites(DirectWriteContract):
    @pytest.fixture
    def store(self, azurite: Azurite) -> BlobStore:
        return azure_store(azurite, azurite.new_container())
