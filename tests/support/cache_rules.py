"""Cache rules for pull-through tests: an in-memory CacheRuleLookup, an in-process server
built with it (the composition root's `cache_rules`), the `cache_env` fixture (import it by
name into a test module), a whole pull as a client makes it, and the wait for the fills'
import jobs."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import TARGET, ImportEnv, insecure
from tests.peers.images import BuiltIndex
from tests.support.app import AppTestServer, RunningRegistry, make_settings
from tests.support.imports import Management
from transship.api.app import create_app
from transship.api.services import build_services
from transship.cache.ports import CachedUpstream
from transship.config import Settings
from transship.imports.ports import Credentials

CacheEnvFactory = Callable[..., Awaitable[ImportEnv]]


@dataclass(frozen=True)
class Rule:
    """`target` → `source` on `host`: `cache/*` → `team/*` maps `cache/app` to `team/app`;
    without a trailing `/*`, one repository."""

    name: str
    target: str
    host: str
    source: str
    credentials: Credentials | None = None
    # Raised instead of answering (a credential set whose secret cannot be resolved).
    broken: Exception | None = None

    def upstream_for(self, repository: str) -> CachedUpstream | None:
        if self.target.endswith("/*"):
            prefix = self.target[:-1]
            if not repository.startswith(prefix):
                return None
            upstream = self.source[:-1] + repository[len(prefix) :]
        elif repository == self.target:
            upstream = self.source
        else:
            return None
        if self.broken is not None:
            raise self.broken
        return CachedUpstream(self.name, self.host, upstream, self.credentials)


@dataclass
class StaticCacheRules:
    """A CacheRuleLookup over a fixed list of rules (every registry alike); counts lookups."""

    rules: list[Rule] = field(default_factory=list)
    lookups: int = 0

    async def upstream_for(self, registry_id: int, repository: str) -> CachedUpstream | None:
        self.lookups += 1
        for rule in self.rules:
            found = rule.upstream_for(repository)
            if found is not None:
                return found
        return None


@asynccontextmanager
async def cached_registry(
    settings: Settings, rules: StaticCacheRules
) -> AsyncIterator[RunningRegistry]:
    """`running_registry(settings)` with pull-through through `rules`."""
    services = await build_services(settings, cache_rule_lookup=rules)
    server = AppTestServer(create_app(settings, services), settings, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningRegistry(services, server, http)
    finally:
        await server.close()
        await services.close()


@pytest.fixture
async def cache_env(tmp_path: Path) -> AsyncIterator[CacheEnvFactory]:
    """`await cache_env(upstream_host, database_url=None, **settings)` → a running server
    whose default registry (reached at the server's own address) pulls `cache/*` through
    from `team/*` on `upstream_host` (plain HTTP); stopped at teardown."""
    async with AsyncExitStack() as stack:

        async def make(
            upstream_host: str, database_url: str | None = None, **overrides: Any
        ) -> ImportEnv:
            data_dir = tmp_path / "data"
            overrides.setdefault("upstreams", insecure(upstream_host))
            settings = make_settings(data_dir, database_url, **overrides)
            rules = StaticCacheRules([Rule("team", "cache/*", upstream_host, "team/*")])
            reg = await stack.enter_async_context(cached_registry(settings, rules))
            admin = Management(reg, data_dir)
            await admin.create_registry(TARGET)
            return ImportEnv(reg, admin, data_dir, database_url)

        yield make


async def pull_all(env: ImportEnv, repository: str, tag: str, index: BuiltIndex) -> None:
    """Pull the whole index as a client would, asserting every byte."""
    got = await env.manifest(repository, tag)
    assert got.status == 200, got
    assert got.body == index.index_bytes
    assert got.headers["Docker-Content-Digest"] == index.digest
    for child in index.children:
        got = await env.manifest(repository, child.digest)
        assert got.status == 200 and got.body == child.manifest_bytes, got.status
    for digest in index.blob_digests:
        got = await env.blob(repository, digest)
        assert got.status == 200, (digest, got.status, got.body[:200])
        assert "sha256:" + hashlib.sha256(got.body).hexdigest() == digest


async def wait_for_jobs(env: ImportEnv, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The registry's import operations once `count` of them have ended."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        operations = await env.admin.operations(TARGET)
        ended = [op for op in operations if op["properties"]["state"] not in ("queued", "running")]
        if len(ended) >= count:
            return operations
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{count} import operations not ended in {timeout} s: {operations}")
        await asyncio.sleep(0.3)
