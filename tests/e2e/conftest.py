"""Fixtures of the end-to-end tests: built images, a SQLite Transship, a second docker-registry,
the services Azure modules share (``sdk_env``, ``cli_env``), and headless Chromium for the
portal's browser tests (``browser``, ``screenshots``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.e2e.azure_env import AzureEnv, start_azure_env
from tests.e2e.content import MIB
from tests.peers.browser import WIDE, Browser, axe_core_js
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import (
    BuiltIndex,
    OciLayout,
    build_docker_list_with_foreign_layer,
    build_index,
)
from tests.peers.procs import PeerUnavailable
from tests.peers.transship import TransshipServer


@pytest.fixture
def transship(transship_factory: Callable[..., TransshipServer]) -> TransshipServer:
    """One Transship server on the embedded SQLite database."""
    return transship_factory()


@pytest.fixture
def multiarch(oci_layout: OciLayout) -> BuiltIndex:
    """A 3-platform OCI index (~5 MiB of blobs: a shared 1 MiB base, 1 MiB + 256 KiB per platform).

    Tagged ``multi`` in ``oci_layout``.
    """
    return build_index(oci_layout, tag="multi", layer_sizes=(MIB, 256 << 10), shared_layer_size=MIB)


@pytest.fixture
def windows_list(oci_layout: OciLayout) -> BuiltIndex:
    """A Docker manifest list: windows/amd64 (foreign base layer, os.version) and linux/amd64.

    Skopeo cannot read it from the layout: push it with ``push_layout_http``.
    """
    return build_docker_list_with_foreign_layer(
        oci_layout, tag="win", windows_layer_sizes=(64 << 10,), linux_layer_sizes=(512 << 10,)
    )


@pytest.fixture
def second_distribution(
    distribution_anon: DistributionRegistry, tmp_path: Path
) -> Iterator[DistributionRegistry]:
    """Another anonymous docker-registry, independent of ``distribution_anon``.

    It depends on ``distribution_anon`` so that a missing ``docker-registry`` binary is
    reported (skip, or failure in CI) by the shared fixture.
    """
    registry = DistributionRegistry(tmp_path / "distribution-second", "anonymous").start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def sdk_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureEnv]:
    """One :class:`AzureEnv` (no ``az login``: SDK scripts sign in themselves) for the Azure
    SDK modules, which mark themselves ``xdist_group("azure-sdk")`` so one worker starts it.
    Each module works in registries of its own."""
    env = start_azure_env(tmp_path_factory.mktemp("azure-sdk"), login=False)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureEnv]:
    """One :class:`AzureEnv` with a logged-in ``az`` for the Azure CLI modules whose tests
    need the default set-up (messages, locking, registry parity): they mark themselves
    ``xdist_group("azure-cli-shared")`` so one worker starts it, and each works in
    registries of its own."""
    env = start_azure_env(tmp_path_factory.mktemp("azure-cli-shared"))
    try:
        yield env
    finally:
        env.close()


# -- headless Chromium (the portal's browser tests) -------------------------------------------


def _browser_unavailable(exc: PeerUnavailable) -> NoReturn:
    if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
        pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
    pytest.skip(str(exc))


@pytest.fixture(scope="module")
def browser_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium (and its chromedriver) per module and xdist worker, always
    quit at the end: no process of it is left (:meth:`Browser.quit` checks). Defined here,
    not in a module, so the tests using it still spread over the workers."""
    try:
        axe_core_js()
        browser = Browser(tmp_path_factory.mktemp("browser")).start()
    except PeerUnavailable as exc:
        _browser_unavailable(exc)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def browser(browser_process: Browser) -> Browser:
    """The module's Chromium, reset for this test: a blank page, no cookies, 1280x900 (a
    browser that died in an earlier test is started again)."""
    if not browser_process.alive:
        browser_process.quit()
        browser_process.start()
    browser_process.reset(WIDE)
    return browser_process


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the browser tests save their screenshots: ``$TRANSSHIP_SCREENSHOTS`` (e.g.
    ``docs/portal`` to regenerate the documentation's), else a directory under ``tmp_path``,
    so a test run never writes into the repository."""
    chosen = os.environ.get("TRANSSHIP_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
