"""The OCI distribution spec v1.1, request by request, against the real server on SQLite and
PostgreSQL. Each test names the behaviour the spec (or the conformance suite) requires."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.app import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    RunningRegistry,
    descriptor,
    image_manifest,
    make_settings,
    running_registry,
    sha256,
)


@pytest.fixture
async def reg(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningRegistry]:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as running:
        yield running


async def error_code(response) -> str:  # type: ignore[no-untyped-def]
    body = await response.json(content_type=None)
    return str(body["errors"][0]["code"])


# -- base ------------------------------------------------------------------------------------
async def test_base_endpoint_answers_with_the_api_version_header(reg: RunningRegistry) -> None:
    async with reg.request("GET", "/v2/") as r:
        assert r.status == 200
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


# -- blob uploads ----------------------------------------------------------------------------
async def test_monolithic_post_stores_the_blob_and_head_get_describe_it(
    reg: RunningRegistry,
) -> None:
    data = os.urandom(70_000)
    digest = sha256(data)
    async with reg.request("POST", f"/v2/a/b/blobs/uploads/?digest={digest}", data=data) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/a/b/blobs/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
    async with reg.request("HEAD", f"/v2/a/b/blobs/{digest}") as r:
        assert r.status == 200
        assert r.headers["Content-Length"] == str(len(data))
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["ETag"] == f'"{digest}"'
        assert await r.read() == b""
    async with reg.request("GET", f"/v2/a/b/blobs/{digest}") as r:
        assert r.status == 200
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["ETag"] == f'"{digest}"'
        assert await r.read() == data


async def test_post_then_put_with_the_whole_body(reg: RunningRegistry) -> None:
    data = b"post-then-put"
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        assert r.status == 202
        location = r.headers["Location"]
        assert location.startswith("/v2/r/blobs/uploads/")
        assert r.headers["Docker-Upload-UUID"]
    async with reg.request("PUT", f"{location}?digest={sha256(data)}", data=data) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/r/blobs/{sha256(data)}"
    async with reg.request("GET", f"/v2/r/blobs/{sha256(data)}") as r:
        assert await r.read() == data


async def test_chunked_upload_enforces_order_and_reports_progress(reg: RunningRegistry) -> None:
    data = bytes(range(42))
    async with reg.request(
        "POST", "/v2/chunks/blobs/uploads/", headers={"Content-Length": "0"}
    ) as r:
        assert r.status == 202
        location = r.headers["Location"]
    second = {"Content-Range": "22-41", "Content-Type": "application/octet-stream"}
    async with reg.request("PATCH", location, data=data[22:], headers=second) as r:
        assert r.status == 416
    async with reg.request(
        "PATCH", location, data=data[:22], headers={"Content-Range": "0-21"}
    ) as r:
        assert r.status == 202
        assert r.headers["Range"] == "0-21"
        new_location = r.headers["Location"]
    # Re-sending the first chunk is out of order too; the session survives it.
    async with reg.request(
        "PATCH", location, data=data[:22], headers={"Content-Range": "0-21"}
    ) as r:
        assert r.status == 416
        assert r.headers["Range"] == "0-21"
    async with reg.request("GET", location) as r:
        assert r.status == 204
        assert r.headers["Range"] == "0-21"
        assert r.headers["Location"]
    async with reg.request("PATCH", new_location, data=data[22:], headers=second) as r:
        assert r.status == 202
        assert r.headers["Range"] == "0-41"
    async with reg.request(
        "PUT", f"{new_location}?digest={sha256(data)}", headers={"Content-Length": "0"}
    ) as r:
        assert r.status == 201
    async with reg.request("GET", f"/v2/chunks/blobs/{sha256(data)}") as r:
        assert await r.read() == data


async def test_streamed_patch_without_content_range(reg: RunningRegistry) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    async with reg.request("POST", "/v2/stream/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("PATCH", location, data=body()) as r:  # chunked transfer encoding
        assert r.status == 202
        assert r.headers["Range"] == f"0-{len(data) - 1}"
    async with reg.request("PUT", f"{location}?digest={sha256(data)}") as r:
        assert r.status == 201
    async with reg.request("GET", f"/v2/stream/blobs/{sha256(data)}") as r:
        assert hashlib.sha256(await r.read()).hexdigest() == sha256(data).split(":")[1]


async def test_final_put_may_carry_the_last_chunk(reg: RunningRegistry) -> None:
    data = b"0123456789"
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("PATCH", location, data=data[:4], headers={"Content-Range": "0-3"}) as r:
        location = r.headers["Location"]
    async with reg.request(
        "PUT", f"{location}?digest={sha256(data)}", data=data[4:], headers={"Content-Range": "4-9"}
    ) as r:
        assert r.status == 201


async def test_empty_blob(reg: RunningRegistry) -> None:
    digest = sha256(b"")
    async with reg.request("POST", f"/v2/e/blobs/uploads/?digest={digest}", data=b"") as r:
        assert r.status == 201
    async with reg.request("GET", f"/v2/e/blobs/{digest}") as r:
        assert r.status == 200
        assert await r.read() == b""


async def test_wrong_digest_is_refused_and_nothing_is_stored(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    claimed = sha256(b"something else")
    async with reg.request("POST", f"/v2/r/blobs/uploads/?digest={claimed}", data=b"actual") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"
    async with reg.request("HEAD", f"/v2/r/blobs/{claimed}") as r:
        assert r.status == 404
    async with reg.request("HEAD", f"/v2/r/blobs/{sha256(b'actual')}") as r:
        assert r.status == 404
    assert list((tmp_path / "data" / "uploads").iterdir()) == []
    assert not (tmp_path / "data" / "blobs" / "sha256").exists() or not any(
        (tmp_path / "data" / "blobs" / "sha256").rglob("*[0-9a-f]")
    )


async def test_wrong_digest_on_a_session_discards_the_session(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("PUT", f"{location}?digest={sha256(b'no')}", data=b"yes") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"
    async with reg.request("GET", location) as r:
        assert r.status == 404
        assert await error_code(r) == "BLOB_UPLOAD_UNKNOWN"


async def test_content_range_that_disagrees_with_the_body(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("PATCH", location, data=b"12345", headers={"Content-Range": "0-9"}) as r:
        assert r.status == 416
    async with reg.request("GET", location) as r:
        assert r.status == 204
        assert r.headers["Range"] == "0-0"


async def test_put_without_digest_and_with_a_malformed_one(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("PUT", location, data=b"x") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"
    async with reg.request("PUT", f"{location}?digest=sha256:XYZ", data=b"x") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"


async def test_cancel_upload(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("DELETE", location) as r:
        assert r.status == 204
    async with reg.request("GET", location) as r:
        assert r.status == 404
    async with reg.request("DELETE", location) as r:
        assert r.status == 404


async def test_session_belongs_to_its_repository(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/one/blobs/uploads/") as r:
        upload_id = r.headers["Docker-Upload-UUID"]
    async with reg.request("GET", f"/v2/two/blobs/uploads/{upload_id}") as r:
        assert r.status == 404
    async with reg.request("PATCH", "/v2/one/blobs/uploads/../../../etc", data=b"x") as r:
        assert r.status in (400, 404)


async def test_sha512_uploads_and_manifests(reg: RunningRegistry) -> None:
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    async with reg.request("POST", "/v2/s/blobs/uploads/?digest-algorithm=sha512") as r:
        assert r.status == 202
        location = r.headers["Location"]
    async with reg.request("PUT", f"{location}?digest={digest}", data=data) as r:
        assert r.status == 201
    async with reg.request("GET", f"/v2/s/blobs/{digest}") as r:
        assert await r.read() == data
    config = b"{}"
    await reg.push_blob("s", config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [
                {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}
            ],
        }
    ).encode()
    manifest_digest = "sha512:" + hashlib.sha512(manifest).hexdigest()
    r = await reg.push_manifest("s", manifest_digest, manifest)
    assert r.status == 201
    assert r.headers["Docker-Content-Digest"] == manifest_digest
    async with reg.request("GET", f"/v2/s/manifests/{manifest_digest}") as r:
        assert await r.read() == manifest


async def test_unsupported_digest_algorithm(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/s/blobs/uploads/?digest-algorithm=md5") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"


# -- blob reads ------------------------------------------------------------------------------
async def test_range_requests(reg: RunningRegistry) -> None:
    data = bytes(range(256)) * 40
    digest = await reg.push_blob("r", data)
    async with reg.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=100-199"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert await r.read() == data[100:200]
    async with reg.request(
        "GET", f"/v2/r/blobs/{digest}", headers={"Range": f"bytes={len(data) + 5}-"}
    ) as r:
        assert r.status == 416
        assert await r.read() == b""


async def test_unknown_and_malformed_blob_digests(reg: RunningRegistry) -> None:
    async with reg.request("GET", f"/v2/r/blobs/{sha256(b'missing')}") as r:
        assert r.status == 404
        assert await error_code(r) == "BLOB_UNKNOWN"
    async with reg.request("HEAD", f"/v2/r/blobs/{sha256(b'missing')}") as r:
        assert r.status == 404
    async with reg.request("GET", "/v2/r/blobs/sha256:nothex") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"


async def test_a_blob_is_visible_only_in_repositories_that_link_it(reg: RunningRegistry) -> None:
    digest = await reg.push_blob("owner", b"private bytes")
    async with reg.request("GET", f"/v2/other/blobs/{digest}") as r:
        assert r.status == 404


# -- mounts ----------------------------------------------------------------------------------
async def test_cross_repository_mount(reg: RunningRegistry) -> None:
    digest = await reg.push_blob("source", b"mount me")
    async with reg.request("POST", f"/v2/target/blobs/uploads/?mount={digest}&from=source") as r:
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/target/blobs/{digest}"
    async with reg.request("GET", f"/v2/target/blobs/{digest}") as r:
        assert await r.read() == b"mount me"


async def test_mount_of_unknown_blob_opens_a_session(reg: RunningRegistry) -> None:
    async with reg.request(
        "POST", f"/v2/target/blobs/uploads/?mount={sha256(b'nope')}&from=source"
    ) as r:
        assert r.status == 202
        assert r.headers["Location"].startswith("/v2/target/blobs/uploads/")
    async with reg.request("POST", f"/v2/target/blobs/uploads/?mount={sha256(b'nope')}") as r:
        assert r.status == 202


async def test_mount_from_a_repository_without_the_blob_opens_a_session(
    reg: RunningRegistry,
) -> None:
    digest = await reg.push_blob("holder", b"held")
    async with reg.request("POST", f"/v2/target/blobs/uploads/?mount={digest}&from=elsewhere") as r:
        assert r.status == 202


async def test_automatic_mount_without_from(reg: RunningRegistry) -> None:
    """Without `from`, only the repository's own blob counts (knowing a digest is never
    access): another repository's blob gets a plain upload session, as the spec allows."""
    digest = await reg.push_blob("holder", b"auto")
    async with reg.request("POST", f"/v2/target/blobs/uploads/?mount={digest}") as r:
        assert r.status == 202
    async with reg.request("HEAD", f"/v2/target/blobs/{digest}") as r:
        assert r.status == 404
    async with reg.request("POST", f"/v2/holder/blobs/uploads/?mount={digest}") as r:
        assert r.status == 201


# -- manifests -------------------------------------------------------------------------------
async def test_manifest_round_trip_is_byte_exact(reg: RunningRegistry) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"layer bytes"
    await reg.push_blob("img", config)
    await reg.push_blob("img", layer)
    # Odd spacing, unknown fields and annotations must survive untouched.
    body = (
        b'{ "schemaVersion": 2, "mediaType": "'
        + OCI_MANIFEST.encode()
        + b'",\n  "config": '
        + json.dumps(descriptor(OCI_CONFIG, config, newUnspecifiedField=None, data="e30=")).encode()
        + b', "layers": ['
        + json.dumps(descriptor("application/vnd.oci.image.layer.v1.tar", layer)).encode()
        + b'], "annotations": {"k": "v"}, "x-extra": [1, 2] }'
    )
    r = await reg.push_manifest("img", "v1", body)
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/img/manifests/{sha256(body)}"
    assert r.headers["Docker-Content-Digest"] == sha256(body)
    assert "OCI-Subject" not in r.headers
    for reference in ("v1", sha256(body)):
        async with reg.request("GET", f"/v2/img/manifests/{reference}") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == OCI_MANIFEST
            assert r.headers["Docker-Content-Digest"] == sha256(body)
            assert await r.read() == body
        async with reg.request("HEAD", f"/v2/img/manifests/{reference}") as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(len(body))


async def test_manifest_without_media_type_field_takes_the_content_type(
    reg: RunningRegistry,
) -> None:
    config = b"{}"
    await reg.push_blob("e", config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "config": descriptor("application/vnd.oci.empty.v1+json", config),
            "layers": [],
        }
    ).encode()
    r = await reg.push_manifest("e", "empty", body)
    assert r.status == 201
    async with reg.request("GET", "/v2/e/manifests/empty") as r:
        assert r.headers["Content-Type"] == OCI_MANIFEST


async def test_docker_manifest_list_with_a_foreign_layer(reg: RunningRegistry) -> None:
    config = b'{"os":"windows","architecture":"amd64"}'
    await reg.push_blob("win", config)
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": sha256(b"never uploaded"),
        "size": 14,
        "urls": ["https://example.invalid/layer"],
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": descriptor("application/vnd.docker.container.image.v1+json", config),
            "layers": [foreign],
        }
    ).encode()
    r = await reg.push_manifest(
        "win", sha256(manifest), manifest, "application/vnd.docker.distribution.manifest.v2+json"
    )
    assert r.status == 201
    listing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [
                descriptor(
                    "application/vnd.docker.distribution.manifest.v2+json",
                    manifest,
                    platform={
                        "os": "windows",
                        "architecture": "amd64",
                        "os.version": "10.0.17763.1",
                    },
                )
            ],
        }
    ).encode()
    r = await reg.push_manifest(
        "win", "ltsc", listing, "application/vnd.docker.distribution.manifest.list.v2+json"
    )
    assert r.status == 201
    async with reg.request("GET", "/v2/win/manifests/ltsc") as r:
        assert (
            r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.list.v2+json"
        )
        assert await r.read() == listing


async def test_manifest_with_missing_blob_is_refused_and_leaves_nothing(
    reg: RunningRegistry,
) -> None:
    config = b"{}"
    await reg.push_blob("m", config)
    body = image_manifest(config, [b"layer never pushed"])
    r = await reg.push_manifest("m", "broken", body)
    assert r.status == 400
    assert r.error_code() == "MANIFEST_BLOB_UNKNOWN"
    assert sha256(b"layer never pushed") in json.loads(r.body)["errors"][0]["message"]
    async with reg.request("GET", "/v2/m/manifests/broken") as r:
        assert r.status == 404
    async with reg.request("GET", f"/v2/m/manifests/{sha256(body)}") as r:
        assert r.status == 404
    async with reg.request("GET", "/v2/m/tags/list") as r:
        assert (await r.json())["tags"] == []


async def test_index_with_missing_child_is_refused(reg: RunningRegistry) -> None:
    child = image_manifest(b"{}", [])
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child)]}
    ).encode()
    r = await reg.push_manifest("i", "latest", index, OCI_INDEX)
    assert r.status == 400
    assert r.error_code() == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"not json", OCI_MANIFEST, "JSON"),
        (b"[]", OCI_MANIFEST, "object"),
        (
            b'{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "schema 1",
        ),
        (
            json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(),
            OCI_MANIFEST,
            "config",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1},
                    "layers": [],
                }
            ).encode(),
            OCI_MANIFEST,
            "config.digest",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "x", "digest": sha256(b""), "size": -1},
                    "layers": [],
                }
            ).encode(),
            OCI_MANIFEST,
            "config.size",
        ),
        (
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
            OCI_MANIFEST,
            "does not match",
        ),
    ],
)
async def test_invalid_manifests_name_the_problem(
    reg: RunningRegistry, body: bytes, content_type: str, needle: str
) -> None:
    r = await reg.push_manifest("bad", "t", body, content_type)
    assert r.status == 400
    error = json.loads(r.body)["errors"][0]
    assert error["code"] == "MANIFEST_INVALID"
    assert needle in error["message"]


async def test_manifest_over_the_size_limit_is_413(
    tmp_path: Path, database_url: str | None
) -> None:
    async with running_registry(
        make_settings(tmp_path / "d", database_url, max_manifest_bytes=1000)
    ) as reg:
        r = await reg.push_manifest("big", "t", b"{" + b" " * 2000 + b"}")
        assert r.status == 413


async def test_four_megabyte_manifest_is_accepted(reg: RunningRegistry) -> None:
    config = b"{}"
    await reg.push_blob("big", config)
    body = image_manifest(config, [], annotations={"pad": "x" * (4 * 1024 * 1024 - 400)})
    assert len(body) < 4 * 1024 * 1024
    r = await reg.push_manifest("big", "t", body)
    assert r.status == 201


async def test_put_by_digest_must_match_the_content(reg: RunningRegistry) -> None:
    await reg.push_blob("d", b"{}")
    body = image_manifest(b"{}", [])
    r = await reg.push_manifest("d", sha256(b"other"), body)
    assert r.status == 400
    assert r.error_code() == "DIGEST_INVALID"


async def test_several_tags_in_one_put(reg: RunningRegistry) -> None:
    await reg.push_blob("t", b"{}")
    body = image_manifest(b"{}", [])
    tags = [f"v{i}" for i in range(12)]
    query = "&".join(f"tag={t}" for t in tags)
    async with reg.request(
        "PUT",
        f"/v2/t/manifests/{sha256(body)}?{query}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    ) as r:
        assert r.status == 201
        assert sorted(r.headers.getall("OCI-Tag")) == sorted(tags)
    async with reg.request("GET", "/v2/t/tags/list") as r:
        assert (await r.json())["tags"] == sorted(tags)


async def test_unknown_and_invalid_manifest_references(reg: RunningRegistry) -> None:
    async with reg.request("GET", "/v2/x/manifests/.INVALID_MANIFEST_NAME") as r:
        assert r.status == 404
        assert await error_code(r) == "MANIFEST_UNKNOWN"
    async with reg.request("GET", "/v2/x/manifests/sha256:totallywrong") as r:
        assert r.status == 400
        assert await error_code(r) == "DIGEST_INVALID"
    r = await reg.push_manifest("x", "-bad-tag", b"{}")
    assert r.status == 400


async def test_invalid_repository_names(reg: RunningRegistry) -> None:
    for name in ("UPPER/case", "a//b", "-lead", "a/../b"):
        async with reg.request("GET", f"/v2/{name}/tags/list") as r:
            assert r.status in (400, 404), name
            assert await error_code(r) in ("NAME_INVALID", "NAME_UNKNOWN", "NOT_FOUND"), name
    async with reg.request("GET", "/v2/" + "a" * 256 + "/tags/list") as r:
        assert r.status == 400
        assert await error_code(r) == "NAME_INVALID"


# -- deletes ---------------------------------------------------------------------------------
async def test_delete_by_tag_removes_only_the_tag(reg: RunningRegistry) -> None:
    digest, body, _ = await reg.push_image("del", "keep")
    async with reg.request(
        "PUT", "/v2/del/manifests/drop", data=body, headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 201
    async with reg.request("DELETE", "/v2/del/manifests/drop") as r:
        assert r.status == 202
    async with reg.request("GET", "/v2/del/manifests/drop") as r:
        assert r.status == 404
    async with reg.request("GET", f"/v2/del/manifests/{digest}") as r:
        assert r.status == 200
    async with reg.request("DELETE", "/v2/del/manifests/drop") as r:
        assert r.status == 404


async def test_delete_by_digest_removes_manifest_and_its_tags_then_blobs_can_go(
    reg: RunningRegistry,
) -> None:
    digest, _, blobs = await reg.push_image("del", "t1")
    async with reg.request("DELETE", f"/v2/del/blobs/{blobs[1]}") as r:
        assert r.status == 405  # still referenced: a tag must never point at missing content
        assert await error_code(r) == "UNSUPPORTED"
    async with reg.request("DELETE", f"/v2/del/manifests/{digest}") as r:
        assert r.status == 202
    async with reg.request("GET", "/v2/del/manifests/t1") as r:
        assert r.status == 404
    async with reg.request("GET", f"/v2/del/manifests/{digest}") as r:
        assert r.status == 404
    async with reg.request("DELETE", f"/v2/del/blobs/{blobs[1]}") as r:
        assert r.status == 202
    async with reg.request("GET", f"/v2/del/blobs/{blobs[1]}") as r:
        assert r.status == 404
    async with reg.request("DELETE", f"/v2/del/manifests/{digest}") as r:
        assert r.status == 404


async def test_index_children_cannot_be_deleted_before_the_index(reg: RunningRegistry) -> None:
    child, body, _ = await reg.push_image("idx", "child")
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, body)]}
    ).encode()
    r = await reg.push_manifest("idx", "multi", index, OCI_INDEX)
    assert r.status == 201
    async with reg.request("DELETE", f"/v2/idx/manifests/{child}") as r:
        assert r.status == 405
    async with reg.request("DELETE", f"/v2/idx/manifests/{sha256(index)}") as r:
        assert r.status == 202
    async with reg.request("DELETE", f"/v2/idx/manifests/{child}") as r:
        assert r.status == 202


# -- discovery -------------------------------------------------------------------------------
async def test_tag_listing_is_lexical_and_paginated(reg: RunningRegistry) -> None:
    _, body, _ = await reg.push_image("tags", "b")
    for tag in ("TEST0", "a", "c", "test0", "B"):
        r = await reg.push_manifest("tags", tag, body)
        assert r.status == 201
    every = sorted(["TEST0", "a", "b", "c", "test0", "B"])
    async with reg.request("GET", "/v2/tags/tags/list") as r:
        assert await r.json() == {"name": "tags", "tags": every}
        assert "Link" not in r.headers
    async with reg.request("GET", "/v2/tags/tags/list?n=2") as r:
        assert (await r.json())["tags"] == every[:2]
        assert r.headers["Link"] == f'</v2/tags/tags/list?n=2&last={every[1]}>; rel="next"'
    async with reg.request("GET", f"/v2/tags/tags/list?n=2&last={every[1]}") as r:
        assert (await r.json())["tags"] == every[2:4]
    async with reg.request("GET", f"/v2/tags/tags/list?n=10&last={every[3]}") as r:
        assert (await r.json())["tags"] == every[4:]
        assert "Link" not in r.headers
    async with reg.request("GET", "/v2/tags/tags/list?n=0") as r:
        assert (await r.json())["tags"] == []
    async with reg.request("GET", "/v2/tags/tags/list?n=-1") as r:
        assert r.status == 400
    # An n past 64 bits, or past what int() reads, is a request for everything (one page).
    for huge in ("9" * 30, "9" * 5000):
        async with reg.request("GET", f"/v2/tags/tags/list?n={huge}") as r:
            assert r.status == 200
            assert (await r.json())["tags"] == every
    async with reg.request("GET", "/v2/nothing/tags/list") as r:
        assert r.status == 404
        assert await error_code(r) == "NAME_UNKNOWN"


async def test_catalog_lists_repositories_with_content(reg: RunningRegistry) -> None:
    for name in ("c/one", "a", "b/two"):
        await reg.push_image(name, "t")
    async with reg.request("POST", "/v2/only-an-upload/blobs/uploads/") as r:
        assert r.status == 202
    async with reg.request("GET", "/v2/_catalog") as r:
        assert (await r.json())["repositories"] == ["a", "b/two", "c/one"]
    async with reg.request("GET", "/v2/_catalog?n=1") as r:
        assert (await r.json())["repositories"] == ["a"]
        assert r.headers["Link"] == '</v2/_catalog?n=1&last=a>; rel="next"'
    async with reg.request("GET", "/v2/_catalog?n=5&last=a") as r:
        assert (await r.json())["repositories"] == ["b/two", "c/one"]


async def test_referrers(reg: RunningRegistry) -> None:
    subject, subject_body, _ = await reg.push_image("ref", "base")
    empty = b"{}"
    await reg.push_blob("ref", empty)
    sig_config = b'{"sig":1}'
    await reg.push_blob("ref", sig_config)
    subject_descriptor = descriptor(OCI_MANIFEST, subject_body)
    with_artifact_type = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": descriptor("application/vnd.oci.empty.v1+json", empty),
            "layers": [descriptor("application/vnd.oci.empty.v1+json", empty)],
            "subject": subject_descriptor,
            "annotations": {"org.example": "sbom"},
        }
    ).encode()
    with_config_type = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.example.signature", sig_config),
            "layers": [],
            "subject": subject_descriptor,
            "annotations": {"org.example": "sig"},
        }
    ).encode()
    for body in (with_artifact_type, with_config_type):
        r = await reg.push_manifest("ref", sha256(body), body)
        assert r.status == 201
        assert r.headers["OCI-Subject"] == subject
    async with reg.request("GET", f"/v2/ref/referrers/{subject}") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == OCI_INDEX
        assert "OCI-Filters-Applied" not in r.headers
        index = await r.json(content_type=None)
    assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
    found = {m["digest"]: m for m in index["manifests"]}
    assert found[sha256(with_artifact_type)] == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(with_artifact_type),
        "size": len(with_artifact_type),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"org.example": "sbom"},
    }
    assert found[sha256(with_config_type)]["artifactType"] == "application/vnd.example.signature"
    async with reg.request(
        "GET", f"/v2/ref/referrers/{subject}?artifactType=application/vnd.example.signature"
    ) as r:
        assert r.headers["OCI-Filters-Applied"] == "artifactType"
        assert [m["digest"] for m in (await r.json(content_type=None))["manifests"]] == [
            sha256(with_config_type)
        ]
    async with reg.request("GET", f"/v2/ref/referrers/{sha256(b'no referrers')}") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == OCI_INDEX
        assert (await r.json(content_type=None))["manifests"] == []
    async with reg.request("GET", "/v2/ref/referrers/sha256:bad") as r:
        assert r.status == 400


async def test_subject_may_not_exist_yet(reg: RunningRegistry) -> None:
    await reg.push_blob("ref", b"{}")
    absent = {"mediaType": OCI_MANIFEST, "digest": sha256(b"future"), "size": 6}
    body = image_manifest(b"{}", [], subject=absent)
    r = await reg.push_manifest("ref", sha256(body), body)
    assert r.status == 201
    assert r.headers["OCI-Subject"] == sha256(b"future")
    async with reg.request("GET", f"/v2/ref/referrers/{sha256(b'future')}") as r:
        assert len((await r.json(content_type=None))["manifests"]) == 1


# -- routing and concurrency -----------------------------------------------------------------
async def test_registries_are_routed_by_host_and_share_blob_bytes(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    async with reg.services.meta.writing() as q:
        await q.create_registry("second", "second.localhost:5000")
    await reg.services.resolver.refresh()
    _digest, _, blobs = await reg.push_image("shared", "v1")
    other = {"Host": "second.localhost:5000"}
    async with reg.request("GET", "/v2/shared/manifests/v1", headers=other) as r:
        assert r.status == 404
    async with reg.request("GET", "/v2/_catalog", headers=other) as r:
        assert (await r.json())["repositories"] == []
    async with reg.request(
        "POST",
        f"/v2/shared/blobs/uploads/?digest={blobs[1]}",
        data=b"layer-" + b"x" * 100,
        headers=other,
    ) as r:
        assert r.status == 201
    files = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 2  # config + layer, stored once for both registries
    async with reg.request(
        "GET", "/v2/shared/manifests/v1", headers={"Host": "unknown.example:1"}
    ) as r:
        assert r.status == 200  # unknown hosts reach the default registry


async def test_concurrent_uploads_of_the_same_blob(reg: RunningRegistry, tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    results = await asyncio.gather(*(reg.push_blob(f"c{i}", data) for i in range(12)))
    assert set(results) == {sha256(data)}
    for i in range(12):
        async with reg.request("GET", f"/v2/c{i}/blobs/{sha256(data)}") as r:
            assert await r.read() == data
    assert len([p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]) == 1


async def test_concurrent_pushes_to_one_tag_leave_one_consistent_winner(
    reg: RunningRegistry,
) -> None:
    await reg.push_blob("race", b"{}")
    bodies = [image_manifest(b"{}", [], annotations={"n": str(i)}) for i in range(10)]
    responses = await asyncio.gather(*(reg.push_manifest("race", "latest", b) for b in bodies))
    assert all(r.status == 201 for r in responses)
    async with reg.request("GET", "/v2/race/manifests/latest") as r:
        assert await r.read() in bodies
    for body in bodies:
        async with reg.request("HEAD", f"/v2/race/manifests/{sha256(body)}") as r:
            assert r.status == 200


async def test_unsupported_method_and_unknown_endpoint(reg: RunningRegistry) -> None:
    async with reg.request("POST", "/v2/x/manifests/latest") as r:
        assert r.status == 405
        assert await error_code(r) == "UNSUPPORTED"
    async with reg.request("GET", "/v2/x/nonsense") as r:
        assert r.status == 404


async def test_final_put_with_an_out_of_order_chunk_is_416_and_keeps_the_session(
    reg: RunningRegistry,
) -> None:
    data = b"0123456789"
    async with reg.request("POST", "/v2/r/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with reg.request("PATCH", location, data=data[:4], headers={"Content-Range": "0-3"}) as r:
        assert r.status == 202
    async with reg.request(
        "PUT", f"{location}?digest={sha256(data)}", data=data[6:], headers={"Content-Range": "6-9"}
    ) as r:
        assert r.status == 416
        assert r.headers["Range"] == "0-3"
        assert r.headers["Location"] == location
    async with reg.request(
        "PUT", f"{location}?digest={sha256(data)}", data=data[4:], headers={"Content-Range": "4-9"}
    ) as r:
        assert r.status == 201
