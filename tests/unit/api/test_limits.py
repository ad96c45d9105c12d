"""Input limits with clear errors: management request bodies and index size on push."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.app import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    make_settings,
    running_registry,
    sha256,
)
from tests.support.imports import Management


async def test_management_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    async with running_registry(
        make_settings(tmp_path / "data", None, max_request_body_bytes=2048)
    ) as reg:
        admin = Management(reg, tmp_path / "data")
        await admin.create_registry("myregistry")
        huge = {"source": {"registryUri": "example.com", "sourceImage": "x" * 5000}}
        status, body, _ = await admin.call("POST", f"{admin.base}/myregistry/importImage", huge)
        assert status == 413
        assert body["error"]["code"] == "RequestTooLarge" and "2048" in body["error"]["message"]
        status, body, _ = await admin.call("GET", f"{admin.base}/myregistry/importOperations")
        assert status == 200 and body["value"] == []


async def test_an_index_with_too_many_children_is_refused(tmp_path: Path) -> None:
    async with running_registry(
        make_settings(tmp_path / "data", None, max_index_children=2)
    ) as reg:
        await reg.push_blob("app", b"{}")
        children = []
        for n in range(3):
            child = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": descriptor("application/vnd.oci.image.config.v1+json", b"{}"),
                    "layers": [],
                    "annotations": {"n": str(n)},
                }
            ).encode()
            assert (await reg.push_manifest("app", f"c{n}", child)).status == 201
            children.append(descriptor(OCI_MANIFEST, child))
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        ).encode()
        answer = await reg.push_manifest("app", "multi", index, OCI_INDEX)
        assert answer.status == 400
        assert answer.error_code() == "MANIFEST_INVALID"
        assert "limit is 2" in json.loads(answer.body)["errors"][0]["message"]


async def test_blobs_over_the_size_limit_are_413_and_leave_nothing(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None, max_blob_bytes=1000)) as reg:
        ok = b"x" * 1000
        assert await reg.push_blob("app", ok)
        big = b"y" * 1001
        async with reg.request(
            "POST", f"/v2/app/blobs/uploads/?digest={sha256(big)}", data=big
        ) as r:
            assert r.status == 413
        async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
            location = r.headers["Location"]
        async with reg.request(
            "PATCH", location, data=b"z" * 600, headers={"Content-Range": "0-599"}
        ) as r:
            assert r.status == 202
        async with reg.request(
            "PATCH", location, data=b"z" * 600, headers={"Content-Range": "600-1199"}
        ) as r:
            assert r.status == 413
        async with reg.request("GET", location) as r:
            assert r.headers["Range"] == "0-599"  # the refused chunk left nothing behind

        async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
            for _ in range(10):
                yield b"w" * 200

        async with reg.request("PATCH", location, data=streamed()) as r:
            assert r.status == 413
        async with reg.request("GET", location) as r:
            assert r.headers["Range"] == "0-599"
        async with reg.request("HEAD", f"/v2/app/blobs/{sha256(big)}") as r:
            assert r.status == 404
