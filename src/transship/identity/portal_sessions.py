"""Web portal sessions kept server-side: a random session id goes to the browser (the cookie),
the database keeps only its SHA-256 with the principal, tenant, CSRF token and expiry.

Server-side rather than a sealed cookie so that signing out (or an operator deleting the
row) ends a session on every process at once, and a stolen cookie stops working then.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from transship.identity.directory import Directory
from transship.identity.model import Principal
from transship.metadata.portal_sessions import PortalSessionQueries, PortalSessionRecord
from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow


@dataclass(frozen=True, slots=True)
class PortalSession:
    """A live session: who it signed in as and the token its forms must carry."""

    id_hash: str
    principal: Principal
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just created: `session_id` goes into the cookie and nowhere else."""

    session_id: str
    session: PortalSession


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the session's."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class PortalSessions:
    """Create, find and end portal sessions."""

    def __init__(self, meta: MetadataStore, directory: Directory, ttl_seconds: int) -> None:
        self._meta = meta
        self._directory = directory
        self._ttl = timedelta(seconds=ttl_seconds)

    async def start(self, principal: Principal) -> NewSession:
        """A new session for `principal` (already authenticated by the token endpoint's
        code). Expired sessions are swept in the same transaction."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        record = PortalSessionRecord(
            hash_session_id(session_id),
            principal.object_id,
            principal.tenant_id,
            csrf,
            now,
            now + self._ttl,
        )
        async with self._meta.writing() as q:
            queries: PortalSessionQueries = PortalSessionQueries.joining(q)
            await queries.remove_expired(now)
            await queries.add(record)
        return NewSession(session_id, PortalSession(record.id_hash, principal, csrf))

    async def find(self, session_id: str | None) -> PortalSession | None:
        """The live session of a cookie's id, or None: unknown, expired, signed out, or its
        principal deleted (or moved to another tenant) since."""
        if not session_id or len(session_id) > 256:
            return None
        id_hash = hash_session_id(session_id)
        async with self._meta.reading() as q:
            queries: PortalSessionQueries = PortalSessionQueries.joining(q)
            record = await queries.get(id_hash, utcnow())
        if record is None:
            return None
        principal = await self._directory.principal(record.principal_id)
        if principal is None or principal.tenant_id != record.tenant_id:
            return None
        return PortalSession(id_hash, principal, record.csrf_token)

    async def end(self, session: PortalSession) -> None:
        """Sign out: the row goes, so the cookie no longer opens anything, on any process."""
        async with self._meta.writing() as q:
            queries: PortalSessionQueries = PortalSessionQueries.joining(q)
            await queries.remove(session.id_hash)
