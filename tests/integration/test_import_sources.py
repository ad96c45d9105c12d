"""Sources that are themselves Transship: a registry of the same service (by resourceId and by
its login server: linked, zero bytes copied) and another Transship instance over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import ImportEnvFactory, insecure, small_index
from tests.peers.clients import Skopeo
from tests.peers.images import push_layout_http, sha256_digest
from tests.peers.transship import TransshipServer
from tests.support.imports import assert_served_as_built, assert_succeeded, blob_files, push_built


@pytest.mark.parametrize("named_by", ["resourceId", "loginServer"])
async def test_same_service_source_links_blobs_without_writing_any(
    named_by: str, tmp_path: Path, import_env: ImportEnvFactory, database_url: str | None
) -> None:
    env = await import_env(database_url)
    source = await env.admin.create_registry("sourcereg")
    login_server = source["properties"]["loginServer"]
    index = await asyncio.to_thread(small_index, tmp_path)
    await push_built(env.reg.http, env.reg.url, login_server, "team/app", "v1", index)
    before = blob_files(env.data_dir)
    assert len(before) == len(index.blob_digests)

    where = (
        {"resourceId": source["id"]} if named_by == "resourceId" else {"registryUri": login_server}
    )
    final = await env.run_import(
        {"source": {**where, "sourceImage": "team/app:v1"}, "targetTags": ["app:v1"]}
    )
    progress = assert_succeeded(final)
    assert progress["bytesFetched"] == 0
    assert progress["bytesTotal"] == index.blob_bytes
    assert blob_files(env.data_dir) == before, "no blob file may be written, rewritten or removed"

    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == index.index_bytes
    for child in index.children:
        served = await env.manifest("app", child.digest)
        assert served.status == 200 and served.body == child.manifest_bytes
    for digest in index.blob_digests:
        blob = await env.blob("app", digest)
        assert blob.status == 200 and sha256_digest(blob.body) == digest
    original = await env.manifest("team/app", "v1", host=login_server)
    assert original.status == 200 and original.body == index.index_bytes
    await env.assert_consistent()


async def test_another_transship_instance_as_upstream(
    tmp_path: Path,
    transship_factory: Callable[..., TransshipServer],
    import_env: ImportEnvFactory,
    skopeo: Skopeo,
) -> None:
    # Its /v2 is anonymous; unknown hosts reach its default registry.
    other = await asyncio.to_thread(transship_factory)
    index = await asyncio.to_thread(small_index, tmp_path)
    await asyncio.to_thread(push_layout_http, index, other.url, "team/app", "v1")
    env = await import_env(upstreams=insecure(other.host))
    final = await env.run_import(
        {
            "source": {"registryUri": other.host, "sourceImage": "team/app:v1"},
            "targetTags": ["app:v1"],
        }
    )
    progress = assert_succeeded(final)
    assert progress["bytesFetched"] == index.blob_bytes
    await assert_served_as_built(skopeo, env.login_server, "app", "v1", index)
    await assert_served_as_built(skopeo, other.host, "team/app", "v1", index)
    await env.assert_consistent()
