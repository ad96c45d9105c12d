"""`transship.storage.filesystem.FilesystemBlobStore`: the shared contract plus what is
specific to files on disk (layout, junk, path safety, open handles)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.hops import count_hops
from tests.unit.storage.blobstore_contract import (
    BlobStoreContract,
    FailingChunks,
    RecordingSink,
    chunked,
    collect,
    failing_after,
    just,
    new_upload_id,
    random_bytes,
)
from transship.oci.digest import Digest
from transship.storage.base import BlobStore, LocalBlobFiles, StagingUnknown
from transship.storage.filesystem import FilesystemBlobStore


def open_handles_to(path: Path) -> int:
    """How many of this process's file descriptors point at `path`."""
    target = str(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            continue
    return count


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root`, with file contents (None for directories)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = Path(full).read_bytes()
    return out


@pytest.fixture(params=[True, False], ids=["durable", "not-durable"])
def durable(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def fs_store(root: Path, durable: bool) -> FilesystemBlobStore:
    return FilesystemBlobStore(root / "blobs", root / "uploads", durable=durable)


class TestFilesystemBlobStoreContract(BlobStoreContract):
    """The shared BlobStore contract, on both durability settings."""

    @pytest.fixture
    def store(self, fs_store: FilesystemBlobStore) -> BlobStore:
        return fs_store


def test_offers_local_files_for_zero_copy_serving(fs_store: FilesystemBlobStore) -> None:
    assert isinstance(fs_store, LocalBlobFiles)


# -- construction and layout --------------------------------------------------------------------


def test_constructor_creates_directories(tmp_path: Path) -> None:
    blobs, uploads = tmp_path / "a" / "b" / "blobs", tmp_path / "c" / "uploads"
    FilesystemBlobStore(blobs, uploads)
    assert blobs.is_dir() and uploads.is_dir()
    FilesystemBlobStore(blobs, uploads)  # existing directories are fine


async def test_layout_is_algorithm_prefix_encoded(
    fs_store: FilesystemBlobStore, root: Path
) -> None:
    for algorithm in ("sha256", "sha512"):
        data = f"layout {algorithm}".encode()
        digest = await BlobStoreContract.put(fs_store, data, algorithm)
        expected = root / "blobs" / algorithm / digest.encoded[:2] / digest.encoded
        assert fs_store.local_path(digest) == expected
        assert expected.read_bytes() == data


async def test_local_path_of_absent_blob_is_where_it_would_be(
    fs_store: FilesystemBlobStore, root: Path
) -> None:
    digest = Digest.of(b"absent")
    path = fs_store.local_path(digest)
    assert path.is_relative_to(root / "blobs")
    assert not path.exists()


async def test_staging_lives_in_the_staging_dir(fs_store: FilesystemBlobStore, root: Path) -> None:
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    await fs_store.append_staging(upload_id, just(b"abc"), RecordingSink())
    assert (root / "uploads" / upload_id).read_bytes() == b"abc"
    digest = Digest.of(b"abc")
    await fs_store.commit_staging(upload_id, digest)
    assert (root / "blobs" / "sha256" / digest.encoded[:2] / digest.encoded).read_bytes() == b"abc"
    await fs_store.delete_staging(upload_id)
    assert not (root / "uploads" / upload_id).exists()
    assert list((root / "uploads").iterdir()) == []


async def test_commit_refreshes_mtime(fs_store: FilesystemBlobStore, root: Path) -> None:
    # Garbage collection's orphan-file sweep relies on a fresh mtime at commit.
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    await fs_store.append_staging(upload_id, just(b"old"), RecordingSink())
    old = time.time() - 3600
    os.utime(root / "uploads" / upload_id, (old, old))
    digest = Digest.of(b"old")
    await fs_store.commit_staging(upload_id, digest)
    mtimes = {d: m async for d, m in fs_store.iter_blobs()}
    assert mtimes[digest] > old + 3000


async def test_iter_blobs_ignores_junk(fs_store: FilesystemBlobStore, root: Path) -> None:
    good = await BlobStoreContract.put(fs_store, b"good")
    good512 = await BlobStoreContract.put(fs_store, b"good", "sha512")
    blobs = root / "blobs"
    prefix = blobs / "sha256" / good.encoded[:2]
    (prefix / f"{good.encoded}.tmp").write_bytes(b"editor temp")
    (prefix / ".hidden").write_bytes(b"x")
    (prefix / good.encoded.upper()).write_bytes(b"uppercase hex")
    (prefix / ("0" * 63)).write_bytes(b"short")
    (prefix / "subdir").mkdir()
    (prefix / "subdir" / ("1" * 64)).write_bytes(b"nested too deep")
    (blobs / "sha256" / "README").write_bytes(b"file where a prefix dir belongs")
    (blobs / "md5" / "d4").mkdir(parents=True)
    (blobs / "md5" / "d4" / "d41d8cd98f00b204e9800998ecf8427e").write_bytes(b"")
    (blobs / "sha512" / "ab").mkdir(parents=True, exist_ok=True)
    (blobs / "sha512" / "ab" / ("a" * 64)).write_bytes(b"sha256-length under sha512")
    (blobs / "stray.txt").write_bytes(b"x")
    found = [d async for d, _ in fs_store.iter_blobs()]
    assert sorted(found, key=str) == sorted([good, good512], key=str)
    # Junk is never touched.
    assert (prefix / f"{good.encoded}.tmp").read_bytes() == b"editor temp"


async def test_iter_blobs_on_empty_store(fs_store: FilesystemBlobStore) -> None:
    assert [d async for d, _ in fs_store.iter_blobs()] == []


async def test_list_staging_ignores_junk(fs_store: FilesystemBlobStore, root: Path) -> None:
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    (root / "uploads" / "junk").write_bytes(b"")
    (root / "uploads" / upload_id.upper()).write_bytes(b"")
    (root / "uploads" / (upload_id + "0")).write_bytes(b"")
    assert await fs_store.list_staging() == [upload_id]


# -- upload ids are validated -----------------------------------------------------------------

INVALID_UPLOAD_IDS = [
    pytest.param("../x", id="dotdot"),
    pytest.param("../../outside", id="dotdot-twice"),
    pytest.param("../blobs/sha256", id="into-blobs"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("A" * 32, id="uppercase"),
    pytest.param("ABCDEF0123456789abcdef0123456789", id="mixed-case"),
    pytest.param("0" * 31, id="too-short"),
    pytest.param("0" * 33, id="too-long"),
    pytest.param("", id="empty"),
    pytest.param(".", id="dot"),
    pytest.param("0" * 31 + "/", id="slash"),
    pytest.param("0" * 32 + "\n", id="trailing-newline"),
    pytest.param("g" * 32, id="non-hex"),
    pytest.param("0" * 16 + "\x00" + "0" * 15, id="nul"),
]


@pytest.mark.parametrize("upload_id", INVALID_UPLOAD_IDS)
async def test_invalid_upload_ids_are_refused_and_touch_nothing(
    fs_store: FilesystemBlobStore, tmp_path: Path, upload_id: str
) -> None:
    # Sentinels where a traversal would land.
    (tmp_path / "x").write_bytes(b"sentinel")
    (tmp_path / "outside").write_bytes(b"sentinel")
    (tmp_path / "store" / "x").write_bytes(b"sentinel")
    before = snapshot(tmp_path)
    sink = RecordingSink()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "create_staging": lambda: fs_store.create_staging(upload_id),
        "staging_size": lambda: fs_store.staging_size(upload_id),
        "truncate_staging": lambda: fs_store.truncate_staging(upload_id, 0),
        "read_staging": lambda: collect(fs_store.read_staging(upload_id)),
        "append_staging": lambda: fs_store.append_staging(upload_id, just(b"evil"), sink),
        "commit_staging": lambda: fs_store.commit_staging(upload_id, Digest.of(b"evil")),
        "delete_staging": lambda: fs_store.delete_staging(upload_id),
        "staging_mtime": lambda: fs_store.staging_mtime(upload_id),
    }
    for name, call in calls.items():
        with pytest.raises(StagingUnknown):
            await call()
        assert snapshot(tmp_path) == before, name
    assert sink.chunks == []


@pytest.mark.parametrize("upload_id", INVALID_UPLOAD_IDS)
async def test_sync_of_invalid_upload_id_touches_nothing(
    fs_store: FilesystemBlobStore, tmp_path: Path, upload_id: str
) -> None:
    (tmp_path / "x").write_bytes(b"sentinel")
    before = snapshot(tmp_path)
    with contextlib.suppress(StagingUnknown):
        await fs_store.sync_staging(upload_id)
    assert snapshot(tmp_path) == before


async def test_sync_of_invalid_upload_id_raises_when_durable(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=True)
    with pytest.raises(StagingUnknown):
        await store.sync_staging("../x")
    with pytest.raises(StagingUnknown):
        await store.sync_staging(new_upload_id())  # valid but absent


# -- open handles -------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_after", [10, 1024 * 1024 + 7, 3 * 1024 * 1024 + 1])
async def test_append_failure_closes_the_handle(
    fs_store: FilesystemBlobStore, root: Path, fail_after: int
) -> None:
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    path = root / "uploads" / upload_id
    assert open_handles_to(path) == 0
    with pytest.raises(FailingChunks):
        await fs_store.append_staging(
            upload_id, failing_after(random_bytes(fail_after), 65536), RecordingSink()
        )
    assert open_handles_to(path) == 0


async def test_append_success_closes_the_handle(fs_store: FilesystemBlobStore, root: Path) -> None:
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    await fs_store.append_staging(
        upload_id, chunked(random_bytes(2 * 1024 * 1024 + 1), [100_000]), RecordingSink()
    )
    assert open_handles_to(root / "uploads" / upload_id) == 0


async def test_a_body_of_one_batch_is_appended_in_one_hop_to_a_thread(
    fs_store: FilesystemBlobStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    await fs_store.append_staging(upload_id, just(b"first "), RecordingSink())
    data = random_bytes(300_000)
    hops = count_hops(monkeypatch)
    sink = RecordingSink()
    assert await fs_store.append_staging(upload_id, chunked(data, [65536]), sink) == len(data)
    # Opened, written, hashed, flushed and closed in one thread's turn.
    assert len(hops) == 1
    assert b"".join(sink.chunks) == data
    assert (root / "uploads" / upload_id).read_bytes() == b"first " + data
    assert open_handles_to(root / "uploads" / upload_id) == 0


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every file `os.fsync` is called on from now on, in order."""
    sizes: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return sizes


async def test_a_new_staging_file_is_made_written_and_synced_in_one_hop(
    fs_store: FilesystemBlobStore,
    durable: bool,
    root: Path,
    synced: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload_id = new_upload_id()
    data = random_bytes(300_000)
    hops = count_hops(monkeypatch)
    await fs_store.append_staging(
        upload_id, chunked(data, [65536]), RecordingSink(), create=True, sync=True
    )
    # Made, written, hashed, flushed, synced and closed in one thread's turn.
    assert len(hops) == 1
    path = root / "uploads" / upload_id
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600
    assert open_handles_to(path) == 0
    # Synced once everything was written (and not at all when writes are not durable).
    assert synced == ([len(data)] if durable else [])


async def test_an_append_that_fails_is_not_synced(
    fs_store: FilesystemBlobStore, root: Path, synced: list[int]
) -> None:
    upload_id = new_upload_id()
    with pytest.raises(FailingChunks):
        await fs_store.append_staging(
            upload_id,
            failing_after(random_bytes(3 * 1024 * 1024), 2 * 1024 * 1024),
            RecordingSink(),
            create=True,
            sync=True,
        )
    assert synced == []
    assert open_handles_to(root / "uploads" / upload_id) == 0


class _BytesSource:
    """A BlockingSource over bytes, handing out at most 64 KiB per read."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read_into(self, view: memoryview, /) -> int:
        count = min(len(view), len(self._data), 65536)
        view[:count] = self._data[:count]
        self._data = self._data[count:]
        return count

    def interrupt(self) -> None:
        pass


async def test_an_append_from_a_source_makes_and_syncs_the_file_in_its_thread(
    fs_store: FilesystemBlobStore,
    durable: bool,
    root: Path,
    synced: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload_id = new_upload_id()
    data = random_bytes(200_000)
    hops = count_hops(monkeypatch)
    sink = RecordingSink()
    count = await fs_store.append_staging_from(
        upload_id, _BytesSource(data), len(data), sink, create=True, sync=True
    )
    assert count == len(data) and len(hops) == 1
    assert b"".join(sink.chunks) == data
    assert (root / "uploads" / upload_id).read_bytes() == data
    assert synced == ([len(data)] if durable else [])
    # A source that ends early: the bytes it gave are written, nothing is synced.
    synced.clear()
    with pytest.raises(EOFError):
        await fs_store.append_staging_from(
            upload_id, _BytesSource(b"short"), 10, RecordingSink(), create=True, sync=True
        )
    assert (root / "uploads" / upload_id).read_bytes() == data + b"short"
    assert synced == []


async def test_a_commit_can_drop_its_staging_file_in_the_same_call(
    fs_store: FilesystemBlobStore, root: Path
) -> None:
    data = random_bytes(1000)
    upload_id = new_upload_id()
    await fs_store.append_staging(upload_id, just(data), RecordingSink(), create=True, sync=True)
    fs_store.commit_staging_blocking(upload_id, Digest.of(data), keep_staging=False)
    assert not (root / "uploads" / upload_id).exists()
    assert await collect(fs_store.read(Digest.of(data))) == data
    # The same bytes already in place: the staging file still goes.
    again = new_upload_id()
    await fs_store.append_staging(again, just(data), RecordingSink(), create=True)
    fs_store.commit_staging_blocking(again, Digest.of(data), keep_staging=False)
    assert list((root / "uploads").iterdir()) == []


async def test_an_empty_append_to_a_missing_staging_area_is_refused(
    fs_store: FilesystemBlobStore, root: Path
) -> None:
    upload_id = new_upload_id()
    with pytest.raises(StagingUnknown):
        await fs_store.append_staging(upload_id, just(), RecordingSink())
    assert not (root / "uploads" / upload_id).exists()


async def test_sink_failure_closes_the_handle(fs_store: FilesystemBlobStore, root: Path) -> None:
    class Refusing:
        def update(self, data: bytes, /) -> None:
            raise OverflowError("too big")

    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    with pytest.raises(OverflowError):
        await fs_store.append_staging(
            upload_id, chunked(random_bytes(3 * 1024 * 1024), [65536]), Refusing()
        )
    assert open_handles_to(root / "uploads" / upload_id) == 0


async def test_abandoned_read_closes_the_handle(fs_store: FilesystemBlobStore) -> None:
    digest = await BlobStoreContract.put(fs_store, random_bytes(3 * 1024 * 1024))
    path = fs_store.local_path(digest)
    stream = fs_store.read(digest)
    await anext(stream)
    assert open_handles_to(path) == 1
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(5):  # the loop finalises abandoned async generators on its next turns
        await asyncio.sleep(0)
    assert open_handles_to(path) == 0
    await collect(fs_store.read(digest))
    assert open_handles_to(path) == 0


async def test_cancelled_append_stops_writing_and_closes_the_handle(
    fs_store: FilesystemBlobStore, root: Path
) -> None:
    """A cancelled append (client gone, server shutdown, timeout) must not leave a writer
    thread behind: once `append_staging` has finished raising CancelledError, nothing may
    write to the staging file or feed the sink, or a resumed upload interleaves with it."""
    upload_id = new_upload_id()
    await fs_store.create_staging(upload_id)
    path = root / "uploads" / upload_id
    sink_entered = threading.Event()
    part = 256 * 1024

    class SlowSink:
        def __init__(self) -> None:
            self.calls = 0

        def update(self, data: bytes, /) -> None:
            self.calls += 1
            if self.calls == 1:
                sink_entered.set()
                time.sleep(0.4)

    async def chunks() -> AsyncIterator[bytes]:
        # Four parts fill the first 1 MiB batch (written in a thread, slowed by the sink);
        # four more fill the second, so the append then waits on the first batch.
        for _ in range(8):
            yield b"x" * part
        await asyncio.sleep(10)  # pragma: no cover - cancelled before

    sink = SlowSink()
    task = asyncio.create_task(fs_store.append_staging(upload_id, chunks(), sink))
    assert await asyncio.to_thread(sink_entered.wait, 10)
    # No event marks "the append now waits on the first batch": a short pause lets it get
    # there, and the test holds either way (cancelling earlier is a weaker case of the same).
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    size_at_return, calls_at_return = path.stat().st_size, sink.calls
    handles_at_return = open_handles_to(path)
    # An observation window for writes that must not come (no event marks an absence):
    # longer than the slow sink, whose thread would write next if it were still running.
    await asyncio.sleep(0.6)
    assert (path.stat().st_size, sink.calls) == (size_at_return, calls_at_return), (
        "written after cancellation"
    )
    assert handles_at_return == 0


# -- durability switch ------------------------------------------------------------------------


async def test_durable_and_not_durable_produce_the_same_blobs(tmp_path: Path) -> None:
    data = random_bytes(1024 * 1024 + 3)
    digest = Digest.of(data)
    for durable in (True, False):
        store = FilesystemBlobStore(
            tmp_path / str(durable) / "blobs", tmp_path / str(durable) / "uploads", durable=durable
        )
        upload_id = new_upload_id()
        await store.create_staging(upload_id)
        hasher = hashlib.sha256()
        await store.append_staging(upload_id, chunked(data, [77777]), hasher)
        await store.sync_staging(upload_id)
        await store.commit_staging(upload_id, digest)
        assert hasher.hexdigest() == digest.encoded
        assert await collect(store.read(digest)) == data


async def test_commit_unknown_upload_creates_no_blob_directory_entry(
    fs_store: FilesystemBlobStore,
) -> None:
    digest = Digest.of(b"ghost")
    with pytest.raises(StagingUnknown):
        await fs_store.commit_staging(new_upload_id(), digest)
    assert await fs_store.size(digest) is None
    assert not fs_store.local_path(digest).exists()
