"""Queries over tenancy, principals, roles, signing keys and per-registry access."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Table, delete, func, insert, select, update

from transship.metadata import schema as s
from transship.metadata.changes import Topic
from transship.metadata.records import (
    PrincipalRecord,
    RegistryAccessRecord,
    RegistryTokenRecord,
    ResourceGroupRecord,
    RoleAssignmentRecord,
    RoleDefinitionRecord,
    ScopeMapRecord,
    SecretRecord,
    SigningKeyRecord,
    SubscriptionRecord,
    TenantRecord,
    TokenPasswordRecord,
)
from transship.metadata.scope import QueryScope, utcnow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def _record(cls: type[R], row: Any) -> R:
    """A record dataclass from a row whose columns include every field by name."""
    mapping = row._mapping
    values: dict[str, Any] = {f.name: mapping[f.name] for f in fields(cls)}
    return cls(**values)


class IdentityQueries(QueryScope):
    """Rows of the identity tables. Methods never commit; the scope does. Inserts raise
    Conflict on a duplicate key, which the identity layer turns into a 409."""

    async def _all(self, cls: type[R], statement: Any) -> list[R]:
        return [_record(cls, row) for row in await self._exec(statement)]

    async def _first(self, cls: type[R], statement: Any) -> R | None:
        row = (await self._exec(statement)).first()
        return None if row is None else _record(cls, row)

    async def _delete(self, table: Table, *where: Any) -> bool:
        return bool((await self._exec(delete(table).where(*where))).rowcount)

    # -- tenancy -----------------------------------------------------------------------------
    async def add_tenant(
        self, tenant_id: str, display_name: str, *, root: bool = False
    ) -> TenantRecord:
        now = utcnow()
        await self._exec(
            insert(s.tenants).values(
                id=tenant_id, display_name=display_name, is_root=root, created_at=now
            )
        )
        return TenantRecord(tenant_id, display_name, root, now)

    async def tenants(self) -> list[TenantRecord]:
        return await self._all(TenantRecord, select(s.tenants).order_by(s.tenants.c.created_at))

    async def tenant(self, tenant_id: str) -> TenantRecord | None:
        return await self._first(TenantRecord, select(s.tenants).where(s.tenants.c.id == tenant_id))

    async def add_subscription(
        self, subscription_id: str, tenant_id: str, display_name: str
    ) -> SubscriptionRecord:
        now = utcnow()
        await self._exec(
            insert(s.subscriptions).values(
                id=subscription_id, tenant_id=tenant_id, display_name=display_name, created_at=now
            )
        )
        return SubscriptionRecord(subscription_id, tenant_id, display_name, now)

    async def subscriptions(self, tenant_id: str | None = None) -> list[SubscriptionRecord]:
        stmt = select(s.subscriptions).order_by(s.subscriptions.c.created_at)
        if tenant_id is not None:
            stmt = stmt.where(s.subscriptions.c.tenant_id == tenant_id)
        return await self._all(SubscriptionRecord, stmt)

    async def subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        c = s.subscriptions.c
        return await self._first(
            SubscriptionRecord,
            select(s.subscriptions).where(func.lower(c.id) == subscription_id.lower()),
        )

    async def add_resource_group(
        self, subscription_id: str, name: str, location: str
    ) -> ResourceGroupRecord:
        now = utcnow()
        await self._exec(
            insert(s.resource_groups).values(
                subscription_id=subscription_id,
                name_key=name.lower(),
                name=name,
                location=location,
                created_at=now,
            )
        )
        return ResourceGroupRecord(subscription_id, name, location, now)

    async def resource_groups(self, subscription_id: str) -> list[ResourceGroupRecord]:
        c = s.resource_groups.c
        return await self._all(
            ResourceGroupRecord,
            select(s.resource_groups)
            .where(c.subscription_id == subscription_id)
            .order_by(c.name_key),
        )

    async def resource_group(self, subscription_id: str, name: str) -> ResourceGroupRecord | None:
        c = s.resource_groups.c
        return await self._first(
            ResourceGroupRecord,
            select(s.resource_groups).where(
                c.subscription_id == subscription_id, c.name_key == name.lower()
            ),
        )

    async def delete_resource_group(self, subscription_id: str, name: str) -> bool:
        await self.changed(Topic.REGISTRIES)
        await self.changed(Topic.ROLES)
        await self.changed(Topic.CREDENTIALS)
        c = s.resource_groups.c
        return await self._delete(
            s.resource_groups, c.subscription_id == subscription_id, c.name_key == name.lower()
        )

    async def registry_groups(self) -> set[tuple[str, str]]:
        """(subscription, resource group) of every registry, for adopting pre-tenancy data."""
        r = s.registries.c
        rows = await self._exec(
            select(r.subscription_id, r.resource_group)
            .where(r.subscription_id.is_not(None))
            .distinct()
        )
        return {(row.subscription_id, row.resource_group) for row in rows}

    # -- principals --------------------------------------------------------------------------
    async def add_principal(
        self,
        principal_id: str,
        tenant_id: str,
        kind: str,
        name: str,
        *,
        app_id: str | None = None,
        password_hash: str | None = None,
    ) -> PrincipalRecord:
        now = utcnow()
        await self._exec(
            insert(s.principals).values(
                id=principal_id,
                tenant_id=tenant_id,
                kind=kind,
                app_id=app_id,
                name=name,
                name_key=name.lower(),
                password_hash=password_hash,
                created_at=now,
            )
        )
        return PrincipalRecord(principal_id, tenant_id, kind, app_id, name, password_hash, now)

    async def principal(self, principal_id: str) -> PrincipalRecord | None:
        return await self._first(
            PrincipalRecord, select(s.principals).where(s.principals.c.id == principal_id)
        )

    async def principal_by_app_id(self, app_id: str) -> PrincipalRecord | None:
        c = s.principals.c
        return await self._first(
            PrincipalRecord, select(s.principals).where(func.lower(c.app_id) == app_id.lower())
        )

    async def user_by_name(self, tenant_id: str, name: str) -> PrincipalRecord | None:
        c = s.principals.c
        return await self._first(
            PrincipalRecord,
            select(s.principals).where(
                c.tenant_id == tenant_id, c.kind == "User", c.name_key == name.lower()
            ),
        )

    async def principals(self, tenant_id: str, kind: str | None = None) -> list[PrincipalRecord]:
        c = s.principals.c
        stmt = select(s.principals).where(c.tenant_id == tenant_id).order_by(c.name_key)
        if kind is not None:
            stmt = stmt.where(c.kind == kind)
        return await self._all(PrincipalRecord, stmt)

    async def delete_principal(self, principal_id: str) -> bool:
        await self.changed(Topic.ROLES)
        await self.changed(Topic.CREDENTIALS)
        return await self._delete(s.principals, s.principals.c.id == principal_id)

    async def add_secret(
        self,
        secret_id: str,
        principal_id: str,
        secret_hash: str,
        hint: str,
        expires_at: datetime,
        display_name: str | None = None,
    ) -> SecretRecord:
        now = utcnow()
        await self._exec(
            insert(s.principal_secrets).values(
                id=secret_id,
                principal_id=principal_id,
                secret_hash=secret_hash,
                hint=hint,
                display_name=display_name,
                expires_at=expires_at,
                created_at=now,
            )
        )
        return SecretRecord(
            secret_id, principal_id, secret_hash, hint, display_name, expires_at, now
        )

    async def secrets(self, principal_id: str) -> list[SecretRecord]:
        c = s.principal_secrets.c
        return await self._all(
            SecretRecord,
            select(s.principal_secrets)
            .where(c.principal_id == principal_id)
            .order_by(c.created_at),
        )

    async def delete_secrets(self, principal_id: str) -> None:
        await self.changed(Topic.CREDENTIALS)
        await self._delete(s.principal_secrets, s.principal_secrets.c.principal_id == principal_id)

    # -- roles -------------------------------------------------------------------------------
    async def add_role_definition(self, record: RoleDefinitionRecord) -> None:
        await self.changed(Topic.ROLES)
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        await self._exec(insert(s.role_definitions).values(**values, name_key=record.name.lower()))

    async def replace_role_definition(self, record: RoleDefinitionRecord) -> None:
        await self.changed(Topic.ROLES)
        values = {
            f.name: getattr(record, f.name)
            for f in fields(record)
            if f.name not in ("id", "created_at", "tenant_id")
        }
        await self._exec(
            update(s.role_definitions)
            .where(s.role_definitions.c.id == record.id)
            .values(**values, name_key=record.name.lower())
        )

    async def role_definitions(self, tenant_id: str) -> list[RoleDefinitionRecord]:
        c = s.role_definitions.c
        return await self._all(
            RoleDefinitionRecord,
            select(s.role_definitions).where(c.tenant_id == tenant_id).order_by(c.name_key),
        )

    async def role_definition(self, definition_id: str) -> RoleDefinitionRecord | None:
        c = s.role_definitions.c
        return await self._first(
            RoleDefinitionRecord,
            select(s.role_definitions).where(func.lower(c.id) == definition_id.lower()),
        )

    async def delete_role_definition(self, definition_id: str) -> bool:
        await self.changed(Topic.ROLES)
        return await self._delete(s.role_definitions, s.role_definitions.c.id == definition_id)

    async def role_definition_in_use(self, definition_id: str) -> bool:
        c = s.role_assignments.c
        row = (
            await self._exec(select(c.id).where(c.role_definition_id == definition_id).limit(1))
        ).first()
        return row is not None

    async def add_role_assignment(
        self, assignment_id: str, scope: str, principal_id: str, role_definition_id: str
    ) -> RoleAssignmentRecord:
        await self.changed(Topic.ROLES)
        now = utcnow()
        await self._exec(
            insert(s.role_assignments).values(
                id=assignment_id,
                scope=scope,
                principal_id=principal_id,
                role_definition_id=role_definition_id,
                created_at=now,
            )
        )
        return RoleAssignmentRecord(assignment_id, scope, principal_id, role_definition_id, now)

    async def role_assignments(self, principal_id: str | None = None) -> list[RoleAssignmentRecord]:
        c = s.role_assignments.c
        stmt = select(s.role_assignments).order_by(c.created_at, c.id)
        if principal_id is not None:
            stmt = stmt.where(c.principal_id == principal_id)
        return await self._all(RoleAssignmentRecord, stmt)

    async def role_assignment(self, assignment_id: str) -> RoleAssignmentRecord | None:
        c = s.role_assignments.c
        return await self._first(
            RoleAssignmentRecord,
            select(s.role_assignments).where(func.lower(c.id) == assignment_id.lower()),
        )

    async def delete_role_assignment(self, assignment_id: str) -> bool:
        await self.changed(Topic.ROLES)
        return await self._delete(
            s.role_assignments, func.lower(s.role_assignments.c.id) == assignment_id.lower()
        )

    # -- signing keys ------------------------------------------------------------------------
    async def add_signing_key(self, kid: str, sealed_private_key: bytes) -> SigningKeyRecord:
        await self.changed(Topic.SIGNING_KEYS)
        now = utcnow()
        await self._exec(
            insert(s.signing_keys).values(kid=kid, private_key=sealed_private_key, created_at=now)
        )
        return SigningKeyRecord(kid, sealed_private_key, now, None)

    async def signing_keys(self) -> list[SigningKeyRecord]:
        return await self._all(
            SigningKeyRecord, select(s.signing_keys).order_by(s.signing_keys.c.created_at)
        )

    async def retire_signing_keys(self, keep_kid: str) -> None:
        c = s.signing_keys.c
        await self._exec(
            update(s.signing_keys)
            .where(c.kid != keep_kid, c.retired_at.is_(None))
            .values(retired_at=utcnow())
        )

    async def drop_signing_keys_retired_before(self, cutoff: datetime) -> None:
        c = s.signing_keys.c
        await self._delete(s.signing_keys, c.retired_at.is_not(None), c.retired_at < cutoff)

    # -- registry access ---------------------------------------------------------------------
    async def registry_access(self, registry_id: int) -> RegistryAccessRecord:
        c = s.registry_access.c
        found = await self._first(
            RegistryAccessRecord, select(s.registry_access).where(c.registry_id == registry_id)
        )
        return found if found is not None else RegistryAccessRecord(registry_id)

    async def all_registry_access(self) -> dict[int, RegistryAccessRecord]:
        return {
            r.registry_id: r
            for r in await self._all(RegistryAccessRecord, select(s.registry_access))
        }

    async def set_registry_access(self, record: RegistryAccessRecord) -> None:
        await self.changed(Topic.REGISTRIES)
        await self.changed(Topic.CREDENTIALS)
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        stmt = self._insert(s.registry_access).values(**values)
        await self._exec(
            stmt.on_conflict_do_update(
                index_elements=["registry_id"],
                set_={k: v for k, v in values.items() if k != "registry_id"},
            )
        )

    # -- scope maps and tokens ---------------------------------------------------------------
    async def add_scope_map(
        self, registry_id: int, name: str, description: str, actions: str
    ) -> ScopeMapRecord:
        result = await self._exec(
            insert(s.scope_maps)
            .values(
                registry_id=registry_id,
                name=name,
                description=description,
                actions=actions,
                created_at=utcnow(),
            )
            .returning(*s.scope_maps.c)
        )
        return _record(ScopeMapRecord, result.one())

    async def update_scope_map(self, scope_map_id: int, description: str, actions: str) -> None:
        await self.changed(Topic.CREDENTIALS)
        await self._exec(
            update(s.scope_maps)
            .where(s.scope_maps.c.id == scope_map_id)
            .values(description=description, actions=actions)
        )

    async def scope_maps(self, registry_id: int) -> list[ScopeMapRecord]:
        c = s.scope_maps.c
        return await self._all(
            ScopeMapRecord,
            select(s.scope_maps).where(c.registry_id == registry_id).order_by(c.name),
        )

    async def scope_map(self, registry_id: int, name: str) -> ScopeMapRecord | None:
        c = s.scope_maps.c
        return await self._first(
            ScopeMapRecord,
            select(s.scope_maps).where(
                c.registry_id == registry_id, func.lower(c.name) == name.lower()
            ),
        )

    async def scope_map_by_id(self, scope_map_id: int) -> ScopeMapRecord | None:
        return await self._first(
            ScopeMapRecord, select(s.scope_maps).where(s.scope_maps.c.id == scope_map_id)
        )

    async def delete_scope_map(self, scope_map_id: int) -> bool:
        await self.changed(Topic.CREDENTIALS)
        return await self._delete(s.scope_maps, s.scope_maps.c.id == scope_map_id)

    async def scope_map_in_use(self, scope_map_id: int) -> bool:
        c = s.registry_tokens.c
        return (
            await self._exec(select(c.id).where(c.scope_map_id == scope_map_id).limit(1))
        ).first() is not None

    async def add_token(
        self, registry_id: int, name: str, scope_map_id: int, enabled: bool
    ) -> RegistryTokenRecord:
        result = await self._exec(
            insert(s.registry_tokens)
            .values(
                registry_id=registry_id,
                name=name,
                scope_map_id=scope_map_id,
                enabled=enabled,
                created_at=utcnow(),
            )
            .returning(*s.registry_tokens.c)
        )
        return _record(RegistryTokenRecord, result.one())

    async def update_token(self, token_id: int, scope_map_id: int, enabled: bool) -> None:
        await self.changed(Topic.CREDENTIALS)
        await self._exec(
            update(s.registry_tokens)
            .where(s.registry_tokens.c.id == token_id)
            .values(scope_map_id=scope_map_id, enabled=enabled)
        )

    async def tokens(self, registry_id: int) -> list[RegistryTokenRecord]:
        c = s.registry_tokens.c
        return await self._all(
            RegistryTokenRecord,
            select(s.registry_tokens).where(c.registry_id == registry_id).order_by(c.name),
        )

    async def token(self, registry_id: int, name: str) -> RegistryTokenRecord | None:
        c = s.registry_tokens.c
        return await self._first(
            RegistryTokenRecord,
            select(s.registry_tokens).where(
                c.registry_id == registry_id, func.lower(c.name) == name.lower()
            ),
        )

    async def delete_token(self, token_id: int) -> bool:
        await self.changed(Topic.CREDENTIALS)
        return await self._delete(s.registry_tokens, s.registry_tokens.c.id == token_id)

    async def set_token_password(
        self, token_id: int, name: str, secret_hash: str, expires_at: datetime | None
    ) -> TokenPasswordRecord:
        await self.changed(Topic.CREDENTIALS)
        now = utcnow()
        values = {"secret_hash": secret_hash, "expires_at": expires_at, "created_at": now}
        stmt = self._insert(s.token_passwords).values(token_id=token_id, name=name, **values)
        await self._exec(
            stmt.on_conflict_do_update(index_elements=["token_id", "name"], set_=values)
        )
        return TokenPasswordRecord(token_id, name, secret_hash, expires_at, now)

    async def token_passwords(self, token_id: int) -> list[TokenPasswordRecord]:
        c = s.token_passwords.c
        return await self._all(
            TokenPasswordRecord,
            select(s.token_passwords).where(c.token_id == token_id).order_by(c.name),
        )
