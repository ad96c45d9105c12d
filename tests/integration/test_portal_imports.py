"""Imports through the portal against a real docker-registry upstream (SQLite and
PostgreSQL): the form starts importImage's own code, the operation's page and its event
stream follow it to Succeeded and 100 %, the history explains a failure in plain words,
and a principal without importImage sees no form and is refused (403, no operation) when
it posts one anyway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import SlowUpstreamFactory, insecure
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultMode
from tests.peers.images import BuiltIndex
from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import Credential, IdentityClient, owner_credential
from tests.support.portal import PortalClient
from transship.portal import imports as portal_imports

GROUP = "default"

Start = Callable[..., Awaitable[tuple[RunningRegistry, Credential, IdentityClient]]]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Start]:
    running: list[Any] = []

    async def start(
        database_url: str | None, **overrides: Any
    ) -> tuple[RunningRegistry, Credential, IdentityClient]:
        data_dir = tmp_path / "data"
        context = running_registry(make_settings(data_dir, database_url, **overrides))
        reg = await context.__aenter__()
        running.append(context)
        owner = owner_credential(data_dir)
        return reg, owner, IdentityClient(reg.http, reg.url, owner)

    try:
        yield start
    finally:
        for context in reversed(running):
            await context.__aexit__(None, None, None)


def imports_path(owner: Credential) -> str:
    return f"/portal/registries/{owner.subscription_id}/{GROUP}/default/imports"


async def signed_in(url: str, who: Credential) -> PortalClient:
    browser = PortalClient(url)
    page = await browser.sign_in(who.tenant_id, who.client_id, who.secret)
    assert page.status == 303, page.text[:2000]
    return browser


async def read_events(browser: PortalClient, path: str) -> list[dict[str, Any]]:
    """Every `snapshot` event of the stream until the server ends it."""
    events: list[dict[str, Any]] = []
    async with browser.http.get(browser.url + path, timeout=None) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        name = None
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "snapshot":
                events.append(json.loads(line[6:]))
    return events


async def test_an_import_through_the_portal_reaches_succeeded_and_100(
    server: Start,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
) -> None:
    reg, owner, _ = await server(database_url, upstreams=insecure(distribution_anon.host))
    browser = await signed_in(reg.url, owner)
    try:
        started = await browser.submit(
            imports_path(owner),
            "import-form",
            {
                "source": "team/app:v1",
                "source_registry_uri": distribution_anon.host,
                "tags": "app:v1, app:latest",
                "platforms": "linux/amd64\nlinux/arm64",
                "platform_mode": "rewritten",
            },
        )
        assert started.status == 303, started.text[:3000]
        operation_page = started.location
        assert operation_page is not None
        operation_id = operation_page.rsplit("/", 1)[1]
        page = await browser.get(operation_page)
        assert page.status == 200
        html = page.html
        progress = html.get("import-progress")
        assert progress.tag == "progress" and progress.attrs["max"] == "100"
        assert html.get("import-state").text in ("Queued", "Running", "Succeeded")
        assert html.get("cancel-import").tag == "form"
        assert "Bytes" in html.get("import-stats").text
        events = await read_events(browser, operation_page + "/events")
        assert events, "no snapshot"
        last = events[-1]
        assert last["state"] == "Succeeded" and last["percent"] == 100 and last["final"]
        assert all(e["percent"] <= 100 for e in events)
        done = (await browser.get(operation_page)).html
        assert done.get("import-state").text == "Succeeded"
        assert done.get("import-progress").attrs["value"] == "100"
        # Imported as asked: both tags, the two platforms.
        tags = await browser.get(
            f"/portal/registries/{owner.subscription_id}/{GROUP}/default/repositories/app"
        )
        rows = {r.attrs["data-tag"]: r for r in tags.html.get("tags").find_all("tr", data_tag=None)}
        assert sorted(rows) == ["latest", "v1"]
        assert "linux/amd64" in rows["v1"].text and "linux/arm64" in rows["v1"].text
        assert "linux/arm/v7" not in rows["v1"].text
        history = (await browser.get(imports_path(owner))).html.get("import-history")
        row = history.find_all("tr", data_operation=operation_id)
        assert row and row[0].attrs["data-state"] == "succeeded"
    finally:
        await browser.close()


async def test_a_failed_import_is_explained_in_plain_words(
    server: Start, database_url: str | None, distribution_anon: DistributionRegistry
) -> None:
    reg, owner, _ = await server(database_url, upstreams=insecure(distribution_anon.host))
    browser = await signed_in(reg.url, owner)
    try:
        started = await browser.submit(
            imports_path(owner),
            "import-form",
            {
                "source": "team/missing:v1",
                "source_registry_uri": distribution_anon.host,
                "tags": "missing:v1",
            },
        )
        assert started.status == 303, started.text[:3000]
        assert started.location is not None
        events = await read_events(browser, started.location + "/events")
        assert events[-1]["state"] == "Failed" and events[-1]["final"]
        history = (await browser.get(imports_path(owner))).html.get("import-history")
        row = history.find_all("tr", data_operation=started.location.rsplit("/", 1)[1])[0]
        failure = row.find_all("td", class_="failure")[0].text
        assert "team/missing" in failure and "It stopped while" in failure, failure
    finally:
        await browser.close()


async def test_a_dry_run_shows_the_plan_and_imports_nothing(
    server: Start,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_index: BuiltIndex,
) -> None:
    reg, owner, _ = await server(database_url, upstreams=insecure(distribution_anon.host))
    browser = await signed_in(reg.url, owner)
    try:
        planned = await browser.submit(
            imports_path(owner),
            "import-form",
            {
                "source": "team/app:v1",
                "source_registry_uri": distribution_anon.host,
                "tags": "app:v1",
                "dry_run": "on",
            },
        )
        assert planned.status == 200, planned.text[:3000]
        plan = json.loads(planned.html.get("import-plan").text)
        assert plan  # the API's dry-run answer
        assert planned.html.get("import-history").find_all("tr", data_operation=None) == []
    finally:
        await browser.close()


@pytest.mark.parametrize("role", ["AcrPull", "Reader"])
async def test_without_importimage_there_is_no_form_and_posting_is_refused(
    server: Start, database_url: str | None, role: str
) -> None:
    reg, owner, admin = await server(database_url)
    who = await admin.create_service_principal(f"no-import-{role}")
    registry_id = IdentityClient.registry_id(owner.subscription_id, GROUP, "default")
    await admin.assign(registry_id, who.object_id, role)
    browser = await signed_in(reg.url, who)
    try:
        page = await browser.get(imports_path(owner))
        assert page.status == 200, page.text[:2000]
        assert page.html.by_id("import-form") is None
        assert page.html.by_id("no-import") is not None
        token = page.csrf("sign-out")
        posted = await browser.post(
            imports_path(owner),
            {"csrf_token": token, "source": "library/alpine:3", "tags": "alpine:3"},
        )
        assert posted.status == 403
        assert "AuthorizationFailed" in posted.text and "importImage" in posted.text
        # No operation was created.
        default = await reg.services.registries.get("default")
        assert default is not None
        assert await reg.services.imports.list(default.id, 10) == []
    finally:
        await browser.close()


async def test_import_from_a_registry_of_this_service_named_by_name(
    server: Start, database_url: str | None
) -> None:
    reg, owner, admin = await server(database_url)
    await reg.push_image("team/app", "v1", seed=b"local")
    await admin.create_registry(owner.subscription_id, GROUP, "secondreg")
    browser = await signed_in(reg.url, owner)
    target = f"/portal/registries/{owner.subscription_id}/{GROUP}/secondreg/imports"
    try:
        started = await browser.submit(
            target,
            "import-form",
            {"source": "team/app:v1", "registry": "default", "tags": "copied:v1"},
        )
        assert started.status == 303, started.text[:3000]
        assert started.location is not None
        events = await read_events(browser, started.location + "/events")
        assert events[-1]["state"] == "Succeeded", events[-1]
        # Cancelling a finished import changes nothing and says so on its page.
        page = await browser.get(started.location)
        cancel = await browser.post(
            started.location + "/cancel", {"csrf_token": page.csrf("cancel-import")}
        )
        assert cancel.status == 303 and cancel.location is not None
        after = (await browser.get(cancel.location)).html
        assert after.get("import-state").text == "Succeeded"
        assert after.get("notice").text == "Cancel requested."
        # A name that is no registry of this tenant: refused, naming the field's fix.
        unknown = await browser.submit(
            target, "import-form", {"source": "team/app:v1", "registry": "nosuchreg"}
        )
        assert unknown.status == 400
        assert "no registry named 'nosuchreg'" in unknown.html.get("error").text
        # The operation is not reachable under another registry's path.
        operation = started.location.rsplit("/", 1)[1]
        elsewhere = await browser.get(imports_path(owner) + "/" + operation)
        assert elsewhere.status == 404
    finally:
        await browser.close()


async def test_an_event_stream_ends_when_its_session_signs_out(
    server: Start,
    database_url: str | None,
    slow_upstream: SlowUpstreamFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long import's progress stops reaching a browser whose session has ended, though
    the import goes on."""
    monkeypatch.setattr(portal_imports, "STREAM_RECHECK_SECONDS", 0.2)
    upstream = await slow_upstream("portal-stream")
    upstream.tcp.set_mode(FaultMode.bandwidth(100_000))  # ~20 s for the large layers
    reg, owner, _ = await server(database_url, upstreams=insecure(upstream.tcp.host))
    browser = await signed_in(reg.url, owner)
    try:
        started = await browser.submit(
            imports_path(owner),
            "import-form",
            {"source": "team/app:v1", "source_registry_uri": upstream.tcp.host, "tags": "app:v1"},
        )
        assert started.status == 303, started.text[:3000]
        assert started.location is not None
        stream = asyncio.create_task(read_events(browser, started.location + "/events"))
        await asyncio.sleep(1.0)
        assert not stream.done()
        out = await browser.submit("/portal/", "sign-out", {})
        assert out.status == 303
        events = await asyncio.wait_for(stream, 10)
        assert events and not events[-1]["final"], events[-1:]
        # The import itself was not touched: still under way.
        again = await signed_in(reg.url, owner)
        try:
            page = await again.get(started.location)
            assert page.html.get("import-state").text in ("Queued", "Running")
        finally:
            await again.close()
    finally:
        await browser.close()
