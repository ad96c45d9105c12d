"""`--storage-url` on serve, worker, gc and check: the same setting as `storage_url`, checked
the same way (a bad URL is a usage error naming it, an absent bucket stops the command), and
no credential in any message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.object_stores import SeaweedFS
from tests.peers.procs import peer_env
from tests.peers.transship import SRC_DIR

SECRET = "topsecret-storage-key"


def _transship(
    tmp_path: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "transship", *args, "--data-dir", str(tmp_path / "data")]
    env = peer_env(
        {
            "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
            "AWS_ACCESS_KEY_ID": "key-id",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            **(extra or {}),
        }
    )
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["serve", "worker", "gc", "check"])
def test_a_malformed_url_is_a_usage_error(tmp_path: Path, command: str) -> None:
    done = _transship(tmp_path, command, "--storage-url", f"s3://bucket/x?sig={SECRET}")
    assert done.returncode == 2, done.stderr
    assert "storage_url" in done.stderr and "unknown query parameter" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_check_and_gc_read_the_bucket_the_flag_names(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    url = f"s3://{seaweedfs.bucket}/{seaweedfs.new_prefix('flag')}?endpoint={seaweedfs.endpoint}"
    done = _transship(tmp_path, "check", "--storage-url", url, "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    done = _transship(tmp_path, "gc", "--storage-url", url, "--dry-run")
    assert done.returncode == 0, done.stderr

    absent = f"s3://no-such-bucket-{os.getpid()}/x?endpoint={seaweedfs.endpoint}"
    for command in ("check", "gc"):
        done = _transship(tmp_path, command, "--storage-url", absent)
        assert done.returncode == 1, done.stderr
        assert "cannot reach s3://no-such-bucket" in done.stderr
        assert SECRET not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


def test_the_flag_wins_over_the_environment(tmp_path: Path) -> None:
    done = _transship(
        tmp_path,
        "check",
        "--storage-url",
        f"s3://bucket/x?sig={SECRET}",
        extra={"TRANSSHIP_STORAGE_URL": f"file://{tmp_path / 'blobs'}"},
    )
    assert done.returncode == 2 and "storage_url" in done.stderr
