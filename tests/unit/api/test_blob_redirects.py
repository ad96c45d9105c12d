"""Blob GET redirects (`storage_redirect_seconds`): a 307 to the store's signed URL when the
driver can sign, a stream when it cannot (no capability, no URL, or a signing failure), and
never a redirect when the setting is 0 (the registry may still sign a short URL for its own
read, `blob_splice`, but never hands one out)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.storage.blobstore_contract import BlobStoreContract
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.api.blob_responses import serve_blob
from transship.oci.digest import Digest
from transship.registry.blobs import BlobLocation
from transship.storage.base import BlobStore, RedirectableBlobs, StorageError

DATA = b"redirect me" * 100
DIGEST = Digest.of(DATA)
Client = TestClient[web.Request, web.Application]


class SigningStore(MemoryBlobStore):
    """The memory store, plus `RedirectableBlobs` answering `url` (or raising)."""

    def __init__(self, url: str | None, fail: bool = False) -> None:
        super().__init__()
        self.url = url
        self.fail = fail
        self.asked: list[tuple[Digest, int]] = []

    async def presign_read(self, digest: Digest, expires_seconds: int) -> str | None:
        self.asked.append((digest, expires_seconds))
        if self.fail:
            raise StorageError("object store sign failed: no credentials")
        return self.url


async def _client(store: BlobStore, redirect_seconds: int) -> Client:
    await BlobStoreContract.put(store, DATA)
    location = BlobLocation(DIGEST, len(DATA))

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_blob(request, store, location, redirect_seconds=redirect_seconds)

    app = web.Application()
    app.router.add_get("/blob", handler)
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


async def test_a_signing_store_redirects(clients: list[Client]) -> None:
    store = SigningStore("http://store.example/blob?X-Amz-Signature=s")
    assert isinstance(store, RedirectableBlobs)
    client = await _client(store, 300)
    clients.append(client)
    await client.start_server()
    response = await client.get("/blob", allow_redirects=False)
    assert response.status == 307
    assert response.headers["Location"] == "http://store.example/blob?X-Amz-Signature=s"
    assert response.headers["Docker-Content-Digest"] == str(DIGEST)
    assert response.headers["Cache-Control"] == "no-store"
    assert store.asked == [(DIGEST, 300)]


@pytest.mark.parametrize(
    ("store", "redirect_seconds"),
    [
        # https: not spliceable, so the memory store's bytes are streamed.
        pytest.param(SigningStore("https://store.example/x"), 0, id="setting-off"),
        pytest.param(SigningStore(None), 60, id="cannot-sign"),
        pytest.param(SigningStore(None, fail=True), 60, id="signing-fails"),
        pytest.param(MemoryBlobStore(), 60, id="no-capability"),
    ],
)
async def test_otherwise_the_blob_is_streamed(
    clients: list[Client], store: BlobStore, redirect_seconds: int
) -> None:
    client = await _client(store, redirect_seconds)
    clients.append(client)
    await client.start_server()
    response = await client.get("/blob", allow_redirects=False)
    assert response.status == 200
    assert await response.read() == DATA
    assert "Location" not in response.headers
