"""Route a request's Host header to a registry of the service."""

from __future__ import annotations

import time

from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord

_TTL_SECONDS = 5.0


class RegistryResolver:
    """Maps login servers to registries; unknown hosts reach the default registry.

    Answers are cached for a few seconds: registries change rarely, and the lookup sits on
    every request's path.
    """

    def __init__(self, meta: MetadataStore, default_name: str, login_server_suffix: str) -> None:
        self._meta = meta
        self._default_name = default_name
        self._default_login_server = login_server_suffix
        self._by_host: dict[str, RegistryRecord] = {}
        self._default: RegistryRecord | None = None
        self._loaded_at = 0.0

    async def start(self) -> None:
        """Create the default registry if this is a new service, then load the map."""
        async with self._meta.writing() as q:
            await q.ensure_default_registry(self._default_name, self._default_login_server)
        await self.refresh()

    async def refresh(self) -> None:
        async with self._meta.reading() as q:
            records = await q.registries()
        self._by_host = {r.login_server.lower(): r for r in records if r.login_server}
        self._default = next((r for r in records if r.is_default), None)
        self._loaded_at = time.monotonic()

    async def for_host(self, host: str | None) -> RegistryRecord:
        if time.monotonic() - self._loaded_at > _TTL_SECONDS:
            await self.refresh()
        if host:
            found = self._by_host.get(host.lower())
            if found is not None:
                return found
        assert self._default is not None, "resolver used before start()"
        return self._default
