"""Cache rules, credential sets and secrets over a real database (SQLite and PostgreSQL):
the lookup the pull path uses (static rules before wildcards, credentials unsealed, a
missing secret refused clearly), the credential health ARM shows, the refusals that keep a
target covered by one rule, and concurrent creates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.fernet import Fernet

from transship.cache.errors import CredentialSetUnavailable
from transship.cache.rule_lookup import DatabaseCacheRuleLookup
from transship.cache.secrets import SecretStore
from transship.cache.service import CacheRuleService, CredentialSpec
from transship.errors import Conflict, Invalid, LimitExceeded, NotFound
from transship.identity.secrets import SecretBox
from transship.imports.ports import Credentials
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord

VAULT = "https://myvault.vault.azure.net/secrets"
USER_ID, PASSWORD_ID = f"{VAULT}/hub-user", f"{VAULT}/hub-password"


async def _registry(meta: MetadataStore) -> RegistryRecord:
    async with meta.reading() as q:
        found = await q.registry_by_name("default")
    assert found is not None
    return found


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
def secrets(meta: MetadataStore, box: SecretBox) -> SecretStore:
    return SecretStore(meta, box)


@pytest.fixture
def service(meta: MetadataStore, secrets: SecretStore) -> CacheRuleService:
    return CacheRuleService(meta, secrets)


@pytest.fixture
def lookup(meta: MetadataStore, secrets: SecretStore) -> DatabaseCacheRuleLookup:
    return DatabaseCacheRuleLookup(meta, secrets)


async def test_no_rule_means_no_upstream(
    meta: MetadataStore, lookup: DatabaseCacheRuleLookup
) -> None:
    registry = await _registry(meta)
    assert await lookup.upstream_for(registry.id, "library/nginx") is None


async def test_static_rules_win_over_the_wildcard_covering_them(
    meta: MetadataStore, service: CacheRuleService, lookup: DatabaseCacheRuleLookup
) -> None:
    registry = await _registry(meta)
    await service.create_rule(registry, "hub-library", "docker.io/library/*", "library/*", None)
    await service.create_rule(registry, "nginx-ghcr", "ghcr.io/team/nginx", "library/nginx", None)
    await service.create_rule(registry, "mcr-all", "mcr.microsoft.com/dotnet/*", "dotnet/*", None)
    found = await lookup.upstream_for(registry.id, "library/nginx")
    assert found is not None
    assert (found.rule_name, found.host, found.repository, found.credentials) == (
        "nginx-ghcr",
        "ghcr.io",
        "team/nginx",
        None,
    )
    python = await lookup.upstream_for(registry.id, "library/python")
    assert python is not None
    assert (python.rule_name, python.host, python.repository) == (
        "hub-library",
        "docker.io",
        "library/python",
    )
    sdk = await lookup.upstream_for(registry.id, "dotnet/sdk")
    assert sdk is not None and (sdk.host, sdk.repository) == ("mcr.microsoft.com", "dotnet/sdk")
    assert await lookup.upstream_for(registry.id, "team/app") is None
    # The target of a wildcard rule is not a repository it covers.
    assert await lookup.upstream_for(registry.id, "library") is None
    # Deleted: the repository is no longer backed.
    assert await service.delete_rule(registry, "nginx-ghcr")
    after = await lookup.upstream_for(registry.id, "library/nginx")
    assert after is not None and after.rule_name == "hub-library"


async def test_a_rule_with_a_credential_set_pulls_with_its_unsealed_secrets(
    meta: MetadataStore,
    service: CacheRuleService,
    secrets: SecretStore,
    lookup: DatabaseCacheRuleLookup,
) -> None:
    registry = await _registry(meta)
    view, created = await service.create_credential_set(
        registry, "hub-creds", CredentialSpec("docker.io", USER_ID, PASSWORD_ID)
    )
    assert created
    assert view.health.status == "Unhealthy"
    assert view.health.error_message is not None
    assert USER_ID in view.health.error_message and PASSWORD_ID in view.health.error_message
    await service.create_rule(
        registry, "hub-library", "docker.io/library/*", "library/*", "hub-creds"
    )

    with pytest.raises(CredentialSetUnavailable) as caught:
        await lookup.upstream_for(registry.id, "library/nginx")
    assert caught.value.credential_set == "hub-creds"
    assert caught.value.secret_uri == USER_ID
    assert "not set" in caught.value.reason

    await secrets.put(USER_ID, "hubuser")
    with pytest.raises(CredentialSetUnavailable) as caught:
        await lookup.upstream_for(registry.id, "library/nginx")
    assert caught.value.secret_uri == PASSWORD_ID
    half = await service.credential_set(registry, "hub-creds")
    assert half.health.status == "Unhealthy"
    assert half.health.error_message is not None and USER_ID not in half.health.error_message

    # Identifiers compare in their canonical form (Key Vault's names ignore case).
    await secrets.put(PASSWORD_ID.upper().replace("HTTPS", "https"), "s3cret-Pass")
    found = await lookup.upstream_for(registry.id, "library/nginx")
    assert found is not None
    assert found.credentials == Credentials("hubuser", "s3cret-Pass")
    assert "s3cret-Pass" not in repr(found)
    assert (await service.credential_set(registry, "hub-creds")).health.status == "Healthy"


async def test_a_secret_sealed_with_another_key_is_unavailable(
    meta: MetadataStore, service: CacheRuleService, secrets: SecretStore
) -> None:
    registry = await _registry(meta)
    await secrets.put(USER_ID, "u")
    await secrets.put(PASSWORD_ID, "p")
    await service.create_credential_set(
        registry, "hub-creds", CredentialSpec("docker.io", USER_ID, PASSWORD_ID)
    )
    await service.create_rule(
        registry, "hub-nginx", "docker.io/library/nginx", "nginx", "hub-creds"
    )
    other = DatabaseCacheRuleLookup(meta, SecretStore(meta, SecretBox(Fernet.generate_key())))
    with pytest.raises(CredentialSetUnavailable) as caught:
        await other.upstream_for(registry.id, "nginx")
    assert "another service key" in caught.value.reason


async def test_a_credential_set_in_use_cannot_be_deleted(
    meta: MetadataStore, service: CacheRuleService
) -> None:
    registry = await _registry(meta)
    await service.create_credential_set(
        registry, "hub-creds", CredentialSpec("docker.io", USER_ID, PASSWORD_ID)
    )
    await service.create_rule(
        registry, "hub-nginx", "docker.io/library/nginx", "nginx", "hub-creds"
    )
    with pytest.raises(Conflict) as caught:
        await service.delete_credential_set(registry, "hub-creds")
    assert caught.value.reason == "in_use" and "hub-nginx" in caught.value.message
    # Its login server cannot move away from the rules using it either.
    with pytest.raises(Invalid) as invalid:
        await service.update_credential_set(registry, "hub-creds", login_server="ghcr.io")
    assert invalid.value.field == "loginServer"
    # Once the rule lets go of it, it can.
    await service.update_rule(registry, "hub-nginx", None)
    assert (await service.rule(registry, "hub-nginx")).credential_set is None
    assert await service.delete_credential_set(registry, "hub-creds")
    assert not await service.delete_credential_set(registry, "hub-creds")


async def test_rule_refusals_name_the_field(meta: MetadataStore, service: CacheRuleService) -> None:
    registry = await _registry(meta)
    await service.create_credential_set(
        registry, "ghcr-creds", CredentialSpec("ghcr.io", USER_ID, PASSWORD_ID)
    )
    await service.create_rule(registry, "hub-library", "docker.io/library/*", "library/*", None)
    cases = [
        (("bad", "docker.io/library/x", "x", None), "cacheRuleName"),
        (("other-lib", "quay.io/library/*", "library/*", None), "targetRepository"),
        (("all-quay", "quay.io/*", "*", None), "targetRepository"),
        (("x-nginx", "docker.io/library/x", "x", "nosuchset"), "credentialSetResourceId"),
        # A credential set serves its own login server only.
        (("x-nginx", "docker.io/library/x", "x", "ghcr-creds"), "credentialSetResourceId"),
        # A rule's repositories cannot change.
        (("hub-library", "docker.io/library/*", "lib/*", None), "sourceRepository"),
    ]
    for (name, source, target, credential_set), field in cases:
        with pytest.raises(Invalid) as caught:
            await service.create_rule(registry, name, source, target, credential_set)
        assert caught.value.field == field, (name, caught.value.message)
    with pytest.raises(NotFound):
        await service.rule(registry, "nosuchrule")
    with pytest.raises(NotFound):
        await service.update_rule(registry, "nosuchrule", None)
    assert [r.name for r in await service.rules(registry)] == ["hub-library"]


async def test_credential_set_refusals_name_the_field(
    meta: MetadataStore, service: CacheRuleService
) -> None:
    registry = await _registry(meta)
    for spec, field in (
        (CredentialSpec("https://docker.io", USER_ID, PASSWORD_ID), "loginServer"),
        (
            CredentialSpec("docker.io", "hub-user", PASSWORD_ID),
            "authCredentials.usernameSecretIdentifier",
        ),
        (
            CredentialSpec("docker.io", USER_ID, "http://v.vault.azure.net/secrets/p"),
            "authCredentials.passwordSecretIdentifier",
        ),
    ):
        with pytest.raises(Invalid) as caught:
            await service.create_credential_set(registry, "hub-creds", spec)
        assert caught.value.field == field
    assert await service.credential_sets(registry) == []


async def test_concurrent_creates_of_one_target_leave_one_rule(
    meta: MetadataStore, service: CacheRuleService
) -> None:
    registry = await _registry(meta)
    results = await asyncio.gather(
        *(
            service.create_rule(registry, f"rule-{i:02}", f"ghcr.io/t{i}/app", "app", None)
            for i in range(6)
        ),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 1, results
    assert all(isinstance(e, (Invalid, Conflict)) for e in refused), refused
    assert len(await service.rules(registry)) == 1


async def test_the_rule_count_is_bounded(
    meta: MetadataStore, service: CacheRuleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("transship.cache.service.MAX_CACHE_RULES", 2)
    registry = await _registry(meta)
    await service.create_rule(registry, "rule-a", "ghcr.io/t/a", "a", None)
    await service.create_rule(registry, "rule-b", "ghcr.io/t/b", "b", None)
    with pytest.raises(LimitExceeded):
        await service.create_rule(registry, "rule-c", "ghcr.io/t/c", "c", None)
    # A PUT of an existing rule is not a new one.
    await service.create_rule(registry, "rule-a", "ghcr.io/t/a", "a", None)


async def test_concurrent_overlapping_wildcards_leave_one_rule(
    meta: MetadataStore, service: CacheRuleService
) -> None:
    # Different targets (no unique key stops them): only the per-registry serialisation of
    # the overlap check does.
    registry = await _registry(meta)
    targets = ["library/*", "library/py/*", "*", "library/py/x/*"]
    results = await asyncio.gather(
        *(
            service.create_rule(registry, f"wild-{i:02}", f"ghcr.io/t{i}/*", target, None)
            for i, target in enumerate(targets)
        ),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1, results
    assert all(isinstance(r, Invalid) for r in results if isinstance(r, BaseException))
    assert len(await service.rules(registry)) == 1


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count_reads(meta: MetadataStore) -> list[int]:
    """Counts the read transactions `meta` opens from now on (one element per read)."""
    reads: list[int] = []
    reading = meta.reading

    def counted() -> Any:
        reads.append(1)
        return reading()

    meta.reading = counted  # type: ignore[method-assign]
    return reads


async def test_a_registry_without_rules_is_remembered_until_a_rule_is_created(
    meta: MetadataStore, service: CacheRuleService, secrets: SecretStore
) -> None:
    registry = await _registry(meta)
    lookup = DatabaseCacheRuleLookup(meta, secrets, clock=_Clock())
    reads = _count_reads(meta)
    assert await lookup.upstream_for(registry.id, "library/nginx") is None
    assert len(reads) == 1
    for repository in ("library/nginx", "team/app", "library/python"):
        assert await lookup.upstream_for(registry.id, repository) is None
    assert len(reads) == 1, "a registry with no rule was read again"
    # A rule created by this process is announced at its commit: the next pull sees it.
    await service.create_rule(registry, "hub-library", "docker.io/library/*", "library/*", None)
    found = await lookup.upstream_for(registry.id, "library/nginx")
    assert found is not None and found.rule_name == "hub-library"
    # Deleting the last rule is announced too.
    assert await service.delete_rule(registry, "hub-library")
    assert await lookup.upstream_for(registry.id, "library/nginx") is None


async def test_a_rule_written_by_another_process_applies_within_the_ttl_without_the_feed(
    meta: MetadataStore, secrets: SecretStore, box: SecretBox
) -> None:
    registry = await _registry(meta)
    clock = _Clock()
    lookup = DatabaseCacheRuleLookup(meta, secrets, ttl=30.0, clock=clock)
    assert await lookup.upstream_for(registry.id, "library/nginx") is None
    # Another process: its own change hub, which this one's lookup never hears from (a change
    # feed that is down).
    elsewhere = MetadataStore(meta.db)
    other = CacheRuleService(elsewhere, SecretStore(elsewhere, box))
    await other.create_rule(registry, "hub-library", "docker.io/library/*", "library/*", None)
    clock.now += 29.0
    assert await lookup.upstream_for(registry.id, "library/nginx") is None
    clock.now += 2.0
    found = await lookup.upstream_for(registry.id, "library/nginx")
    assert found is not None and found.rule_name == "hub-library"
    # Told by the feed, it forgets at once.
    await other.delete_rule(registry, "hub-library")
    meta.changes.publish([Topic.CACHE_RULES])
    assert await lookup.upstream_for(registry.id, "library/nginx") is None


async def test_a_read_that_raced_a_rules_change_is_not_remembered(
    meta: MetadataStore, service: CacheRuleService, secrets: SecretStore
) -> None:
    registry = await _registry(meta)
    lookup = DatabaseCacheRuleLookup(meta, secrets, clock=_Clock())
    reading = meta.reading

    def announced_meanwhile() -> Any:
        # The change is announced while the lookup's read is open: what it read may predate
        # the commit.
        meta.changes.publish([Topic.CACHE_RULES])
        return reading()

    meta.reading = announced_meanwhile  # type: ignore[method-assign]
    assert await lookup.upstream_for(registry.id, "library/nginx") is None
    meta.reading = reading  # type: ignore[method-assign]
    await CacheRuleService(MetadataStore(meta.db), secrets).create_rule(
        registry, "hub-library", "docker.io/library/*", "library/*", None
    )
    found = await lookup.upstream_for(registry.id, "library/nginx")
    assert found is not None, "a read raced by a change was kept"
