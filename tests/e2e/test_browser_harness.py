"""The browser harness itself (tests/peers/browser.py), against static pages on a loopback
HTTP server: Debian's chromedriver without Selenium Manager, every process gone after quit,
axe-core finding real violations (and none on a clean page), the narrow window, whole-page
screenshots, and a form driven by the keyboard alone."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.keys import Keys

from tests.peers.browser import NARROW, WIDE, Browser, format_violations
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.procs import group_members

pytestmark = [pytest.mark.timeout(300), pytest.mark.peers]

GOOD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Good page</title></head>
<body><nav id="nav" aria-label="Main"><a href="/good.html">Home</a></nav>
<main id="content"><h1>Search</h1>
<form id="search" action="/done.html" method="get">
<label for="q">Query</label> <input id="q" name="q">
<label for="kind">Kind</label> <select id="kind" name="kind">
<option value="user">User</option><option value="sp">Service principal</option></select>
<button id="go" type="submit">Search</button>
</form></main></body></html>
"""
BAD = """<!doctype html>
<html><head><meta charset="utf-8"></head>
<body><img src="/missing.png"><input name="nolabel">
<p style="color:#bbb;background:#fff">low contrast text</p></body></html>
"""
WIDE_PAGE = GOOD.replace("<h1>Search</h1>", '<h1>Search</h1><div style="width:2000px">x</div>')
TALL_PAGE = GOOD.replace("<h1>Search</h1>", '<h1>Search</h1><div style="height:3000px">x</div>')
DONE = GOOD.replace("<title>Good page</title>", "<title>Done</title>")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static site on a loopback port (stopped at the end); its base URL."""
    root = tmp_path_factory.mktemp("site")
    pages = {"good": GOOD, "bad": BAD, "wide": WIDE_PAGE, "tall": TALL_PAGE, "done": DONE}
    for name, html in pages.items():
        (root / f"{name}.html").write_text(html)
    server = ThreadingHTTPServer((LOOPBACK, free_port()), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk (and check the signature)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def executables(pids: list[int]) -> set[str]:
    """The executable names of those of `pids` still running (Chromium starts and ends
    helper processes on its own: one listed a moment ago may be gone)."""
    names = set()
    for pid in pids:
        try:
            names.add(Path(os.readlink(f"/proc/{pid}/exe")).name)
        except OSError:
            continue
    return names


def test_quit_leaves_no_browser_process(tmp_path: Path, site: str) -> None:
    browser = Browser(tmp_path / "own-browser").start()
    pgid = browser.process_group
    assert pgid is not None
    try:
        browser.get(f"{site}/good.html")
        assert browser.driver.title == "Good page"
        running = browser.leftover_processes(pgid)
        assert {"chromedriver", "chromium"} <= executables(running), running
    finally:
        browser.quit()
    assert browser.leftover_processes(pgid) == []
    assert group_members(pgid) == []
    browser.quit()  # idempotent


def test_selenium_manager_is_never_run(
    tmp_path: Path, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver is Debian's, found by path: Selenium Manager (which downloads drivers and
    browsers from the network) must not even be asked."""
    from selenium.webdriver.common import selenium_manager

    def refuse(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("Selenium Manager was run")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", refuse)
    with Browser(tmp_path / "offline-browser") as browser:
        browser.get(f"{site}/good.html")
        assert browser.driver.capabilities["browserName"] in ("chrome", "chromium")
        version = browser.driver.capabilities["browserVersion"]
        assert version.split(".")[0].isdigit(), version


def test_axe_finds_violations_on_a_bad_page_and_none_on_a_good_one(
    browser: Browser, site: str
) -> None:
    browser.get(f"{site}/bad.html")
    found = {v["id"] for v in browser.axe_violations()}
    assert {"html-has-lang", "document-title", "image-alt", "label", "color-contrast"} <= found
    text = format_violations(browser.driver.current_url, browser.axe_violations())
    assert "image-alt" in text and "at img" in text

    for size in (WIDE, NARROW):
        browser.resize(size)
        browser.get(f"{site}/good.html")
        violations = browser.axe_violations()
        assert violations == [], format_violations(browser.driver.current_url, violations)


def test_narrow_window_and_horizontal_overflow(browser: Browser, site: str) -> None:
    browser.resize(NARROW)
    browser.get(f"{site}/good.html")
    assert browser.viewport_width() == NARROW.width
    assert browser.horizontal_overflow() == 0
    browser.get(f"{site}/wide.html")
    assert browser.horizontal_overflow() > 1000
    browser.resize(WIDE)
    assert browser.viewport_width() == WIDE.width


def test_screenshot_covers_the_whole_page(browser: Browser, site: str, tmp_path: Path) -> None:
    browser.get(f"{site}/tall.html")
    width, height = png_size(browser.screenshot(tmp_path / "shots" / "tall.png"))
    assert width == WIDE.width
    assert height > 3000  # the page, not just the 900 px viewport


def test_a_form_filled_and_sent_with_the_keyboard_alone(browser: Browser, site: str) -> None:
    browser.get(f"{site}/good.html")
    # TAB from the top: the nav link, then the query field.
    browser.press(Keys.TAB)
    assert browser.focused_id() == "" and browser.active_element().tag_name == "a"
    browser.press(Keys.TAB)
    assert browser.focused_id() == "q"
    browser.press("needle", Keys.TAB)
    assert browser.focused_id() == "kind"
    browser.press(Keys.ARROW_DOWN, Keys.TAB)  # the second option
    assert browser.focused_id() == "go"
    browser.press(Keys.ENTER)
    browser.wait().until(lambda d: d.title == "Done", "the form was not sent")
    query = parse_qs(urlsplit(browser.driver.current_url).query)
    assert query == {"q": ["needle"], "kind": ["sp"]}
