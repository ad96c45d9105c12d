"""Per-registry access: the admin user, anonymous pull, network rules, scope maps and
registry tokens, and the checking of registry-local credentials."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from transship.errors import Conflict, Invalid, NotFound, Unsupported
from transship.identity.network import InvalidNetworkRule, NetworkRules, parse_ip_rule
from transship.identity.scopemaps import (
    SYSTEM_SCOPE_MAPS,
    InvalidScopeAction,
    ScopeAction,
    parse_actions,
)
from transship.identity.secrets import SecretBox, SecretHasher, new_secret
from transship.identity.throttle import FailureThrottle
from transship.metadata.changes import Topic
from transship.metadata.identity import IdentityQueries
from transship.metadata.queries import MetadataStore
from transship.metadata.records import (
    RegistryAccessRecord,
    RegistryRecord,
    RegistryTokenRecord,
    ScopeMapRecord,
)
from transship.metadata.scope import QueryScope, utcnow

ADMIN_PASSWORD_NAMES = ("password", "password2")
TOKEN_PASSWORD_NAMES = ("password1", "password2")
_NAME_RULE = "5-50 characters: letters, digits and '-'"
_CACHE_SECONDS = 5.0
_VERIFIED_TTL_SECONDS = 60.0


def _valid_name(name: str) -> bool:
    return 5 <= len(name) <= 50 and all(c.isascii() and (c.isalnum() or c == "-") for c in name)


@dataclass(frozen=True, slots=True)
class RegistryCredential:
    """Who a registry-local credential is: the admin user (every action) or a registry token
    (the actions of its scope map)."""

    kind: str  # "AdminUser" | "RegistryToken"
    name: str
    actions: tuple[ScopeAction, ...]


@dataclass(frozen=True, slots=True)
class AccessSettings:
    admin_user_enabled: bool
    anonymous_pull: bool
    network: NetworkRules


@dataclass(frozen=True, slots=True)
class ScopeMapView:
    name: str
    description: str
    actions: tuple[str, ...]
    system: bool
    created_at: datetime | None


def _settings(record: RegistryAccessRecord) -> AccessSettings:
    return AccessSettings(
        record.admin_user_enabled,
        record.anonymous_pull,
        NetworkRules(
            record.public_network_access,
            record.default_action,
            tuple(json.loads(record.ip_rules)),
            record.bypass,
        ),
    )


class RegistryAccess:
    """`hasher` and `throttle` as for Directory (defaults of its own; the service passes the
    shared ones)."""

    def __init__(
        self,
        meta: MetadataStore,
        box: SecretBox,
        *,
        hasher: SecretHasher | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self._meta = meta
        self._box = box
        self._hasher = hasher if hasher is not None else SecretHasher()
        self._throttle = throttle if throttle is not None else FailureThrottle()
        self._cache: dict[int, AccessSettings] = {}
        self._loaded_at = 0.0
        # One reload at a time: the requests that find the cache stale together (every
        # connection of a busy client, at each expiry) wait for that one read.
        self._reloading = asyncio.Lock()
        self._verified: dict[bytes, tuple[RegistryCredential, float]] = {}
        # Any process's change drops what mirrors it (the change feed); the times to live
        # are the backstop for a feed that is down.
        meta.changes.subscribe(Topic.REGISTRIES, self._settings_changed)
        meta.changes.subscribe(Topic.CREDENTIALS, self._verified.clear)

    def _settings_changed(self) -> None:
        self._loaded_at = 0.0  # reloaded at the next use

    # -- settings ----------------------------------------------------------------------------
    async def settings(self, registry: RegistryRecord) -> AccessSettings:
        """The registry's access settings; cached for a few seconds (they sit on every
        data-plane request's path)."""
        if self._stale():
            async with self._reloading:
                if self._stale():  # else another caller reloaded it while this one waited
                    await self._reload()
        found = self._cache.get(registry.id)
        if found is None:  # a registry with no access row: the defaults, kept until reloaded
            found = self._cache[registry.id] = _settings(RegistryAccessRecord(registry.id))
        return found

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at > _CACHE_SECONDS

    async def _reload(self) -> None:
        changes = self._meta.changes
        version = changes.version(Topic.REGISTRIES)
        async with self._meta.reading() as q:
            records = await q.identity.all_registry_access()
        self._cache = {rid: _settings(r) for rid, r in records.items()}
        if changes.unchanged(version, Topic.REGISTRIES):
            self._loaded_at = time.monotonic()
        # else: read before a change committed; used once, read again at the next use

    async def update(
        self,
        registry: RegistryRecord,
        *,
        admin_user_enabled: bool | None = None,
        anonymous_pull: bool | None = None,
        public_network_access: str | None = None,
        default_action: str | None = None,
        ip_rules: list[str] | None = None,
        bypass: str | None = None,
        within: QueryScope | None = None,
    ) -> AccessSettings:
        """Change what is given. Enabling the admin user the first time creates its two
        passwords. With `within`, in that transaction (the caller's), otherwise in one of
        its own; the cached settings change when it commits. Raises Invalid naming the
        invalid field (then the caller's transaction must roll back: let it propagate)."""
        try:
            rules = None if ip_rules is None else sorted({parse_ip_rule(r) for r in ip_rules})
        except InvalidNetworkRule as exc:
            raise Invalid("networkRuleSet.ipRules", str(exc)) from None
        async with self._meta.writing(within) as q:
            iq = q.identity
            current = await iq.registry_access(registry.id)
            record = RegistryAccessRecord(
                registry.id,
                current.admin_user_enabled if admin_user_enabled is None else admin_user_enabled,
                current.admin_passwords,
                current.anonymous_pull if anonymous_pull is None else anonymous_pull,
                current.public_network_access
                if public_network_access is None
                else public_network_access,
                current.default_action if default_action is None else default_action,
                current.ip_rules if rules is None else json.dumps(rules),
                current.bypass if bypass is None else bypass,
            )
            try:
                settings = _settings(record)
            except InvalidNetworkRule as exc:
                raise Invalid("properties", str(exc)) from None
            if record.admin_user_enabled and record.admin_passwords is None:
                record = replace(
                    record,
                    admin_passwords=self._seal_passwords(
                        {n: new_secret() for n in ADMIN_PASSWORD_NAMES}
                    ),
                )
            await iq.set_registry_access(record)
            q.on_commit(lambda: self._changed(registry.id, settings))
        return settings

    def _changed(self, registry_id: int, settings: AccessSettings) -> None:
        """After a commit: the new settings serve at once; remembered credentials are
        checked again."""
        self._cache[registry_id] = settings
        self._verified.clear()

    # -- admin user --------------------------------------------------------------------------
    def _seal_passwords(self, passwords: dict[str, str]) -> bytes:
        return self._box.seal(json.dumps(passwords).encode())

    async def admin_credentials(self, registry: RegistryRecord) -> dict[str, str]:
        """The admin user's two passwords by name. Raises Invalid when it is disabled."""
        async with self._meta.reading() as q:
            record = await q.identity.registry_access(registry.id)
        return self._admin_passwords(registry, record)

    def _admin_passwords(
        self, registry: RegistryRecord, record: RegistryAccessRecord
    ) -> dict[str, str]:
        """Raises Invalid (reason "admin_user_disabled") when the admin user is disabled."""
        if not record.admin_user_enabled or record.admin_passwords is None:
            raise Invalid(
                None,
                f"The admin user of registry '{registry.name}' is disabled. "
                "Enable it with adminUserEnabled=true.",
                reason="admin_user_disabled",
            )
        passwords: dict[str, str] = json.loads(self._box.open(record.admin_passwords))
        return passwords

    async def regenerate_admin_password(
        self, registry: RegistryRecord, name: str
    ) -> dict[str, str]:
        """Raises Invalid for an unknown password name or a disabled admin user."""
        if name not in ADMIN_PASSWORD_NAMES:
            raise Invalid("name", f"name must be one of {', '.join(ADMIN_PASSWORD_NAMES)}.")
        async with self._meta.writing() as q:
            iq = q.identity
            record = await iq.registry_access(registry.id)
            # Read in the transaction that writes: a concurrent regeneration of the other
            # password is kept, not overwritten with what was read before it.
            passwords = self._admin_passwords(registry, record)
            passwords[name] = new_secret()
            await iq.set_registry_access(
                replace(record, admin_passwords=self._seal_passwords(passwords))
            )
        self._verified.clear()
        return passwords

    # -- scope maps --------------------------------------------------------------------------
    async def scope_maps(self, registry: RegistryRecord) -> list[ScopeMapView]:
        async with self._meta.reading() as q:
            custom = await q.identity.scope_maps(registry.id)
        system = [
            ScopeMapView(
                name,
                f"Built-in scope map: {name.strip('_').replace('_', ' ')}.",
                tuple(str(a) for a in actions),
                True,
                None,
            )
            for name, actions in SYSTEM_SCOPE_MAPS.items()
        ]
        # A system map gets a row when a token first uses it; it is listed once, as built in.
        return system + [
            ScopeMapView(r.name, r.description, tuple(json.loads(r.actions)), False, r.created_at)
            for r in custom
            if r.name not in SYSTEM_SCOPE_MAPS
        ]

    async def scope_map(self, registry: RegistryRecord, name: str) -> ScopeMapView | None:
        return next(
            (m for m in await self.scope_maps(registry) if m.name.lower() == name.lower()), None
        )

    async def require_scope_map(self, registry: RegistryRecord, name: str) -> ScopeMapView:
        """Raises NotFound naming the scope map and registry."""
        found = await self.scope_map(registry, name)
        if found is None:
            raise _not_found("Scope map", name, registry)
        return found

    async def save_scope_map(
        self, registry: RegistryRecord, name: str, description: str, actions: list[str]
    ) -> tuple[ScopeMapView, bool]:
        """Create or replace a scope map; the bool says whether it is new. Raises Invalid
        for a bad name or action, Unsupported for a system scope map."""
        if name in SYSTEM_SCOPE_MAPS:
            raise Unsupported(
                f"Scope map '{name}' is built in and cannot be changed.",
                subject="scope map",
                reason="builtin",
            )
        if not _valid_name(name):
            raise Invalid("name", f"Scope map name {name!r} must be {_NAME_RULE}.")
        if not actions:
            raise Invalid("properties.actions", "A scope map needs at least one action.")
        try:
            canonical = [str(a) for a in parse_actions(actions)]
        except InvalidScopeAction as exc:
            raise Invalid("properties.actions", str(exc)) from None
        canonical = list(dict.fromkeys(canonical))
        try:
            async with self._meta.writing() as q:
                iq = q.identity
                existing = await iq.scope_map(registry.id, name)
                if existing is None:
                    record = await iq.add_scope_map(
                        registry.id, name, description, json.dumps(canonical)
                    )
                else:
                    await iq.update_scope_map(existing.id, description, json.dumps(canonical))
                    record = existing
        except Conflict:
            raise Conflict(
                f"Scope map '{name}' was created concurrently.", subject="scope map"
            ) from None
        self._verified.clear()
        return ScopeMapView(
            record.name, description, tuple(canonical), False, record.created_at
        ), existing is None

    async def delete_scope_map(self, registry: RegistryRecord, name: str) -> bool:
        """Raises Unsupported for a system scope map, Conflict for one a token still uses."""
        if name in SYSTEM_SCOPE_MAPS:
            raise Unsupported(
                f"Scope map '{name}' is built in and cannot be deleted.",
                subject="scope map",
                reason="builtin",
            )
        async with self._meta.writing() as q:
            iq = q.identity
            existing = await iq.scope_map(registry.id, name)
            if existing is None:
                return False
            if await iq.scope_map_in_use(existing.id):
                raise Conflict(
                    f"Scope map '{name}' is used by a token; delete or move the token first.",
                    subject="scope map",
                    reason="in_use",
                )
            return await iq.delete_scope_map(existing.id)

    async def _scope_map_record(
        self, iq: IdentityQueries, registry: RegistryRecord, name: str
    ) -> ScopeMapRecord:
        """The row of a scope map, materialising a system scope map on first use."""
        existing = await iq.scope_map(registry.id, name)
        if existing is not None:
            return existing
        if name in SYSTEM_SCOPE_MAPS:
            actions = json.dumps([str(a) for a in SYSTEM_SCOPE_MAPS[name]])
            return await iq.add_scope_map(registry.id, name, "Built-in scope map.", actions)
        raise _not_found("Scope map", name, registry, target="scopeMapId")

    # -- tokens ------------------------------------------------------------------------------
    async def tokens(
        self, registry: RegistryRecord
    ) -> list[tuple[RegistryTokenRecord, str, list[dict[str, str | None]]]]:
        """Each token with its scope map's name and its passwords' names and expiry."""
        out = []
        async with self._meta.reading() as q:
            iq = q.identity
            for token in await iq.tokens(registry.id):
                scope_map = await iq.scope_map_by_id(token.scope_map_id)
                passwords = [
                    {
                        "name": p.name,
                        "creationTime": _iso(p.created_at),
                        "expiry": None if p.expires_at is None else _iso(p.expires_at),
                    }
                    for p in await iq.token_passwords(token.id)
                ]
                out.append((token, scope_map.name if scope_map else "", passwords))
        return out

    async def token(
        self, registry: RegistryRecord, name: str
    ) -> tuple[RegistryTokenRecord, str, list[dict[str, str | None]]] | None:
        return next(
            (t for t in await self.tokens(registry) if t[0].name.lower() == name.lower()), None
        )

    async def require_token(
        self, registry: RegistryRecord, name: str
    ) -> tuple[RegistryTokenRecord, str, list[dict[str, str | None]]]:
        """Raises NotFound naming the token and registry."""
        found = await self.token(registry, name)
        if found is None:
            raise _not_found("Token", name, registry)
        return found

    async def save_token(
        self, registry: RegistryRecord, name: str, scope_map: str, enabled: bool
    ) -> bool:
        """Create or update a token; True when it is new. Raises Invalid or NotFound."""
        if not _valid_name(name):
            raise Invalid("name", f"Token name {name!r} must be {_NAME_RULE}.")
        try:
            async with self._meta.writing() as q:
                iq = q.identity
                record = await self._scope_map_record(iq, registry, scope_map)
                existing = await iq.token(registry.id, name)
                if existing is None:
                    await iq.add_token(registry.id, name, record.id, enabled)
                else:
                    await iq.update_token(existing.id, record.id, enabled)
        except Conflict:
            raise Conflict(f"Token '{name}' was created concurrently.", subject="token") from None
        self._verified.clear()
        return existing is None

    async def delete_token(self, registry: RegistryRecord, name: str) -> bool:
        async with self._meta.writing() as q:
            iq = q.identity
            existing = await iq.token(registry.id, name)
            deleted = existing is not None and await iq.delete_token(existing.id)
        self._verified.clear()
        return deleted

    async def generate_token_passwords(
        self,
        registry: RegistryRecord,
        token_name: str,
        names: Sequence[str],
        expiry: datetime | None,
    ) -> dict[str, str]:
        """New passwords for a token by name, returned once (only their hashes are kept).
        Every password is made first, then all are stored in one transaction: a failure
        (the hashing pool full, the token gone) changes none. Raises Invalid for an
        unknown password name or a past expiry, 404 for no such token, and
        CredentialChecksBusy when the hashing pool is full."""
        for name in names:
            if name not in TOKEN_PASSWORD_NAMES:
                raise Invalid("name", f"name must be one of {', '.join(TOKEN_PASSWORD_NAMES)}.")
        if expiry is not None and expiry <= utcnow():
            raise Invalid("expiry", "expiry must be in the future.")
        values = {name: new_secret() for name in names}
        hashes = {name: await self._hasher.hash(value) for name, value in values.items()}
        async with self._meta.writing() as q:
            iq = q.identity
            token = await iq.token(registry.id, token_name)
            if token is None:
                raise _not_found("Token", token_name, registry, target="tokenId")
            for name, secret_hash in hashes.items():
                await iq.set_token_password(token.id, name, secret_hash, expiry)
        self._verified.clear()
        return values

    # -- credentials -------------------------------------------------------------------------
    async def current_credential(
        self, registry: RegistryRecord, kind: str, name: str
    ) -> RegistryCredential | None:
        """What a registry-local credential may do now: the admin user while it is enabled,
        a token while it exists and is enabled (with its scope map's current actions); None
        once it is gone. Checked when an access token issued to it is used."""
        if kind == "AdminUser":
            enabled = (await self.settings(registry)).admin_user_enabled
            return (
                RegistryCredential(
                    "AdminUser", registry.name, SYSTEM_SCOPE_MAPS["_repositories_admin"]
                )
                if enabled and name.lower() == registry.name.lower()
                else None
            )
        async with self._meta.reading() as q:
            iq = q.identity
            token = await iq.token(registry.id, name)
            scope_map = None if token is None else await iq.scope_map_by_id(token.scope_map_id)
        if token is None or not token.enabled or scope_map is None:
            return None
        return RegistryCredential(
            "RegistryToken", token.name, parse_actions(json.loads(scope_map.actions))
        )

    async def authenticate(
        self,
        registry: RegistryRecord,
        username: str,
        password: str,
        *,
        address: str | None = None,
    ) -> RegistryCredential | None:
        """The admin user (username = registry name) or an enabled token whose unexpired
        password matches; None otherwise. `address` is the caller's network address (None:
        unknown). Raises TooManyFailures, before hashing anything, when the address or the
        token has failed too often lately (a remembered success still passes), and
        CredentialChecksBusy when the hashing pool is full.

        A success is remembered for a minute, or until the password expires if sooner."""
        fingerprint = hashlib.sha256(
            f"{registry.id}\0{username.lower()}\0".encode() + password.encode()
        ).digest()
        hit = self._verified.get(fingerprint)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        # Refused before the database too: a throttled guesser costs no more than a 404.
        self._throttle.check(address, _token_key(registry, username))
        topics = (Topic.CREDENTIALS, Topic.REGISTRIES)
        version = self._meta.changes.version(*topics)
        checked = await self._check(registry, username, password, address)
        if checked is None:
            return None
        found, expires_at = checked
        if not self._meta.changes.unchanged(version, *topics):
            return found  # read before a change committed: not remembered
        lifetime = _VERIFIED_TTL_SECONDS
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - utcnow()).total_seconds())
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[fingerprint] = (found, time.monotonic() + lifetime)
        return found

    async def _check(
        self, registry: RegistryRecord, username: str, password: str, address: str | None
    ) -> tuple[RegistryCredential, datetime | None] | None:
        """The credential and when the password that matched expires (None: never)."""
        async with self._meta.reading() as q:
            iq = q.identity
            access = await iq.registry_access(registry.id)
            token = await iq.token(registry.id, username)
            scope_map = None if token is None else await iq.scope_map_by_id(token.scope_map_id)
            passwords = [] if token is None else await iq.token_passwords(token.id)
        if (
            username.lower() == registry.name.lower()
            and access.admin_user_enabled
            and access.admin_passwords is not None
        ):
            stored: dict[str, str] = json.loads(self._box.open(access.admin_passwords))
            if any(
                hmac.compare_digest(password.encode(), value.encode()) for value in stored.values()
            ):
                return RegistryCredential(
                    "AdminUser", registry.name, SYSTEM_SCOPE_MAPS["_repositories_admin"]
                ), None
        if token is None or not token.enabled or scope_map is None:
            return None
        now = utcnow()
        candidates = [p for p in passwords if p.expires_at is None or p.expires_at > now]
        if not candidates:
            return None  # nothing to hash: no cost to throttle
        with self._throttle.attempt(address, _token_key(registry, username)) as attempt:
            for stored_password in candidates:
                if await self._hasher.verify(password, stored_password.secret_hash):
                    return RegistryCredential(
                        "RegistryToken", token.name, parse_actions(json.loads(scope_map.actions))
                    ), stored_password.expires_at
            attempt.failed()
        return None


def _token_key(registry: RegistryRecord, username: str) -> str:
    """The throttle's key for the failures of a token (or admin user) name: per registry."""
    return f"token:{registry.id}:{username}"


def _not_found(
    kind: str, name: str, registry: RegistryRecord, target: str | None = None
) -> NotFound:
    return NotFound(
        kind.lower(),
        name,
        f"{kind} '{name}' was not found in registry '{registry.name}'.",
        field=target,
    )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
