"""Shared pytest fixtures: real peers on loopback, isolated clients, and the database matrix.

Fixtures (every process they start is stopped at teardown):

- ``postgres`` (session): a throwaway PostgreSQL cluster (:class:`tests.peers.postgres.PostgresCluster`).
- ``database_url`` (function, parametrized ``sqlite`` / ``postgresql``): ``None`` meaning the
  embedded SQLite default, or the URL of a fresh empty PostgreSQL database (dropped after
  the test). Any test that uses it, directly or through ``transship_server``, runs on both.
- ``distribution_anon``, ``distribution_htpasswd``, ``distribution_token``: Debian's
  ``docker-registry`` in each auth mode (:class:`tests.peers.distribution.DistributionRegistry`).
- ``skopeo``, ``podman``, ``docker_cli``: isolated client wrappers (:mod:`tests.peers.clients`).
- ``oci_layout``: an empty :class:`tests.peers.images.OciLayout` in ``tmp_path``.
- ``fault_proxy_factory``: ``make(upstream_host, upstream_port) -> FaultProxy`` (started).
- ``transship_factory``: ``make(**TransshipServer kwargs) -> TransshipServer`` (started);
  ``transship_server``: one server on ``database_url``.

Tests that use a fixture needing an external program are marked ``peers`` automatically
(``-m "not peers"`` deselects them). When a program is missing, the test is skipped with
the reason, unless ``TRANSSHIP_REQUIRE_PEERS=1`` (set by ``scripts/test``, so in CI) where
it fails instead: CI installs every peer, so a skip there would hide a broken setup.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.peers.clients import DockerCli, Podman, Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import OciLayout
from tests.peers.postgres import PostgresCluster
from tests.peers.procs import PeerUnavailable
from tests.peers.transship import TransshipServer

PEER_FIXTURES = frozenset(
    {
        "postgres",
        "distribution_anon",
        "distribution_htpasswd",
        "distribution_token",
        "skopeo",
        "podman",
        "docker_cli",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use a peer fixture with ``peers``."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if PEER_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.peers)


def _unavailable(exc: PeerUnavailable) -> NoReturn:
    if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
        pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
    pytest.skip(str(exc))


# -- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole session."""
    try:
        cluster = PostgresCluster().start()
    except PeerUnavailable as exc:
        _unavailable(exc)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.peers)],
)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` (embedded SQLite) or a fresh, empty PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    url = cluster.new_database()
    try:
        yield url
    finally:
        cluster.drop_database(url.rsplit("/", 1)[1])


# -- independent registry ---------------------------------------------------------------------


def _distribution(path: Path, mode: Any) -> Iterator[DistributionRegistry]:
    try:
        registry = DistributionRegistry(path, mode).start()
    except PeerUnavailable as exc:
        _unavailable(exc)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def distribution_anon(tmp_path: Path) -> Iterator[DistributionRegistry]:
    """docker-registry without auth."""
    yield from _distribution(tmp_path / "distribution-anon", "anonymous")


@pytest.fixture
def distribution_htpasswd(tmp_path: Path) -> Iterator[DistributionRegistry]:
    """docker-registry with HTTP Basic auth (``.username`` / ``.password`` / ``.creds``)."""
    yield from _distribution(tmp_path / "distribution-htpasswd", "htpasswd")


@pytest.fixture
def distribution_token(tmp_path: Path) -> Iterator[DistributionRegistry]:
    """docker-registry with token auth; ``.token_server`` records token requests."""
    yield from _distribution(tmp_path / "distribution-token", "token")


# -- clients ----------------------------------------------------------------------------------


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    """An isolated skopeo."""
    try:
        return Skopeo(tmp_path / "skopeo")
    except PeerUnavailable as exc:
        _unavailable(exc)


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """An isolated podman (vfs storage under ``tmp_path``)."""
    try:
        client = Podman(tmp_path / "podman")
    except PeerUnavailable as exc:
        _unavailable(exc)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def docker_cli(tmp_path: Path) -> DockerCli:
    """The docker CLI with its own ``DOCKER_CONFIG`` (login and manifest commands only)."""
    try:
        return DockerCli(tmp_path / "docker")
    except PeerUnavailable as exc:
        _unavailable(exc)


# -- images, faults, our server -------------------------------------------------------------


@pytest.fixture
def oci_layout(tmp_path: Path) -> OciLayout:
    """An empty OCI image layout directory."""
    return OciLayout(tmp_path / "layout")


@pytest.fixture
def fault_proxy_factory() -> Iterator[Callable[[str, int], FaultProxy]]:
    """``make(upstream_host, upstream_port)`` → a started :class:`FaultProxy`."""
    proxies: list[FaultProxy] = []

    def make(upstream_host: str, upstream_port: int) -> FaultProxy:
        proxy = FaultProxy(upstream_host, upstream_port).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in reversed(proxies):
            proxy.stop()


@pytest.fixture
def transship_factory(tmp_path: Path) -> Iterator[Callable[..., TransshipServer]]:
    """``make(**kwargs)`` → a started :class:`TransshipServer` in its own dir under ``tmp_path``."""
    servers: list[TransshipServer] = []

    def make(**kwargs: Any) -> TransshipServer:
        workdir = kwargs.pop("workdir", tmp_path / f"transship-{len(servers) + 1}")
        server = TransshipServer(workdir, **kwargs)
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture
def transship_server(
    transship_factory: Callable[..., TransshipServer], database_url: str | None
) -> TransshipServer:
    """One Transship server on ``database_url`` (so tests using it run on SQLite and PostgreSQL)."""
    return transship_factory(database_url=database_url)
