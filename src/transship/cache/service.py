"""Management of cache rules and credential sets (ARM `registries/cacheRules` and
`registries/credentialSets`): create, change, delete, and the health of a credential set's
secrets. The pull path reads rules through `transship.cache.rule_lookup`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from transship.cache.rules import (
    MAX_CACHE_RULES,
    MAX_CREDENTIAL_SETS,
    Repositories,
    check_login_server,
    check_name,
    check_overlap,
    check_repositories,
    parse_repositories,
)
from transship.cache.secrets import SecretStore, secret_identifier
from transship.errors import Conflict, Invalid, LimitExceeded, NotFound
from transship.metadata.cache_rules import (
    CacheRuleQueries,
    CacheRuleRecord,
    CredentialSetRecord,
    cache_rule_queries,
)
from transship.metadata.queries import MetadataStore, Transaction
from transship.metadata.records import RegistryRecord

# The one credential name ACR knows.
CREDENTIAL_NAME = "Credential1"
HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    """A credential set's settings, identifiers as given (checked by the service)."""

    login_server: str
    username_secret_id: str
    password_secret_id: str


@dataclass(frozen=True, slots=True)
class CredentialHealth:
    """Whether both secrets of a credential set are stored here. `error_message` names the
    missing identifiers (never a value)."""

    status: str
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialSetView:
    record: CredentialSetRecord
    health: CredentialHealth


class CacheRuleService:
    """Cache rules and credential sets of registries. Every error names its field."""

    def __init__(self, meta: MetadataStore, secrets: SecretStore) -> None:
        self._meta = meta
        self._secrets = secrets

    # -- credential sets -------------------------------------------------------------------
    async def credential_sets(self, registry: RegistryRecord) -> list[CredentialSetView]:
        async with self._meta.reading() as q:
            found = await cache_rule_queries(q).credential_sets(registry.id)
        return await self._with_health(found)

    async def credential_set(self, registry: RegistryRecord, name: str) -> CredentialSetView:
        """Raises NotFound("credential set")."""
        async with self._meta.reading() as q:
            found = await cache_rule_queries(q).credential_set(registry.id, name)
        if found is None:
            raise _unknown_set(registry, name)
        return (await self._with_health([found]))[0]

    async def create_credential_set(
        self, registry: RegistryRecord, name: str, spec: CredentialSpec
    ) -> tuple[CredentialSetView, bool]:
        """Create the credential set, or replace the settings of an existing one. Returns it
        and whether it was created. Raises Invalid naming the field, LimitExceeded past
        MAX_CREDENTIAL_SETS, Conflict on a concurrent create."""
        check_name(name, "credentialSetName", "credential set")
        spec = _checked(spec)
        async with self._meta.writing() as q:
            await _lock(q, registry)
            queries = cache_rule_queries(q)
            current = await queries.credential_set(registry.id, name)
            if current is not None:
                await self._check_login_server_of_rules(queries, current, spec.login_server)
                await queries.update_credential_set(
                    current.id,
                    login_server=spec.login_server,
                    username_secret_id=spec.username_secret_id,
                    password_secret_id=spec.password_secret_id,
                )
            else:
                if await queries.count_credential_sets(registry.id) >= MAX_CREDENTIAL_SETS:
                    raise LimitExceeded(
                        f"registry {registry.name} has {MAX_CREDENTIAL_SETS} credential sets, "
                        "the most it may have",
                        subject="credential set",
                    )
                try:
                    await queries.insert_credential_set(
                        registry.id,
                        name,
                        login_server=spec.login_server,
                        username_secret_id=spec.username_secret_id,
                        password_secret_id=spec.password_secret_id,
                        principal_id=str(uuid.uuid4()),
                    )
                except Conflict:
                    raise Conflict(
                        f"credential set {name} was created concurrently",
                        subject="credential set",
                    ) from None
            saved = await queries.credential_set(registry.id, name)
        assert saved is not None
        return (await self._with_health([saved]))[0], current is None

    async def update_credential_set(
        self,
        registry: RegistryRecord,
        name: str,
        *,
        login_server: str | None = None,
        username_secret_id: str | None = None,
        password_secret_id: str | None = None,
    ) -> CredentialSetView:
        """Change what is given. Raises NotFound("credential set") or Invalid."""
        async with self._meta.writing() as q:
            await _lock(q, registry)
            queries = cache_rule_queries(q)
            current = await queries.credential_set(registry.id, name)
            if current is None:
                raise _unknown_set(registry, name)
            spec = _checked(
                CredentialSpec(
                    login_server if login_server is not None else current.login_server,
                    username_secret_id
                    if username_secret_id is not None
                    else current.username_secret_id,
                    password_secret_id
                    if password_secret_id is not None
                    else current.password_secret_id,
                )
            )
            await self._check_login_server_of_rules(queries, current, spec.login_server)
            await queries.update_credential_set(
                current.id,
                login_server=spec.login_server,
                username_secret_id=spec.username_secret_id,
                password_secret_id=spec.password_secret_id,
            )
            saved = await queries.credential_set(registry.id, name)
        assert saved is not None
        return (await self._with_health([saved]))[0]

    async def delete_credential_set(self, registry: RegistryRecord, name: str) -> bool:
        """False when there was none. Raises Conflict (reason "in_use") while cache rules
        use it, naming them."""
        async with self._meta.writing() as q:
            await _lock(q, registry)
            queries = cache_rule_queries(q)
            current = await queries.credential_set(registry.id, name)
            if current is None:
                return False
            users = await queries.rules_using(current.id)
            if users:
                raise Conflict(
                    f"credential set {name} is used by cache rule(s) {', '.join(users)}; "
                    "remove it from them (or delete them) first",
                    subject="credential set",
                    reason="in_use",
                )
            await queries.delete_credential_set(current.id)
        return True

    async def _with_health(self, found: list[CredentialSetRecord]) -> list[CredentialSetView]:
        wanted = sorted({i for r in found for i in (r.username_secret_id, r.password_secret_id)})
        present = await self._secrets.present(wanted)
        return [CredentialSetView(r, health_of(r, present)) for r in found]

    @staticmethod
    async def _check_login_server_of_rules(
        queries: CacheRuleQueries, current: CredentialSetRecord, login_server: str
    ) -> None:
        # A rule's credential set serves the rule's source registry (checked when set).
        if login_server == current.login_server:
            return
        users = await queries.rules_using(current.id)
        if users:
            raise Invalid(
                "loginServer",
                f"loginServer cannot change while cache rule(s) {', '.join(users)} use the "
                f"credential set for {current.login_server}",
                subject="credential set",
            )

    # -- cache rules -----------------------------------------------------------------------
    async def rules(self, registry: RegistryRecord) -> list[CacheRuleRecord]:
        async with self._meta.reading() as q:
            return await cache_rule_queries(q).rules(registry.id)

    async def rule(self, registry: RegistryRecord, name: str) -> CacheRuleRecord:
        """Raises NotFound("cache rule")."""
        async with self._meta.reading() as q:
            found = await cache_rule_queries(q).rule(registry.id, name)
        if found is None:
            raise _unknown_rule(registry, name)
        return found

    async def create_rule(
        self,
        registry: RegistryRecord,
        name: str,
        source_repository: str,
        target_repository: str,
        credential_set: str | None,
    ) -> tuple[CacheRuleRecord, bool]:
        """Create a rule, or (PUT of an existing one) change its credential set: its source
        and target cannot change (as ACR). Returns it and whether it was created. Raises
        Invalid naming the field (names, repositories, an overlap, a credential set that
        does not exist or serves another login server), LimitExceeded past
        MAX_CACHE_RULES, Conflict on a concurrent create."""
        check_name(name, "cacheRuleName", "cache rule")
        wanted = check_repositories(source_repository, target_repository)
        async with self._meta.writing() as q:
            await _lock(q, registry)
            queries = cache_rule_queries(q)
            set_id = await self._credential_set_id(queries, registry, credential_set, wanted)
            current = await queries.rule(registry.id, name)
            if current is not None:
                if (
                    current.source_repository != wanted.source_repository
                    or current.target_repository != wanted.target_repository
                ):
                    raise Invalid(
                        "sourceRepository",
                        f"cache rule {name} maps {current.target_repository!r} to "
                        f"{current.source_repository!r}; its repositories cannot change "
                        "(delete it and create another)",
                        subject="cache rule",
                    )
                await queries.set_rule_credential_set(current.id, set_id)
            else:
                if await queries.count_rules(registry.id) >= MAX_CACHE_RULES:
                    raise LimitExceeded(
                        f"registry {registry.name} has {MAX_CACHE_RULES} cache rules, the "
                        "most it may have",
                        subject="cache rule",
                    )
                others = [
                    (r.name, parse_repositories(r.source_repository, r.target_repository))
                    for r in await queries.rules(registry.id)
                ]
                check_overlap(wanted, others)
                try:
                    await queries.insert_rule(
                        registry.id,
                        name,
                        source_repository=wanted.source_repository,
                        target_repository=wanted.target_repository,
                        wildcard=wanted.wildcard,
                        credential_set_id=set_id,
                    )
                except Conflict:
                    raise Conflict(
                        f"cache rule {name} (or one for {wanted.target_repository}) was "
                        "created concurrently",
                        subject="cache rule",
                    ) from None
            saved = await queries.rule(registry.id, name)
        assert saved is not None
        return saved, current is None

    async def update_rule(
        self, registry: RegistryRecord, name: str, credential_set: str | None
    ) -> CacheRuleRecord:
        """Set (a name) or remove (None) the rule's credential set. Raises
        NotFound("cache rule") or Invalid("credentialSetResourceId")."""
        async with self._meta.writing() as q:
            await _lock(q, registry)
            queries = cache_rule_queries(q)
            current = await queries.rule(registry.id, name)
            if current is None:
                raise _unknown_rule(registry, name)
            repositories = parse_repositories(current.source_repository, current.target_repository)
            set_id = await self._credential_set_id(queries, registry, credential_set, repositories)
            await queries.set_rule_credential_set(current.id, set_id)
            saved = await queries.rule(registry.id, name)
        assert saved is not None
        return saved

    async def delete_rule(self, registry: RegistryRecord, name: str) -> bool:
        """False when there was none. What the rule cached stays, an ordinary repository."""
        async with self._meta.writing() as q:
            return await cache_rule_queries(q).delete_rule(registry.id, name)

    @staticmethod
    async def _credential_set_id(
        queries: CacheRuleQueries,
        registry: RegistryRecord,
        credential_set: str | None,
        repositories: Repositories,
    ) -> int | None:
        if credential_set is None:
            return None
        found = await queries.credential_set(registry.id, credential_set)
        if found is None:
            raise Invalid(
                "credentialSetResourceId",
                f"credential set {credential_set!r} does not exist in registry {registry.name}",
                subject="cache rule",
            )
        if found.login_server != repositories.host:
            raise Invalid(
                "credentialSetResourceId",
                f"credential set {credential_set!r} is for {found.login_server}, not the "
                f"rule's source registry {repositories.host}",
                subject="cache rule",
            )
        return found.id


async def _lock(q: Transaction, registry: RegistryRecord) -> None:
    """Serialise the writes of one registry's rules and credential sets (PostgreSQL: a
    read-committed check of overlaps, counts or use would otherwise miss a concurrent
    write; SQLite serialises writers anyway). Raises NotFound("registry") when it is gone."""
    if await q.registry_by_id(registry.id, for_update=True) is None:
        raise NotFound("registry", registry.name, f"registry {registry.name} does not exist")


def health_of(record: CredentialSetRecord, present: set[str]) -> CredentialHealth:
    """Healthy when both of the set's secrets are stored, else Unhealthy naming them."""
    missing = [
        i for i in (record.username_secret_id, record.password_secret_id) if i not in present
    ]
    if not missing:
        return CredentialHealth(HEALTHY)
    return CredentialHealth(
        UNHEALTHY,
        "SecretNotFound",
        "Not set in the Transship secret store (transship secret set): "
        + ", ".join(dict.fromkeys(missing)),
    )


def _checked(spec: CredentialSpec) -> CredentialSpec:
    return CredentialSpec(
        check_login_server(spec.login_server),
        secret_identifier(spec.username_secret_id, "authCredentials.usernameSecretIdentifier"),
        secret_identifier(spec.password_secret_id, "authCredentials.passwordSecretIdentifier"),
    )


def _unknown_set(registry: RegistryRecord, name: str) -> NotFound:
    return NotFound(
        "credential set",
        name,
        f"The credential set '{name}' does not exist in registry '{registry.name}'.",
    )


def _unknown_rule(registry: RegistryRecord, name: str) -> NotFound:
    return NotFound(
        "cache rule", name, f"The cache rule '{name}' does not exist in registry '{registry.name}'."
    )
