"""The directory: tenants, subscriptions, resource groups, service principals and users, and
the checking of their credentials."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from transship.errors import Conflict, Invalid, NotFound
from transship.identity.model import (
    SERVICE_PRINCIPAL,
    USER,
    CreatedPrincipal,
    IssuedSecret,
    Principal,
    PrincipalKind,
)
from transship.identity.rbac import builtin_role
from transship.identity.secrets import SecretHasher, new_secret
from transship.identity.throttle import FailureThrottle
from transship.metadata.changes import Topic
from transship.metadata.identity import IdentityQueries
from transship.metadata.queries import MetadataStore
from transship.metadata.records import (
    PrincipalRecord,
    ResourceGroupRecord,
    SubscriptionRecord,
    TenantRecord,
)
from transship.metadata.scope import utcnow

# A credential once verified is trusted this long without another (slow, scrypt) check.
# A change of credentials in any process clears the cache at once (the change feed); this is
# the backstop for a feed that is down.
_VERIFIED_TTL_SECONDS = 60.0
_RESOURCE_GROUP = re.compile(r"[-\w._()]{1,90}")
_DISPLAY_NAME_MAX = 256
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
MIN_PASSWORD_LENGTH = 12


def tenant_root_scope(tenant_id: str) -> str:
    """The scope of a tenant's root management group: assignments there cover every
    subscription of the tenant."""
    return f"/providers/Microsoft.Management/managementGroups/{tenant_id}"


def _principal(record: PrincipalRecord) -> Principal:
    kind: PrincipalKind = SERVICE_PRINCIPAL if record.kind == SERVICE_PRINCIPAL else USER
    return Principal(record.id, record.tenant_id, kind, record.name, record.app_id)


def _guid(text: str, field: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise Invalid(field, f"{field} {text!r} is not a GUID.") from None


def _display_name(text: str, field: str = "displayName") -> str:
    text = text.strip()
    if not text or len(text) > _DISPLAY_NAME_MAX or any(ord(c) < 32 for c in text):
        raise Invalid(field, f"{field} must be 1-{_DISPLAY_NAME_MAX} printable characters.")
    return text


@dataclass(frozen=True, slots=True)
class _NewSecret:
    """A secret made and hashed, not yet stored."""

    value: str
    secret_hash: str
    expires: datetime


class Directory:
    """`hasher` runs every hash and verification of a secret or password (default: a pool of
    this directory's own); `throttle` counts failed checks (default: one of its own with the
    default limits). The service passes the ones it shares with RegistryAccess."""

    def __init__(
        self,
        meta: MetadataStore,
        *,
        hasher: SecretHasher | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self._meta = meta
        self._hasher = hasher if hasher is not None else SecretHasher()
        self._throttle = throttle if throttle is not None else FailureThrottle()
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        meta.changes.subscribe(Topic.CREDENTIALS, self._forget_verified)

    def _forget_verified(self) -> None:
        self._verified.clear()

    # -- tenants and subscriptions -----------------------------------------------------------
    async def tenants(self) -> list[TenantRecord]:
        async with self._meta.reading() as q:
            return await q.identity.tenants()

    async def tenant(self, tenant_id: str) -> TenantRecord | None:
        return await self._meta.read_at_once(lambda q: q.identity.tenant(tenant_id.lower()))

    async def root_tenant(self) -> TenantRecord | None:
        return next((t for t in await self.tenants() if t.is_root), None)

    async def create_tenant(
        self,
        display_name: str,
        *,
        tenant_id: str | None = None,
        subscription_id: str | None = None,
        root: bool = False,
        location: str = "local",
        owner_name: str = "owner",
        owner_scope: str | None = None,
        owner_years: int = 1,
    ) -> tuple[TenantRecord, SubscriptionRecord, CreatedPrincipal]:
        """A tenant with one subscription, a `default` resource group and an owner service
        principal holding Owner on the tenant's root scope (or `owner_scope`). Raises Invalid
        for bad names, Conflict when the tenant or subscription exists."""
        tenant_id = _guid(tenant_id, "tenantId") if tenant_id else str(uuid.uuid4())
        subscription_id = (
            _guid(subscription_id, "subscriptionId") if subscription_id else str(uuid.uuid4())
        )
        display_name = _display_name(display_name)
        owner_name = _display_name(owner_name)
        owner = builtin_role("Owner")
        assert owner is not None
        secret = await self._new_secret(owner_years)
        try:
            async with self._meta.writing() as q:
                iq = q.identity
                tenant = await iq.add_tenant(tenant_id, display_name, root=root)
                subscription = await iq.add_subscription(
                    subscription_id, tenant_id, f"{display_name} subscription"
                )
                await iq.add_resource_group(subscription_id, "default", location)
                created = await self._add_service_principal(iq, tenant_id, owner_name, secret)
                await iq.add_role_assignment(
                    str(uuid.uuid4()),
                    owner_scope or tenant_root_scope(tenant_id),
                    created.principal.object_id,
                    owner.id,
                )
        except Conflict:
            raise Conflict(
                f"The tenant {tenant_id} or subscription {subscription_id} already exists.",
                subject="tenant",
            ) from None
        return tenant, subscription, created

    async def create_subscription(
        self, tenant_id: str, display_name: str, subscription_id: str | None = None
    ) -> SubscriptionRecord:
        """Raises NotFound("tenant"), Conflict when the subscription exists."""
        subscription_id = (
            _guid(subscription_id, "subscriptionId") if subscription_id else str(uuid.uuid4())
        )
        display_name = _display_name(display_name)
        try:
            async with self._meta.writing() as q:
                iq = q.identity
                if await iq.tenant(tenant_id) is None:
                    raise NotFound(
                        "tenant",
                        tenant_id,
                        f"The tenant '{tenant_id}' could not be found.",
                        field="tenantId",
                    )
                subscription = await iq.add_subscription(subscription_id, tenant_id, display_name)
                await iq.add_resource_group(subscription_id, "default", "local")
        except Conflict:
            raise Conflict(
                f"The subscription {subscription_id} already exists.", subject="subscription"
            ) from None
        return subscription

    async def subscriptions(self, tenant_id: str | None = None) -> list[SubscriptionRecord]:
        async with self._meta.reading() as q:
            return await q.identity.subscriptions(tenant_id)

    async def subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        # Keyed reads of every management request: one step on SQLite's read thread.
        return await self._meta.read_at_once(lambda q: q.identity.subscription(subscription_id))

    async def require_subscription(self, subscription_id: str) -> SubscriptionRecord:
        """Raises NotFound("subscription")."""
        found = await self.subscription(subscription_id)
        if found is None:
            raise NotFound(
                "subscription",
                subscription_id,
                f"The subscription '{subscription_id}' could not be found.",
            )
        return found

    # -- resource groups ---------------------------------------------------------------------
    async def resource_groups(self, subscription_id: str) -> list[ResourceGroupRecord]:
        async with self._meta.reading() as q:
            return await q.identity.resource_groups(subscription_id)

    async def resource_group(self, subscription_id: str, name: str) -> ResourceGroupRecord | None:
        return await self._meta.read_at_once(
            lambda q: q.identity.resource_group(subscription_id, name)
        )

    async def require_resource_group(self, subscription_id: str, name: str) -> ResourceGroupRecord:
        """Raises NotFound("resource group")."""
        found = await self.resource_group(subscription_id, name)
        if found is None:
            raise NotFound("resource group", name, f"Resource group '{name}' could not be found.")
        return found

    async def ensure_resource_group(
        self, subscription_id: str, name: str, location: str
    ) -> tuple[ResourceGroupRecord, bool]:
        """Create the group unless it exists; the bool says whether it is new. Raises Invalid
        (reason "resource_group_name") for an invalid name."""
        if not _RESOURCE_GROUP.fullmatch(name) or name.endswith("."):
            raise Invalid(
                "resourceGroupName",
                f"Resource group name {name!r} must be 1-90 letters, digits, "
                "'-', '_', '.', '(' or ')', not ending in '.'.",
                reason="resource_group_name",
            )
        existing = await self.resource_group(subscription_id, name)
        if existing is not None:
            return existing, False
        try:
            async with self._meta.writing() as q:
                return await q.identity.add_resource_group(subscription_id, name, location), True
        except Conflict:
            # Created concurrently (or its subscription deleted meanwhile).
            found = await self.resource_group(subscription_id, name)
            if found is None:
                raise NotFound(
                    "subscription",
                    subscription_id,
                    f"The subscription '{subscription_id}' could not be found.",
                ) from None
            return found, False

    async def delete_resource_group(self, subscription_id: str, name: str) -> bool:
        """Raises Conflict (reason "in_use") while registries remain in the group (checked in the
        transaction that deletes, so a registry created meanwhile is never orphaned)."""
        async with self._meta.writing() as q:
            registry_names = [
                r.name
                for r in await q.registries()
                if r.subscription_id == subscription_id
                and (r.resource_group or "").lower() == name.lower()
            ]
            if registry_names:
                raise Conflict(
                    f"Resource group '{name}' still holds registries: "
                    f"{', '.join(sorted(registry_names))}. Delete them first.",
                    subject="resource group",
                    reason="in_use",
                )
            return await q.identity.delete_resource_group(subscription_id, name)

    # -- principals --------------------------------------------------------------------------
    async def _add_service_principal(
        self, iq: IdentityQueries, tenant_id: str, display_name: str, secret: _NewSecret
    ) -> CreatedPrincipal:
        """Insert a service principal (`display_name` already checked) with its secret."""
        record = await iq.add_principal(
            str(uuid.uuid4()),
            tenant_id,
            SERVICE_PRINCIPAL,
            display_name,
            app_id=str(uuid.uuid4()),
        )
        return CreatedPrincipal(_principal(record), await self._add_secret(iq, record.id, secret))

    async def _new_secret(self, years: int) -> _NewSecret:
        """A secret and its hash, made before any transaction opens (scrypt takes tens of
        milliseconds: never while holding the write lock). Raises Invalid for a
        lifetime out of range, CredentialChecksBusy when the hashing pool is full."""
        if not 1 <= years <= 10:
            raise Invalid("years", "years must be from 1 to 10.")
        value = new_secret()
        return _NewSecret(
            value, await self._hasher.hash(value), utcnow() + timedelta(days=365 * years)
        )

    async def _add_secret(
        self, iq: IdentityQueries, principal_id: str, secret: _NewSecret
    ) -> IssuedSecret:
        record = await iq.add_secret(
            str(uuid.uuid4()), principal_id, secret.secret_hash, secret.value[:3], secret.expires
        )
        return IssuedSecret(record.id, secret.value, record.hint, _iso(secret.expires))

    async def create_service_principal(
        self, tenant_id: str, display_name: str, years: int = 1
    ) -> CreatedPrincipal:
        """Raises Invalid for a bad name or lifetime, Conflict when the name is taken."""
        display_name = _display_name(display_name)
        secret = await self._new_secret(years)
        try:
            async with self._meta.writing() as q:
                return await self._add_service_principal(
                    q.identity, tenant_id, display_name, secret
                )
        except Conflict:
            raise Conflict(
                f"A service principal named {display_name!r} already exists.",
                subject="service principal",
                field="displayName",
            ) from None

    async def create_user(self, tenant_id: str, name: str, password: str) -> Principal:
        """Raises Invalid for a bad name or a short password, Conflict when the name is taken."""
        if not _USER_NAME.fullmatch(name):
            raise Invalid(
                "userName",
                f"userName {name!r} must be 1-128 letters, digits, '.', '_', '@' or '-'.",
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            raise Invalid(
                "password", f"password must have at least {MIN_PASSWORD_LENGTH} characters."
            )
        password_hash = await self._hasher.hash(password)
        try:
            async with self._meta.writing() as q:
                record = await q.identity.add_principal(
                    str(uuid.uuid4()), tenant_id, USER, name, password_hash=password_hash
                )
        except Conflict:
            raise Conflict(
                f"A user named {name!r} already exists.", subject="user", field="userName"
            ) from None
        return _principal(record)

    async def principals(
        self, tenant_id: str, kind: PrincipalKind | None = None
    ) -> list[Principal]:
        async with self._meta.reading() as q:
            return [_principal(r) for r in await q.identity.principals(tenant_id, kind)]

    async def principal(self, principal_id: str) -> Principal | None:
        record = await self._meta.read_at_once(lambda q: q.identity.principal(principal_id.lower()))
        return None if record is None else _principal(record)

    async def find_principal(self, tenant_id: str, ident: str) -> Principal | None:
        """A principal of `tenant_id` by object id, app (client) id or user name."""
        async with self._meta.reading() as q:
            iq = q.identity
            record = (
                await iq.principal(ident.lower())
                or await iq.principal_by_app_id(ident)
                or await iq.user_by_name(tenant_id, ident)
            )
        if record is None or record.tenant_id != tenant_id:
            return None
        return _principal(record)

    async def secret_summaries(self, principal_id: str) -> list[dict[str, str]]:
        """Key id, hint and expiry of each secret; never the secret or its hash."""
        async with self._meta.reading() as q:
            secrets = await q.identity.secrets(principal_id)
        return [{"keyId": s.id, "hint": s.hint, "endDateTime": _iso(s.expires_at)} for s in secrets]

    async def reset_secret(
        self, principal: Principal, *, append: bool, years: int = 1
    ) -> IssuedSecret:
        """A new secret for a service principal; without `append` the old ones stop working."""
        new = await self._new_secret(years)
        async with self._meta.writing() as q:
            iq = q.identity
            if not append:
                await iq.delete_secrets(principal.object_id)
            secret = await self._add_secret(iq, principal.object_id, new)
        self._forget_verified()
        return secret

    async def delete_principal(self, principal: Principal) -> None:
        async with self._meta.writing() as q:
            await q.identity.delete_principal(principal.object_id)
        self._forget_verified()

    # -- credentials -------------------------------------------------------------------------
    def _cached(self, fingerprint: bytes) -> Principal | None:
        hit = self._verified.get(fingerprint)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def _remember(self, fingerprint: bytes, principal: Principal, version: int) -> None:
        """Keep a success, unless credentials changed since `version` (taken before the
        read that found them): the read may predate the change."""
        if not self._meta.changes.unchanged(version, Topic.CREDENTIALS):
            return
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[fingerprint] = (principal, time.monotonic() + _VERIFIED_TTL_SECONDS)

    async def authenticate_client(
        self, client_id: str, secret: str, *, address: str | None = None
    ) -> Principal | None:
        """The service principal whose client id is `client_id` if `secret` is one of its
        unexpired secrets. `address` is the caller's network address (None: unknown).
        Raises TooManyFailures, before hashing anything, when the address or the client id
        has failed too often lately (a remembered success still passes), and
        CredentialChecksBusy when the hashing pool is full."""
        fingerprint = hashlib.sha256(
            b"sp\0" + client_id.lower().encode() + b"\0" + secret.encode()
        ).digest()
        cached = self._cached(fingerprint)
        if cached is not None:
            return cached
        key = "sp:" + client_id
        # Refused before the database too: a throttled guesser costs no more than a 404.
        self._throttle.check(address, key)
        version = self._meta.changes.version(Topic.CREDENTIALS)
        async with self._meta.reading() as q:
            iq = q.identity
            record = await iq.principal_by_app_id(client_id)
            secrets = [] if record is None else await iq.secrets(record.id)
        now = utcnow()
        candidates = [stored for stored in secrets if stored.expires_at > now]
        if record is None or not candidates:
            return None  # nothing to hash: no cost to throttle
        with self._throttle.attempt(address, key) as attempt:
            for stored in candidates:
                if await self._hasher.verify(secret, stored.secret_hash):
                    principal = _principal(record)
                    self._remember(fingerprint, principal, version)
                    return principal
            attempt.failed()
        return None

    async def authenticate_user(
        self, tenant_id: str, name: str, password: str, *, address: str | None = None
    ) -> Principal | None:
        """The user `name` of the tenant if `password` is theirs. Raises TooManyFailures and
        CredentialChecksBusy as authenticate_client does."""
        fingerprint = hashlib.sha256(
            b"user\0"
            + tenant_id.encode()
            + b"\0"
            + name.lower().encode()
            + b"\0"
            + password.encode()
        ).digest()
        cached = self._cached(fingerprint)
        if cached is not None:
            return cached
        version = self._meta.changes.version(Topic.CREDENTIALS)
        async with self._meta.reading() as q:
            record = await q.identity.user_by_name(tenant_id, name)
        if record is None or record.password_hash is None:
            return None
        # Checked only now: the data plane tries a user last, after the other checks of the
        # same request may have counted its failure.
        with self._throttle.attempt(address, f"user:{tenant_id}:{name}") as attempt:
            if not await self._hasher.verify(password, record.password_hash):
                attempt.failed()
                return None
        principal = _principal(record)
        self._remember(fingerprint, principal, version)
        return principal


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
