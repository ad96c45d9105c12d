"""The service's own secret store, standing in for Azure Key Vault.

ACR credential sets name Key Vault secrets by identifier
(`https://<vault>.vault.azure.net/secrets/<name>[/<version>]`). Transship resolves those
identifiers against this store: an operator sets each secret once (`transship secret set`),
its value sealed with the service key; a pull under a cache rule opens it. Values never
leave the service: not in answers, not in logs, not in `repr`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from transship.errors import Invalid, NotFound
from transship.identity.secrets import SecretBox
from transship.metadata.cache_rules import SealedSecretRecord, cache_rule_queries
from transship.metadata.queries import MetadataStore

_VAULT_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_SECRET_NAME = re.compile(r"[0-9a-z-]{1,127}")
_SECRET_VERSION = re.compile(r"[0-9a-z]{1,64}")
# Key Vault's bound on a secret's value.
MAX_SECRET_BYTES = 25 * 1024
MAX_IDENTIFIER_LENGTH = 1024


def secret_identifier(text: str, field_name: str = "identifier") -> str:
    """The canonical form (lower-cased: Key Vault's names are case-insensitive; no trailing
    slash, no query) of a Key Vault secret identifier. Raises Invalid(field_name)."""
    problem = (
        f"{field_name} {text[:100]!r} is not a Key Vault secret identifier "
        "(https://<vault>.vault.azure.net/secrets/<name>[/<version>])"
    )
    if len(text) > MAX_IDENTIFIER_LENGTH:
        raise Invalid(field_name, problem, subject="secret")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise Invalid(field_name, problem, subject="secret") from None
    host = (parts.hostname or "").lower()
    segments = parts.path.strip("/").lower().split("/")
    if (
        parts.scheme.lower() != "https"
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or not _VAULT_HOST.fullmatch(host)
        or len(segments) not in (2, 3)
        or segments[0] != "secrets"
        or not _SECRET_NAME.fullmatch(segments[1])
        or (len(segments) == 3 and not _SECRET_VERSION.fullmatch(segments[2]))
    ):
        raise Invalid(field_name, problem, subject="secret")
    netloc = host if port is None else f"{host}:{port}"
    return f"https://{netloc}/" + "/".join(segments)


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown of a stored secret: its identifier and times."""

    identifier: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class SecretValue:
    """An opened secret. Never logged: `repr` hides it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "SecretValue(<redacted>)"


def _info(record: SealedSecretRecord) -> SecretInfo:
    return SecretInfo(
        record.identifier,
        record.created_at.isoformat().replace("+00:00", "Z"),
        record.updated_at.isoformat().replace("+00:00", "Z"),
    )


class SecretStore:
    """Sealed secrets by identifier, in the metadata database."""

    def __init__(self, meta: MetadataStore, box: SecretBox) -> None:
        self._meta = meta
        self._box = box

    async def put(self, identifier: str, value: str) -> tuple[SecretInfo, bool]:
        """Store (or replace) the secret. Returns it and whether it is new. Raises
        Invalid("identifier") or Invalid("value") (empty, too large, or not one line)."""
        canonical = secret_identifier(identifier)
        if not value:
            raise Invalid("value", "the secret's value is empty", subject="secret")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise Invalid(
                "value",
                f"the secret's value is larger than {MAX_SECRET_BYTES} bytes",
                subject="secret",
            )
        if "\n" in value or "\r" in value or "\x00" in value:
            # A registry credential is one line; a newline is a paste mistake.
            raise Invalid("value", "the secret's value must be one line of text", subject="secret")
        sealed = self._box.seal(value.encode())
        async with self._meta.writing() as q:
            queries = cache_rule_queries(q)
            created = await queries.put_secret(canonical, sealed)
            saved = await queries.secret(canonical)
        assert saved is not None
        return _info(saved), created

    async def all(self) -> list[SecretInfo]:
        async with self._meta.reading() as q:
            return [_info(r) for r in await cache_rule_queries(q).secrets()]

    async def delete(self, identifier: str) -> bool:
        """False when there was none. Raises Invalid("identifier")."""
        canonical = secret_identifier(identifier)
        async with self._meta.writing() as q:
            return await cache_rule_queries(q).delete_secret(canonical)

    async def present(self, identifiers: list[str]) -> set[str]:
        """Which of the (canonical) `identifiers` are stored."""
        async with self._meta.reading() as q:
            return await cache_rule_queries(q).present_secrets(identifiers)

    async def resolve(self, identifier: str) -> SecretValue:
        """The opened secret. Raises NotFound("secret") when it is not stored, or when it
        was sealed with another service key (it cannot be used: set it again)."""
        async with self._meta.reading() as q:
            found = await cache_rule_queries(q).secret(identifier)
        if found is None or found.value is None:
            raise NotFound("secret", identifier, f"secret {identifier!r} is not set")
        try:
            return SecretValue(self._box.open(found.value).decode())
        except ValueError:
            raise NotFound(
                "secret",
                identifier,
                f"secret {identifier!r} was sealed with another service key; set it again",
                reason="sealed_elsewhere",
            ) from None
