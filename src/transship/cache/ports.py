"""The seam between cache rules (what an ARM `registries/cacheRules` resource says) and the
pull path that copies on first pull: the pull path asks only "which upstream, if any, backs
this repository", never how rules are stored or how their credentials are unsealed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from transship.imports.ports import Credentials


@dataclass(frozen=True)
class CachedUpstream:
    """Where a repository under a cache rule pulls from.

    `host` is the upstream registry's login server as a rule names it (`docker.io`,
    `mcr.microsoft.com`, `myregistry.example:5000`), `repository` the upstream repository the
    target repository maps to (`library/nginx` for `docker.io/library/*` → `library/*`), and
    `credentials` the unsealed credential set's username and password (None: anonymous)."""

    rule_name: str
    host: str
    repository: str
    credentials: Credentials | None


class CacheRuleLookup(Protocol):
    """Finds the cache rule covering a repository of a registry."""

    async def upstream_for(self, registry_id: int, repository: str) -> CachedUpstream | None:
        """The upstream backing `repository`, or None when no rule covers it. Raises
        CredentialSetUnavailable (from `transship.cache.errors`) when a rule covers it but its
        credential set's secret cannot be resolved."""
        ...
