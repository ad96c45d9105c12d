"""podman 4.3 against Transship: push and pull, one platform of an index, login."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.content import MIB, RegistryView
from tests.peers.clients import Podman, Skopeo
from tests.peers.images import BuiltIndex, OciLayout, build_image, push_layout_http, sha256_digest
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.timeout(90)


def _push(podman: Podman, ref: str, digestfile: Path) -> str:
    """``podman push --digestfile``; return the manifest digest podman says it pushed."""
    podman(
        "push",
        "--tls-verify=false",
        "--authfile",
        str(podman.auth_file),
        "--digestfile",
        str(digestfile),
        ref,
    )
    return digestfile.read_text().strip()


def _assert_served(view: RegistryView, reference: str, digest: str) -> dict[str, Any]:
    """The registry serves manifest ``digest`` under ``reference``, and every blob it names."""
    raw = view.manifest(reference)
    assert sha256_digest(raw) == digest
    manifest: dict[str, Any] = json.loads(raw)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert view.blob_digest(blob["digest"]) == blob["digest"]
    return manifest


def test_push_then_pull(
    podman: Podman,
    skopeo: Skopeo,
    oci_layout: OciLayout,
    transship: TransshipServer,
    tmp_path: Path,
) -> None:
    """podman push, rmi, pull back, push again: Transship serves exactly what podman sent.

    podman keeps layers uncompressed and recompresses them on the first push, so only the
    config (hence the image id and diff_ids) keeps the digest it was built with. Once
    pulled from a registry, podman knows the compressed blobs and a re-push is identical.
    """
    built = build_image(oci_layout, tag="single", layer_sizes=(256 << 10, 2 * MIB))
    image_id = podman.pull(oci_layout.skopeo_ref("single"))
    assert f"sha256:{image_id}" == built.config.digest

    ref = f"{transship.host}/e2e/podman:v1"
    podman.tag(image_id, ref)
    pushed = _push(podman, ref, tmp_path / "first.digest")
    manifest = _assert_served(RegistryView(skopeo, transship, "e2e/podman"), "v1", pushed)
    assert manifest["config"]["digest"] == built.config.digest

    podman.rmi(image_id)
    assert podman.pull(ref) == image_id
    pulled = podman.image_inspect(ref)
    assert pulled["Digest"] == pushed
    assert f"{transship.host}/e2e/podman@{pushed}" in pulled["RepoDigests"]

    again = f"{transship.host}/e2e/podman-again:v1"
    podman.tag(image_id, again)
    assert _push(podman, again, tmp_path / "again.digest") == pushed
    _assert_served(RegistryView(skopeo, transship, "e2e/podman-again"), "v1", pushed)


def test_pull_one_platform_of_an_index(
    podman: Podman, multiarch: BuiltIndex, transship: TransshipServer
) -> None:
    push_layout_http(multiarch, transship.url, "e2e/multi", "v1")
    arm64 = multiarch.child("linux/arm64")

    image_id = podman.pull(f"{transship.host}/e2e/multi:v1", platform="linux/arm64")
    assert f"sha256:{image_id}" == arm64.config.digest
    inspected = podman.image_inspect(image_id)
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "arm64")
    # podman records the index digest as the image's Digest, and both in RepoDigests.
    assert inspected["Digest"] == multiarch.digest
    assert f"{transship.host}/e2e/multi@{arm64.digest}" in inspected["RepoDigests"]


def test_login_to_an_anonymous_registry(
    podman: Podman, multiarch: BuiltIndex, transship: TransshipServer
) -> None:
    """With no auth on the registry, any credentials log in, are stored, and pulls still work."""
    done = podman.login(transship.host, "anyone", "anything")
    assert "Login Succeeded" in done.text
    auths = json.loads(podman.auth_file.read_text())["auths"]
    assert base64.b64decode(auths[transship.host]["auth"]) == b"anyone:anything"

    push_layout_http(multiarch, transship.url, "e2e/multi", "v1")
    image_id = podman.pull(f"{transship.host}/e2e/multi:v1", platform="linux/amd64")
    assert f"sha256:{image_id}" == multiarch.child("linux/amd64").config.digest

    podman.logout(transship.host)
    assert transship.host not in json.loads(podman.auth_file.read_text())["auths"]
