"""The ``oras`` Python SDK against Transship: file artifacts, and the referrers API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import oras.client  # type: ignore[import-untyped]
import oras.oci  # type: ignore[import-untyped]
import pytest

from tests.e2e.content import registry_blob_digest
from tests.peers.images import (
    OCI_INDEX,
    BuiltImage,
    OciLayout,
    build_artifact,
    build_image,
    push_layout_http,
    sha256_digest,
)
from tests.peers.oci_http import RegistryClient
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.timeout(60)

ORAS_DEFAULT_CONFIG = "application/vnd.unknown.config.v1+json"


@pytest.fixture
def oras_client(
    transship: TransshipServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> oras.client.OrasClient:
    """An anonymous oras client of ``transship`` that reads no credentials of this machine."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "oras-docker-config"))
    return oras.client.OrasClient(hostname=transship.host, insecure=True)


def _payload(tmp_path: Path, size: int = 300_000) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(size))
    return path


def _subject(layout: OciLayout, server: TransshipServer, repo: str) -> BuiltImage:
    """An image pushed to ``repo:subject``, for artifacts to refer to."""
    image = build_image(layout, seed="subject")
    push_layout_http(image, server.url, repo, "subject")
    return image


def _referrers(
    server: TransshipServer, repo: str, subject: BuiltImage, **params: str
) -> tuple[list[dict[str, Any]], str | None]:
    """``GET /v2/REPO/referrers/DIGEST`` → (its descriptors, the OCI-Filters-Applied header)."""
    with RegistryClient(server.url) as client:
        response = client.request(
            "GET", f"/v2/{repo}/referrers/{subject.digest}", repo=repo, params=params
        )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    index: dict[str, Any] = response.json()
    assert (index["schemaVersion"], index["mediaType"]) == (2, OCI_INDEX)
    return index["manifests"], response.headers.get("OCI-Filters-Applied")


def test_push_and_pull_file(
    oras_client: oras.client.OrasClient, transship: TransshipServer, tmp_path: Path
) -> None:
    payload = _payload(tmp_path)
    client = oras_client
    pushed = client.push(
        target=f"{transship.host}/e2e/files:v1", files=[str(payload)], disable_path_validation=True
    )
    manifest_digest = pushed.headers["Docker-Content-Digest"]
    with RegistryClient(transship.url) as http:
        assert sha256_digest(http.get_manifest("e2e/files", "v1").data) == manifest_digest
    (layer,) = client.get_manifest(f"{transship.host}/e2e/files:v1")["layers"]
    assert layer["digest"] == sha256_digest(payload.read_bytes())
    assert registry_blob_digest(transship, "e2e/files", layer["digest"]) == layer["digest"]

    out = tmp_path / "pulled"
    files = client.pull(target=f"{transship.host}/e2e/files@{manifest_digest}", outdir=str(out))
    assert [Path(f).name for f in files] == [payload.name]
    assert Path(files[0]).read_bytes() == payload.read_bytes()


def test_referrers_list_an_artifact_with_a_subject(
    transship: TransshipServer, oci_layout: OciLayout
) -> None:
    image = _subject(oci_layout, transship, "e2e/sbom")
    assert _referrers(transship, "e2e/sbom", image) == ([], None)

    artifact = build_artifact(oci_layout, subject=image, annotations={"org.example.kind": "sbom"})
    push_layout_http(artifact, transship.url, "e2e/sbom", None)
    assert artifact.descriptor.artifact_type is not None

    entry = artifact.descriptor.to_json()
    assert _referrers(transship, "e2e/sbom", image) == ([entry], None)
    assert _referrers(
        transship, "e2e/sbom", image, artifactType=artifact.descriptor.artifact_type
    ) == ([entry], "artifactType")
    assert _referrers(transship, "e2e/sbom", image, artifactType="application/x-other") == (
        [],
        "artifactType",
    )


def test_oras_push_with_a_subject_is_a_referrer(
    oras_client: oras.client.OrasClient,
    transship: TransshipServer,
    oci_layout: OciLayout,
    tmp_path: Path,
) -> None:
    """oras sets no ``artifactType``: the referrers entry takes the config's media type."""
    image = _subject(oci_layout, transship, "e2e/signed")
    pushed = oras_client.push(
        target=f"{transship.host}/e2e/signed:sig",
        files=[str(_payload(tmp_path, 1000))],
        disable_path_validation=True,
        subject=oras.oci.Subject(image.media_type, image.digest, image.descriptor.size),
    )
    assert pushed.headers["OCI-Subject"] == image.digest

    (entry,), _ = _referrers(transship, "e2e/signed", image)
    assert entry["digest"] == pushed.headers["Docker-Content-Digest"]
    assert entry["artifactType"] == ORAS_DEFAULT_CONFIG
