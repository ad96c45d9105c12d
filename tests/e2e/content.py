"""Byte-identity checks shared by the end-to-end tests.

A :class:`ContentView` is somewhere images live: a registry (read with ``skopeo inspect
--raw`` for manifests and plain HTTP for blobs) or an OCI image layout on disk. The one
assertion, :func:`assert_identical`, checks that a view holds exactly what a test built:
the root manifest's bytes and digest, every child manifest's, and every blob's content
(hashed in full), and that foreign layers have no blob.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from tests.peers.clients import Skopeo, docker_ref
from tests.peers.images import BuiltImage, BuiltIndex, OciLayout, sha256_digest
from tests.peers.oci_http import RegistryClient, RegistryError

Built = BuiltImage | BuiltIndex
MIB = 1 << 20
_CHUNK = 1 << 20


class Endpoint(Protocol):
    """A running registry: Transship or docker-registry."""

    @property
    def host(self) -> str: ...

    @property
    def url(self) -> str: ...


class ContentView(Protocol):
    """Read access to manifests (by tag or digest) and blobs of one repository or layout."""

    def manifest(self, reference: str) -> bytes:
        """The manifest's exact bytes."""
        ...

    def blob_digest(self, digest: str) -> str | None:
        """The sha256 of the stored blob's bytes, or None when there is no such blob."""
        ...


class RegistryView:
    """One repository of a registry: manifests through skopeo, blobs through HTTP GET."""

    def __init__(self, skopeo: Skopeo, registry: Endpoint, repo: str) -> None:
        self.skopeo = skopeo
        self.registry = registry
        self.repo = repo

    def ref(self, reference: str) -> str:
        """``docker://HOST/REPO:TAG`` or ``…@DIGEST``."""
        return docker_ref(self.registry.host, self.repo, reference)

    def manifest(self, reference: str) -> bytes:
        return self.skopeo.inspect_raw(self.ref(reference))

    def blob_digest(self, digest: str) -> str | None:
        return registry_blob_digest(self.registry, self.repo, digest)


class LayoutView:
    """An OCI image layout: a tag is an ``index.json`` ref name, a digest a blob file."""

    def __init__(self, layout: OciLayout) -> None:
        self.layout = layout

    def manifest(self, reference: str) -> bytes:
        digest = (
            reference if reference.startswith("sha256:") else self.layout.resolve(reference).digest
        )
        return self.layout.read_blob(digest)

    def blob_digest(self, digest: str) -> str | None:
        if not self.layout.has_blob(digest):
            return None
        sha = hashlib.sha256()
        with self.layout.blob_path(digest).open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
        return "sha256:" + sha.hexdigest()


def registry_blob_digest(registry: Endpoint, repo: str, digest: str) -> str | None:
    """GET the blob and hash it as it streams; None on 404."""
    with RegistryClient(registry.url, timeout=60) as client:
        response = client.request("GET", f"/v2/{repo}/blobs/{digest}", repo=repo, stream=True)
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise RegistryError(f"GET blob {digest}", response)
            sha = hashlib.sha256()
            for chunk in response.iter_content(_CHUNK):
                sha.update(chunk)
            return "sha256:" + sha.hexdigest()


def layout_ref(built: Built) -> str:
    """skopeo's ``oci:DIR:NAME`` for the layout entry that names ``built``."""
    for name, descriptor in built.layout.refs().items():
        if descriptor.digest == built.digest:
            return built.layout.skopeo_ref(name)
    raise KeyError(f"{built.digest} has no name in {built.layout.root}")


def built_bytes(built: Built) -> bytes:
    """The manifest (or index) bytes exactly as built."""
    return built.index_bytes if isinstance(built, BuiltIndex) else built.manifest_bytes


def assert_identical(view: ContentView, reference: str, built: Built) -> None:
    """``view`` serves ``built`` byte for byte under ``reference``: root, children, blobs.

    Foreign layers must have no blob (clients and registries skip them).
    """
    raw = view.manifest(reference)
    assert sha256_digest(raw) == built.digest, f"{reference}: root manifest digest changed"
    assert raw == built_bytes(built)
    if isinstance(built, BuiltIndex):
        listed = [m["digest"] for m in json.loads(raw)["manifests"]]
        assert listed == list(built.child_digests)
        for child in built.children:
            child_raw = view.manifest(child.digest)
            assert sha256_digest(child_raw) == child.digest, f"child {child.platform} changed"
    for digest in built.blob_digests:
        assert view.blob_digest(digest) == digest, f"blob {digest} missing or corrupt"
    for foreign in built.foreign_layers:
        assert view.blob_digest(foreign.digest) is None, f"foreign layer {foreign.digest} copied"


def descriptors(built: BuiltIndex) -> list[dict[str, Any]]:
    """The index's child descriptors as built (media type, digest, size, platform)."""
    manifests: list[dict[str, Any]] = json.loads(built.index_bytes)["manifests"]
    return manifests
