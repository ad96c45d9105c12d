"""Cache rules for pull-through tests: an in-memory CacheRuleLookup, and an in-process
server built with it (the composition root's `cache_rules`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from tests.support.app import AppTestServer, RunningRegistry
from transship.api.app import create_app
from transship.api.services import build_services
from transship.cache.ports import CachedUpstream
from transship.config import Settings
from transship.imports.ports import Credentials


@dataclass(frozen=True)
class Rule:
    """`target` → `source` on `host`: `cache/*` → `team/*` maps `cache/app` to `team/app`;
    without a trailing `/*`, one repository."""

    name: str
    target: str
    host: str
    source: str
    credentials: Credentials | None = None

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
    services = await build_services(settings, cache_rules=rules)
    server = AppTestServer(create_app(settings, services), settings, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningRegistry(services, server, http)
    finally:
        await server.close()
        await services.close()
