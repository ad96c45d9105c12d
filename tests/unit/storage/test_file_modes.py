"""Only the service's user can read its data: the data directory and every directory in it
are 0700, the database, blobs, staging files and keys 0600, whatever the umask; and a data
directory left open by an older version is tightened at start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app import make_settings, running_registry
from tests.unit.storage.blobstore_contract import RecordingSink, just, new_upload_id
from transship.filemodes import private_dir, tighten
from transship.oci.digest import Digest
from transship.storage.filesystem import FilesystemBlobStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: whatever is not created with an explicit mode comes out world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes_under(root: Path) -> dict[Path, int]:
    found = {root: mode(root)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            found[path] = mode(path)
    return found


async def test_everything_the_service_creates_is_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    data = tmp_path / "data"
    async with running_registry(make_settings(data, None)) as reg:
        digest = await reg.push_blob("app", b"private layer")
        async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
            assert r.status == 202
        staged = [p for p in (data / "uploads").iterdir()]
        assert staged and all(mode(p) == 0o600 for p in staged), staged
        blob = data / "blobs" / "sha256" / digest[7:9] / digest[7:]
        assert mode(blob) == 0o600
        assert mode(data) == 0o700
        assert mode(data / "metadata.db") == 0o600
        for suffix in ("-wal", "-shm"):
            assert mode(data / f"metadata.db{suffix}") == 0o600
        found = _modes_under(data)
    for path, found_mode in found.items():
        expected = 0o700 if path.is_dir() else 0o600
        assert found_mode == expected, (path, oct(found_mode))


async def test_an_open_data_directory_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_registry(make_settings(data, None)) as reg:
        await reg.push_blob("app", b"from an older version")
    # What an older version left: 0755 directories, a 0644 database.
    for path in (data, data / "blobs", data / "uploads"):
        os.chmod(path, 0o755)
    for path in (data / "metadata.db", data / "metadata.db-wal", data / "metadata.db-shm"):
        if path.exists():
            os.chmod(path, 0o644)
    async with running_registry(make_settings(data, None)):
        assert mode(data) == 0o700
        assert mode(data / "blobs") == 0o700 and mode(data / "uploads") == 0o700
        assert mode(data / "metadata.db") == 0o600


async def test_staging_copies_made_to_unshare_a_linked_file_are_0600(
    tmp_path: Path, open_umask: None
) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", tmp_path / "uploads", durable=False)
    upload_id = new_upload_id()
    await store.create_staging(upload_id)
    await store.append_staging(upload_id, just(b"abc"), RecordingSink())
    digest = Digest.parse("sha256:" + "b" * 64)  # the store does not check bytes
    await store.commit_staging(upload_id, digest)  # a hard link: the inode is shared
    await store.append_staging(upload_id, just(b"def"), RecordingSink())  # copies first
    assert mode(tmp_path / "uploads" / upload_id) == 0o600
    assert mode(tmp_path / "blobs" / "sha256" / "bb" / ("b" * 64)) == 0o600
    for directory in ("blobs", "blobs/sha256", "blobs/sha256/bb", "uploads"):
        assert mode(tmp_path / directory) == 0o700, directory


def test_private_dir_creates_missing_parents_and_tightens(tmp_path: Path, open_umask: None) -> None:
    target = tmp_path / "a" / "b"
    private_dir(target)
    assert mode(target) == 0o700
    os.chmod(target, 0o777)
    private_dir(target)
    assert mode(target) == 0o700


def test_tighten_never_loosens_and_ignores_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.chmod(path, 0o400)
    tighten(path, 0o600)
    assert mode(path) == 0o400
    tighten(tmp_path / "missing", 0o600)  # no error
