"""Knowing a digest is never access (issue 10, items 5 and 6), through the real HTTP app on
SQLite and PostgreSQL: a blob reaches a repository without its bytes being received only
from a repository of the same registry.

- Import: registry `victim` holds a private layer; an import into another registry from an
  upstream whose manifest lists that layer's digest and size but never serves it fails, and
  the target does not serve the layer. The upstream is the in-process fake of
  tests/unit/imports/fake_registry.py on 127.0.0.1.
- Automatic mount (`?mount=` without `from=`): only a blob the repository itself already
  links is "mounted" (201); anything else gets a plain upload session (202).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import ImportEnv, ImportEnvFactory, insecure
from tests.support.app import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, sha256
from tests.support.imports import assert_failed, assert_succeeded
from tests.unit.imports.fake_registry import FakeRegistry

PRIVATE = b"the victim's private layer " * 2000
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "seed": "harvest"}).encode()
EVIL_REPO = "evil/harvest"


@dataclass
class Scene:
    env: ImportEnv
    upstream: FakeRegistry
    victim_host: str  # the login server of registry `victim`, for the Host header

    async def push_to_victim(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        async with self.env.reg.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?digest={digest}",
            data=data,
            headers={"Host": self.victim_host},
        ) as r:
            assert r.status == 201, await r.text()
        return digest

    async def victim_status(self, repository: str, digest: str) -> int:
        async with self.env.reg.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", headers={"Host": self.victim_host}
        ) as r:
            return int(r.status)

    async def target_blob(self, repository: str, digest: str) -> tuple[int, Any]:
        """GET the blob from the target registry: (status, body or error code)."""
        async with self.env.reg.request("GET", f"/v2/{repository}/blobs/{digest}") as r:
            body = await r.read()
            if r.status == 200:
                return r.status, body
            return r.status, json.loads(body)["errors"][0]["code"]

    async def mount(self, repository: str, digest: str) -> tuple[int, str]:
        """An automatic mount into the target registry: (status, Location)."""
        async with self.env.reg.request(
            "POST", f"/v2/{repository}/blobs/uploads/?mount={digest}"
        ) as r:
            return int(r.status), r.headers["Location"]


@pytest.fixture
async def scene(import_env: ImportEnvFactory, database_url: str | None) -> AsyncIterator[Scene]:
    upstream = FakeRegistry(host="127.0.0.1", repo=EVIL_REPO)
    await upstream.start()
    try:
        env = await import_env(database_url=database_url, upstreams=insecure(upstream.authority))
        victim = await env.admin.create_registry("victim")
        yield Scene(env, upstream, victim["properties"]["loginServer"])
    finally:
        await upstream.close()


def harvesting_manifest(upstream: FakeRegistry, digest: str, size: int) -> None:
    """`evil/harvest:v1`: a served config and one layer, listed as `digest` and `size`."""
    upstream.add_blob(CONFIG)
    layer = {"mediaType": OCI_LAYER, "digest": digest, "size": size}
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, CONFIG),
            "layers": [layer],
        }
    ).encode()
    upstream.add_manifest(body, tag="v1")


def import_body(scene: Scene) -> dict[str, Any]:
    return {
        "source": {"registryUri": scene.upstream.authority, "sourceImage": f"{EVIL_REPO}:v1"},
        "targetTags": ["app:v1"],
        "mode": "Force",
    }


async def test_an_import_cannot_harvest_another_registrys_blob_by_digest(scene: Scene) -> None:
    digest = await scene.push_to_victim("private", PRIVATE)
    harvesting_manifest(scene.upstream, digest, len(PRIVATE))  # lists the layer, never serves it
    final = await scene.env.run_import(import_body(scene))
    error = assert_failed(final, "BlobUnknown")
    assert digest in json.dumps(error) or digest in json.dumps(final["properties"])
    assert any(digest in seen.path for seen in scene.upstream.seen("blob")), (
        "the upstream was never asked"
    )
    assert await scene.target_blob("app", digest) == (404, "BLOB_UNKNOWN")
    assert (await scene.env.manifest("app", "v1")).status == 404
    assert await scene.victim_status("private", digest) == 200  # the victim keeps its blob
    await scene.env.assert_consistent()


async def test_an_upstream_that_serves_the_bytes_imports_a_blob_the_store_already_holds(
    scene: Scene,
) -> None:
    """The fix fetches and verifies instead of linking; committing bytes the shared store
    already has is idempotent."""
    digest = await scene.push_to_victim("private", PRIVATE)
    harvesting_manifest(scene.upstream, digest, len(PRIVATE))
    scene.upstream.add_blob(PRIVATE)
    final = await scene.env.run_import(import_body(scene))
    progress = assert_succeeded(final)
    assert progress["bytesFetched"] == len(PRIVATE) + len(CONFIG)
    assert await scene.target_blob("app", digest) == (200, PRIVATE)
    await scene.env.assert_consistent()


async def test_automatic_mount_from_another_registry_opens_a_session(scene: Scene) -> None:
    digest = await scene.push_to_victim("private", PRIVATE)
    status, location = await scene.mount("app", digest)
    assert status == 202 and location.startswith("/v2/app/blobs/uploads/")
    assert await scene.target_blob("app", digest) == (404, "BLOB_UNKNOWN")


async def test_automatic_mount_from_another_repository_opens_a_session(scene: Scene) -> None:
    digest = await scene.env.reg.push_blob("holder", PRIVATE)
    status, location = await scene.mount("app", digest)
    assert status == 202 and location.startswith("/v2/app/blobs/uploads/")
    assert await scene.target_blob("app", digest) == (404, "BLOB_UNKNOWN")
    assert await scene.target_blob("holder", digest) == (200, PRIVATE)


async def test_automatic_mount_of_a_blob_the_repository_holds_is_created(scene: Scene) -> None:
    digest = await scene.env.reg.push_blob("app", PRIVATE)
    status, location = await scene.mount("app", digest)
    assert status == 201 and location == f"/v2/app/blobs/{digest}"
    assert await scene.target_blob("app", digest) == (200, PRIVATE)


async def test_mount_from_a_named_repository_still_links(scene: Scene) -> None:
    digest = await scene.env.reg.push_blob("holder", PRIVATE)
    async with scene.env.reg.request(
        "POST", f"/v2/app/blobs/uploads/?mount={digest}&from=holder"
    ) as r:
        assert r.status == 201
    assert await scene.target_blob("app", digest) == (200, PRIVATE)
