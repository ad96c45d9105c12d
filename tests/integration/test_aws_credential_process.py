"""A bucket reached with keys from a profile's `credential_process` (SeaweedFS): the command
runs once for many requests while its keys are valid, presigned reads work with its
temporary keys, and a failing command stops the startup probe with a message naming the
profile, not the keys."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.peers.object_stores import SeaweedFS
from tests.unit.storage.blobstore_contract import RecordingSink, collect, just
from tests.unit.storage.test_aws_profiles import SECRET, answer, helper, runs
from transship.oci.digest import Digest
from transship.storage.location import (
    StorageConnectError,
    open_object_store,
    parse_storage_url,
    probe_object_store,
)


def _environ(tmp_path: Path, command: str) -> dict[str, str]:
    config = tmp_path / "config"
    config.write_text(f"[profile deploy]\ncredential_process = {command}\n")
    return {
        "AWS_PROFILE": "deploy",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "HOME": str(tmp_path),
    }


async def test_the_command_s_keys_reach_the_bucket(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    location = parse_storage_url(
        f"s3://{seaweedfs.bucket}/{seaweedfs.new_prefix('process')}?endpoint={seaweedfs.endpoint}"
    )
    store = open_object_store(location, _environ(tmp_path, helper(tmp_path, answer())))
    await probe_object_store(store, location)
    data = b"blob bytes" * 1000
    digest = Digest.of(data)
    write = store.open_blob_write(digest)
    await write.append(just(data), RecordingSink())
    await write.complete()
    assert await collect(store.read(digest)) == data
    url = await store.presign_read(digest, 60)
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == data
    assert runs(tmp_path) == 1  # the keys are valid until 2099: asked for once


async def test_a_failing_command_stops_the_probe(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    location = parse_storage_url(f"s3://{seaweedfs.bucket}/x?endpoint={seaweedfs.endpoint}")
    command = helper(tmp_path, answer(), exit_status=1)
    store = open_object_store(location, _environ(tmp_path, command))
    with pytest.raises(StorageConnectError) as caught:
        await probe_object_store(store, location)
    message = str(caught.value)
    assert message.startswith("storage_url: cannot reach")
    assert "deploy" in message and SECRET not in message
