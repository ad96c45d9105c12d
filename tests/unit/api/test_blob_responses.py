"""Blob GET answers over each driver: sendfile for one with local files, a stream with the
same Range semantics for one without (an object store), chosen by capability only; and the
same semantics for a blob relayed as it is pulled through a cache rule."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.storage.blobstore_contract import BlobStoreContract
from tests.unit.storage.memory_store import MemoryBlobStore
from transship.api.blob_responses import BlobFileResponse, StreamedBlobAnswer, serve_blob
from transship.oci.digest import Digest
from transship.registry.blobs import BlobLocation
from transship.storage.base import BlobStore
from transship.storage.filesystem import FilesystemBlobStore

DATA = bytes(range(256)) * 40
DIGEST = Digest.of(DATA)
Client = TestClient[web.Request, web.Application]


class Served:
    """A one-route server answering GET /blob with `serve_blob` for one stored blob."""

    def __init__(self, store: BlobStore, location: BlobLocation) -> None:
        self.kinds: list[type[web.StreamResponse]] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            response = await serve_blob(request, store, location)
            self.kinds.append(type(response))
            return response

        app = web.Application()
        app.router.add_get("/blob", handler)
        self.client: Client = TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture(params=["filesystem", "memory"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)


@pytest.fixture
async def served(store: BlobStore) -> AsyncIterator[Served]:
    await BlobStoreContract.put(store, DATA)
    server = Served(store, BlobLocation(DIGEST, len(DATA)))
    async with server.client:
        yield server


async def test_the_whole_blob(served: Served) -> None:
    response = await served.client.get("/blob")
    assert response.status == 200
    assert await response.read() == DATA
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["Docker-Content-Digest"] == str(DIGEST)
    assert response.headers["ETag"] == f'"{DIGEST}"'
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=100-199", 100, 199),
        ("bytes=100-", 100, len(DATA) - 1),
        ("bytes=-16", len(DATA) - 16, len(DATA) - 1),
        ("bytes=-999999", 0, len(DATA) - 1),
        ("bytes=10-999999", 10, len(DATA) - 1),
        ("bytes=0-0", 0, 0),
    ],
)
async def test_one_range(served: Served, header: str, first: int, last: int) -> None:
    response = await served.client.get("/blob", headers={"Range": header})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert await response.read() == DATA[first : last + 1]


@pytest.mark.parametrize("header", [f"bytes={len(DATA)}-", "bytes=5-2", "bytes=x-y", "items=0-1"])
async def test_an_unsatisfiable_range_is_416(served: Served, header: str) -> None:
    response = await served.client.get("/blob", headers={"Range": header})
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert await response.read() == b""


async def test_bytes_gone_from_the_store_answer_404(store: BlobStore) -> None:
    """The metadata may still link a blob whose bytes are gone; no truncated 200."""
    server = Served(store, BlobLocation(DIGEST, len(DATA)))
    async with server.client:
        response = await server.client.get("/blob")
        assert response.status == 404


async def test_the_fast_path_is_sendfile_and_only_for_local_files(
    served: Served, store: BlobStore
) -> None:
    await (await served.client.get("/blob")).read()
    local = isinstance(store, FilesystemBlobStore)
    assert (served.kinds == [BlobFileResponse]) is local
    assert (served.kinds == [web.StreamResponse]) is not local


class Relayed:
    """A one-route server answering GET /blob with a StreamedBlobAnswer fed `DATA` in
    `chunk`-byte pieces, as a pull-through's tee feeds it (or, with `by_file`, as a client
    following another fetch's file does: by sendfile from a file holding `DATA`); the feed
    stops before the blob's last `held` bytes until `release` is set (the blob's
    verification)."""

    def __init__(self, chunk: int, held: int = 0, by_file: Path | None = None) -> None:
        self.release = asyncio.Event()
        if not held:
            self.release.set()
        if by_file is not None:
            by_file.write_bytes(DATA)

        async def handler(request: web.Request) -> web.StreamResponse:
            answer = StreamedBlobAnswer(request, DIGEST)
            await answer.begin(len(DATA))
            with contextlib.ExitStack() as files:
                file = None if by_file is None else files.enter_context(by_file.open("rb"))

                async def feed(start: int, stop: int) -> None:
                    if file is None:
                        await answer.send(DATA[start:stop])
                    else:
                        await answer.send_file(file, start, stop - start)

                cut = len(DATA) - held
                for at in range(0, cut, chunk):
                    await feed(at, min(at + chunk, cut))
                await self.release.wait()
                if held:
                    await feed(cut, len(DATA))
            assert answer.response is not None
            await answer.response.write_eof()
            return answer.response

        app = web.Application()
        app.router.add_get("/blob", handler)
        self.client: Client = TestClient(TestServer(app, host="127.0.0.1"))


@pytest.mark.parametrize("chunk", [1, 7, 1000, len(DATA)])
@pytest.mark.parametrize(
    ("asked", "span"),
    [
        (None, (0, len(DATA))),
        ("bytes=0-", (0, len(DATA))),
        ("bytes=100-199", (100, 200)),
        ("bytes=5000-", (5000, len(DATA))),
        ("bytes=-10", (len(DATA) - 10, len(DATA))),
        ("bytes=0-0", (0, 1)),
        (f"bytes={len(DATA) - 1}-{len(DATA) + 50}", (len(DATA) - 1, len(DATA))),
    ],
)
@pytest.mark.parametrize("by_file", [False, True], ids=["bytes", "sendfile"])
async def test_a_relayed_blob_answers_the_range_asked_for(
    chunk: int, asked: str | None, span: tuple[int, int], by_file: bool, tmp_path: Path
) -> None:
    relayed = Relayed(chunk, by_file=tmp_path / "blob" if by_file else None)
    async with relayed.client as client:
        headers = {} if asked is None else {"Range": asked}
        response = await client.get("/blob", headers=headers)
        body = await response.read()
    assert body == DATA[span[0] : span[1]]
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Docker-Content-Digest"] == str(DIGEST)
    if asked is None:
        assert response.status == 200 and "Content-Range" not in response.headers
    else:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {span[0]}-{span[1] - 1}/{len(DATA)}"


async def test_a_relayed_blob_refuses_a_range_beyond_its_end() -> None:
    relayed = Relayed(1000)
    async with relayed.client as client:
        response = await client.get("/blob", headers={"Range": f"bytes={len(DATA)}-"})
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
        assert await response.read() == b""


@pytest.mark.parametrize("by_file", [False, True], ids=["bytes", "sendfile"])
async def test_a_range_ending_early_keeps_its_last_byte_until_the_blob_is_verified(
    by_file: bool, tmp_path: Path
) -> None:
    relayed = Relayed(100, held=500, by_file=tmp_path / "blob" if by_file else None)
    async with relayed.client as client:
        response = await client.get("/blob", headers={"Range": "bytes=100-199"})
        assert response.status == 206
        assert await response.content.readexactly(99) == DATA[100:199]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(response.content.readexactly(1), 0.3)
        relayed.release.set()
        assert await response.content.readexactly(1) == DATA[199:200]
        assert await response.read() == b""
