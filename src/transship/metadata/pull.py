"""The pull path's fast reads: a few prebuilt keyed statements, the only SQL that may run
inline on the event loop (see `Database.fast_read`).

Every statement here is a primary-key or unique-index lookup that returns at most one row,
whatever the size of the registry; building a statement costs more than running it, so they
are built once. Anything else reads through `MetadataStore.reading()` (the async driver).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from transship.metadata import schema as s
from transship.metadata.db import InlineConnection
from transship.metadata.records import ManifestRecord
from transship.oci.digest import Digest


def _statements() -> tuple[Any, Any, Any]:
    m, repo, t, rb, b = s.manifests, s.repositories, s.tags, s.repository_blobs, s.blobs
    in_repository = (
        repo.c.registry_id == bindparam("registry_id"),
        repo.c.name == bindparam("repository"),
    )
    # A pull is refused when the manifest, the tag it is asked by, or the repository has
    # readEnabled false: the flags come with the row, so the check costs no statement.
    by_digest = (
        select(
            m.c.digest,
            m.c.media_type,
            m.c.content,
            and_(repo.c.read_enabled, m.c.read_enabled).label("readable"),
        )
        .select_from(repo.join(m, m.c.repository_id == repo.c.id))
        .where(*in_repository, m.c.digest == bindparam("reference"))
    )
    by_tag = (
        select(
            m.c.digest,
            m.c.media_type,
            m.c.content,
            and_(repo.c.read_enabled, t.c.read_enabled, m.c.read_enabled).label("readable"),
        )
        .select_from(
            repo.join(t, t.c.repository_id == repo.c.id).join(
                m, and_(m.c.repository_id == t.c.repository_id, m.c.digest == t.c.digest)
            )
        )
        .where(*in_repository, t.c.name == bindparam("reference"))
    )
    blob_size = (
        select(b.c.size)
        .select_from(
            repo.join(rb, rb.c.repository_id == repo.c.id).join(b, b.c.digest == rb.c.digest)
        )
        .where(*in_repository, rb.c.digest == bindparam("digest"))
    )
    return by_digest, by_tag, blob_size


MANIFEST_BY_DIGEST, MANIFEST_BY_TAG, REPOSITORY_BLOB_SIZE = _statements()


class PullQueries:
    """The keyed lookups of manifest GET (by digest or tag) and blob GET/HEAD; nothing else,
    so nothing that scans can reach the inline connection."""

    def __init__(self, conn: AsyncConnection | InlineConnection) -> None:
        self._conn = conn

    async def manifest(
        self, registry_id: int, repository: str, reference: Digest | str
    ) -> ManifestRecord | None:
        """The manifest `reference` names (a digest, or a tag): resolve repository and tag
        and fetch the bytes, in one keyed statement."""
        by_digest = isinstance(reference, Digest)
        stmt = MANIFEST_BY_DIGEST if by_digest else MANIFEST_BY_TAG
        params = {"registry_id": registry_id, "repository": repository, "reference": reference}
        row = await self._first(stmt, params)
        if row is None:
            return None
        digest, media_type, content, readable = row
        if not isinstance(digest, Digest):  # a raw row: the digest as text
            digest = reference if isinstance(reference, Digest) else Digest.parse(digest)
        return ManifestRecord(digest, media_type, bytes(content), bool(readable))

    async def repository_blob_size(
        self, registry_id: int, repository: str, digest: Digest
    ) -> int | None:
        """Size of a blob if `repository` may see it, else None."""
        params = {"registry_id": registry_id, "repository": repository, "digest": digest}
        row = await self._first(REPOSITORY_BLOB_SIZE, params)
        return None if row is None else int(row[0])

    async def _first(self, statement: Any, params: dict[str, Any]) -> Sequence[Any] | None:
        """The statement's first row: on SQLite's inline connection straight from the
        driver (digests bound as text), else through SQLAlchemy."""
        if isinstance(self._conn, InlineConnection):
            plain = {k: str(v) if isinstance(v, Digest) else v for k, v in params.items()}
            return self._conn.first_row(statement, plain)
        return (await self._conn.execute(statement, params)).first()
