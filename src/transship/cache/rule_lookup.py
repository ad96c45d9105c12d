"""`CacheRuleLookup` over the metadata database: which upstream backs a repository, with the
rule's credential set unsealed from the secret store."""

from __future__ import annotations

from transship.cache.errors import CredentialSetUnavailable
from transship.cache.ports import CachedUpstream
from transship.cache.rules import Repositories, parse_repositories
from transship.cache.secrets import SecretStore
from transship.errors import NotFound
from transship.imports.ports import Credentials
from transship.metadata.cache_rules import CacheRuleRecord, cache_rule_queries
from transship.metadata.queries import MetadataStore


class DatabaseCacheRuleLookup:
    """Reads the rules at each call (two keyed queries: the static rule naming the
    repository, then the registry's few wildcard rules), so a rule changed by any process
    applies at the next pull."""

    def __init__(self, meta: MetadataStore, secrets: SecretStore) -> None:
        self._meta = meta
        self._secrets = secrets

    async def upstream_for(self, registry_id: int, repository: str) -> CachedUpstream | None:
        """The upstream backing `repository`, or None when no rule covers it. Raises
        CredentialSetUnavailable when the covering rule's credential set is gone or one of
        its secrets is not set (or cannot be opened)."""
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
