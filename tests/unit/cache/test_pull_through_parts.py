"""The pieces of pull-through that need no peer: the tee that streams a blob to a client
while it is stored (the last bytes held back until verified; a restarted upstream stream
not sent twice), the follower that sends a client what another fetch is writing (the last
byte once it is verified; a failed or restarted fetch breaks the answer off), the manifest
shelf, and the single-flight step."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import pytest

from transship.cache.pull_through import PullThrough, _follow, _Tee
from transship.imports.engine import RunningFetch
from transship.imports.errors import ImportFailure
from transship.imports.ports import FetchedManifest
from transship.imports.shelf import ManifestShelf
from transship.oci.digest import Digest

DIGEST = Digest.of(b"abcdefghi")


class Received:
    """A PendingBlob keeping bytes in memory."""

    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def offset(self) -> int:
        return len(self.data)

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            self.data += chunk

    async def reset(self) -> None:
        self.data.clear()

    async def commit(self) -> None:
        pass

    async def discard(self) -> None:
        pass


class Client:
    """A BlobReceiver recording what it was sent."""

    def __init__(self) -> None:
        self.size: int | None = None
        self.sent = bytearray()

    async def begin(self, size: int) -> None:
        assert self.size is None, "begun twice"
        self.size = size

    async def send(self, chunk: bytes) -> None:
        self.sent += chunk


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_the_tee_holds_back_the_last_chunk_until_finished() -> None:
    client = Client()
    tee = _Tee(client, 9, Received())
    await tee.append(chunks(b"abc", b"def", b"ghi"))
    assert client.size == 9
    assert bytes(client.sent) == b"abcdef"  # "ghi" waits for the verification
    await tee.finish()
    assert bytes(client.sent) == b"abcdefghi"


async def test_a_tee_that_fails_before_finish_never_sends_the_whole_blob() -> None:
    client = Client()
    tee = _Tee(client, 6, Received())
    await tee.append(chunks(b"abc", b"def"))
    assert len(client.sent) < 6


async def test_a_resumed_stream_continues_where_the_client_is() -> None:
    client = Client()
    received = Received()
    tee = _Tee(client, 9, received)
    await tee.append(chunks(b"abc", b"de"))  # the connection dropped after 5 bytes
    await tee.append(chunks(b"fghi"))  # resumed by Range from offset 5
    await tee.finish()
    assert bytes(client.sent) == bytes(received.data) == b"abcdefghi"


async def test_a_restarted_stream_skips_what_the_client_already_has() -> None:
    client = Client()
    received = Received()
    tee = _Tee(client, 9, received)
    await tee.append(chunks(b"abc", b"de"))
    await tee.reset()  # the upstream ignored Range: everything again from zero
    await tee.append(chunks(b"abcd", b"efghi"))
    await tee.finish()
    assert bytes(client.sent) == b"abcdefghi"
    assert bytes(received.data) == b"abcdefghi"


async def test_the_client_never_gets_more_than_the_size() -> None:
    client = Client()
    tee = _Tee(client, 4, Received())
    await tee.append(chunks(b"abc", b"defg"))
    await tee.finish()
    assert bytes(client.sent) == b"abcd"


async def test_an_empty_blob_begins_and_ends_the_answer() -> None:
    client = Client()
    tee = _Tee(client, 0, Received())
    await tee.finish()
    assert client.size == 0 and client.sent == b""


def test_the_shelf_keeps_a_manifest_until_every_put_is_dropped() -> None:
    shelf = ManifestShelf()
    content = b'{"schemaVersion":2}'
    manifest = FetchedManifest(content, "application/json", Digest.of(content))
    shelf.put(1, [manifest])
    shelf.put(1, [manifest])
    assert shelf.get(2, manifest.digest) is None  # per registry
    shelf.drop(1, [manifest.digest])
    assert shelf.get(1, manifest.digest) == manifest
    shelf.drop(1, [manifest.digest])
    assert shelf.get(1, manifest.digest) is None and len(shelf) == 0
    shelf.drop(1, [manifest.digest])  # dropping more than was put is harmless


def single_flight() -> PullThrough:
    # Only the single-flight table is used by `_once`.
    pull = PullThrough.__new__(PullThrough)
    pull._running = {}
    return pull


async def test_concurrent_callers_of_one_step_run_it_once() -> None:
    pull = single_flight()
    runs = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return 7

    callers = [asyncio.create_task(pull._once(("k",), work)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*callers) == [7] * 20
    assert runs == 1
    assert not pull._running


async def test_the_error_of_a_step_reaches_every_waiting_caller() -> None:
    pull = single_flight()
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        raise ValueError("upstream says no")

    callers = [asyncio.create_task(pull._once(("k",), work)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


async def test_a_cancelled_first_caller_hands_the_step_to_a_waiting_one() -> None:
    pull = single_flight()
    started = asyncio.Event()
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.sleep(0 if runs > 1 else 10)
        return "done"

    first = asyncio.create_task(pull._once(("k",), work))
    await started.wait()
    second = asyncio.create_task(pull._once(("k",), work))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "done"
    assert runs == 2


class Growing:
    """A FollowableBlob writing to a file under `path`, a step at a time."""

    def __init__(self, path: Path, local: bool = True) -> None:
        self.path = path
        self.local = local
        self.restarts = 0
        self.offset = 0

    def growing_file(self) -> Path | None:
        return self.path if self.local and self.path.exists() else None

    def write(self, data: bytes) -> None:
        with self.path.open("ab") as file:
            file.write(data)

    def restart(self) -> None:
        self.restarts += 1
        self.path.write_bytes(b"")


class FileClient(Client):
    """A BlobReceiver that also takes bytes from a file, as a client answered by sendfile."""

    async def send_file(self, file: BinaryIO, offset: int, count: int) -> None:
        assert offset == len(self.sent), "bytes out of order"
        self.sent += os.pread(file.fileno(), count, offset)


async def settle() -> None:
    """Long enough for a follower to see a change (it looks every few ms)."""
    await asyncio.sleep(0.05)


async def test_a_follower_gets_the_bytes_as_written_and_the_last_once_committed(
    tmp_path: Path,
) -> None:
    writer = Growing(tmp_path / "staged")
    running = RunningFetch(writer=writer)
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    assert client.size is None  # no file yet: nothing begun
    writer.write(b"abcd")
    await settle()
    assert client.size == 9 and bytes(client.sent) == b"abcd"
    writer.write(b"efghi")
    await settle()
    assert bytes(client.sent) == b"abcdefgh"  # the last byte waits for the verification
    running.succeeded = True
    running.done.set()
    assert await follower is True
    assert bytes(client.sent) == b"abcdefghi"


async def test_a_fetch_that_fails_after_the_answer_began_breaks_it_off(tmp_path: Path) -> None:
    writer = Growing(tmp_path / "staged")
    writer.write(b"abcdefghi")  # every byte arrived, but they do not verify
    running = RunningFetch(writer=writer)
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    running.done.set()
    with pytest.raises(ImportFailure) as failure:
        await follower
    assert str(DIGEST) in failure.value.message
    assert len(client.sent) == 8  # never the whole blob


async def test_a_restarted_fetch_breaks_off_a_begun_answer(tmp_path: Path) -> None:
    writer = Growing(tmp_path / "staged")
    writer.write(b"abc")
    running = RunningFetch(writer=writer)
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    writer.restart()
    writer.write(b"abcdefgh")  # rewritten past what was sent: only the count tells
    with pytest.raises(ImportFailure):
        await asyncio.wait_for(follower, 5)
    assert bytes(client.sent) == b"abc"


async def test_a_fetch_that_fails_before_anything_was_sent_leaves_the_caller_free(
    tmp_path: Path,
) -> None:
    running = RunningFetch(writer=Growing(tmp_path / "staged"))
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    running.done.set()
    assert await follower is False
    assert client.size is None


async def test_a_fetch_with_no_local_file_is_waited_for(tmp_path: Path) -> None:
    writer = Growing(tmp_path / "staged", local=False)
    writer.write(b"abcdefghi")
    running = RunningFetch(writer=writer)
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    assert not follower.done() and client.size is None
    running.succeeded = True
    running.done.set()
    assert await follower is False  # the caller serves the committed blob itself
    assert client.size is None


async def test_a_writer_that_keeps_no_file_at_all_is_waited_for() -> None:
    running = RunningFetch(writer=Received())
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    running.succeeded = True
    running.done.set()
    assert await follower is False and client.size is None


async def test_a_fetch_committed_before_it_was_followed_is_sent_whole(tmp_path: Path) -> None:
    writer = Growing(tmp_path / "staged")
    writer.write(b"abcdefghi")
    running = RunningFetch(writer=writer, succeeded=True)
    client = FileClient()
    follower = asyncio.create_task(_follow(running, DIGEST, 9, client))
    await settle()
    running.done.set()
    assert await follower is True
    assert bytes(client.sent) == b"abcdefghi"
