"""skopeo 1.9 against Transship: multi-arch round trips, foreign layers, tags, delete, one arch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.content import (
    LayoutView,
    RegistryView,
    assert_identical,
    descriptors,
    layout_ref,
)
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import (
    DOCKER_FOREIGN_LAYER,
    OCI_INDEX,
    OCI_NONDISTRIBUTABLE_LAYER,
    BuiltIndex,
    OciLayout,
    push_layout_http,
)
from tests.peers.oci_http import RegistryClient
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.timeout(90)


def _copy_in(
    skopeo: Skopeo, built: BuiltIndex, server: TransshipServer, repo: str, tag: str
) -> RegistryView:
    """``skopeo copy --all`` ``built`` from its layout into ``server`` as ``repo:tag``."""
    view = RegistryView(skopeo, server, repo)
    skopeo.copy(layout_ref(built), view.ref(tag))
    return view


def test_index_round_trip_through_transship(
    skopeo: Skopeo, multiarch: BuiltIndex, transship_server: TransshipServer, tmp_path: Path
) -> None:
    """OCI layout → Transship → fresh OCI layout, on SQLite and PostgreSQL: nothing changes."""
    view = _copy_in(skopeo, multiarch, transship_server, "e2e/multi", "v1")
    assert_identical(view, "v1", multiarch)

    out = OciLayout(tmp_path / "out")
    skopeo.copy(view.ref("v1"), out.skopeo_ref("back"))
    assert out.resolve("back").media_type == OCI_INDEX
    assert_identical(LayoutView(out), "back", multiarch)


def test_docker_list_with_foreign_layer_copies_out_unchanged(
    skopeo: Skopeo,
    windows_list: BuiltIndex,
    transship: TransshipServer,
    distribution_anon: DistributionRegistry,
) -> None:
    """Transship → docker-registry keeps every digest; the foreign layer is skipped silently."""
    push_layout_http(windows_list, transship.url, "e2e/win", "ltsc2019")
    source = RegistryView(skopeo, transship, "e2e/win")
    assert_identical(source, "ltsc2019", windows_list)

    dest = RegistryView(skopeo, distribution_anon, "e2e/win")
    done = skopeo.copy(source.ref("ltsc2019"), dest.ref("ltsc2019"))
    assert "foreign" not in (done.text + done.error_text).lower()
    assert_identical(dest, "ltsc2019", windows_list)


def test_docker_list_to_oci_layout_is_converted_by_skopeo(
    skopeo: Skopeo, windows_list: BuiltIndex, transship: TransshipServer, tmp_path: Path
) -> None:
    """skopeo's ``oci:`` destination only takes OCI media types, so it converts a Docker list.

    The index, child manifests and configs get new digests (client-side conversion), but
    every layer keeps its digest and bytes, and the foreign layer keeps its descriptor (now
    OCI non-distributable, same ``urls``) and has no blob. With ``--preserve-digests``
    skopeo refuses instead.
    """
    push_layout_http(windows_list, transship.url, "e2e/win", "ltsc2019")
    source = RegistryView(skopeo, transship, "e2e/win")

    refused = OciLayout(tmp_path / "refused")
    failed = skopeo.copy(
        source.ref("ltsc2019"), refused.skopeo_ref("win"), preserve_digests=True, check=False
    )
    assert failed.returncode != 0
    assert "must be converted" in failed.error_text

    out = OciLayout(tmp_path / "out")
    skopeo.copy(source.ref("ltsc2019"), out.skopeo_ref("win"))
    view = LayoutView(out)
    index = json.loads(view.manifest("win"))
    assert index["mediaType"] == OCI_INDEX
    assert [m["platform"] for m in index["manifests"]] == [
        m["platform"] for m in descriptors(windows_list)
    ]
    for entry, child in zip(index["manifests"], windows_list.children, strict=True):
        layers = json.loads(view.manifest(entry["digest"]))["layers"]
        for copied, built in zip(layers, child.layers, strict=True):
            assert copied["digest"] == built.digest
            if built.descriptor.is_foreign:
                assert built.descriptor.media_type == DOCKER_FOREIGN_LAYER
                assert copied["mediaType"] == OCI_NONDISTRIBUTABLE_LAYER
                assert copied["urls"] == list(built.descriptor.urls)
                assert view.blob_digest(built.digest) is None
            else:
                assert view.blob_digest(built.digest) == built.digest


def test_list_tags(skopeo: Skopeo, multiarch: BuiltIndex, transship: TransshipServer) -> None:
    view = _copy_in(skopeo, multiarch, transship, "e2e/tags", "v1")
    for tag in ("v2", "latest"):
        skopeo.copy(view.ref("v1"), view.ref(tag))
    assert sorted(skopeo.list_tags(f"docker://{transship.host}/e2e/tags")) == ["latest", "v1", "v2"]


def test_delete_by_digest(
    skopeo: Skopeo, multiarch: BuiltIndex, transship: TransshipServer
) -> None:
    """After ``skopeo delete …@digest`` the index is gone by digest and by its tag (404)."""
    view = _copy_in(skopeo, multiarch, transship, "e2e/delete", "v1")
    skopeo.delete(view.ref(multiarch.digest))

    for reference in (multiarch.digest, "v1"):
        inspected = skopeo(
            "inspect", "--raw", "--tls-verify=false", "--no-creds", view.ref(reference), check=False
        )
        assert inspected.returncode != 0
        assert "manifest unknown" in inspected.error_text
        with RegistryClient(transship.url) as client:
            response = client.request(
                "GET", f"/v2/e2e/delete/manifests/{reference}", repo="e2e/delete"
            )
            assert response.status_code == 404
            assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert skopeo.list_tags(f"docker://{transship.host}/e2e/delete") == []


def test_single_platform_pull_gets_the_arm64_child(
    skopeo: Skopeo, multiarch: BuiltIndex, transship: TransshipServer, tmp_path: Path
) -> None:
    view = _copy_in(skopeo, multiarch, transship, "e2e/multi", "v1")
    out = OciLayout(tmp_path / "arm64")
    skopeo.copy(
        view.ref("v1"), out.skopeo_ref("arm64"), all=False, extra=["--override-arch", "arm64"]
    )
    arm64 = multiarch.child("linux/arm64")
    assert out.resolve("arm64").digest == arm64.digest
    assert_identical(LayoutView(out), "arm64", arm64)
    for other in multiarch.children:
        if other is not arm64:
            assert not out.has_blob(other.digest)
