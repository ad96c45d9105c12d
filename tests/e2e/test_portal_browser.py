"""The portal walked in real headless Chromium (Debian's, through chromedriver and selenium),
as a person would, against a real ``transship serve`` and a real docker-registry upstream.

- A user signs in, creates a registry, imports a multi-arch image with an SBOM referrer from
  docker-registry and watches the progress reach 100 %, opens the repository, the tag, the
  index (its platforms and referrers) and an image (its layer bars), creates a scope map and
  a token whose one-time password works with skopeo and is never shown again, deletes the
  tag and the registry through their confirmation pages, and signs out: the old cookie no
  longer opens the portal. Every page is checked with axe-core (WCAG 2.0/2.1 A and AA) at
  1280 px and 390 px, and the main ones are photographed (``$TRANSSHIP_SCREENSHOTS``).
- A principal with AcrPull only sees no import form and gets 403 when it posts one anyway
  (with its own session and a valid csrf token); no operation appears.
- The session cookie's flags as the browser stored them; a wrong csrf token is refused.
- The 390 px layout (no horizontal overflow, the nav reachable) and a keyboard-only sign-in.

Each test starts its own server (and upstream); the browser is the module's, reset per test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.e2e.portal_ui import (
    COOKIE,
    PageChecks,
    PortalEnv,
    choose,
    element,
    elements,
    fill,
    follow,
    follow_href,
    page_csrf,
    page_error,
    path_of,
    present,
    requests_sign_in,
    session_cookie,
    sign_in,
    start_portal_env,
    submit,
    text_of,
)
from tests.peers.browser import NARROW, Browser
from tests.peers.clients import CommandError, Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import BuiltImage, BuiltIndex, OciLayout, build_artifact, build_index
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.transship import TransshipServer
from tests.support.referrers import artifact_descriptor, push_fallback_index, push_referrer

pytestmark = [pytest.mark.timeout(300), pytest.mark.peers]

SPDX = "application/spdx+json"
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
USER, USER_PASSWORD = "alice", "Portal-walk-1"


@pytest.fixture
def env(tmp_path: Path, transship_factory: Callable[..., TransshipServer]) -> PortalEnv:
    """Transship for the portal, with no upstream."""
    return start_portal_env(tmp_path / "portal", transship_factory, free_port())


def upstream_image(
    layout: OciLayout, upstream: DistributionRegistry
) -> tuple[BuiltIndex, BuiltImage]:
    """``team/app:v1`` on ``upstream``: a 3-platform index (a shared 1 MiB base layer and a
    256 KiB layer of its own per platform) with an SPDX SBOM referring to it, listed under
    the OCI fallback tag (docker-registry has no referrers API)."""
    index = build_index(
        layout,
        platforms=PLATFORMS,
        seed="portal",
        layer_sizes=(256 << 10,),
        shared_layer_size=1 << 20,
    )
    push_referrer(index, upstream.url, "team/app", "v1")
    sbom = build_artifact(layout, subject=index, artifact_type=SPDX, payload=b'{"spdx":"portal"}')
    push_referrer(sbom, upstream.url, "team/app")
    push_fallback_index(upstream.url, "team/app", index.digest, [artifact_descriptor(sbom, SPDX)])
    return index, sbom


def wait_for_import(browser: Browser) -> set[float]:
    """On an import's page: wait, without reloading it, until the live progress reaches 100
    and the state reads Succeeded; return the progress values seen on the way."""
    page = element(browser, "html")
    seen: set[float] = set()

    def done(_: object) -> bool:
        state = text_of(browser, "#import-state")
        assert state not in ("Failed", "Canceled"), (state, text_of(browser, "#content"))
        value = float(element(browser, "#import-progress").get_attribute("value") or "0")
        seen.add(value)
        return state == "Succeeded" and value >= 100

    browser.wait(180).until(done, "the import did not reach 100 % and Succeeded")
    assert element(browser, "html") == page, "the page was reloaded, not updated live"
    return seen


@pytest.mark.slow(seconds=120)
def test_a_user_walks_every_page(
    tmp_path: Path,
    transship_factory: Callable[..., TransshipServer],
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    browser: Browser,
    screenshots: Path,
    skopeo: Skopeo,
) -> None:
    index, sbom = upstream_image(OciLayout(tmp_path / "layout"), distribution_anon)
    # The upstream is reached through a slow link, so the import runs for some seconds and
    # its page is seen before it ends.
    upstream = fault_proxy_factory(LOOPBACK, distribution_anon.port)
    upstream.bandwidth(64 << 10)
    env = start_portal_env(tmp_path / "portal", transship_factory, free_port(), [upstream.host])
    env.new_user(USER, USER_PASSWORD, f"/subscriptions/{env.subscription}", "Owner")
    pages = PageChecks(browser, screenshots)
    name = "portalwalk1"

    # Not signed in: the portal sends the browser to the sign-in form, and back afterwards.
    browser.get(env.home)
    assert path_of(browser) == "/portal/sign-in", browser.driver.current_url
    pages.check("sign-in", screenshot=True)
    fill(
        browser,
        "sign-in",
        {"kind": "user", "tenant": env.owner.tenant_id, "username": USER, "password": "wrong"},
    )
    submit(browser, "sign-in")
    assert page_error(browser), "a failed sign-in explains itself in #error"
    assert not present(browser, "#sign-out")
    pages.check("sign-in-failed")
    fill(browser, "sign-in", {"username": USER, "password": USER_PASSWORD})
    submit(browser, "sign-in")
    assert path_of(browser) == "/portal/", (browser.driver.current_url, page_error(browser))

    # Create a registry.
    pages.check("registries-empty")
    # (the resource group as the form proposes it)
    group = element(browser, "#create-registry [name='resource_group']").get_attribute("value")
    assert group, "the form proposes a resource group"
    fill(browser, "create-registry", {"name": name})
    submit(browser, "create-registry")
    registry_path = path_of(browser)
    assert registry_path.startswith("/portal/registries/"), (
        browser.driver.current_url,
        page_error(browser),
    )
    login_server = env.login_server(name)
    assert text_of(browser, "#login-server") == login_server
    assert login_server in text_of(browser, "#login-command")
    pages.check("registry", screenshot=True)
    fill(browser, "registry-settings", {"anonymous_pull_enabled": True})
    submit(browser, "registry-settings")
    assert element(browser, "#registry-settings [name='anonymous_pull_enabled']").is_selected()
    assert env.registry_properties(env.registry_id(name, group))["anonymousPullEnabled"] is True
    follow(browser, "#nav a[href='/portal/']")
    assert present(browser, f"#registries tr[data-registry='{name}']")
    pages.check("registries", screenshot=True)
    follow(browser, f"#registries tr[data-registry='{name}'] a")
    assert path_of(browser) == registry_path

    # Import the multi-arch image and its referrer from docker-registry; watch it to 100 %.
    follow_href(browser, "/imports")
    pages.check("imports-empty")
    fill(
        browser,
        "import-form",
        {
            "source": "team/app:v1",
            "source_registry_uri": upstream.host,
            "tags": "app:v1",
        },
    )
    referrers = [
        box
        for box in elements(browser, "#import-form input[type='checkbox']")
        if "referrer" in (box.get_attribute("name") or "").lower()
    ]
    assert referrers, "the import form offers the referrers extension"
    if not referrers[0].is_selected():
        referrers[0].click()
    submit(browser, "import-form")
    import_path = path_of(browser)
    assert "/imports/" in import_path, (browser.driver.current_url, page_error(browser))
    seen = wait_for_import(browser)
    assert min(seen) < 100 <= max(seen), f"the progress was not seen moving: {sorted(seen)}"
    assert text_of(browser, "#import-stats"), "bytes, blobs and manifests are shown"
    pages.check("import", screenshot=True)
    follow_href(browser, "/imports", within="#nav")
    operation = import_path.rsplit("/", 1)[1]
    assert present(browser, f"#import-history tr[data-operation='{operation}']")
    pages.check("imports")

    # The repository, its tag, the index and one image.
    browser.get(f"{env.url}{registry_path}")
    follow_href(browser, "/repositories")
    pages.check("repositories")
    follow(browser, "#repositories tr[data-repository='app'] a")
    row = element(browser, "#tags tr[data-tag='v1']")
    for platform in PLATFORMS:
        assert platform in row.text, row.text
    pull = [c.text for c in elements(browser, "#tags tr[data-tag='v1'] code.pull-command")]
    assert any(f"{login_server}/app:v1" in command for command in pull), pull
    pages.check("repository", screenshot=True)
    repository_path = path_of(browser)
    follow(browser, "#tags tr[data-tag='v1'] a[href*='/manifests/']")
    listed = {
        li.get_attribute("data-platform")
        for li in elements(browser, "#index-tree li[data-platform]")
    }
    assert listed == set(PLATFORMS)
    referrers_text = text_of(browser, "#referrers")
    assert sbom.digest in referrers_text and SPDX in referrers_text, referrers_text
    raw = json.loads(text_of(browser, "#raw-manifest"))
    assert raw == json.loads(index.index_bytes)
    pages.check("manifest", screenshot=True)
    follow(browser, "#index-tree li[data-platform='linux/arm64'] a")
    child = index.child("linux/arm64")
    assert child.digest in browser.driver.current_url or child.digest in text_of(
        browser, "#content"
    )
    bars = elements(browser, "#layers .layer-bar")
    assert [int(b.get_attribute("data-size") or -1) for b in bars] == [
        layer.descriptor.size for layer in child.layers
    ]
    assert text_of(browser, "#config"), "the image's config is shown"
    pages.check("manifest-image", screenshot=True)

    # Access: a scope map and a token; its one-time password works with skopeo.
    browser.get(f"{env.url}{registry_path}")
    follow_href(browser, "/access")
    pages.check("access-empty")
    builder = env.new_service_principal("builder", f"/subscriptions/{env.subscription}", "Reader")
    fill(browser, "assign-role", {"principal_id": builder.client_id, "role": "AcrPush"})
    submit(browser, "assign-role")
    assigned = text_of(browser, "#role-assignments")
    assert "AcrPush" in assigned and "builder" in assigned, (assigned, page_error(browser))
    fill(
        browser,
        "create-scope-map",
        {
            "name": "pullapp",
            "actions": "repositories/app/content/read\nrepositories/app/metadata/read",
        },
    )
    submit(browser, "create-scope-map")
    assert present(browser, "#scope-maps"), page_error(browser)
    assert "pullapp" in text_of(browser, "#scope-maps")
    token_form = element(browser, "#create-token")
    scope_select = token_form.find_elements(By.CSS_SELECTOR, "select")
    assert scope_select, "the token form chooses a scope map"
    fill(browser, "create-token", {"name": "cipull"})
    choose(scope_select[0], "pullapp")
    submit(browser, "create-token")
    assert present(browser, "#token-password"), (browser.driver.current_url, page_error(browser))
    password = text_of(browser, "#token-password")
    assert len(password) >= 16, page_error(browser)
    assert present(browser, "#tokens tr[data-token='cipull']")
    tags = skopeo.list_tags(f"docker://{login_server}/app", creds=f"cipull:{password}")
    assert "v1" in tags
    with pytest.raises(CommandError):
        skopeo.list_tags(f"docker://{login_server}/app", creds=f"cipull:{password}x")
    # The screenshot shows a throwaway value, never the password.
    browser.driver.execute_script(
        "document.getElementById('token-password').textContent = arguments[0]",
        "•" * 16,
    )
    pages.check("access", screenshot=True)
    # Open the access page again (the token's form answered the POST itself).
    follow_href(browser, "/access", within="#nav")
    assert present(browser, "#tokens tr[data-token='cipull']")
    assert not present(browser, "#token-password")
    assert password not in browser.driver.page_source
    follow(browser, "#tokens tr[data-token='cipull'] a[href$='/delete']")
    assert "cipull" in text_of(browser, "#content")
    pages.check("confirm-delete-token")
    submit(browser, "confirm-delete")
    assert not present(browser, "#tokens tr[data-token='cipull']")
    with pytest.raises(CommandError):
        skopeo.list_tags(f"docker://{login_server}/app", creds=f"cipull:{password}")

    # Delete the tag, then the registry, each through its confirmation page.
    browser.get(f"{env.url}{repository_path}")
    in_row = elements(browser, "#tags tr[data-tag='v1'] a[href$='/delete']")
    if in_row:
        follow(browser, "#tags tr[data-tag='v1'] a[href$='/delete']")
    else:
        follow(browser, "#tags tr[data-tag='v1'] a[href*='/manifests/']")
        follow_href(browser, "/delete")
    assert "v1" in text_of(browser, "#content")
    pages.check("confirm-delete-tag")
    submit(browser, "confirm-delete")
    browser.get(f"{env.url}{repository_path}")
    assert not present(browser, "#tags tr[data-tag='v1']")

    browser.get(f"{env.url}{registry_path}")
    follow_href(browser, "/delete")
    confirm = text_of(browser, "#content")
    assert name in confirm and "repositor" in confirm.lower(), confirm
    pages.check("confirm-delete-registry", screenshot=True)
    submit(browser, "confirm-delete")
    assert path_of(browser) == "/portal/"
    assert not present(browser, f"#registries tr[data-registry='{name}']")
    assert env.registry_status(env.registry_id(name, group)) == 404

    # Sign out: the cookie the browser held no longer opens the portal.
    cookie = session_cookie(browser)["value"]
    submit(browser, "sign-out")
    assert path_of(browser) == "/portal/sign-in"
    with env.http() as http:
        answer = http.get(env.home, cookies={COOKIE: cookie}, allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.status_code
    assert "/portal/sign-in" in answer.headers["Location"]

    pages.assert_clean()


def test_acrpull_principal_sees_no_import_form_and_cannot_post_one(
    env: PortalEnv, browser: Browser, screenshots: Path
) -> None:
    name = "pullonly1"
    registry_id = env.create_registry(name)
    reader = env.new_service_principal("reader", registry_id, "AcrPull")
    pages = PageChecks(browser, screenshots)

    sign_in(browser, env, "sp", reader.client_id, reader.secret)
    follow(browser, f"#registries tr[data-registry='{name}'] a")
    follow_href(browser, "/imports")
    imports_url = browser.driver.current_url.split("?")[0]
    # The page itself opens (no error page), without the form.
    assert path_of(browser).endswith("/imports") and not page_error(browser), page_error(browser)
    assert present(browser, "#content h1")
    assert not present(browser, "#import-form")
    assert elements(browser, "#import-history tr[data-operation]") == []
    pages.check("imports-read-only")
    registry_page = imports_url.rsplit("/imports", 1)[0]
    # A page it may not open: the API's refusal, as a page that explains it.
    browser.get(f"{registry_page}/delete")
    assert page_error(browser), "a refused page says why in #error"
    assert not present(browser, "#confirm-delete")
    pages.check("forbidden")

    # Posting the form anyway, with its own session and a valid csrf token: 403, nothing made.
    cookie = session_cookie(browser)["value"]
    form = {
        "csrf_token": element(browser, "input[name='csrf_token']").get_attribute("value") or "",
        "source": "library/hello-world:latest",
        "source_registry_uri": "127.0.0.1:9",
        "tags": "stolen:v1",
    }
    with env.http() as http:
        http.cookies.set(COOKIE, cookie)
        refused = http.post(imports_url, data=form, allow_redirects=False, timeout=30)
    assert refused.status_code == 403, (refused.status_code, refused.text[:500])

    # The owner sees no operation either; the owner's own post is not refused.
    with requests_sign_in(env, "sp", env.owner.client_id, env.owner.secret) as owner:
        history = owner.get(imports_url, timeout=30)
        assert history.status_code == 200
        assert 'data-operation="' not in history.text
        form["csrf_token"] = page_csrf(owner, imports_url)
        allowed = owner.post(imports_url, data=form, allow_redirects=False, timeout=30)
        assert allowed.status_code != 403, allowed.text[:500]
    pages.assert_clean()


def test_session_cookie_flags_and_csrf_refusal(env: PortalEnv, browser: Browser) -> None:
    sign_in(browser, env, "sp", env.owner.client_id, env.owner.secret)
    cookie = session_cookie(browser)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/portal"
    assert cookie["secure"] is False  # plain HTTP here; Secure under TLS
    assert COOKIE not in str(browser.driver.execute_script("return document.cookie"))

    create = f"{env.url}/portal/registries"
    good = {
        "subscription": env.subscription,
        "resource_group": "default",
        "name": "csrfcheck1",
        "location": "local",
        "sku": "Premium",
    }
    with env.http() as http:
        http.cookies.set(COOKIE, cookie["value"])
        for csrf in ({"csrf_token": "wrong"}, {}):
            refused = http.post(create, data={**good, **csrf}, allow_redirects=False, timeout=30)
            assert refused.status_code == 403, (csrf, refused.status_code)
        assert env.registry_status(env.registry_id("csrfcheck1")) == 404
        token = page_csrf(http, env.home)
        made = http.post(
            create, data={**good, "csrf_token": token}, allow_redirects=False, timeout=30
        )
        assert made.status_code == 303, (made.status_code, made.text[:500])
    assert env.registry_status(env.registry_id("csrfcheck1")) == 200


def test_narrow_layout_and_keyboard_sign_in(env: PortalEnv, browser: Browser) -> None:
    env.new_user(USER, USER_PASSWORD, f"/subscriptions/{env.subscription}", "Owner")
    env.create_registry("narrowview1")
    browser.resize(NARROW)
    browser.get(f"{env.url}/portal/sign-in")

    # TAB to each field and type; ENTER in the password field sends the form.
    typed: set[str] = set()
    for _ in range(25):
        browser.press(Keys.TAB)
        focused = browser.active_element()
        field_name = focused.get_attribute("name") or ""
        if field_name == "tenant" and not (focused.get_attribute("value") or ""):
            browser.press(env.owner.tenant_id)
        elif field_name == "username":
            browser.press(USER)
        elif field_name == "password":
            browser.press(USER_PASSWORD)
            typed.add(field_name)
            break
        typed.add(field_name)
    assert {"username", "password"} <= typed, typed
    browser.press(Keys.ENTER)
    browser.wait().until(lambda d: path_of(browser) == "/portal/", "ENTER did not sign in")
    browser.wait_ready()

    assert browser.viewport_width() == NARROW.width
    assert present(browser, "#registries tr[data-registry='narrowview1']")
    assert browser.horizontal_overflow() == 0, "the registries page scrolls sideways at 390 px"
    nav = element(browser, "#nav")
    assert nav.is_displayed()
    links = [a for a in elements(browser, "#nav a") if a.is_displayed()]
    assert links, "the nav shows its links at 390 px"
    width = browser.viewport_width()
    for link in links:
        rect = link.rect
        assert rect["x"] >= 0 and rect["x"] + rect["width"] <= width, (link.text, rect)
    # The nav is reachable from the keyboard too.
    browser.get(env.home)
    for _ in range(10):
        browser.press(Keys.TAB)
        if browser.driver.execute_script(
            "return document.getElementById('nav').contains(document.activeElement)"
        ):
            break
    else:
        raise AssertionError("TAB never reaches the nav")
