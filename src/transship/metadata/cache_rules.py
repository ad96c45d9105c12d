"""Queries over the artifact cache's rows: the credential sets and cache rules of registries,
and the sealed secret store their secret identifiers resolve against.

Rows only: what a rule may say (wildcards, overlaps, limits) is `transship.cache.rules`'
business, and a sealed value is opaque here (`transship.cache.secrets` seals and opens it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update

from transship.metadata import schema as s
from transship.metadata.changes import Topic
from transship.metadata.scope import QueryScope, as_utc, utcnow


@dataclass(frozen=True, slots=True)
class CredentialSetRecord:
    id: int
    registry_id: int
    name: str
    login_server: str
    username_secret_id: str
    password_secret_id: str
    principal_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CacheRuleRecord:
    """A rule; `credential_set` is the name of its credential set (None: anonymous)."""

    id: int
    registry_id: int
    name: str
    source_repository: str
    target_repository: str
    wildcard: bool
    credential_set_id: int | None
    credential_set: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SealedSecretRecord:
    """A stored secret's identifier and times; `value` is sealed (None when not read)."""

    identifier: str
    created_at: datetime
    updated_at: datetime
    value: bytes | None = None


def _credential_set(row: Row[Any]) -> CredentialSetRecord:
    return CredentialSetRecord(
        id=row.id,
        registry_id=row.registry_id,
        name=row.name,
        login_server=row.login_server,
        username_secret_id=row.username_secret_id,
        password_secret_id=row.password_secret_id,
        principal_id=row.principal_id,
        created_at=as_utc(row.created_at),
    )


def _rule(row: Row[Any]) -> CacheRuleRecord:
    return CacheRuleRecord(
        id=row.id,
        registry_id=row.registry_id,
        name=row.name,
        source_repository=row.source_repository,
        target_repository=row.target_repository,
        wildcard=bool(row.wildcard),
        credential_set_id=row.credential_set_id,
        credential_set=row.credential_set_name,
        created_at=as_utc(row.created_at),
    )


def _rules_query() -> Any:
    rules, sets = s.cache_rules, s.credential_sets
    return select(rules, sets.c.name.label("credential_set_name")).select_from(
        rules.outerjoin(sets, rules.c.credential_set_id == sets.c.id)
    )


class CacheRuleQueries(QueryScope):
    """Credential sets, cache rules and sealed secrets, on one connection."""

    # -- credential sets -------------------------------------------------------------------
    async def credential_sets(self, registry_id: int) -> list[CredentialSetRecord]:
        t = s.credential_sets
        rows = await self._exec(select(t).where(t.c.registry_id == registry_id).order_by(t.c.name))
        return [_credential_set(r) for r in rows]

    async def credential_set(self, registry_id: int, name: str) -> CredentialSetRecord | None:
        t = s.credential_sets
        row = (
            await self._exec(select(t).where(t.c.registry_id == registry_id, t.c.name == name))
        ).first()
        return None if row is None else _credential_set(row)

    async def credential_set_by_id(self, credential_set_id: int) -> CredentialSetRecord | None:
        t = s.credential_sets
        row = (await self._exec(select(t).where(t.c.id == credential_set_id))).first()
        return None if row is None else _credential_set(row)

    async def count_credential_sets(self, registry_id: int) -> int:
        t = s.credential_sets
        query = select(func.count()).select_from(t).where(t.c.registry_id == registry_id)
        return int((await self._exec(query)).scalar_one())

    async def insert_credential_set(
        self,
        registry_id: int,
        name: str,
        *,
        login_server: str,
        username_secret_id: str,
        password_secret_id: str,
        principal_id: str,
    ) -> None:
        """Raises Conflict when the name is taken (a concurrent create)."""
        await self._exec(
            insert(s.credential_sets).values(
                registry_id=registry_id,
                name=name,
                login_server=login_server,
                username_secret_id=username_secret_id,
                password_secret_id=password_secret_id,
                principal_id=principal_id,
                created_at=utcnow(),
            )
        )

    async def update_credential_set(
        self,
        credential_set_id: int,
        *,
        login_server: str,
        username_secret_id: str,
        password_secret_id: str,
    ) -> None:
        await self._exec(
            update(s.credential_sets)
            .where(s.credential_sets.c.id == credential_set_id)
            .values(
                login_server=login_server,
                username_secret_id=username_secret_id,
                password_secret_id=password_secret_id,
            )
        )

    async def delete_credential_set(self, credential_set_id: int) -> None:
        """Raises Conflict while a cache rule refers to it (the foreign key)."""
        await self._exec(
            delete(s.credential_sets).where(s.credential_sets.c.id == credential_set_id)
        )

    async def rules_using(self, credential_set_id: int) -> list[str]:
        """The names of the cache rules that use the credential set."""
        t = s.cache_rules
        rows = await self._exec(
            select(t.c.name).where(t.c.credential_set_id == credential_set_id).order_by(t.c.name)
        )
        return [r.name for r in rows]

    # -- cache rules -----------------------------------------------------------------------
    async def rules(self, registry_id: int) -> list[CacheRuleRecord]:
        t = s.cache_rules
        rows = await self._exec(
            _rules_query().where(t.c.registry_id == registry_id).order_by(t.c.name)
        )
        return [_rule(r) for r in rows]

    async def rule(self, registry_id: int, name: str) -> CacheRuleRecord | None:
        t = s.cache_rules
        row = (
            await self._exec(_rules_query().where(t.c.registry_id == registry_id, t.c.name == name))
        ).first()
        return None if row is None else _rule(row)

    async def rule_for_target(self, registry_id: int, target: str) -> CacheRuleRecord | None:
        """The rule whose target repository is exactly `target` (a static rule, or a
        wildcard rule's `prefix/*` itself)."""
        t = s.cache_rules
        row = (
            await self._exec(
                _rules_query().where(
                    t.c.registry_id == registry_id, t.c.target_repository == target
                )
            )
        ).first()
        return None if row is None else _rule(row)

    async def wildcard_rules(self, registry_id: int) -> list[CacheRuleRecord]:
        """The registry's wildcard rules (they never overlap one another)."""
        t = s.cache_rules
        rows = await self._exec(
            _rules_query().where(t.c.registry_id == registry_id, t.c.wildcard.is_(True))
        )
        return [_rule(r) for r in rows]

    async def count_rules(self, registry_id: int) -> int:
        t = s.cache_rules
        query = select(func.count()).select_from(t).where(t.c.registry_id == registry_id)
        return int((await self._exec(query)).scalar_one())

    async def insert_rule(
        self,
        registry_id: int,
        name: str,
        *,
        source_repository: str,
        target_repository: str,
        wildcard: bool,
        credential_set_id: int | None,
    ) -> None:
        """Raises Conflict when the name or the target is taken (a concurrent create)."""
        await self._exec(
            insert(s.cache_rules).values(
                registry_id=registry_id,
                name=name,
                source_repository=source_repository,
                target_repository=target_repository,
                wildcard=wildcard,
                credential_set_id=credential_set_id,
                created_at=utcnow(),
            )
        )
        await self.changed(Topic.CACHE_RULES)

    async def set_rule_credential_set(self, rule_id: int, credential_set_id: int | None) -> None:
        await self.changed(Topic.CACHE_RULES)
        await self._exec(
            update(s.cache_rules)
            .where(s.cache_rules.c.id == rule_id)
            .values(credential_set_id=credential_set_id)
        )

    async def delete_rule(self, registry_id: int, name: str) -> bool:
        t = s.cache_rules
        result = await self._exec(delete(t).where(t.c.registry_id == registry_id, t.c.name == name))
        if result.rowcount:
            await self.changed(Topic.CACHE_RULES)
        return bool(result.rowcount)

    # -- sealed secrets --------------------------------------------------------------------
    async def secrets(self) -> list[SealedSecretRecord]:
        """Every stored secret's identifier and times (never the values)."""
        t = s.sealed_secrets
        rows = await self._exec(
            select(t.c.identifier, t.c.created_at, t.c.updated_at).order_by(t.c.identifier)
        )
        return [
            SealedSecretRecord(r.identifier, as_utc(r.created_at), as_utc(r.updated_at))
            for r in rows
        ]

    async def secret(self, identifier: str) -> SealedSecretRecord | None:
        """The secret with its sealed value."""
        t = s.sealed_secrets
        row = (await self._exec(select(t).where(t.c.identifier == identifier))).first()
        if row is None:
            return None
        return SealedSecretRecord(
            row.identifier, as_utc(row.created_at), as_utc(row.updated_at), row.value
        )

    async def present_secrets(self, identifiers: list[str]) -> set[str]:
        """Which of `identifiers` are stored."""
        if not identifiers:
            return set()
        t = s.sealed_secrets
        rows = await self._exec(select(t.c.identifier).where(t.c.identifier.in_(identifiers)))
        return {r.identifier for r in rows}

    async def put_secret(self, identifier: str, sealed: bytes) -> bool:
        """Store or replace, in one upsert. True when it was new."""
        now = utcnow()
        t = s.sealed_secrets
        existed = await self.secret(identifier) is not None
        stmt = self._insert(t).values(
            identifier=identifier, value=sealed, created_at=now, updated_at=now
        )
        await self._exec(
            stmt.on_conflict_do_update(
                index_elements=["identifier"],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )
        return not existed

    async def delete_secret(self, identifier: str) -> bool:
        t = s.sealed_secrets
        result = await self._exec(delete(t).where(t.c.identifier == identifier))
        return bool(result.rowcount)


def cache_rule_queries(scope: QueryScope) -> CacheRuleQueries:
    """The cache rule queries in `scope`'s transaction (sharing its commit callbacks)."""
    queries: CacheRuleQueries = CacheRuleQueries.joining(scope)
    return queries
