"""Headless Chromium driven by selenium through Debian's ``chromedriver``, for the portal's
browser tests.

Contracts:

- :class:`Browser` runs ``/usr/bin/chromedriver`` (Debian's ``chromium-driver``) with
  ``/usr/bin/chromium``: selenium is given the driver's path in its ``Service``, so Selenium
  Manager (which would download a driver) is never run, and the browser needs no network:
  background networking, component updates and proxies are off (the tests are offline).
- As root (as CI runs) Chromium needs ``--no-sandbox``; it always runs ``--headless=new``
  with its own throw-away profile directory under ``workdir``.
- chromedriver is started in a session of its own, so it and every Chromium process it
  starts share one process group; :meth:`Browser.quit` ends the WebDriver session, stops
  the driver, then SIGKILLs whatever is left of that group and waits until no process of it
  is alive (:func:`tests.peers.procs.group_members`). It is idempotent.
- Window sizes: :data:`WIDE` (1280x900) and :data:`NARROW` (390x844, a phone); see
  :meth:`Browser.resize`, which checks the page's viewport really is that wide.
- :meth:`Browser.axe_violations` injects axe-core's ``axe.min.js`` (npm ``axe-core``, which
  ``scripts/test`` installs into ``.cache/npm``; ``$AXE_CORE_JS`` names another copy) into
  the current page and returns the WCAG 2.0/2.1 A and AA violations;
  :func:`format_violations` prints them readably.
- :meth:`Browser.screenshot` saves a PNG of the whole page (not only the viewport).

Every call is blocking (selenium speaks HTTP to chromedriver): the browser tests are plain
synchronous tests.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from .procs import PeerUnavailable, group_members, peer_env

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE_CORE_JS = REPO_ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
# The axe-core rule tags of WCAG 2.0 and 2.1, levels A and AA.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
# Generous: the CI machine runs 4 test workers on 2 cores.
DEFAULT_WAIT = 60.0


@dataclass(frozen=True)
class WindowSize:
    """A browser window's size in CSS pixels."""

    width: int
    height: int


WIDE = WindowSize(1280, 900)
NARROW = WindowSize(390, 844)


def axe_core_js() -> Path:
    """The ``axe.min.js`` to inject; raises :class:`PeerUnavailable` when it is absent."""
    path = Path(os.environ.get("AXE_CORE_JS", AXE_CORE_JS))
    if not path.is_file():
        raise PeerUnavailable(f"axe-core is not installed at {path} (scripts/test installs it)")
    return path


def require_chromium() -> None:
    """Raise :class:`PeerUnavailable` unless Debian's chromium and chromedriver are here."""
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(binary, os.X_OK):
            raise PeerUnavailable(f"{binary} is not installed (Debian {package}; scripts/test)")


def chromium_options(workdir: Path, size: WindowSize = WIDE) -> webdriver.ChromeOptions:
    """The options of a headless, offline Chromium with its profile in ``workdir``."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root cannot use the setuid/namespace sandbox here
        "--disable-dev-shm-usage",  # /dev/shm is small in containers
        "--disable-gpu",
        "--disable-breakpad",
        f"--window-size={size.width},{size.height}",
        f"--user-data-dir={workdir / 'profile'}",
        # Offline and quiet: nothing may leave the machine, nothing runs in the background.
        "--no-proxy-server",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--metrics-recording-only",
        "--password-store=basic",
        "--use-mock-keychain",
        "--disable-features=Translate,OptimizationHints,MediaRouter,PasswordLeakDetection",
        "--hide-scrollbars",  # screenshots and widths without a scrollbar gutter
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "credentials_enable_service": False,
            "profile.password_manager_enabled": False,
            "profile.password_manager_leak_detection": False,
        },
    )
    return options


class Browser:
    """One headless Chromium behind one chromedriver. Context manager, or start()/quit()."""

    def __init__(self, workdir: Path, *, size: WindowSize = WIDE) -> None:
        self.workdir = workdir
        self.initial_size = size
        self._driver: webdriver.Chrome | None = None
        self._service: Service | None = None
        self._pgid: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start chromedriver and a Chromium session; raise :class:`PeerUnavailable` when
        the Debian packages are missing."""
        require_chromium()
        if self._driver is not None:
            raise RuntimeError("browser already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        service = Service(
            executable_path=CHROMEDRIVER,  # never Selenium Manager, never a download
            log_output=str(self.workdir / "chromedriver.log"),
            # HOME and XDG dirs of its own: nothing is written to the user's, and the crash
            # handler Chromium forks (into a session of its own) names them, so quit() finds it.
            env=peer_env(
                {
                    "HOME": str(self.workdir / "home"),
                    "XDG_CONFIG_HOME": str(self.workdir / "home" / ".config"),
                    "XDG_CACHE_HOME": str(self.workdir / "home" / ".cache"),
                }
            ),
            # Its own process group: Chromium's processes join it, so quit() finds them all.
            popen_kw={"start_new_session": True},
        )
        self._service = service
        try:
            self._driver = webdriver.Chrome(
                service=service, options=chromium_options(self.workdir, self.initial_size)
            )
        except BaseException:
            self._pgid = self._service_pid()
            self.quit()
            raise
        self._pgid = self._service_pid()
        self._driver.set_page_load_timeout(DEFAULT_WAIT)
        self._driver.set_script_timeout(DEFAULT_WAIT)
        return self

    def quit(self) -> None:
        """End the session, stop chromedriver, and make sure no process of its group is left
        (SIGKILL, then wait until they are gone). Idempotent."""
        driver, self._driver = self._driver, None
        if driver is not None:
            with contextlib.suppress(Exception):  # a crashed browser must still be cleaned up
                driver.quit()
        service, self._service = self._service, None
        if service is not None:
            with contextlib.suppress(Exception):
                service.stop()
        pgid, self._pgid = self._pgid, None
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while left := self.leftover_processes(pgid):
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise TimeoutError(f"browser processes {left} outlived quit()")
            time.sleep(0.02)
        shutil.rmtree(self.workdir / "profile", ignore_errors=True)
        shutil.rmtree(self.workdir / "home", ignore_errors=True)

    def leftover_processes(self, pgid: int | None) -> list[int]:
        """Live processes of this browser: those of chromedriver's process group and those
        whose command line names this browser's work dir (Chromium's crash handler)."""
        found = set(group_members(pgid)) if pgid is not None else set()
        marker = f"{self.workdir}{os.sep}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                if marker not in (entry / "cmdline").read_bytes():
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                found.add(int(entry.name))
        return sorted(found)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.quit()

    def _service_pid(self) -> int | None:
        process = getattr(self._service, "process", None)
        return process.pid if process is not None else None

    # -- state -----------------------------------------------------------------------------

    @property
    def driver(self) -> webdriver.Chrome:
        """The selenium WebDriver (raises when not started)."""
        if self._driver is None:
            raise RuntimeError("browser not started")
        return self._driver

    @property
    def process_group(self) -> int | None:
        """The process group of chromedriver and its Chromium (None when not running)."""
        return self._pgid

    @property
    def alive(self) -> bool:
        """Whether the browser still answers."""
        if self._driver is None:
            return False
        try:
            self._driver.execute_script("return 1")
        except WebDriverException:
            return False
        return True

    def reset(self, size: WindowSize = WIDE) -> None:
        """A clean slate between tests: about:blank, no cookies, ``size``."""
        self.driver.get("about:blank")
        self.driver.delete_all_cookies()
        self.resize(size)

    # -- pages -----------------------------------------------------------------------------

    def get(self, url: str) -> None:
        """Open ``url`` and wait until the document is complete."""
        self.driver.get(url)
        self.wait_ready()

    def wait(self, timeout: float = DEFAULT_WAIT) -> WebDriverWait[webdriver.Chrome]:
        """An explicit wait on the driver (never a fixed sleep)."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1)

    def wait_ready(self, timeout: float = DEFAULT_WAIT) -> None:
        """Wait until ``document.readyState`` is ``complete``."""
        self.wait(timeout).until(
            lambda d: d.execute_script("return document.readyState") == "complete",
            "the page did not finish loading",
        )

    def resize(self, size: WindowSize) -> None:
        """Resize the window so that the page's viewport is ``size.width`` CSS px wide (the
        window's frame, if any, is added), and wait until it is."""
        driver = self.driver
        driver.set_window_size(size.width, size.height)

        def settled(_: object) -> bool:
            # Both widths in one script: a resize may be under way between two calls.
            outer, inner = driver.execute_script("return [window.outerWidth, window.innerWidth]")
            if int(inner) == size.width:
                return True
            frame = max(0, int(outer) - int(inner))
            driver.set_window_size(size.width + frame, size.height)
            return False

        self.wait(30).until(settled, f"the viewport did not become {size.width}px wide")

    def viewport_width(self) -> int:
        """``window.innerWidth``."""
        return int(self.driver.execute_script("return window.innerWidth"))

    def horizontal_overflow(self) -> int:
        """How many CSS px the document is wider than the viewport (0 when it fits)."""
        return int(
            self.driver.execute_script(
                "return Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
            )
        )

    def active_element(self) -> WebElement:
        """The focused element."""
        return self.driver.switch_to.active_element

    def press(self, *keys: str) -> None:
        """Type ``keys`` (text or :class:`~selenium.webdriver.common.keys.Keys`) into
        whatever has the focus, as a keyboard does (the first TAB on a fresh page focuses
        its first focusable element)."""
        ActionChains(self.driver).send_keys(*keys).perform()

    def focused_id(self) -> str:
        """The ``id`` of the focused element ("" when it has none)."""
        return str(self.driver.execute_script("return document.activeElement.id || ''"))

    # -- screenshots -----------------------------------------------------------------------

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the whole page (beyond the viewport) to ``path``; return it."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics.get("cssContentSize") or metrics["contentSize"]
        width = max(int(content["width"]), self.viewport_width())
        height = int(content["height"])
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    # -- accessibility ---------------------------------------------------------------------

    def axe_violations(self, tags: Sequence[str] = WCAG_TAGS) -> list[dict[str, Any]]:
        """Run axe-core on the current page with the rules tagged ``tags``; return its
        violations (axe's JSON: id, impact, help, helpUrl, nodes[target, failureSummary])."""
        driver = self.driver
        if not driver.execute_script("return typeof window.axe === 'object'"):
            driver.execute_script(axe_core_js().read_text(encoding="utf-8"))
        result = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            window.axe
              .run(document, {
                runOnly: {type: 'tag', values: arguments[0]},
                resultTypes: ['violations'],
              })
              .then(r => done({violations: r.violations}))
              .catch(e => done({error: String(e)}));
            """,
            list(tags),
        )
        if "error" in result:
            raise RuntimeError(f"axe-core failed on {driver.current_url}: {result['error']}")
        violations: list[dict[str, Any]] = result["violations"]
        return violations


def format_violations(url: str, violations: Sequence[Mapping[str, Any]]) -> str:
    """axe violations as readable text: one paragraph per rule, one line per element."""
    lines = [f"{len(violations)} accessibility violation(s) on {url}:"]
    for violation in violations:
        lines.append(
            f"- [{violation.get('impact')}] {violation['id']}: {violation.get('help')}"
            f" ({violation.get('helpUrl')})"
        )
        for node in violation.get("nodes", ()):
            target = " ".join(str(t) for t in node.get("target", ()))
            summary = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(f"    at {target}: {summary}")
    return "\n".join(lines)
