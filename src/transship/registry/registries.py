"""Registries of the service: create, look up, list, delete; login servers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from transship.errors import Conflict, Invalid, NotFound, Unsupported
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord, RetentionPolicy
from transship.metadata.scope import QueryScope, utcnow

# ACR's rule: 5 to 50 alphanumerics. The default registry keeps its historical name.
_NAME = re.compile(r"[A-Za-z0-9]{5,50}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL})(?:\.{_LABEL})*(?::\d{{1,5}})?|\[[0-9a-f:.]+\](?::\d{{1,5}})?")


SKUS = ("Basic", "Standard", "Premium")
_GIB = 1024**3
# ACR's storage included per SKU, the `limit` of the Size usage. Transship enforces no
# per-SKU limit: a registry of any SKU has every feature Transship offers.
INCLUDED_STORAGE = {"Basic": 10 * _GIB, "Standard": 100 * _GIB, "Premium": 500 * _GIB}
# ACR's limits of scope maps and of tokens per registry (every SKU).
SCOPE_MAP_LIMIT = 50_000
TOKEN_LIMIT = 50_000
# ARM's tag rules: at most 50 tags, names up to 512 characters without these, values up
# to 256 characters.
_MAX_TAGS = 50
_TAG_NAME_FORBIDDEN = re.compile(r"[<>%&\\?/\x00-\x1f]")
# ACR's retention policy keeps untagged manifests 0 to 365 days.
RETENTION_DAYS = range(0, 366)


@dataclass(frozen=True, slots=True)
class NameAvailability:
    """ACR's checkNameAvailability answer: `reason` is "Invalid" or "AlreadyExists"."""

    available: bool
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class RegistryUsage:
    """What a registry uses: the bytes of its distinct blobs and its user-defined scope maps
    and tokens, with ACR's limits for its SKU."""

    storage_bytes: int
    storage_limit: int
    scope_maps: int
    tokens: int
    scope_map_limit: int = SCOPE_MAP_LIMIT
    token_limit: int = TOKEN_LIMIT


def check_sku(name: str) -> str:
    """`name` if it is one of ACR's managed SKUs. Raises Invalid("sku.name")."""
    if name not in SKUS:
        raise Invalid(
            "sku.name",
            f"The SKU {name!r} is not valid: use one of {', '.join(SKUS)}.",
        )
    return name


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` if they follow ARM's rules. Raises Invalid("tags") naming the tag at fault."""
    if len(tags) > _MAX_TAGS:
        raise Invalid("tags", f"A resource can have at most {_MAX_TAGS} tags ({len(tags)} given).")
    for name, value in tags.items():
        if not name or len(name) > 512 or _TAG_NAME_FORBIDDEN.search(name):
            raise Invalid(
                "tags",
                f"The tag name {name[:64]!r} is invalid: 1 to 512 characters, none of "
                "< > % & \\ ? / or control characters.",
            )
        if len(value) > 256:
            raise Invalid("tags", f"The value of tag {name!r} is longer than 256 characters.")
    return dict(tags)


def canonical_host(value: str) -> str | None:
    """The canonical form of a `host[:port]` (a Host header, a login server, an audience):
    lower case, without a trailing dot on the name. None when it is not a host at all (a
    path, a slash, a user part, control characters…), so no malformed spelling can ever
    equal a canonical one."""
    text = value.lower()
    host, colon, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not colon or "]" in port:
        host, colon, port = text, "", ""
    host = host.removesuffix(".")
    candidate = f"{host}{colon}{port}"
    return candidate if _HOST.fullmatch(candidate) else None


def valid_registry_name(name: str) -> bool:
    """Whether `name` may name a registry created through the API (ACR's rule)."""
    return _NAME.fullmatch(name) is not None


def not_found(name: str, resource_group: str) -> NotFound:
    return NotFound(
        "registry",
        name,
        f"The Resource 'Microsoft.ContainerRegistry/registries/{name}' "
        f"under resource group '{resource_group}' was not found.",
    )


class RegistryService:
    """Registries and their login servers. A login server is always derived by the service
    (`<name>.<suffix>`, like ACR's `<name>.azurecr.io`) and registry names are unique across
    the service, so no registry can take another's address, the service's own addresses, or
    an upstream's host name."""

    def __init__(
        self, meta: MetadataStore, login_server_suffix: str, reserved_hosts: Iterable[str] = ()
    ) -> None:
        self._meta = meta
        self._suffix = login_server_suffix.lower()
        self._reserved = frozenset(
            h for h in (canonical_host(r) for r in reserved_hosts) if h is not None
        )

    def login_server_for(self, name: str) -> str:
        return f"{name.lower()}.{self._suffix}"

    def check_login_server(self, name: str, login_server: str | None) -> None:
        """`properties.loginServer` is read-only: accept it only when it is the derived one.
        Raises Invalid naming the field."""
        derived = self.login_server_for(name)
        if login_server is not None and canonical_host(login_server) != derived:
            raise Invalid(
                "properties.loginServer",
                f"properties.loginServer is read-only: registry '{name}' is reached at "
                f"'{derived}' (its name and the service's login-server suffix); omit the "
                "property or send that value.",
            )

    async def create(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        location: str,
        login_server: str | None = None,
        *,
        sku: str = "Premium",
        tags: Mapping[str, str] | None = None,
        within: QueryScope | None = None,
    ) -> tuple[RegistryRecord, bool]:
        """Create (or return the existing) registry; the bool says whether it is new. With
        `within`, in that transaction (the caller's: the registry exists only if the rest
        of the caller's write commits too); otherwise in one of its own.

        `sku` and `tags` are those of a new registry (an existing one keeps its own).

        Raises Invalid("name", reason "registry_name") for a bad name, or one whose login
        server would be an address of this service or of an upstream; Invalid for a
        `login_server` other than the derived one, an unknown SKU ("sku.name") or tags
        breaking ARM's rules ("tags"); Conflict (subject "registry", reason "name_taken")
        for a name taken elsewhere (names are unique across the service, in any letter
        case).
        """
        self._check_name(name)
        self.check_login_server(name, login_server)
        check_sku(sku)
        check_tags(tags or {})
        derived = self.login_server_for(name)
        in_use = Conflict(
            f"The registry name {name} is already in use.",
            subject="registry",
            reason="name_taken",
            field="name",
        )
        try:
            async with self._meta.writing(within) as q:
                existing = await q.registry_by_name(name)
                if existing is not None:
                    if (existing.subscription_id, existing.resource_group) != (
                        subscription_id,
                        resource_group,
                    ):
                        raise in_use
                    return existing, False
                record = await q.create_registry(
                    name, derived, subscription_id, resource_group, location, sku, tags
                )
        except Conflict:
            raise in_use from None  # created concurrently
        return record, True

    def _check_name(self, name: str) -> None:
        """Raises Invalid("name", reason "registry_name") for a name no registry may have."""
        if not _NAME.fullmatch(name):
            raise Invalid(
                "name",
                f"Registry name {name!r} must be 5-50 alphanumeric characters.",
                reason="registry_name",
            )
        derived = self.login_server_for(name)
        if derived in self._reserved:
            raise Invalid(
                "name",
                f"Registry name {name!r} would be reached at '{derived}', an address of this "
                "service or of an upstream registry.",
                reason="registry_name",
            )

    async def name_availability(self, name: str) -> NameAvailability:
        """Whether a new registry could take `name` (names are unique across the service)."""
        try:
            self._check_name(name)
        except Invalid as exc:
            return NameAvailability(False, "Invalid", exc.message)
        if await self.get(name) is not None:
            return NameAvailability(
                False, "AlreadyExists", f"The registry {name} is already in use."
            )
        return NameAvailability(True)

    async def update_properties(
        self,
        record: RegistryRecord,
        *,
        sku: str | None = None,
        tags: Mapping[str, str] | None = None,
        retention_enabled: bool | None = None,
        retention_days: int | None = None,
        within: QueryScope | None = None,
    ) -> RegistryRecord:
        """Set the SKU, replace the tags (ARM's PATCH replaces the whole object), and change
        the retention policy's status and days; None leaves a property as it is. With
        `within`, in the caller's transaction.

        Raises Invalid naming the field ("sku.name", "tags",
        "properties.policies.retentionPolicy.days"); NotFound("registry") when it is gone.
        """
        if sku is not None:
            check_sku(sku)
        if tags is not None:
            check_tags(tags)
        if retention_days is not None and retention_days not in RETENTION_DAYS:
            raise Invalid(
                "properties.policies.retentionPolicy.days",
                f"The retention days must be from {RETENTION_DAYS.start} to "
                f"{RETENTION_DAYS.stop - 1} ({retention_days} given).",
            )
        async with self._meta.writing(within) as q:
            # Locked: two PATCHes changing the status and the days each keep the other's.
            current = await q.registry_by_id(record.id, for_update=True)
            if current is None:
                raise not_found(record.name, record.resource_group or "")
            retention = None
            wanted = RetentionPolicy(
                current.retention.enabled if retention_enabled is None else retention_enabled,
                current.retention.days if retention_days is None else retention_days,
            )
            if (wanted.enabled, wanted.days) != (current.retention.enabled, current.retention.days):
                retention = RetentionPolicy(wanted.enabled, wanted.days, utcnow())
            updated = await q.update_registry_properties(
                record.id, sku=sku, tags=tags, retention=retention
            )
        if updated is None:
            raise not_found(record.name, record.resource_group or "")
        return updated

    async def usage(self, record: RegistryRecord) -> RegistryUsage:
        """The registry's storage and its user-defined scope maps and tokens."""
        async with self._meta.reading() as q:
            storage = await q.registry_storage_bytes(record.id)
            scope_maps = len(await q.identity.scope_maps(record.id))
            tokens = len(await q.identity.tokens(record.id))
        return RegistryUsage(
            storage_bytes=storage,
            storage_limit=INCLUDED_STORAGE.get(record.sku, INCLUDED_STORAGE["Premium"]),
            scope_maps=scope_maps,
            tokens=tokens,
        )

    async def get(self, name: str) -> RegistryRecord | None:
        """The registry of that name, in any letter case."""
        async with self._meta.reading() as q:
            return await q.registry_by_name(name)

    async def by_id(self, registry_id: int) -> RegistryRecord | None:
        async with self._meta.reading() as q:
            return await q.registry_by_id(registry_id)

    async def require(self, subscription_id: str, resource_group: str, name: str) -> RegistryRecord:
        """The registry at that ARM address. Raises NotFound("registry")."""
        record = await self.get(name)
        if (
            record is None
            or record.subscription_id != subscription_id
            or (record.resource_group or "").lower() != resource_group.lower()
        ):
            raise not_found(name, resource_group)
        return record

    async def by_login_server(self, login_server: str) -> RegistryRecord | None:
        async with self._meta.reading() as q:
            return await q.registry_by_login_server(login_server)

    async def list(
        self, subscription_id: str, resource_group: str | None = None
    ) -> list[RegistryRecord]:
        async with self._meta.reading() as q:
            records = await q.registries()
        return [
            r
            for r in records
            if r.subscription_id == subscription_id
            and (
                resource_group is None or (r.resource_group or "").lower() == resource_group.lower()
            )
        ]

    async def delete(self, record: RegistryRecord) -> None:
        """Delete a registry with its repositories; blobs go when garbage collection finds
        them unreferenced. Raises Unsupported (reason "default") for the default registry."""
        if record.is_default:
            raise Unsupported(
                "The default registry serves unknown hosts and cannot be deleted.",
                subject="registry",
                reason="default",
            )
        async with self._meta.writing() as q:
            await q.delete_registry(record.id)


_ARM_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerRegistry/registries/(?P<name>[^/]+)/?",
    re.IGNORECASE,
)


def parse_registry_id(resource_id: str) -> tuple[str, str, str] | None:
    """(subscription, resource group, name) of a registry's ARM id, or None if malformed."""
    found = _ARM_ID.fullmatch(resource_id.strip())
    return None if found is None else (found["sub"], found["rg"], found["name"])


def registry_id_of(record: RegistryRecord) -> str:
    return (
        f"/subscriptions/{record.subscription_id}/resourceGroups/{record.resource_group}"
        f"/providers/Microsoft.ContainerRegistry/registries/{record.name}"
    )
