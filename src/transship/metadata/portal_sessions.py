"""Rows of the web portal's sessions (`transship.portal.sessions`): the SHA-256 of each
session id (never the id itself: a copy of the database opens no browser session), the
principal and tenant it signed in as, its CSRF token and its expiry.

The table joins the schema's MetaData here, beside its queries (migration 0015 creates it).
Every process of the service reads the same rows, so stateless replicas share sessions and
a sign-out (a row deleted) ends the session everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Row, String, Table, delete, insert, select

from transship.metadata import schema as s
from transship.metadata.scope import QueryScope, as_utc

portal_sessions = Table(
    "portal_sessions",
    s.metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("principal_id", String(36), nullable=False),
    Column("tenant_id", String(36), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", s.UtcDateTime(), nullable=False),
    Column("expires_at", s.UtcDateTime(), nullable=False),
    Index("ix_portal_sessions_expires", "expires_at"),
)


@dataclass(frozen=True, slots=True)
class PortalSessionRecord:
    """One session row. `id_hash` is the hex SHA-256 of the cookie's session id."""

    id_hash: str
    principal_id: str
    tenant_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def _record(row: Row[Any]) -> PortalSessionRecord:
    return PortalSessionRecord(
        row.id_hash,
        row.principal_id,
        row.tenant_id,
        row.csrf_token,
        as_utc(row.created_at),
        as_utc(row.expires_at),
    )


class PortalSessionQueries(QueryScope):
    async def add(self, record: PortalSessionRecord) -> None:
        """Insert a new session. Raises Conflict if its id hash exists (never, for random
        ids)."""
        await self._exec(
            insert(portal_sessions).values(
                id_hash=record.id_hash,
                principal_id=record.principal_id,
                tenant_id=record.tenant_id,
                csrf_token=record.csrf_token,
                created_at=record.created_at,
                expires_at=record.expires_at,
            )
        )

    async def get(self, id_hash: str, now: datetime) -> PortalSessionRecord | None:
        """The unexpired session of that id hash, or None."""
        t = portal_sessions
        row = (
            await self._exec(select(t).where(t.c.id_hash == id_hash, t.c.expires_at > now))
        ).first()
        return None if row is None else _record(row)

    async def remove(self, id_hash: str) -> bool:
        """Delete the session; True when it existed."""
        t = portal_sessions
        result = await self._exec(delete(t).where(t.c.id_hash == id_hash))
        return bool(result.rowcount)

    async def remove_expired(self, now: datetime) -> int:
        """Delete every expired session; how many went."""
        t = portal_sessions
        result = await self._exec(delete(t).where(t.c.expires_at <= now))
        return int(result.rowcount or 0)
