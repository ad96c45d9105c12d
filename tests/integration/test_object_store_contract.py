"""The shared BlobStore contract against real object stores: S3 on SeaweedFS and Azure
Blob on Azurite (each started once per worker), plus what only a real store shows: a
multipart commit, presigned reads, and a wrong bucket refused by the startup probe."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request

import pytest

from tests.peers.object_stores import Azurite, SeaweedFS
from tests.unit.storage.blobstore_contract import (
    BlobStoreContract,
    RecordingSink,
    chunked,
    collect,
    just,
    new_upload_id,
    random_bytes,
)
from transship.oci.digest import Digest
from transship.storage.base import BlobStore
from transship.storage.location import (
    StorageConnectError,
    open_object_store,
    parse_storage_url,
    probe_object_store,
)
from transship.storage.object_store import ObjectBlobStore

PART = 1024 * 1024  # small parts, so the contract's multi-MiB appends span several


def s3_store(seaweedfs: SeaweedFS, prefix: str, part_bytes: int = PART) -> ObjectBlobStore:
    location = parse_storage_url(f"s3://{seaweedfs.bucket}/{prefix}?endpoint={seaweedfs.endpoint}")
    return open_object_store(location, seaweedfs.environ, part_bytes=part_bytes)


def azure_store(azurite: Azurite, container: str, part_bytes: int = PART) -> ObjectBlobStore:
    location = parse_storage_url(
        f"azure://devstoreaccount1/{container}/reg?endpoint={azurite.endpoint}"
    )
    return open_object_store(location, azurite.environ, part_bytes=part_bytes)


class TestS3Contract(BlobStoreContract):
    @pytest.fixture
    def store(self, seaweedfs: SeaweedFS) -> BlobStore:
        return s3_store(seaweedfs, seaweedfs.new_prefix())


class TestAzureContract(BlobStoreContract):
    @pytest.fixture
    def store(self, azurite: Azurite) -> BlobStore:
        return azure_store(azurite, azurite.new_container())


def _fetch(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        return bytes(response.read())


async def test_s3_multipart_commit_and_presigned_read(seaweedfs: SeaweedFS) -> None:
    await multipart_commit_and_presigned_read(s3_store(seaweedfs, seaweedfs.new_prefix()))


async def test_azure_multipart_commit_and_presigned_read(azurite: Azurite) -> None:
    await multipart_commit_and_presigned_read(azure_store(azurite, azurite.new_container()))


async def multipart_commit_and_presigned_read(store: ObjectBlobStore) -> None:
    # 20 MiB staged in 1 MiB parts: the commit is a multipart upload of 8 MiB parts.
    data = await asyncio.to_thread(random_bytes, 20 * 1024 * 1024 + 3, 30)
    upload_id = new_upload_id()
    await store.create_staging(upload_id)
    hasher = hashlib.sha256()
    await store.append_staging(upload_id, chunked(data[: 9 * PART], [65536]), hasher)
    await store.append_staging(upload_id, chunked(data[9 * PART :], [1 << 20]), hasher)
    digest = await asyncio.to_thread(Digest.of, data)
    assert hasher.hexdigest() == digest.encoded
    await store.commit_staging(upload_id, digest)
    assert await store.size(digest) == len(data)
    url = await store.presign_read(digest, 60)
    assert url is not None and url.startswith("http://127.0.0.1:")
    fetched = await asyncio.to_thread(lambda: hashlib.sha256(_fetch(url)).hexdigest())
    assert fetched == digest.encoded


async def test_probe_refuses_an_absent_bucket(seaweedfs: SeaweedFS) -> None:
    location = parse_storage_url(f"s3://no-such-bucket-here/reg?endpoint={seaweedfs.endpoint}")
    store = open_object_store(location, seaweedfs.environ)
    with pytest.raises(StorageConnectError, match="storage_url") as caught:
        await probe_object_store(store, location)
    assert "transship-secret" not in str(caught.value)


async def test_staging_continues_across_store_objects(seaweedfs: SeaweedFS) -> None:
    bucket = seaweedfs.new_prefix()
    first, second = s3_store(seaweedfs, bucket), s3_store(seaweedfs, bucket)
    upload_id = new_upload_id()
    await first.create_staging(upload_id)
    await first.append_staging(upload_id, just(b"one byte at a time: "), RecordingSink())
    for byte in b"xyz":
        await second.append_staging(upload_id, just(bytes([byte])), RecordingSink())
    assert await collect(first.read_staging(upload_id)) == b"one byte at a time: xyz"
    digest = Digest.of(b"one byte at a time: xyz")
    await second.commit_staging(upload_id, digest)
    assert await collect(first.read(digest)) == b"one byte at a time: xyz"
