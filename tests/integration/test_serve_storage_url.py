"""`serve` refuses a bad or unreachable `storage_url` before it accepts connections, with a
message naming the setting and no credential."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.peers.object_stores import SeaweedFS
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.procs import peer_env
from tests.peers.transship import SRC_DIR


def _serve(tmp_path: Path, extra: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    port = free_port()
    argv = [sys.executable, "-m", "transship", "serve", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--data-dir", str(tmp_path / "data")]
    env = peer_env(
        {
            "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
            **extra,
        }
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    return done, port


def test_a_malformed_url_stops_serve(tmp_path: Path) -> None:
    done, _ = _serve(tmp_path, {"TRANSSHIP_STORAGE_URL": "s3://bucket/x?sig=topsecret"})
    assert done.returncode != 0
    assert "storage_url" in done.stderr and "unknown query parameter" in done.stderr
    assert "topsecret" not in done.stderr + done.stdout


def test_an_absent_bucket_stops_serve(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    url = f"s3://no-such-bucket-{os.getpid()}/x?endpoint={seaweedfs.endpoint}"
    done, _ = _serve(
        tmp_path,
        {
            "TRANSSHIP_STORAGE_URL": url,
            "AWS_ACCESS_KEY_ID": "key-id",
            "AWS_SECRET_ACCESS_KEY": "topsecret",
        },
    )
    assert done.returncode == 1, done.stderr
    assert "storage_url: cannot reach s3://no-such-bucket" in done.stderr
    assert "topsecret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
