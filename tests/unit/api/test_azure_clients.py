"""What the real Azure CLI and SDK need that their end-to-end tests (tests/e2e/test_azure_*.py)
found missing, each pinned down in-process:

- ``az cloud register --endpoint-resource-manager https://host/`` asks for
  ``//metadata/endpoints?api-version=…``: a 308 to the one-slash path, query kept;
- azure-core's poller waits its default 30 s between polls unless told otherwise, so an
  import operation's status answers ``Retry-After`` while it runs;
- ``az acr repository show/untag/delete --image`` use ``/acr/v1/{repo}``,
  ``/acr/v1/{repo}/_tags/{tag}`` and ``/acr/v1/{repo}/_manifests/{digest}``;
- ``az role assignment create --assignee <appId>`` and ``az role assignment list`` use a
  Microsoft Graph subset (``/v1.0``), and ``list`` names each assignment's role by matching
  its ``roleDefinitionId`` against the role definitions' ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from yarl import URL

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import AUTHZ, Credential, IdentityClient, owner_credential
from tests.support.imports import Management


@contextlib.asynccontextmanager
async def _owner(reg: RunningRegistry, data_dir: Path) -> AsyncIterator[IdentityClient]:
    yield IdentityClient(reg.http, reg.url, owner_credential(data_dir))


async def test_double_slash_paths_redirect_keeping_the_query(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        url = URL(f"{reg.url}//metadata/endpoints?api-version=2022-09-01", encoded=True)
        async with reg.http.get(url, allow_redirects=False) as r:
            assert r.status == 308
            assert r.headers["Location"] == "/metadata/endpoints?api-version=2022-09-01"
        async with reg.http.get(url) as r:  # followed, as requests (az) follows it
            assert r.status == 200
            assert (await r.json())["authentication"]["loginEndpoint"] == reg.url + "/"


async def _stalling_upstream() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts and never answers: an import from it keeps running."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_operation_status_says_retry_after_while_running(tmp_path: Path) -> None:
    upstream, port = await _stalling_upstream()
    settings = make_settings(
        tmp_path / "data",
        None,
        upstreams={"stall.example": {"endpoint": f"http://127.0.0.1:{port}", "insecure": True}},
        upstream_read_timeout=30.0,
    )
    try:
        async with running_registry(settings) as reg:
            admin = Management(reg, tmp_path / "data")
            await admin.create_registry("myregistry")
            operation = await admin.start_import(
                "myregistry",
                {"source": {"registryUri": "stall.example", "sourceImage": "app:v1"}},
            )
            assert operation.status == 202 and operation.async_operation is not None
            status, body, headers = await admin.call("GET", operation.async_operation.split("?")[0])
            assert (status, body["status"]) == (200, "InProgress")
            assert headers["Retry-After"] == "1"

            await admin.cancel(operation)
            final = await admin.wait(operation)
            assert final["status"] == "Canceled"
            _, _, headers = await admin.call("GET", operation.async_operation.split("?")[0])
            assert "Retry-After" not in headers
    finally:
        upstream.close()


async def _acr(reg: RunningRegistry, method: str, path: str) -> tuple[int, Any]:
    async with reg.request(method, path) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


async def test_acr_repository_tag_and_manifest_attributes(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        digest, _, _ = await reg.push_image("team/app", "v1")
        status, repo = await _acr(reg, "GET", "/acr/v1/team/app")
        assert status == 200, repo
        assert repo["imageName"] == "team/app"
        assert (repo["tagCount"], repo["manifestCount"]) == (1, 1)
        assert repo["createdTime"] and repo["lastUpdateTime"]
        assert repo["changeableAttributes"]["deleteEnabled"] is True

        status, tag = await _acr(reg, "GET", "/acr/v1/team/app/_tags/v1")
        assert status == 200, tag
        assert tag["imageName"] == "team/app"
        assert (tag["tag"]["name"], tag["tag"]["digest"]) == ("v1", digest)

        status, manifest = await _acr(reg, "GET", f"/acr/v1/team/app/_manifests/{digest}")
        assert status == 200, manifest
        assert manifest["manifest"]["digest"] == digest
        assert manifest["manifest"]["tags"] == ["v1"]
        assert (manifest["manifest"]["os"], manifest["manifest"]["architecture"]) == (
            "linux",
            "amd64",
        )

        status, missing = await _acr(reg, "GET", "/acr/v1/team/app/_tags/nope")
        assert (status, missing["errors"][0]["code"]) == (404, "TAG_UNKNOWN")
        status, missing = await _acr(reg, "GET", "/acr/v1/nosuch/repo")
        assert (status, missing["errors"][0]["code"]) == (404, "NAME_UNKNOWN")


async def test_acr_untag_and_delete_manifest(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        digest, body, _ = await reg.push_image("team/app", "v1")
        await reg.push_manifest("team/app", "v2", body)
        # untag: the tag goes, the manifest stays
        status, _ = await _acr(reg, "DELETE", "/acr/v1/team/app/_tags/v1")
        assert status == 202
        status, tags = await _acr(reg, "GET", "/acr/v1/team/app/_tags")
        assert [t["name"] for t in tags["tags"]] == ["v2"]
        status, missing = await _acr(reg, "DELETE", "/acr/v1/team/app/_tags/v1")
        assert (status, missing["errors"][0]["code"]) == (404, "TAG_UNKNOWN")
        # a manifest by digest: with its remaining tags
        status, _ = await _acr(reg, "DELETE", f"/acr/v1/team/app/_manifests/{digest}")
        assert status == 202
        status, listed = await _acr(reg, "GET", "/acr/v1/team/app/_manifests")
        assert listed["manifests"] == []
        status, tags = await _acr(reg, "GET", "/acr/v1/team/app/_tags")
        assert tags["tags"] == []
        # PATCH (`az acr repository update`) of a deleted tag: the tag is unknown
        status, refused = await _acr(reg, "PATCH", "/acr/v1/team/app/_tags/v2")
        assert (status, refused["errors"][0]["code"]) == (404, "TAG_UNKNOWN")


async def _graph(
    client: IdentityClient, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": await client.bearer()}
    async with client.http.request(method, client.url + path, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_graph_service_principals_and_get_by_ids(tmp_path: Path) -> None:
    async with (
        running_registry(make_settings(tmp_path / "data", None)) as reg,
        _owner(reg, tmp_path / "data") as owner,
    ):
        sp = await owner.create_service_principal("graph-target")
        other_tenant: Credential = await owner.create_tenant(
            "7e7e7e7e-2222-4333-8444-555566667777", "Other"
        )

        status, found = await _graph(
            owner,
            "GET",
            f"/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{sp.client_id}')",
        )
        assert status == 200, found
        assert [(o["id"], o["appId"]) for o in found["value"]] == [(sp.object_id, sp.client_id)]
        assert found["value"][0]["servicePrincipalNames"] == [sp.client_id]
        status, same = await _graph(
            owner, "GET", f"/v1.0/servicePrincipals?$filter=appId eq '{sp.client_id}'"
        )
        assert same["value"] == found["value"]
        status, none = await _graph(
            owner,
            "GET",
            "/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq "
            f"'{other_tenant.client_id}')",
        )
        assert (status, none["value"]) == (200, [])  # another tenant's: not visible
        status, refused = await _graph(
            owner, "GET", "/v1.0/servicePrincipals?$filter=startswith(displayName,'x')"
        )
        assert (status, refused["error"]["code"]) == (400, "Request_UnsupportedQuery")

        ids = [sp.object_id, other_tenant.object_id, "00000000-0000-0000-0000-000000000000"]
        status, objects = await _graph(
            owner, "POST", "/v1.0/directoryObjects/getByIds", {"ids": ids, "types": ["user"]}
        )
        assert status == 200, objects
        assert [(o["@odata.type"], o["id"]) for o in objects["value"]] == [
            ("#microsoft.graph.servicePrincipal", sp.object_id)
        ]
        status, refused = await _graph(owner, "POST", "/v1.0/directoryObjects/getByIds", {})
        assert (status, refused["error"]["code"]) == (400, "Request_BadRequest")

        # A principal without directory rights may not read it.
        plain = IdentityClient(reg.http, reg.url, sp)
        status, denied = await _graph(
            plain, "POST", "/v1.0/directoryObjects/getByIds", {"ids": ids}
        )
        assert (status, denied["error"]["code"]) == (403, "AuthorizationFailed")


async def test_assignment_names_a_builtin_role_as_the_definitions_list_does(
    tmp_path: Path,
) -> None:
    async with (
        running_registry(make_settings(tmp_path / "data", None)) as reg,
        _owner(reg, tmp_path / "data") as owner,
    ):
        sp = await owner.create_service_principal("pusher")
        sub = owner.credential.subscription_id
        registry = (await owner.create_registry(sub, "default", "myregistry"))["id"]
        assigned = await owner.assign(registry, sp.object_id, "AcrPush")
        definitions = await owner.ok("GET", f"{registry}/{AUTHZ}/roleDefinitions")
        ids = {d["id"]: d["properties"]["roleName"] for d in definitions["value"]}
        assert ids[assigned["properties"]["roleDefinitionId"]] == "AcrPush"
        listed = await owner.ok("GET", f"{registry}/{AUTHZ}/roleAssignments")
        mine = [a for a in listed["value"] if a["properties"]["principalId"] == sp.object_id]
        assert [ids[a["properties"]["roleDefinitionId"]] for a in mine] == ["AcrPush"]
