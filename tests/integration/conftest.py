"""Fixtures of the import tests: an in-process server with a target registry skopeo can
address directly, upstream images, the recording HTTP proxy and a spare docker-registry."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultMode, FaultProxy
from tests.peers.images import (
    BuiltImage,
    BuiltIndex,
    OciLayout,
    build_image,
    build_index,
    push_layout_http,
)
from tests.peers.procs import PeerUnavailable
from tests.peers.rate_limited import RateLimitedRegistry
from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.imports import Fetched, Management, fetch
from tests.support.upstream_proxy import UpstreamProxy

# The default registry: reached at the server's own address (a registry's login server is
# always <name>.<suffix>, never an address of the service), so skopeo reaches it directly.
TARGET = "default"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a test passed, its module's ``check_after_call(item)`` if it has one: a check
    of what the whole test did (not one Hypothesis example), failing the test itself."""
    result = yield
    check = getattr(getattr(item, "module", None), "check_after_call", None)
    if check is not None:
        check(item)
    return result


def insecure(*hosts: str) -> dict[str, Any]:
    """`upstreams` for loopback registries speaking plain HTTP."""
    return {host: {"insecure": True} for host in hosts}


@dataclass
class ImportEnv:
    """An in-process server whose target registry is the default one, reached at
    `127.0.0.1:<port>`, so skopeo reaches it directly and plain requests route to it."""

    reg: RunningRegistry
    admin: Management
    data_dir: Path
    database_url: str | None

    @property
    def login_server(self) -> str:
        return self.reg.url.removeprefix("http://")

    async def assert_consistent(self) -> None:
        """The in-process `transship check --verify-digests`: no problem anywhere."""
        report = await self.reg.services.checker.run(verify_digests=True)
        assert report.ok, report.problems

    async def run_import(self, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        return await self.admin.run_import(TARGET, body, timeout)

    async def manifest(self, repository: str, reference: str, host: str | None = None) -> Fetched:
        return await fetch(
            self.reg.http, self.reg.url, f"/v2/{repository}/manifests/{reference}", host
        )

    async def blob(self, repository: str, digest: str) -> Fetched:
        return await fetch(self.reg.http, self.reg.url, f"/v2/{repository}/blobs/{digest}")

    async def tags(self, repository: str) -> list[str] | None:
        """The tags of `repository` in the target registry; None when it does not exist."""
        got = await fetch(self.reg.http, self.reg.url, f"/v2/{repository}/tags/list")
        if got.status == 404:
            return None
        assert got.status == 200, got
        return list(json.loads(got.body)["tags"] or [])


ImportEnvFactory = Callable[..., Awaitable[ImportEnv]]
ProxyFactory = Callable[[str], Awaitable[UpstreamProxy]]


@pytest.fixture
async def import_env(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ImportEnvFactory]:
    """`await import_env(database_url=None, **settings overrides)` → a running ImportEnv
    (one per test; stopped at teardown)."""
    if "database_url" in request.fixturenames:
        # Set up before this fixture, so torn down after it: the servers stop before their
        # database is dropped (else their loops crash on a missing database at shutdown).
        request.getfixturevalue("database_url")
    async with AsyncExitStack() as stack:

        async def make(database_url: str | None = None, **overrides: Any) -> ImportEnv:
            data_dir = tmp_path / "data"
            settings = make_settings(data_dir, database_url, **overrides)
            reg = await stack.enter_async_context(running_registry(settings))
            admin = Management(reg, data_dir)
            await admin.create_registry(TARGET)
            return ImportEnv(reg, admin, data_dir, database_url)

        yield make


@pytest.fixture
async def upstream_proxy() -> AsyncIterator[ProxyFactory]:
    """`await upstream_proxy(upstream_url)` → a started recording HTTP proxy."""
    proxies: list[UpstreamProxy] = []

    async def make(upstream_url: str) -> UpstreamProxy:
        proxy = await UpstreamProxy(upstream_url).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in reversed(proxies):
            await proxy.close()


# The slow upstream's image: small blobs first (committed early), then large ones (in flight
# when an import is interrupted).
SLOW_SMALL = (400_000, 400_000)
SLOW_LARGE = (2_000_000, 2_000_000)


@dataclass(frozen=True)
class SlowUpstream:
    """An image in docker-registry as `team/app:v1`, reached at `tcp.host` through a 1 MB/s
    (per connection) fault proxy in front of a `recorder` of every upstream request."""

    image: BuiltImage
    sizes: dict[str, int]  # blob digest → size
    recorder: UpstreamProxy
    tcp: FaultProxy


SlowUpstreamFactory = Callable[[str], Awaitable[SlowUpstream]]


@pytest.fixture
def slow_upstream(
    tmp_path: Path,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
) -> SlowUpstreamFactory:
    """`await slow_upstream(seed)` → the image built from `seed`, pushed, behind its proxies
    (stopped by their own fixtures)."""

    async def make(seed: str) -> SlowUpstream:
        image = await asyncio.to_thread(
            build_image,
            OciLayout(tmp_path / "layout"),
            seed=seed,
            layer_sizes=SLOW_SMALL + SLOW_LARGE,
        )
        await asyncio.to_thread(push_layout_http, image, distribution_anon.url, "team/app", "v1")
        sizes = {
            image.config.digest: image.config.size,
            **{layer.digest: layer.descriptor.size for layer in image.layers},
        }
        recorder = await upstream_proxy(distribution_anon.url)
        tcp = fault_proxy_factory("127.0.0.1", recorder.port)
        tcp.set_mode(FaultMode.bandwidth(1_000_000))
        return SlowUpstream(image, sizes, recorder, tcp)

    return make


@pytest.fixture
def spare_registry(tmp_path: Path) -> Iterator[DistributionRegistry]:
    """A fresh anonymous docker-registry (the destination of `skopeo copy` out of Transship)."""
    try:
        registry = DistributionRegistry(tmp_path / "spare-registry", "anonymous").start()
    except PeerUnavailable as exc:
        if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
            pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield registry
    finally:
        registry.stop()


def small_index(
    tmp_path: Path,
    *,
    seed: str = "index",
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64", "linux/arm/v7"),
    **kwargs: Any,
) -> BuiltIndex:
    """A multi-arch OCI index in its own layout (small layers unless told otherwise)."""
    kwargs.setdefault("layer_sizes", (40_000, 90_000))
    kwargs.setdefault("shared_layer_size", 60_000)
    return build_index(
        OciLayout(tmp_path / f"layout-{seed}"), platforms=platforms, seed=seed, **kwargs
    )


@pytest.fixture
def upstream_index(tmp_path: Path, distribution_anon: DistributionRegistry) -> BuiltIndex:
    """A 3-platform index at `team/app:v1` on an anonymous docker-registry."""
    index = small_index(tmp_path)
    push_layout_http(index, distribution_anon.url, "team/app", "v1")
    return index


@pytest.fixture
async def hub(distribution_token: DistributionRegistry) -> AsyncIterator[RateLimitedRegistry]:
    """A Docker-Hub-style rate-limited proxy (100 pulls an hour per caller) in front of the
    token-authenticated docker-registry; stopped at teardown."""
    proxy = RateLimitedRegistry(
        distribution_token.url,
        limit=100,
        window=3600,
        token_server=distribution_token.token_server,
    )
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
