"""Cache rule rows on SQLite and PostgreSQL: one rule per (registry, name) and per
(registry, target); a credential set a rule uses cannot go (the foreign key backs the
service's refusal); rows go with their registry; secrets upserted in one statement."""

from __future__ import annotations

import pytest

from transship.errors import Conflict
from transship.metadata.cache_rules import cache_rule_queries
from transship.metadata.queries import MetadataStore


async def _registry_id(meta: MetadataStore) -> int:
    async with meta.reading() as q:
        found = await q.registry_by_name("default")
    assert found is not None
    return found.id


async def _add_set(meta: MetadataStore, registry_id: int, name: str) -> int:
    async with meta.writing() as q:
        queries = cache_rule_queries(q)
        await queries.insert_credential_set(
            registry_id,
            name,
            login_server="docker.io",
            username_secret_id="https://v.vault.azure.net/secrets/u",
            password_secret_id="https://v.vault.azure.net/secrets/p",
            principal_id="00000000-0000-4000-8000-000000000001",
        )
        found = await queries.credential_set(registry_id, name)
    assert found is not None
    return found.id


async def _add_rule(
    meta: MetadataStore, registry_id: int, name: str, target: str, set_id: int | None = None
) -> None:
    async with meta.writing() as q:
        await cache_rule_queries(q).insert_rule(
            registry_id,
            name,
            source_repository=f"docker.io/library/{target}",
            target_repository=target,
            wildcard=False,
            credential_set_id=set_id,
        )


async def test_names_and_targets_are_unique_per_registry(meta: MetadataStore) -> None:
    rid = await _registry_id(meta)
    await _add_rule(meta, rid, "nginx-rule", "nginx")
    with pytest.raises(Conflict):
        await _add_rule(meta, rid, "nginx-rule", "other")
    with pytest.raises(Conflict):
        await _add_rule(meta, rid, "nginx-again", "nginx")
    async with meta.reading() as q:
        queries = cache_rule_queries(q)
        assert [r.name for r in await queries.rules(rid)] == ["nginx-rule"]
        assert await queries.count_rules(rid) == 1
        found = await queries.rule_for_target(rid, "nginx")
        assert found is not None and found.name == "nginx-rule" and found.credential_set is None


async def test_a_used_credential_set_cannot_be_deleted_and_rules_show_its_name(
    meta: MetadataStore,
) -> None:
    rid = await _registry_id(meta)
    set_id = await _add_set(meta, rid, "hub-creds")
    await _add_rule(meta, rid, "nginx-rule", "nginx", set_id)
    async with meta.reading() as q:
        queries = cache_rule_queries(q)
        rule = await queries.rule(rid, "nginx-rule")
        assert rule is not None and rule.credential_set == "hub-creds"
        assert await queries.rules_using(set_id) == ["nginx-rule"]
    with pytest.raises(Conflict):
        async with meta.writing() as q:
            await cache_rule_queries(q).delete_credential_set(set_id)
    async with meta.writing() as q:
        queries = cache_rule_queries(q)
        assert await queries.delete_rule(rid, "nginx-rule")
        await queries.delete_credential_set(set_id)
        assert await queries.credential_set(rid, "hub-creds") is None


async def test_rows_go_with_their_registry(meta: MetadataStore) -> None:
    async with meta.writing() as q:
        await q.create_registry("cachereg", "cachereg.localhost")
    async with meta.reading() as q:
        registry = await q.registry_by_name("cachereg")
    assert registry is not None
    set_id = await _add_set(meta, registry.id, "hub-creds")
    await _add_rule(meta, registry.id, "nginx-rule", "nginx", set_id)
    async with meta.writing() as q:
        await q.delete_registry(registry.id)
    async with meta.reading() as q:
        queries = cache_rule_queries(q)
        assert await queries.rules(registry.id) == []
        assert await queries.credential_sets(registry.id) == []


async def test_secrets_upsert(meta: MetadataStore) -> None:
    identifier = "https://v.vault.azure.net/secrets/p"
    async with meta.writing() as q:
        assert await cache_rule_queries(q).put_secret(identifier, b"sealed-1")
    async with meta.writing() as q:
        assert not await cache_rule_queries(q).put_secret(identifier, b"sealed-2")
    async with meta.reading() as q:
        queries = cache_rule_queries(q)
        found = await queries.secret(identifier)
        assert found is not None and found.value == b"sealed-2"
        assert found.updated_at >= found.created_at
        listed = await queries.secrets()
        assert [(r.identifier, r.value) for r in listed] == [(identifier, None)]
