"""Image locking over HTTP: `PATCH /acr/v1/…` sets changeable attributes and answers the
item as GET does; GETs and listings show them; the OCI surface refuses locked writes,
deletes and pulls with ACR's `REGISTRY_DISALLOWED_OPERATION` (405); bad bodies are 400s
naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.app import RunningRegistry, image_manifest, make_settings, running_registry

DISALLOWED = (405, "REGISTRY_DISALLOWED_OPERATION")


async def _call(reg: RunningRegistry, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    async with reg.request(method, path, data=data) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


def _code(answer: tuple[int, Any]) -> tuple[int, str]:
    return answer[0], answer[1]["errors"][0]["code"]


async def test_patch_sets_attributes_and_every_surface_honours_them(
    tmp_path: Path, database_url: str | None
) -> None:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as reg:
        digest, _, _ = await reg.push_image("app", "v1", seed=b"one")
        status, body = await _call(reg, "PATCH", "/acr/v1/app/_tags/v1", {"writeEnabled": False})
        assert status == 200, body
        assert body["tag"]["name"] == "v1" and body["imageName"] == "app"
        assert body["tag"]["changeableAttributes"] == {
            "deleteEnabled": True,
            "writeEnabled": False,
            "readEnabled": True,
            "listEnabled": True,
        }
        status, shown = await _call(reg, "GET", "/acr/v1/app/_tags/v1")
        assert shown == body
        status, listed = await _call(reg, "GET", "/acr/v1/app/_tags")
        assert listed["tags"][0]["changeableAttributes"]["writeEnabled"] is False

        # /v2: moving the tag and deleting it are refused, in ACR's words.
        other, _, _ = await reg.push_image("app", "v2", seed=b"two")
        status, manifest = await _call(reg, "GET", f"/acr/v1/app/_manifests/{other}")
        content = image_manifest(b"{}", [])
        answer = await reg.push_manifest("app", "v1", content)
        assert (answer.status, answer.error_code()) == DISALLOWED
        assert b"app:v1" in answer.body and b"locked" in answer.body
        assert _code(await _call(reg, "DELETE", "/v2/app/manifests/v1")) == DISALLOWED
        assert _code(await _call(reg, "DELETE", f"/v2/app/manifests/{digest}")) == DISALLOWED
        assert _code(await _call(reg, "DELETE", "/acr/v1/app/_tags/v1")) == DISALLOWED
        assert _code(await _call(reg, "DELETE", "/acr/v1/app")) == DISALLOWED
        status, tags = await _call(reg, "GET", "/v2/app/tags/list")
        assert sorted(tags["tags"]) == ["v1", "v2"]

        # A manifest lock, by digest (`az acr manifest update-metadata repo@digest`).
        status, body = await _call(
            reg, "PATCH", f"/acr/v1/app/_manifests/{other}", {"deleteEnabled": False}
        )
        assert status == 200, body
        assert body["manifest"]["digest"] == other
        assert body["manifest"]["changeableAttributes"]["deleteEnabled"] is False
        assert body["manifest"]["tags"] == manifest["manifest"]["tags"] == ["v2"]
        assert _code(await _call(reg, "DELETE", f"/v2/app/manifests/{other}")) == DISALLOWED

        # The repository: readEnabled false refuses pulls, listEnabled false hides it.
        status, body = await _call(
            reg, "PATCH", "/acr/v1/app", {"readEnabled": False, "listEnabled": False}
        )
        assert status == 200, body
        assert body["changeableAttributes"]["readEnabled"] is False
        assert body["manifestCount"] == 2 and body["tagCount"] == 2
        assert _code(await _call(reg, "GET", "/v2/app/manifests/v2")) == DISALLOWED
        status, catalog = await _call(reg, "GET", "/v2/_catalog")
        assert catalog["repositories"] == []
        status, shown = await _call(reg, "GET", "/acr/v1/app")
        assert shown == body

        # Unlocking everything makes every refused operation work.
        for path in ("/acr/v1/app", "/acr/v1/app/_tags/v1", f"/acr/v1/app/_manifests/{other}"):
            unlock = {
                "deleteEnabled": True,
                "writeEnabled": True,
                "readEnabled": True,
                "listEnabled": True,
            }
            status, body = await _call(reg, "PATCH", path, unlock)
            assert status == 200, body
        status, _ = await _call(reg, "GET", "/v2/app/manifests/v2")
        assert status == 200
        status, deleted = await _call(reg, "DELETE", "/acr/v1/app")
        assert status == 202 and sorted(deleted["tagsDeleted"]) == ["v1", "v2"]


async def test_bad_patches_are_refused_naming_the_field(
    tmp_path: Path, database_url: str | None
) -> None:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as reg:
        await reg.push_image("app", "v1")
        cases: list[tuple[str, Any, tuple[int, str], str]] = [
            ("/acr/v1/app/_tags/v1", {"writeEnabled": "no"}, (400, "INVALID_REQUEST"), "write"),
            ("/acr/v1/app/_tags/v1", {"teleportEnabled": True}, (400, "INVALID_REQUEST"), "tel"),
            ("/acr/v1/app/_tags/v1", b"{not json", (400, "INVALID_REQUEST"), "JSON"),
            ("/acr/v1/app/_tags/nope", {"writeEnabled": False}, (404, "TAG_UNKNOWN"), "nope"),
            ("/acr/v1/app/_manifests/sha256:zz", {}, (400, "DIGEST_INVALID"), "digest"),
            ("/acr/v1/other", {"writeEnabled": False}, (404, "NAME_UNKNOWN"), "other"),
        ]
        for path, body, expected, named in cases:
            answer = await _call(reg, "PATCH", path, body)
            assert _code(answer) == expected, (path, answer)
            assert named in answer[1]["errors"][0]["message"], answer
        _, shown = await _call(reg, "GET", "/acr/v1/app/_tags/v1")
        assert all(shown["tag"]["changeableAttributes"].values())
