"""The whole-map caches on every data-plane request (registry access settings, the
registry resolver) reload once when many requests find them stale together, not once per
request; and a change still makes the next request read again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from transship.identity.registry_access import RegistryAccess
from transship.identity.secrets import SecretBox
from transship.metadata.changes import Topic
from transship.metadata.identity import IdentityQueries
from transship.metadata.queries import MetadataStore, RegistryQueries
from transship.registry.resolver import RegistryResolver

SUFFIX = "registry.test"


def counting(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[int]:
    """Count the calls of `owner.name`, each held 50 ms (a busy database), so that
    concurrent callers overlap."""
    calls = [0]
    original = getattr(owner, name)

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        await asyncio.sleep(0.05)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


async def test_access_settings_reload_once_for_concurrent_requests(
    meta: MetadataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with meta.reading() as q:
        registry = next(r for r in await q.registries() if r.is_default)
    access = RegistryAccess(meta, SecretBox(Fernet.generate_key()))
    calls = counting(monkeypatch, IdentityQueries, "all_registry_access")
    settings = await asyncio.gather(*(access.settings(registry) for _ in range(50)))
    assert calls[0] == 1
    assert len({id(s) for s in settings}) == 1  # every request got the one loaded value
    await access.settings(registry)
    assert calls[0] == 1  # fresh: no read
    meta.changes.publish([Topic.REGISTRIES])  # another process changed a registry
    await asyncio.gather(*(access.settings(registry) for _ in range(10)))
    assert calls[0] == 2


async def test_the_resolver_refreshes_once_for_concurrent_lookups(
    meta: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = RegistryResolver(meta, "default", SUFFIX)
    calls = counting(monkeypatch, RegistryQueries, "registries")
    found = await asyncio.gather(*(resolver.for_host(SUFFIX) for _ in range(50)))
    assert calls[0] == 1
    assert all(f.is_default for f in found)
    meta.changes.publish([Topic.REGISTRIES])
    await asyncio.gather(*(resolver.for_host(SUFFIX) for _ in range(10)))
    assert calls[0] == 2
