"""Transship on S3 (SeaweedFS): `storage_url=s3://…` with blob GETs redirected to presigned
URLs. skopeo and podman push and pull byte-exact through the redirect; a chunked upload of
tiny chunks lands whole; GC deletes an unreferenced blob from the bucket; `check` is clean;
an unauthorized GET is refused, never redirected."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.e2e.content import LayoutView, RegistryView, assert_identical, layout_ref
from tests.peers.clients import Podman, Skopeo
from tests.peers.images import BuiltIndex, OciLayout
from tests.peers.object_stores import SeaweedFS
from tests.peers.oci_http import RegistryClient
from tests.peers.procs import peer_env
from tests.peers.transship import SRC_DIR, TransshipServer

pytestmark = pytest.mark.timeout(180)


def _storage_env(seaweedfs: SeaweedFS, prefix: str, redirect: int) -> dict[str, str]:
    return {
        **seaweedfs.environ,
        "TRANSSHIP_STORAGE_URL": f"s3://{seaweedfs.bucket}/{prefix}?endpoint={seaweedfs.endpoint}",
        "TRANSSHIP_STORAGE_REDIRECT_SECONDS": str(redirect),
    }


def _offline(server: TransshipServer, env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transship",
            *args,
            "--data-dir",
            str(server.data_dir),
            "-o",
            "json",
        ],
        env=peer_env(
            {
                **env,
                "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
            }
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _bucket_keys(seaweedfs: SeaweedFS, prefix: str) -> set[str]:
    response = requests.get(
        f"{seaweedfs.endpoint}/{seaweedfs.bucket}",
        params={"list-type": "2", "prefix": f"{prefix}/blobs/"},
        timeout=30,
        proxies={"http": "", "https": ""},
    )
    response.raise_for_status()
    return set(re.findall(r"<Key>([^<]+)</Key>", response.text))


def test_s3_storage_round_trip_redirects_gc_and_check(
    seaweedfs: SeaweedFS,
    transship_factory: Callable[..., TransshipServer],
    skopeo: Skopeo,
    podman: Podman,
    multiarch: BuiltIndex,
    tmp_path: Path,
) -> None:
    prefix = seaweedfs.new_prefix("e2e")
    env = _storage_env(seaweedfs, prefix, redirect=60)
    server = transship_factory(env=env)

    # skopeo in and out, byte-exact (its blob GETs follow the 307s).
    view = RegistryView(skopeo, server, "e2e/multi")
    skopeo.copy(layout_ref(multiarch), view.ref("v1"))
    out = OciLayout(tmp_path / "out")
    skopeo.copy(view.ref("v1"), out.skopeo_ref("back"))
    assert_identical(LayoutView(out), "back", multiarch)
    # The blobs are objects in the bucket, under the prefix.
    keys = _bucket_keys(seaweedfs, prefix)
    layer = multiarch.child("linux/arm64")
    assert any(k.endswith(layer.config.digest.split(":")[1]) for k in keys)

    # podman pulls one platform through the redirect.
    image_id = podman.pull(f"{server.host}/e2e/multi:v1", platform="linux/arm64")
    assert f"sha256:{image_id}" == layer.config.digest

    # A blob GET is a 307 to the object store; only after the registry found the blob.
    session = requests.Session()
    session.trust_env = False
    answer = session.get(
        f"{server.url}/v2/e2e/multi/blobs/{layer.config.digest}", allow_redirects=False
    )
    assert answer.status_code == 307
    assert answer.headers["Location"].startswith(seaweedfs.endpoint)
    followed = session.get(answer.headers["Location"])
    assert "sha256:" + hashlib.sha256(followed.content).hexdigest() == layer.config.digest
    missing = session.get(
        f"{server.url}/v2/e2e/multi/blobs/sha256:{'0' * 64}", allow_redirects=False
    )
    assert missing.status_code == 404

    # A chunked upload of small chunks (each becomes a staged part) lands whole.
    data = os.urandom(3 * 1024 * 1024 + 5)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient(server.url) as client:
        client.upload_blob("e2e/chunks", digest, data, mode="chunked", chunk_size=700_001)
        assert client.get_blob("e2e/chunks", digest) == data
        tiny = b"one byte per PATCH"
        tiny_digest = "sha256:" + hashlib.sha256(tiny).hexdigest()
        client.upload_blob("e2e/chunks", tiny_digest, tiny, mode="chunked", chunk_size=1)
        assert client.get_blob("e2e/chunks", tiny_digest) == tiny
    encoded = digest.split(":")[1]
    assert f"{prefix}/blobs/sha256/{encoded[:2]}/{encoded}" in _bucket_keys(seaweedfs, prefix)

    # The chunked blobs are referenced by no manifest: GC removes them from the bucket.
    report = _offline(server, env, "gc", "--grace-seconds", "0")
    assert digest in report["deletedBlobs"]  # type: ignore[operator]
    assert f"{prefix}/blobs/sha256/{encoded[:2]}/{encoded}" not in _bucket_keys(seaweedfs, prefix)
    again = OciLayout(tmp_path / "again")
    skopeo.copy(view.ref("v1"), again.skopeo_ref("back"))
    assert_identical(LayoutView(again), "back", multiarch)
    checked = _offline(server, env, "check")
    assert checked["ok"] is True, checked["problems"]

    # With sign-in required, an anonymous GET of a stored blob is refused before any
    # signing: a 401 challenge, no Location.
    server.data_plane_auth = True
    server.restart()
    refused = session.get(
        f"{server.url}/v2/e2e/multi/blobs/{layer.config.digest}", allow_redirects=False
    )
    assert refused.status_code == 401
    assert "Location" not in refused.headers
    assert "X-Amz-Signature" not in refused.text
