"""Driving the portal in a real browser, as a person does: a Transship set up for it, and the
page helpers the browser tests share (sign in, fill and send a form, follow a link, check a
page's accessibility at both widths and keep a screenshot of it).

:class:`PortalEnv` is a Transship server with data-plane auth on, whose registries have the
login servers ``<name>.transship.localhost:PORT`` (``*.localhost`` resolves to loopback
through libnss-myhostname, which ``scripts/test`` enables), and whose imports may reach the
given loopback upstreams over plain HTTP. The owner service principal (written by the first
start) sets up principals and roles through the management API.

The element ids, form field names and paths are the portal's contract (docs/portal.md).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import requests
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.peers.browser import NARROW, WIDE, Browser, format_violations
from tests.peers.transship import TransshipServer
from tests.support.identity import Credential, IdentityClient, owner_credential

T = TypeVar("T")
SUFFIX_HOST = "transship.localhost"
COOKIE = "transship_session"


@dataclass
class PortalEnv:
    """A started Transship for the portal tests (see the module docstring)."""

    server: TransshipServer
    owner: Credential

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return self.server.url

    @property
    def home(self) -> str:
        """The portal's first page (the registries list)."""
        return f"{self.url}/portal/"

    @property
    def subscription(self) -> str:
        return self.owner.subscription_id

    def login_server(self, name: str) -> str:
        """``<name>.transship.localhost:PORT``: what ACR's ``<name>.azurecr.io`` is here."""
        return f"{name.lower()}.{SUFFIX_HOST}:{self.server.port}"

    def registry_id(self, name: str, group: str = "default") -> str:
        return IdentityClient.registry_id(self.subscription, group, name)

    def api(self, work: Callable[[IdentityClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` with the owner's management API client; return its result."""

        async def run() -> T:
            async with aiohttp.ClientSession() as http:
                return await work(IdentityClient(http, self.url, self.owner))

        return asyncio.run(run())

    def new_user(self, name: str, password: str, scope: str, role: str) -> str:
        """Create a user and give it ``role`` at ``scope``; return its object id."""

        async def work(client: IdentityClient) -> str:
            object_id = await client.create_user(name, password)
            await client.assign(scope, object_id, role)
            return object_id

        return self.api(work)

    def new_service_principal(self, name: str, scope: str, role: str) -> Credential:
        """Create a service principal and give it ``role`` at ``scope``."""

        async def work(client: IdentityClient) -> Credential:
            credential = await client.create_service_principal(name)
            await client.assign(scope, credential.object_id, role)
            return credential

        return self.api(work)

    def create_registry(self, name: str, group: str = "default") -> str:
        """Create a registry through ARM as the owner; return its id."""

        async def work(client: IdentityClient) -> None:
            await client.create_group(self.subscription, group)
            await client.create_registry(self.subscription, group, name)

        self.api(work)
        return self.registry_id(name, group)

    def registry_status(self, registry_id: str) -> int:
        """The status of ``GET`` of the registry through ARM (200, or 404 once deleted)."""

        async def work(client: IdentityClient) -> int:
            status, _ = await client.call("GET", registry_id)
            return status

        return self.api(work)

    def registry_properties(self, registry_id: str) -> dict[str, Any]:
        """The registry's ARM ``properties`` as the owner reads them."""

        async def work(client: IdentityClient) -> dict[str, Any]:
            return dict((await client.ok("GET", registry_id))["properties"])

        return self.api(work)

    def http(self) -> requests.Session:
        """A ``requests`` session for this server (no environment proxies)."""
        session = requests.Session()
        session.trust_env = False
        return session


def start_portal_env(
    workdir: Path,
    factory: Callable[..., TransshipServer],
    port: int,
    upstream_hosts: Sequence[str] = (),
) -> PortalEnv:
    """Start Transship on ``port`` (see the module docstring); ``upstream_hosts``
    (``127.0.0.1:P``) are loopback registries imports may reach over plain HTTP."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "transship.toml"
    config.write_text(
        "".join(f'[upstreams."{host}"]\ninsecure = true\n\n' for host in upstream_hosts)
    )
    server = factory(
        port=port,
        data_plane_auth=True,
        env={
            "TRANSSHIP_LOGIN_SERVER_SUFFIX": f"{SUFFIX_HOST}:{port}",
            "TRANSSHIP_CONFIG": str(config),
        },
    )
    return PortalEnv(server, owner_credential(server.data_dir))


# -- pages ------------------------------------------------------------------------------------


def path_of(browser: Browser) -> str:
    """The current page's path (no query)."""
    return urlsplit(browser.driver.current_url).path


def element(browser: Browser, css: str) -> WebElement:
    """The element ``css`` selects, once it is on the page (explicit wait)."""
    found: WebElement = browser.wait().until(
        lambda d: d.find_element(By.CSS_SELECTOR, css), f"no element {css!r} on the page"
    )
    return found


def elements(browser: Browser, css: str) -> list[WebElement]:
    """Every element ``css`` selects now (maybe none)."""
    return list(browser.driver.find_elements(By.CSS_SELECTOR, css))


def present(browser: Browser, css: str) -> bool:
    """Whether ``css`` selects anything on the current page."""
    try:
        browser.driver.find_element(By.CSS_SELECTOR, css)
    except NoSuchElementException:
        return False
    return True


def text_of(browser: Browser, css: str) -> str:
    return element(browser, css).text.strip()


def navigate(browser: Browser, action: Callable[[], object]) -> None:
    """Do ``action`` (a click that loads another page) and wait until the new page has
    loaded (the old document is gone, the new one complete)."""
    old = browser.driver.find_element(By.TAG_NAME, "html")
    action()
    browser.wait().until(lambda d: _stale(old), "the page did not change")
    browser.wait_ready()


def _stale(old: WebElement) -> bool:
    try:
        old.tag_name  # noqa: B018 - touching it raises once the document is replaced
    except Exception:
        return True
    return False


def follow(browser: Browser, css: str) -> None:
    """Click the link ``css`` selects and wait for its page."""
    link = element(browser, css)
    navigate(browser, link.click)


def follow_href(browser: Browser, suffix: str, within: str = "#content") -> None:
    """Click the first link in ``within`` whose path ends with ``suffix``."""
    selector = ", ".join(f"{part.strip()} a[href]" for part in within.split(","))
    for link in elements(browser, selector):
        href = link.get_attribute("href") or ""
        if urlsplit(href).path.endswith(suffix):
            navigate(browser, link.click)
            return
    raise AssertionError(f"no link to …{suffix} in {within} on {browser.driver.current_url}")


def fill(browser: Browser, form: str, values: dict[str, str | bool]) -> None:
    """Set the fields of form ``#form`` by name: text typed in, a select's option chosen by
    value (or else by visible text), a checkbox ticked or not."""
    for name, value in values.items():
        field_element = element(browser, f"#{form} [name='{name}']")
        tag = field_element.tag_name.lower()
        kind = (field_element.get_attribute("type") or "").lower()
        if tag == "select":
            choose(field_element, str(value))
        elif kind == "checkbox":
            if field_element.is_selected() != bool(value):
                field_element.click()
        else:
            field_element.clear()
            field_element.send_keys(str(value))


def choose(select_element: WebElement, value: str) -> None:
    """Pick the option of ``select_element`` whose value is ``value``, else whose text holds it."""
    select = Select(select_element)
    options = select.options
    # (an <option> without a value attribute has its text as its value)
    for index, option in enumerate(options):
        if option.get_attribute("value") == value:
            select.select_by_index(index)
            return
    for index, option in enumerate(options):
        if value in option.text:
            select.select_by_index(index)
            return
    raise AssertionError(f"no option {value!r} in {[o.text for o in select.options]}")


def submit(browser: Browser, form: str) -> None:
    """Click form ``#form``'s submit button and wait for the page it leads to."""
    button = element(browser, f"#{form} [type='submit'], #{form} button:not([type])")
    navigate(browser, button.click)


def csrf_token(browser: Browser) -> str:
    """A ``csrf_token`` of the current page's forms (the session's)."""
    value = element(browser, "input[name='csrf_token']").get_attribute("value")
    assert value, "an empty csrf_token"
    return value


def session_cookie(browser: Browser) -> dict[str, Any]:
    """The portal's session cookie from the browser's cookie jar (the page must be on the
    portal: the cookie's path is /portal)."""
    cookie = browser.driver.get_cookie(COOKIE)
    assert cookie is not None, f"no {COOKIE} cookie; cookies: {browser.driver.get_cookies()}"
    return dict(cookie)


def sign_in(browser: Browser, env: PortalEnv, kind: str, username: str, password: str) -> None:
    """Sign in through the form (as a user, or a service principal with its client id and
    secret) in the owner's tenant and land on the registries page."""
    browser.get(f"{env.url}/portal/sign-in")
    fill(
        browser,
        "sign-in",
        {"kind": kind, "tenant": env.owner.tenant_id, "username": username, "password": password},
    )
    submit(browser, "sign-in")
    assert path_of(browser) == "/portal/", (browser.driver.current_url, page_error(browser))


def page_error(browser: Browser) -> str:
    """The text of the page's ``#error`` (empty when none)."""
    found = elements(browser, "#error")
    return found[0].text if found else ""


def requests_sign_in(env: PortalEnv, kind: str, username: str, password: str) -> requests.Session:
    """A ``requests`` session signed in to the portal through its form (for checks a browser
    cannot make, e.g. posting a form the page does not show)."""
    http = env.http()
    page = http.get(f"{env.url}/portal/sign-in", timeout=30)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
    form = {
        "kind": kind,
        "tenant": env.owner.tenant_id,
        "username": username,
        "password": password,
        "next": "/portal/",
    }
    if found:
        form["csrf_token"] = found.group(1)
    answer = http.post(f"{env.url}/portal/sign-in", data=form, timeout=30, allow_redirects=False)
    assert answer.status_code == 303, (answer.status_code, answer.text)
    assert COOKIE in http.cookies, http.cookies
    return http


def page_csrf(http: requests.Session, url: str) -> str:
    """The ``csrf_token`` of the page at ``url`` (its forms carry the session's)."""
    page = http.get(url, timeout=30, allow_redirects=False)
    assert page.status_code == 200, (url, page.status_code)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"no csrf_token on {url}"
    return found.group(1)


# -- accessibility and screenshots --------------------------------------------------------------


@dataclass
class PageChecks:
    """Every page a walk visits: axe-core at 1280 px and at 390 px, no sideways scrolling at
    390 px (problems collected, so one page's do not hide the rest of the walk), and a
    screenshot of the main ones."""

    browser: Browser
    screenshots: Path
    violations: dict[str, str] = field(default_factory=dict)
    visited: list[str] = field(default_factory=list)

    def check(self, name: str, *, screenshot: bool = False) -> None:
        """Check the current page (named ``name`` in reports); with ``screenshot`` save
        ``<screenshots>/<name>.png`` at 1280 px."""
        browser = self.browser
        url = browser.driver.current_url
        self.visited.append(f"{name}: {path_of(browser)}")
        for size in (WIDE, NARROW):
            browser.resize(size)
            found = browser.axe_violations()
            if found:
                self.violations[f"{name} at {size.width}px"] = format_violations(url, found)
        # At 390 px the page itself must not scroll sideways (wide tables scroll inside).
        if overflow := browser.horizontal_overflow():
            self.violations[f"{name} at {NARROW.width}px (layout)"] = (
                f"{url} is {overflow}px wider than the {NARROW.width}px viewport"
            )
        browser.resize(WIDE)
        if screenshot:
            browser.screenshot(self.screenshots / f"{name}.png")

    def assert_clean(self) -> None:
        """No page had an accessibility violation at either width."""
        assert not self.violations, "\n\n".join(
            [
                f"pages checked: {', '.join(self.visited)}",
                *(f"{page}: {text}" for page, text in self.violations.items()),
            ]
        )
