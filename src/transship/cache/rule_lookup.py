"""`CacheRuleLookup` over the metadata database: which upstream backs a repository, with the
rule's credential set unsealed from the secret store."""

from __future__ import annotations

import time
from collections.abc import Callable

from transship.cache.errors import CredentialSetUnavailable
from transship.cache.ports import CachedUpstream
from transship.cache.rules import Repositories, parse_repositories
from transship.cache.secrets import SecretStore
from transship.errors import NotFound
from transship.imports.ports import Credentials
from transship.metadata.cache_rules import CacheRuleRecord, cache_rule_queries
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore

# How long whether a registry has cache rules at all is remembered: the backstop for a
# change feed that is down (the feed drops it within a second of any process's write).
RULED_TTL_SECONDS = 30.0


class DatabaseCacheRuleLookup:
    """Reads a registry's rules at each call (two keyed queries: the static rule naming the
    repository, then the registry's few wildcard rules), so a rule changed by any process
    applies at the next pull. Whether a registry has any rule at all is remembered (most
    have none, and every blob or manifest miss of a push asks): dropped by the change feed
    (`Topic.CACHE_RULES`) and after `ttl` seconds."""

    def __init__(
        self,
        meta: MetadataStore,
        secrets: SecretStore,
        *,
        ttl: float = RULED_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._meta = meta
        self._secrets = secrets
        self._ttl = ttl
        self._clock = clock
        # registry id → (whether it has a cache rule, when that was read)
        self._ruled: dict[int, tuple[bool, float]] = {}
        meta.changes.subscribe(Topic.CACHE_RULES, self._ruled.clear)

    async def _has_rules(self, registry_id: int) -> bool:
        now = self._clock()
        known = self._ruled.get(registry_id)
        if known is not None and now - known[1] < self._ttl:
            return known[0]
        changes = self._meta.changes
        version = changes.version(Topic.CACHE_RULES)
        async with self._meta.reading() as q:
            ruled = await cache_rule_queries(q).count_rules(registry_id) > 0
        if changes.unchanged(version, Topic.CACHE_RULES):
            self._ruled[registry_id] = (ruled, now)
        # else: read before a rule's commit was announced; used once, read again next time
        return ruled

    async def upstream_for(self, registry_id: int, repository: str) -> CachedUpstream | None:
        """The upstream backing `repository`, or None when no rule covers it. Raises
        CredentialSetUnavailable when the covering rule's credential set is gone or one of
        its secrets is not set (or cannot be opened)."""
        if not await self._has_rules(registry_id):
            return None
        async with self._meta.reading() as q:
            queries = cache_rule_queries(q)
            chosen = await queries.rule_for_target(registry_id, repository)
            if chosen is None or chosen.wildcard:
                # No static rule names it: the one wildcard rule covering it, if any (they
                # never overlap).
                chosen = next(
                    (
                        r
                        for r in await queries.wildcard_rules(registry_id)
                        if _repositories(r).upstream_of(repository) is not None
                    ),
                    None,
                )
            if chosen is None:
                return None
            credential_set = (
                None
                if chosen.credential_set_id is None
                else await queries.credential_set_by_id(chosen.credential_set_id)
            )
        rule = _repositories(chosen)
        upstream = rule.upstream_of(repository)
        assert upstream is not None
        credentials = None
        if chosen.credential_set_id is not None:
            if credential_set is None:
                raise CredentialSetUnavailable(
                    chosen.credential_set or "(deleted)", "", "the credential set is gone"
                )
            try:
                username = await self._secrets.resolve(credential_set.username_secret_id)
            except NotFound as exc:
                raise CredentialSetUnavailable(
                    credential_set.name, credential_set.username_secret_id, exc.message
                ) from None
            try:
                password = await self._secrets.resolve(credential_set.password_secret_id)
            except NotFound as exc:
                raise CredentialSetUnavailable(
                    credential_set.name, credential_set.password_secret_id, exc.message
                ) from None
            credentials = Credentials(username.value, password.value)
        return CachedUpstream(chosen.name, rule.host, upstream, credentials)


def _repositories(rule: CacheRuleRecord) -> Repositories:
    return parse_repositories(rule.source_repository, rule.target_repository)
