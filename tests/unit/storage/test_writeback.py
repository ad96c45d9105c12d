"""Early writeback: every few MiB written, the kernel is asked to start writing them to disk
(so the fsync before a commit has only the tail left), and only with durable writes."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from transship.oci.digest import CountingHasher
from transship.storage import writeback
from transship.storage.filesystem import FilesystemBlobStore
from transship.storage.writeback import EarlyWriteback

MiB = 1 << 20


class Recorded:
    """Stands in for sync_file_range: records each (fd, offset, count, flags)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int, int]] = []

    def __call__(self, fd: int, offset: int, count: int, flags: int) -> int:
        self.calls.append((fd, offset, count, flags))
        return 0


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    calls = Recorded()
    monkeypatch.setattr(writeback, "_START_WRITEBACK", calls)
    return calls


def test_writeback_is_started_for_each_stretch_of_the_threshold(recorded: Recorded) -> None:
    early = EarlyWriteback(7, start=100, every=8 * MiB)
    for _ in range(3):
        early.wrote(3 * MiB)  # 9 MiB: one request for all of them
    early.wrote(4 * MiB)  # 4 more: below the threshold, left to the fsync
    early.wrote(5 * MiB)  # 9 MiB since the last request
    assert recorded.calls == [
        (7, 100, 9 * MiB, 2),
        (7, 100 + 9 * MiB, 9 * MiB, 2),
    ]


def test_without_the_call_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writeback, "_START_WRITEBACK", None)
    early = EarlyWriteback(7, start=0, every=1)
    early.wrote(10)  # no error, no call


def test_a_disabled_writeback_only_counts(recorded: Recorded) -> None:
    early = EarlyWriteback(7, start=0, enabled=False, every=1)
    early.wrote(10)
    assert recorded.calls == []


@pytest.mark.skipif(writeback._START_WRITEBACK is None, reason="no sync_file_range here")
def test_the_real_call_accepts_a_range_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    with path.open("wb") as file:
        file.write(b"x" * (2 * MiB))
        file.flush()
        assert writeback._START_WRITEBACK(file.fileno(), 0, 2 * MiB, 2) == 0


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"y" * size


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "not-durable"])
async def test_staging_appends_start_writeback_only_when_durable(
    tmp_path: Path, recorded: Recorded, durable: bool
) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=durable)
    upload = "a" * 32
    await store.create_staging(upload)
    await store.append_staging(upload, chunks(20, MiB), CountingHasher("sha256"))
    assert (tmp_path / "uploads" / upload).stat().st_size == 20 * MiB
    if durable:
        assert [(offset, count) for _, offset, count, _ in recorded.calls] == [
            (0, 8 * MiB),
            (8 * MiB, 8 * MiB),
        ]
    else:
        assert recorded.calls == []


class SocketSource:
    """A BlockingSource over one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read_into(self, view: memoryview, /) -> int:
        return self.sock.recv_into(view)

    def interrupt(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)


async def test_a_staging_file_read_from_a_socket_starts_writeback_from_where_it_was(
    tmp_path: Path, recorded: Recorded
) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=True)
    upload = "b" * 32
    await store.create_staging(upload)
    await store.append_staging(upload, chunks(1, 3 * MiB), CountingHasher("sha256"))
    recorded.calls.clear()
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: theirs.sendall(os.urandom(17 * MiB)))
    sender.start()
    try:
        await store.append_staging_from(
            upload, SocketSource(ours), 17 * MiB, CountingHasher("sha256")
        )
    finally:
        sender.join()
        ours.close()
        theirs.close()
    assert (tmp_path / "uploads" / upload).stat().st_size == 20 * MiB
    offsets = [offset for _, offset, _, _ in recorded.calls]
    assert offsets and offsets[0] == 3 * MiB  # appended after what was there
    covered = sum(count for _, _, count, _ in recorded.calls)
    assert 8 * MiB <= covered <= 17 * MiB
