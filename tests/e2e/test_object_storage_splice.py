"""Pulls from Transship on S3 (SeaweedFS) without redirects, where blob bodies are spliced
from the store's socket into the client's: skopeo copies a multi-arch image out
byte-exact, podman pulls one platform, and ranged and keep-alive GETs answer the right
bytes on one connection. The redirect-free answers carry no Location."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.e2e.content import LayoutView, RegistryView, assert_identical, layout_ref
from tests.e2e.test_object_storage import _storage_env
from tests.peers.clients import Podman, Skopeo
from tests.peers.images import BuiltIndex, OciLayout
from tests.peers.object_stores import SeaweedFS
from tests.peers.oci_http import RegistryClient
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.timeout(180)


def test_clients_pull_spliced_blobs_byte_exact(
    seaweedfs: SeaweedFS,
    transship_factory: Callable[..., TransshipServer],
    skopeo: Skopeo,
    podman: Podman,
    multiarch: BuiltIndex,
    tmp_path: Path,
) -> None:
    server = transship_factory(env=_storage_env(seaweedfs, seaweedfs.new_prefix("splice"), 0))

    view = RegistryView(skopeo, server, "splice/multi")
    skopeo.copy(layout_ref(multiarch), view.ref("v1"))
    out = OciLayout(tmp_path / "out")
    skopeo.copy(view.ref("v1"), out.skopeo_ref("back"))
    assert_identical(LayoutView(out), "back", multiarch)

    layer = multiarch.child("linux/arm64")
    image_id = podman.pull(f"{server.host}/splice/multi:v1", platform="linux/arm64")
    assert f"sha256:{image_id}" == layer.config.digest

    # Larger than one pipe (1 MiB), on one keep-alive connection: whole, ranged, whole.
    data = os.urandom(5 * 1024 * 1024 + 3)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient(server.url) as client:
        client.upload_blob("splice/big", digest, data, mode="post_put")
    session = requests.Session()
    session.trust_env = False
    url = f"{server.url}/v2/splice/big/blobs/{digest}"
    whole = session.get(url, allow_redirects=False)
    assert whole.status_code == 200
    assert "Location" not in whole.headers
    assert whole.content == data
    ranged = session.get(url, headers={"Range": "bytes=1048000-3000000"})
    assert ranged.status_code == 206
    assert ranged.content == data[1048000:3000001]
    assert ranged.headers["Content-Range"] == f"bytes 1048000-3000000/{len(data)}"
    again = session.get(url)
    assert again.content == data
