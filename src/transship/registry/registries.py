"""Registries of the service: create, look up, list, delete; login servers."""

from __future__ import annotations

import re
from collections.abc import Iterable

from transship.errors import Conflict, Invalid, NotFound, Unsupported
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.metadata.scope import QueryScope

# ACR's rule: 5 to 50 alphanumerics. The default registry keeps its historical name.
_NAME = re.compile(r"[A-Za-z0-9]{5,50}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL})(?:\.{_LABEL})*(?::\d{{1,5}})?|\[[0-9a-f:.]+\](?::\d{{1,5}})?")


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
        within: QueryScope | None = None,
    ) -> tuple[RegistryRecord, bool]:
        """Create (or return the existing) registry; the bool says whether it is new. With
        `within`, in that transaction (the caller's: the registry exists only if the rest
        of the caller's write commits too); otherwise in one of its own.

        Raises Invalid("name", reason "registry_name") for a bad name, or one whose login
        server would be an address of this service or of an upstream; Invalid for a
        `login_server` other than the derived one; Conflict (subject "registry", reason
        "name_taken") for a name taken elsewhere (names are unique across the service, in
        any letter case).
        """
        if not _NAME.fullmatch(name):
            raise Invalid(
                "name",
                f"Registry name {name!r} must be 5-50 alphanumeric characters.",
                reason="registry_name",
            )
        self.check_login_server(name, login_server)
        derived = self.login_server_for(name)
        if derived in self._reserved:
            raise Invalid(
                "name",
                f"Registry name {name!r} would be reached at '{derived}', an address of this "
                "service or of an upstream registry.",
                reason="registry_name",
            )
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
                    name, derived, subscription_id, resource_group, location
                )
        except Conflict:
            raise in_use from None  # created concurrently
        return record, True

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
