"""The web portal over HTTP against the real application (SQLite and PostgreSQL): sign-in
and sign-out, the session cookie's flags, CSRF refusal, and the registries pages with the
API's own authorization (another tenant sees nothing; a reader cannot change settings)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.peers.transship import TransshipServer
from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import Credential, IdentityClient, owner_credential
from tests.support.portal import PortalClient, parse_html

GROUP = "default"


@dataclass
class Portal:
    reg: RunningRegistry
    owner: Credential
    admin: IdentityClient

    @property
    def url(self) -> str:
        return self.reg.url

    def client(self) -> PortalClient:
        return PortalClient(self.url)

    async def signed_in(self, credential: Credential) -> PortalClient:
        client = self.client()
        page = await client.sign_in(credential.tenant_id, credential.client_id, credential.secret)
        assert page.status == 303, page.text[:2000]
        return client

    def registry_page(self, name: str, group: str = GROUP) -> str:
        return f"/portal/registries/{self.owner.subscription_id}/{group}/{name}"


@pytest.fixture
async def portal(tmp_path: Path, database_url: str | None) -> AsyncIterator[Portal]:
    data_dir = tmp_path / "data"
    async with running_registry(make_settings(data_dir, database_url)) as reg:
        owner = owner_credential(data_dir)
        yield Portal(reg, owner, IdentityClient(reg.http, reg.url, owner))


def _session_cookie(page: object) -> str:
    for jar in page.cookies:  # type: ignore[attr-defined]
        if "transship_session" in jar:
            return str(jar["transship_session"].OutputString())
    raise AssertionError("no session cookie set")


async def test_sign_in_as_a_service_principal_lands_on_the_registries_page(portal: Portal) -> None:
    async with portal.client() as browser:
        form = await browser.get("/portal/sign-in")
        assert form.status == 200
        html = form.html
        # The service's root tenant is offered by default.
        assert html.get("tenant").attrs["value"] == portal.owner.tenant_id
        assert [o.attrs["value"] for o in html.get("kind").find_all("option")] == ["user", "sp"]
        signed = await browser.sign_in(
            portal.owner.tenant_id, portal.owner.client_id, portal.owner.secret
        )
        assert signed.status == 303 and signed.location == "/portal/"
        cookie = _session_cookie(signed)
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/portal" in cookie
        # Plain HTTP: not Secure (the browser would drop it).
        assert "Secure" not in cookie
        home = await browser.get("/portal/")
        assert home.status == 200
        page = home.html
        assert page.find_all("html", lang="en")
        assert page.get("content").tag == "main" and page.get("nav").tag == "nav"
        assert [
            r.attrs["data-registry"]
            for r in page.get("registries").find_all("tr", data_registry=None)
        ] == ["default"]
        assert page.get("create-registry").find_all("select", name="subscription")


async def test_a_user_signs_in_with_name_and_password(portal: Portal) -> None:
    await portal.admin.create_user("alice", "Corr3ct-horse-battery")
    async with portal.client() as browser:
        page = await browser.sign_in(
            portal.owner.tenant_id, "alice", "Corr3ct-horse-battery", kind="user"
        )
        assert page.status == 303
        home = await browser.get("/portal/")
        assert home.status == 200 and "alice" in home.html.get("nav").text
        # A new user holds no role: no registry is shown.
        assert home.html.get("registries").find_all("tr", data_registry=None) == []


async def test_a_wrong_password_shows_the_form_again_with_a_plain_message(portal: Portal) -> None:
    async with portal.client() as browser:
        page = await browser.sign_in(portal.owner.tenant_id, portal.owner.client_id, "wrong")
        assert page.status == 401
        error = page.html.get("error")
        assert error.attrs["role"] == "alert" and "secret is wrong" in error.text
        assert page.html.get("sign-in") is not None
        assert not any("transship_session" in jar for jar in page.cookies)
        # Still not signed in.
        assert (await browser.get("/portal/")).status == 303


async def test_an_unknown_tenant_is_named(portal: Portal) -> None:
    async with portal.client() as browser:
        page = await browser.sign_in("no-such-tenant", "x", "y")
        assert page.status == 401
        assert "no tenant 'no-such-tenant'" in page.html.get("error").text


async def test_pages_redirect_to_sign_in_and_back_to_where_the_user_was(portal: Portal) -> None:
    target = portal.registry_page("default")
    async with portal.client() as browser:
        page = await browser.get(target)
        assert page.status == 303
        assert page.location is not None and page.location.startswith("/portal/sign-in?next=")
        signed = await browser.sign_in(
            portal.owner.tenant_id, portal.owner.client_id, portal.owner.secret, next_path=target
        )
        assert signed.location == target
        # Never to another site.
        other = await portal.signed_in(portal.owner)
        try:
            page = await other.get("/portal/sign-in?next=https://evil.example/")
            assert page.status == 303 and page.location == "/portal/"
            page = await other.get("/portal/sign-in?next=//evil.example/")
            assert page.location == "/portal/"
        finally:
            await other.close()


async def test_sign_out_revokes_the_session(portal: Portal) -> None:
    async with portal.client() as browser:
        signed = await browser.sign_in(
            portal.owner.tenant_id, portal.owner.client_id, portal.owner.secret
        )
        cookie = _session_cookie(signed).split(";")[0]
        out = await browser.submit("/portal/", "sign-out", {})
        assert out.status == 303 and out.location == "/portal/sign-in"
    # The old cookie, replayed by another client, opens nothing.
    async with portal.client() as thief:
        page = await thief.get("/portal/", headers={"Cookie": cookie})
        assert page.status == 303 and page.location is not None
        assert page.location.startswith("/portal/sign-in")


async def test_root_redirects_browsers_only(portal: Portal) -> None:
    async with portal.client() as browser:
        page = await browser.get(
            "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        )
        assert page.status in (302, 303) and page.location == "/portal/"
        api = await browser.get("/", headers={"Accept": "application/json"})
        assert api.status == 404
        bare = await browser.get("/")
        assert bare.status == 404


async def test_create_change_and_delete_a_registry(portal: Portal) -> None:
    browser = await portal.signed_in(portal.owner)
    try:
        created = await browser.submit(
            "/portal/",
            "create-registry",
            {
                "subscription": portal.owner.subscription_id,
                "resource_group": GROUP,
                "name": "portalmade",
                "location": "local",
                "sku": "Standard",
            },
        )
        assert created.status == 303, created.text[:2000]
        link = portal.registry_page("portalmade")
        assert created.location == link + "?created=1"
        page = await browser.get(created.location)
        html = page.html
        assert html.get("login-server").text.startswith("portalmade.localhost")
        assert html.get("login-command").text.startswith("docker login portalmade.")
        assert html.get("notice").attrs["role"] == "status"
        # Settings through the form are the API's settings.
        saved = await browser.submit(
            link,
            "registry-settings",
            {
                "admin_user_enabled": "on",
                "anonymous_pull_enabled": "on",
                "public_network_access": "Enabled",
                "default_action": "Deny",
                "ip_rules": "10.0.0.0/8\n192.168.1.7",
                "sku": "Premium",
            },
        )
        assert saved.status == 303, saved.text[:2000]
        arm = await portal.admin.ok(
            "GET", IdentityClient.registry_id(portal.owner.subscription_id, GROUP, "portalmade")
        )
        props = arm["properties"]
        assert props["adminUserEnabled"] is True and props["anonymousPullEnabled"] is True
        assert props["networkRuleSet"]["defaultAction"] == "Deny"
        assert [r["value"] for r in props["networkRuleSet"]["ipRules"]] == [
            "10.0.0.0/8",
            "192.168.1.7/32",
        ]
        assert props["networkRuleBypassOptions"] == "None"
        # A bad IP rule: the API's refusal, shown; nothing changes.
        bad = await browser.submit(link, "registry-settings", {"ip_rules": "not-an-ip"})
        assert bad.status == 400 and bad.html.get("error") is not None
        # Delete: a confirmation naming what goes, then the registry is gone.
        confirm = await browser.get(link + "/delete")
        assert confirm.status == 200
        assert "portalmade" in confirm.html.get("content").text
        assert "0 repositories" in confirm.html.get("content").text
        gone = await browser.submit(link + "/delete", "confirm-delete", {})
        assert gone.status == 303 and gone.location is not None
        assert gone.location.startswith("/portal/")
        home = await browser.get("/portal/")
        names = [
            r.attrs["data-registry"]
            for r in home.html.get("registries").find_all("tr", data_registry=None)
        ]
        assert "portalmade" not in names
    finally:
        await browser.close()


async def test_another_tenant_sees_none_of_this_tenants_registries(portal: Portal) -> None:
    other = await portal.admin.create_tenant("5a4a2b1c-0000-4000-8000-00000000abcd")
    browser = await portal.signed_in(other)
    try:
        home = await browser.get("/portal/")
        assert home.status == 200
        assert home.html.get("registries").find_all("tr", data_registry=None) == []
        # Addressing this tenant's registry directly: the API's refusal, no content.
        page = await browser.get(portal.registry_page("default"))
        assert page.status == 401
        assert page.html.by_id("login-server") is None
    finally:
        await browser.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TransshipServer]:
    server = TransshipServer(tmp_path / "server", tls=True)
    try:
        yield server.start()
    finally:
        server.stop()


async def test_the_session_cookie_is_secure_under_https(tls_server: TransshipServer) -> None:
    """`transship serve --tls` as a real process: the cookie carries Secure there."""
    owner = owner_credential(tls_server.data_dir)
    context = ssl.create_default_context(cafile=str(tls_server.data_dir / "tls" / "ca.pem"))
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        async with http.get(tls_server.url + "/portal/sign-in") as r:
            assert r.status == 200
            sign_in_cookie = r.headers.getall("Set-Cookie")[0]
            token = (
                parse_html(await r.text())
                .get("sign-in")
                .find_all("input", name="csrf_token")[0]
                .attrs["value"]
            )
        assert "Secure" in sign_in_cookie
        form = {
            "csrf_token": token,
            "kind": "sp",
            "tenant": owner.tenant_id,
            "username": owner.client_id,
            "password": owner.secret,
        }
        async with http.post(
            tls_server.url + "/portal/sign-in", data=form, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
            cookies = [c for c in r.headers.getall("Set-Cookie") if "transship_session=" in c]
        assert len(cookies) == 1
        flags = [part.strip() for part in cookies[0].split(";")]
        assert "Secure" in flags and "HttpOnly" in flags
        assert "SameSite=Strict" in flags and "Path=/portal" in flags


async def test_failed_sign_ins_are_throttled_like_the_token_endpoint(
    tmp_path: Path, database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, auth_failure_limit_per_principal=3)
    async with running_registry(settings) as reg:
        owner = owner_credential(data_dir)
        async with PortalClient(reg.url) as browser:
            for _ in range(3):
                page = await browser.sign_in(owner.tenant_id, owner.client_id, "wrong")
                assert page.status == 401
            refused = await browser.sign_in(owner.tenant_id, owner.client_id, "wrong")
            assert refused.status == 429
            assert "Too many failed sign-ins" in refused.html.get("error").text
            # The right secret within the window is refused too (checked before hashing).
            right = await browser.sign_in(owner.tenant_id, owner.client_id, owner.secret)
            assert right.status == 429


async def test_a_session_ends_at_its_expiry(tmp_path: Path, database_url: str | None) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, portal_session_ttl_seconds=1)
    async with running_registry(settings) as reg:
        owner = owner_credential(data_dir)
        async with PortalClient(reg.url) as browser:
            signed = await browser.sign_in(owner.tenant_id, owner.client_id, owner.secret)
            assert "Max-Age=1" in _session_cookie(signed)
            cookie = _session_cookie(signed).split(";")[0]
            assert (await browser.get("/portal/")).status == 200
            await asyncio.sleep(1.2)
            # Replayed after the expiry (the browser would have dropped it): refused by
            # the server's own record, not only by the browser.
            page = await browser.get("/portal/", headers={"Cookie": cookie})
            assert page.status == 303
