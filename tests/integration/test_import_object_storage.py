"""A server-side import into a registry whose blobs live in S3 (SeaweedFS): every blob is
an object in the bucket, skopeo sees the source's bytes, and `check --verify-digests`
(which re-reads every blob from the bucket) finds nothing wrong."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ImportEnvFactory, insecure
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, sha256_digest
from tests.peers.object_stores import SeaweedFS
from tests.support.imports import assert_served_as_built, assert_succeeded, has_blob_file
from transship.storage.object_store import ObjectBlobStore


async def test_import_lands_in_the_bucket(
    import_env: ImportEnvFactory,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
    skopeo: Skopeo,
    seaweedfs: SeaweedFS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in seaweedfs.environ.items():
        monkeypatch.setenv(name, value)
    prefix = seaweedfs.new_prefix("import")
    env = await import_env(
        None,
        upstreams=insecure(distribution_anon.host),
        storage_url=f"s3://{seaweedfs.bucket}/{prefix}?endpoint={seaweedfs.endpoint}",
    )
    store = env.reg.services.store
    assert isinstance(store, ObjectBlobStore)
    final = await env.run_import(
        {
            "source": {"registryUri": distribution_anon.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
            "mode": "NoForce",
        }
    )
    progress = assert_succeeded(final)
    assert progress["bytesFetched"] == upstream_index.blob_bytes
    stored = {str(digest) async for digest, _ in store.iter_blobs()}
    assert set(upstream_index.blob_digests) <= stored
    for digest in upstream_index.blob_digests:
        assert not has_blob_file(env.data_dir, digest)  # nothing on the local disk
        got = await env.blob("app", digest)
        assert got.status == 200 and sha256_digest(got.body) == digest
    await assert_served_as_built(skopeo, env.login_server, "app", "v1", upstream_index)
    await env.assert_consistent()
