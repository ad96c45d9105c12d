"""Shared pytest fixtures: real peers on loopback, isolated clients, and the database matrix.

Fixtures (every process they start is stopped at teardown):

- ``postgres`` (session): a throwaway PostgreSQL cluster
  (:class:`tests.peers.postgres.PostgresCluster`).
- ``postgres_template`` (session): the name of a database of that cluster migrated to the
  newest schema, once per session (per xdist worker).
- ``database_url`` (function, parametrized ``sqlite`` / ``postgresql``): ``None`` meaning the
  embedded SQLite default, or the URL of a fresh PostgreSQL database (dropped after the
  test), copied from ``postgres_template`` so it is already migrated; a test marked
  ``empty_database`` gets an empty one instead. Any test that uses it, directly or through
  ``transship_server``, runs on both.
- ``sqlite_template`` (session) and the autouse ``_sqlite_from_template``: a new SQLite
  database file a test migrates in its own process starts as a copy of one migrated once
  per session (:mod:`tests.support.sqlite_template`), unless the test is marked
  ``empty_database``.
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

Parallel runs (pytest-xdist, as ``scripts/test`` does): each worker has its own session, so
its own PostgreSQL cluster and template, and its own block of ports (:mod:`tests.peers.ports`);
every data directory is under ``tmp_path``. Tests that share a module-scoped fixture are put
in one ``xdist_group`` (per fixture parameter), so ``--dist loadgroup`` runs them on one
worker and the fixture is set up once, as in a serial run; a module marked ``spread`` (its
tests independent, and long enough to be worth a fixture per worker) opts out.

Every server the tests run, in-process or as a subprocess, hashes new secrets and passwords
at scrypt's lowest cost (``TRANSSHIP_CREDENTIAL_HASH_COST``, set here for the session unless
already set), as Django's documentation advises for test suites: at the default a hash or a
check of one takes ~50 ms of CPU, and every new service hashes its owner's secret and checks
it, which made them ~8% of a full run's CPU. ``tests/unit/identity/test_secrets.py`` and
``tests/unit/test_config.py`` cover the default cost.

Services started in-process take their RS256 signing keys from a pool of real keys made
once per worker (:mod:`tests.support.signing_key_pool`): making one is ~50 ms of CPU, and
most tests start a service. A test marked ``fresh_signing_keys`` makes each key.

The servers and workers tests start as processes (``python -m transship …``) are forked from
a process per test worker that has done their imports once (:mod:`tests.peers.forked`;
``TRANSSHIP_TEST_FORK_SERVER=0`` starts each afresh instead).

Hypothesis runs with the ``dev`` profile (no deadline: timings under a loaded machine are
not a property of the code) or, when ``CI=true``, ``ci`` (also derandomized, so a CI run is
reproducible); ``HYPOTHESIS_PROFILE`` names another. Both print the blob to reproduce a
failure.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, Protocol, Self, TypeVar

import pytest
from hypothesis import settings as hypothesis_settings

from tests.peers.clients import DockerCli, Podman, Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import OciLayout
from tests.peers.object_stores import Azurite, SeaweedFS
from tests.peers.postgres import PostgresCluster
from tests.peers.procs import PeerUnavailable
from tests.peers.transship import TransshipServer

# The collection hook: peers marked, xdist groups, the longest tests first.
from tests.support.parallel_order import pytest_collection_modifyitems  # noqa: F401
from tests.support.signing_key_pool import SigningKeyPool
from tests.support.sqlite_template import SqliteTemplate
from transship.identity import tokens
from transship.metadata.db import Database

os.environ.setdefault("TRANSSHIP_CREDENTIAL_HASH_COST", "1024")
os.environ.setdefault("TRANSSHIP_TEST_FORK_SERVER", "1")

# A test worker's heap grows to millions of objects over a session (every module, fixture and
# cache), and a full collection walks all of it: ~0.3 s late in a run. With CPython's default
# thresholds (700, 10, 10) the objects a test keeps for a few milliseconds (its services,
# requests, rows) reach the oldest generation and a worker collected it every ~40 tests, ~9 %
# of its CPU. With these, short-lived objects are freed while still young.
gc.set_threshold(50_000, 20, 10)

# `--loop-stall-ms=N`: fail a test in which an event-loop callback ran longer than N ms.
pytest_plugins = ["tests.support.loop_stall"]

hypothesis_settings.register_profile("dev", deadline=None, print_blob=True)
hypothesis_settings.register_profile(
    "ci", deadline=None, print_blob=True, derandomize=True, database=None
)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() in ("true", "1") else "dev")
)


def _unavailable(exc: PeerUnavailable) -> NoReturn:
    if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
        pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
    pytest.skip(str(exc))


# -- databases -------------------------------------------------------------------------------


class _Startable(Protocol):
    def start(self) -> Self: ...

    def stop(self) -> None: ...


PeerT = TypeVar("PeerT", bound=_Startable)


def _running(peer: PeerT) -> Iterator[PeerT]:
    """Start `peer` for a fixture (skipping, or failing under TRANSSHIP_REQUIRE_PEERS, when
    it cannot run here) and stop it at the fixture's end."""
    try:
        started = peer.start()
    except PeerUnavailable as exc:
        _unavailable(exc)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole session."""
    yield from _running(PostgresCluster())


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A SeaweedFS server with its S3 gateway, once per session (per xdist worker)."""
    yield from _running(SeaweedFS())


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """An Azurite blob service, once per session (per xdist worker)."""
    yield from _running(Azurite())


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    """The name of a database on ``postgres`` migrated to the newest schema, with no session
    open on it, so ``CREATE DATABASE … TEMPLATE`` can copy it."""
    name = "transship_template"
    url = postgres.new_database(name)

    async def migrate() -> None:
        database = Database(url)
        try:
            await database.migrate()
        finally:
            await database.close()  # a template must have no open session

    # On a thread of its own: a session fixture may be set up while a test's loop runs.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    """A SQLite database migrated to the newest schema (made on first use)."""
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"), Database.migrate)


@pytest.fixture(autouse=True)
def _sqlite_from_template(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, sqlite_template: SqliteTemplate
) -> None:
    """New SQLite databases this test migrates start from the template (not marked
    ``empty_database``: those run every revision)."""
    if request.node.get_closest_marker("empty_database") is None:
        monkeypatch.setattr(Database, "migrate", sqlite_template.wrapping(Database.migrate))


@pytest.fixture(scope="session")
def signing_key_pool() -> SigningKeyPool:
    """Real signing keys, made on first use and handed out again in turn."""
    return SigningKeyPool(tokens.new_signing_key)


@pytest.fixture(autouse=True)
def _signing_keys_from_pool(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    signing_key_pool: SigningKeyPool,
) -> None:
    """Services this test starts in-process take their signing keys from the pool (not
    marked ``fresh_signing_keys``: those make each key)."""
    if request.node.get_closest_marker("fresh_signing_keys") is None:
        monkeypatch.setattr(tokens, "new_signing_key", signing_key_pool.take)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.peers)],
)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` (embedded SQLite) or a fresh PostgreSQL database's URL: migrated (a copy of
    ``postgres_template``), or empty for a test marked ``empty_database``."""
    if request.param == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    empty = request.node.get_closest_marker("empty_database") is not None
    template = None if empty else request.getfixturevalue("postgres_template")
    url = cluster.new_database(template=template)
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
