"""The portal's repository, tag and manifest pages over real pushed content (SQLite and
PostgreSQL): listings searched, sorted and paged (10,000 tags, 100 a page), per tag its
platforms, size and pull commands; a manifest's index tree, layers, config, referrers and
raw bytes; deleting a tag through its confirmation page; and who may do what."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from tests.support.app import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    RunningRegistry,
    descriptor,
    make_settings,
    running_registry,
    sha256,
)
from tests.support.identity import Credential, IdentityClient, owner_credential
from tests.support.portal import PortalClient
from transship.metadata import schema as s
from transship.metadata.scope import utcnow

GROUP = "default"
REPO = "team/app"


def _config(arch: str, **extra: Any) -> bytes:
    return json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {
                "Entrypoint": ["/bin/app", "--serve"],
                "Cmd": ["--port", "8080"],
                "Env": ["PATH=/usr/bin", "MODE=portal"],
                "Labels": {"org.opencontainers.image.title": "app"},
            },
            "history": [
                {"created_by": "COPY app /bin/app"},
                {"created_by": "ENV MODE=portal", "empty_layer": True},
            ],
            **extra,
        }
    ).encode()


@dataclass
class Content:
    reg: RunningRegistry
    owner: Credential
    admin: IdentityClient
    image: str  # digest of the amd64 image
    index: str  # digest of the index
    signature: str  # digest of the referrer

    def page(self, tail: str = "") -> str:
        return f"/portal/registries/{self.owner.subscription_id}/{GROUP}/default{tail}"

    async def browser(self, credential: Credential | None = None) -> PortalClient:
        who = credential or self.owner
        client = PortalClient(self.reg.url)
        signed = await client.sign_in(who.tenant_id, who.client_id, who.secret)
        assert signed.status == 303, signed.text[:2000]
        return client


async def _image(reg: RunningRegistry, arch: str, layers: list[bytes]) -> tuple[str, bytes, int]:
    config = _config(arch)
    await reg.push_blob(REPO, config)
    for layer in layers:
        await reg.push_blob(REPO, layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
    ).encode()
    pushed = await reg.push_manifest(REPO, sha256(body), body)
    assert pushed.status == 201, pushed.body
    return sha256(body), body, len(config) + sum(len(x) for x in layers)


@pytest.fixture
async def content(tmp_path: Path, database_url: str | None) -> AsyncIterator[Content]:
    data_dir = tmp_path / "data"
    async with running_registry(make_settings(data_dir, database_url)) as reg:
        owner = owner_credential(data_dir)
        amd, amd_body, _ = await _image(reg, "amd64", [b"a" * 3000, b"b" * 1000])
        _, arm_body, _ = await _image(reg, "arm64", [b"c" * 500])
        index_body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        **descriptor(OCI_MANIFEST, amd_body),
                        "platform": {"os": "linux", "architecture": "amd64"},
                    },
                    {
                        **descriptor(OCI_MANIFEST, arm_body),
                        "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                    },
                ],
            }
        ).encode()
        assert (await reg.push_manifest(REPO, "multi", index_body, OCI_INDEX)).status == 201
        assert (await reg.push_manifest(REPO, "v1", amd_body)).status == 201
        empty = b"{}"
        await reg.push_blob(REPO, empty)
        signature_blob = b"signature bytes"
        await reg.push_blob(REPO, signature_blob)
        signature = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                "config": descriptor("application/vnd.oci.empty.v1+json", empty),
                "layers": [descriptor("application/octet-stream", signature_blob)],
                "subject": descriptor(OCI_MANIFEST, amd_body),
            }
        ).encode()
        assert (await reg.push_manifest(REPO, sha256(signature), signature)).status == 201
        await reg.push_image("other/tool", "latest", seed=b"t")
        yield Content(
            reg,
            owner,
            IdentityClient(reg.http, reg.url, owner),
            amd,
            sha256(index_body),
            sha256(signature),
        )


async def test_repositories_are_listed_searched_and_sorted(content: Content) -> None:
    browser = await content.browser()
    try:
        page = await browser.get(content.page("/repositories"))
        assert page.status == 200, page.text[:2000]
        rows = page.html.get("repositories").find_all("tr", data_repository=None)
        assert [r.attrs["data-repository"] for r in rows] == ["other/tool", "team/app"]
        found = await browser.get(content.page("/repositories?q=team"))
        rows = found.html.get("repositories").find_all("tr", data_repository=None)
        assert [r.attrs["data-repository"] for r in rows] == ["team/app"]
        # team/app holds far more bytes: first by size.
        by_size = await browser.get(content.page("/repositories?sort=size"))
        rows = by_size.html.get("repositories").find_all("tr", data_repository=None)
        assert rows[0].attrs["data-repository"] == "team/app"
        # A LIKE wildcard is searched literally.
        none = await browser.get(content.page("/repositories?q=%25"))
        assert none.html.get("repositories").find_all("tr", data_repository=None) == []
    finally:
        await browser.close()


async def test_tags_show_platforms_size_and_pull_commands(content: Content) -> None:
    browser = await content.browser()
    try:
        page = await browser.get(content.page(f"/repositories/{REPO}"))
        assert page.status == 200, page.text[:2000]
        rows = {r.attrs["data-tag"]: r for r in page.html.get("tags").find_all("tr", data_tag=None)}
        assert sorted(rows) == ["multi", "v1"]
        assert "linux/amd64" in rows["multi"].text and "linux/arm64/v8" in rows["multi"].text
        assert "linux/amd64" in rows["v1"].text
        commands = [c.text for c in rows["v1"].find_all("code", class_="pull-command")]
        registry = await content.reg.services.registries.get("default")
        assert registry is not None and registry.login_server
        login = registry.login_server
        assert any(c == f"docker pull {login}/team/app:v1" for c in commands)
        assert any(c.startswith("podman pull ") for c in commands)
        assert any(c.startswith("skopeo copy docker://") for c in commands)
        # The index's size counts its children's blobs: larger than the amd64 image alone.
        size = {
            name: int(row.find_all("td", data_size=None)[0].attrs["data-size"])
            for name, row in rows.items()
        }
        assert size["multi"] > size["v1"] > 4000
        by_size = await browser.get(content.page(f"/repositories/{REPO}?sort=size"))
        order = [
            r.attrs["data-tag"] for r in by_size.html.get("tags").find_all("tr", data_tag=None)
        ]
        assert order == ["multi", "v1"]
        missing = await browser.get(content.page("/repositories/no/such"))
        assert missing.status == 404 and missing.html.get("error") is not None
    finally:
        await browser.close()


async def test_a_manifest_page_shows_index_layers_config_referrers_and_raw(
    content: Content,
) -> None:
    browser = await content.browser()
    try:
        index = await browser.get(content.page(f"/repositories/{REPO}/manifests/multi"))
        assert index.status == 200, index.text[:2000]
        tree = index.html.get("index-tree")
        platforms = {
            li.attrs["data-platform"]: li for li in tree.find_all("li", data_platform=None)
        }
        assert sorted(platforms) == ["linux/amd64", "linux/arm64/v8"]
        child = platforms["linux/amd64"].find_all("a")[0].attrs["href"]
        assert child.endswith(f"/manifests/{content.image}")
        raw = index.html.get("raw-manifest").text
        assert json.loads(raw)["mediaType"] == OCI_INDEX

        image = await browser.get(child)
        assert image.status == 200, image.text[:2000]
        bars = image.html.get("layers").find_all("div", class_="layer-bar")
        assert [int(b.attrs["data-size"]) for b in bars] == [3000, 1000]
        assert bars[0].attrs["style"] == "width:75.00%"
        config = image.html.get("config").text
        assert '["/bin/app", "--serve"]' in config and "MODE=portal" in config
        assert "org.opencontainers.image.title=app" in config and "COPY app /bin/app" in config
        referrers = image.html.get("referrers").find_all("li", data_referrer=None)
        assert [r.attrs["data-referrer"] for r in referrers] == [content.signature]
        assert "cosign" in referrers[0].text
    finally:
        await browser.close()


async def test_deleting_a_tag_asks_first_and_keeps_the_manifest(content: Content) -> None:
    browser = await content.browser()
    try:
        tag_page = content.page(f"/repositories/{REPO}/manifests/v1")
        confirm = await browser.get(tag_page + "/delete")
        assert confirm.status == 200
        assert "team/app:v1" in confirm.html.get("content").text
        done = await browser.submit(tag_page + "/delete", "confirm-delete", {})
        assert done.status == 303, done.text[:2000]
        listing = await browser.get(content.page(f"/repositories/{REPO}"))
        assert [
            r.attrs["data-tag"] for r in listing.html.get("tags").find_all("tr", data_tag=None)
        ] == ["multi"]
        # The manifest is still there by digest.
        by_digest = await browser.get(
            content.page(f"/repositories/{REPO}/manifests/{content.image}")
        )
        assert by_digest.status == 200
    finally:
        await browser.close()


async def test_a_puller_browses_but_may_not_delete(content: Content) -> None:
    puller = await content.admin.create_service_principal("puller")
    registry_id = IdentityClient.registry_id(content.owner.subscription_id, GROUP, "default")
    await content.admin.assign(registry_id, puller.object_id, "AcrPull")
    browser = await content.browser(puller)
    try:
        home = await browser.get("/portal/")
        assert [
            r.attrs["data-registry"]
            for r in home.html.get("registries").find_all("tr", data_registry=None)
        ] == ["default"]
        page = await browser.get(content.page(f"/repositories/{REPO}/manifests/v1"))
        assert page.status == 200 and page.html.by_id("delete-manifest") is None
        refused = await browser.get(content.page(f"/repositories/{REPO}/manifests/v1/delete"))
        assert refused.status == 403 and "AuthorizationFailed" in refused.text
        # Posting anyway (with a valid CSRF token): the same 403, the tag stays.
        token = page.csrf("sign-out")
        posted = await browser.post(
            content.page(f"/repositories/{REPO}/manifests/v1/delete"), {"csrf_token": token}
        )
        assert posted.status == 403
        again = await browser.get(content.page(f"/repositories/{REPO}"))
        assert "v1" in [
            r.attrs["data-tag"] for r in again.html.get("tags").find_all("tr", data_tag=None)
        ]
        # Its registry page shows no settings (registries/read is not AcrPull's).
        registry = await browser.get(content.page())
        assert registry.status == 200 and registry.html.by_id("registry-settings") is None
    finally:
        await browser.close()


async def test_ten_thousand_tags_are_paged_a_hundred_at_a_time(content: Content) -> None:
    services = content.reg.services
    now = utcnow()
    async with services.meta.writing() as q:
        default = await services.registries.get("default")
        assert default is not None
        repo_id = await q.repository_id(default.id, REPO)
        rows = [
            {
                "repository_id": repo_id,
                "name": f"t{i:05d}",
                "digest": content.image,
                "created_at": now,
                "updated_at": now + timedelta(seconds=i),
            }
            for i in range(10_000)
        ]
        await q.conn.execute(insert(s.tags), rows)
    browser = await content.browser()
    try:
        first = await browser.get(content.page(f"/repositories/{REPO}"))
        assert first.status == 200
        tags = [r.attrs["data-tag"] for r in first.html.get("tags").find_all("tr", data_tag=None)]
        assert len(tags) == 100 and tags[0] == "multi" and tags[1] == "t00000"
        assert "Page 1 of 101" in first.html.get("page-status").text
        assert "10002 tags" in first.html.get("page-status").text
        last = await browser.get(content.page(f"/repositories/{REPO}?page=101"))
        tags = [r.attrs["data-tag"] for r in last.html.get("tags").find_all("tr", data_tag=None)]
        assert tags == ["t09999", "v1"]
        newest = await browser.get(content.page(f"/repositories/{REPO}?sort=date"))
        tags = [r.attrs["data-tag"] for r in newest.html.get("tags").find_all("tr", data_tag=None)]
        assert tags[0] == "t09999"
        found = await browser.get(content.page(f"/repositories/{REPO}?q=t0999"))
        tags = [r.attrs["data-tag"] for r in found.html.get("tags").find_all("tr", data_tag=None)]
        assert tags == [f"t0999{i}" for i in range(10)]
    finally:
        await browser.close()
