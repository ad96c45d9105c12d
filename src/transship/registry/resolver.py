"""Route a request's Host header to a registry of the service."""

from __future__ import annotations

import asyncio
import time

from transship.errors import NotFound
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.registry.registries import canonical_host

_TTL_SECONDS = 5.0


class RegistryResolver:
    """Maps login servers to registries.

    A host under the login-server suffix (`<name>.<suffix>`) reaches only the registry of
    that name: when there is none it is an error, never the default registry, so creating a
    registry later cannot take over requests that used to reach the default one. Every other
    host (the service's own addresses, the suffix itself, names of a proxy in front) reaches
    the default registry.

    Answers are cached: registries change rarely, and the lookup sits on every request's
    path. A change of registries in any process (the change feed) makes the next lookup
    reload them, and they are reloaded every few seconds anyway (the backstop for a feed
    that is down). A miss under the suffix asks the database (keyed), so a registry another
    process just created is found at once.
    """

    def __init__(self, meta: MetadataStore, default_name: str, login_server_suffix: str) -> None:
        self._meta = meta
        self._default_name = default_name
        self._default_login_server = login_server_suffix
        self._subdomain_suffix = "." + login_server_suffix.lower()
        self._by_host: dict[str, RegistryRecord] = {}
        self._default: RegistryRecord | None = None
        self._loaded_at = 0.0
        # One refresh at a time: the lookups that find the map stale together (every
        # connection of a busy client, at each expiry) wait for that one read.
        self._refreshing = asyncio.Lock()
        meta.changes.subscribe(Topic.REGISTRIES, self._changed)

    def _changed(self) -> None:
        self._loaded_at = 0.0  # reloaded at the next lookup

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at > _TTL_SECONDS

    async def start(self) -> None:
        """Create the default registry if this is a new service, then load the map."""
        async with self._meta.writing() as q:
            await q.ensure_default_registry(self._default_name, self._default_login_server)
        await self.refresh()

    async def refresh(self) -> None:
        changes = self._meta.changes
        version = changes.version(Topic.REGISTRIES)
        async with self._meta.reading() as q:
            records = await q.registries()
        by_host = {}
        for record in records:
            if record.login_server and (host := canonical_host(record.login_server)):
                by_host[host] = record
            if record.is_default:
                # The default registry also answers at `<its name>.<suffix>`, like every other.
                by_host[f"{record.name.lower()}{self._subdomain_suffix}"] = record
        self._by_host = by_host
        self._default = next((r for r in records if r.is_default), None)
        if changes.unchanged(version, Topic.REGISTRIES):
            self._loaded_at = time.monotonic()
        # else: read before a change committed; used once, read again at the next lookup

    async def for_host(self, host: str | None) -> RegistryRecord:
        """The registry a request's Host header addresses. Raises NotFound("registry")
        for a host under the login-server suffix that names no registry."""
        if self._stale():
            async with self._refreshing:
                if self._stale():  # else another lookup refreshed it while this one waited
                    await self.refresh()
        canonical = canonical_host(host) if host else None
        if canonical is not None:
            found = self._by_host.get(canonical)
            if found is not None:
                return found
            if canonical.endswith(self._subdomain_suffix):
                async with self._meta.reading() as q:
                    found = await q.registry_by_login_server(canonical)
                if found is None:
                    raise NotFound(
                        "registry",
                        canonical,
                        f"no registry is reached at '{canonical}': create it first, or use the "
                        "login server its owner was given",
                        detail={"host": canonical},
                    )
                return found
        assert self._default is not None, "resolver used before start()"
        return self._default
