"""Paged read queries behind the web portal's listings: a registry's repositories and a
repository's tags, filtered by a name fragment, sorted by name, date or size, one page at a
time with LIMIT/OFFSET (a page of 10,000 tags costs one page of rows, plus the count).

Sizes are computed in SQL: a repository's is the sum of its distinct blobs; a tag's is its
manifest plus the blobs it references directly plus, for an index, the blobs of its child
manifests (one level, which is what an index holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, and_, exists, false, func, select

from transship.metadata import schema as s
from transship.metadata.scope import QueryScope, as_utc
from transship.oci.digest import Digest

BrowseSort = Literal["name", "date", "size"]


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    name: str
    tags: int
    manifests: int
    size: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TagRow:
    name: str
    digest: Digest
    media_type: str
    size: int
    updated_at: datetime


def _like(fragment: str) -> str:
    """A LIKE pattern matching names containing `fragment` literally ('\\' escapes)."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _total_size(repository_id: int) -> Any:
    """(subquery of manifest digest → the size of what it references, as the module
    docstring has it) for one repository."""
    mr, b = s.manifest_references, s.blobs
    own = (
        select(mr.c.manifest_digest.label("digest"), func.sum(b.c.size).label("own"))
        .select_from(mr.join(b, b.c.digest == mr.c.child_digest))
        .where(mr.c.repository_id == repository_id, mr.c.is_manifest == false())
        .group_by(mr.c.manifest_digest)
        .subquery("own")
    )
    kid = mr.alias("kid")
    kids = (
        select(kid.c.manifest_digest.label("digest"), func.sum(own.c.own).label("kids"))
        .select_from(kid.join(own, own.c.digest == kid.c.child_digest))
        .where(kid.c.repository_id == repository_id, kid.c.is_manifest)
        .group_by(kid.c.manifest_digest)
        .subquery("kids")
    )
    return own, kids


class BrowseQueries(QueryScope):
    async def repositories_page(
        self, registry_id: int, fragment: str, sort: BrowseSort, offset: int, limit: int
    ) -> tuple[list[RepositoryRow], int]:
        """One page of the registry's listable repositories that have content and whose
        name contains `fragment`, and how many there are in all."""
        repo, t, m = s.repositories, s.tags, s.manifests
        rb, b = s.repository_blobs, s.blobs
        has_content = exists().where(m.c.repository_id == repo.c.id) | exists().where(
            rb.c.repository_id == repo.c.id
        )
        where = [repo.c.registry_id == registry_id, repo.c.list_enabled, has_content]
        if fragment:
            where.append(repo.c.name.like(_like(fragment), escape="\\"))
        total = (await self._exec(select(func.count()).select_from(repo).where(*where))).scalar()
        tag_stats = (
            select(
                t.c.repository_id.label("rid"),
                func.count().label("tags"),
                func.max(t.c.updated_at).label("updated"),
            )
            .group_by(t.c.repository_id)
            .subquery("tag_stats")
        )
        manifest_stats = (
            select(
                m.c.repository_id.label("rid"),
                func.count().label("manifests"),
                func.max(m.c.created_at).label("created"),
            )
            .group_by(m.c.repository_id)
            .subquery("manifest_stats")
        )
        sizes = (
            select(rb.c.repository_id.label("rid"), func.sum(b.c.size).label("size"))
            .select_from(rb.join(b, b.c.digest == rb.c.digest))
            .group_by(rb.c.repository_id)
            .subquery("sizes")
        )
        size = func.coalesce(sizes.c.size, 0)
        updated = func.coalesce(tag_stats.c.updated, manifest_stats.c.created, repo.c.created_at)
        order = {
            "name": (repo.c.name,),
            "date": (updated.desc(), repo.c.name),
            "size": (size.desc(), repo.c.name),
        }[sort]
        stmt = (
            select(
                repo.c.name,
                func.coalesce(tag_stats.c.tags, 0).label("tags"),
                func.coalesce(manifest_stats.c.manifests, 0).label("manifests"),
                size.label("size"),
                updated.label("updated"),
            )
            .select_from(
                repo.outerjoin(tag_stats, tag_stats.c.rid == repo.c.id)
                .outerjoin(manifest_stats, manifest_stats.c.rid == repo.c.id)
                .outerjoin(sizes, sizes.c.rid == repo.c.id)
            )
            .where(*where)
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
        rows = await self._exec(stmt)
        return [
            RepositoryRow(r.name, int(r.tags), int(r.manifests), int(r.size), as_utc(r.updated))
            for r in rows
        ], int(total or 0)

    async def tags_page(
        self, repository_id: int, fragment: str, sort: BrowseSort, offset: int, limit: int
    ) -> tuple[list[TagRow], int]:
        """One page of the repository's listable tags whose name contains `fragment`, with
        each one's size, and how many there are in all."""
        t = s.tags
        where = [t.c.repository_id == repository_id, t.c.list_enabled]
        if fragment:
            where.append(t.c.name.like(_like(fragment), escape="\\"))
        total = (await self._exec(select(func.count()).select_from(t).where(*where))).scalar()
        page = await self._tag_rows(repository_id, where, sort, offset, limit)
        return page, int(total or 0)

    async def _tag_rows(
        self, repository_id: int, where: list[Any], sort: BrowseSort, offset: int, limit: int
    ) -> list[TagRow]:
        t, m = s.tags, s.manifests
        join = t.join(m, and_(m.c.repository_id == t.c.repository_id, m.c.digest == t.c.digest))
        if sort != "size":
            # The page first, by name or date alone; sizes only for its rows.
            order = (t.c.name,) if sort == "name" else (t.c.updated_at.desc(), t.c.name)
            names = [
                r.name
                for r in await self._exec(
                    select(t.c.name).where(*where).order_by(*order).limit(limit).offset(offset)
                )
            ]
            if not names:
                return []
            rows = await self._sized(repository_id, join, [*where, t.c.name.in_(names)], order)
            return rows
        own, kids = _total_size(repository_id)
        size = m.c.size + func.coalesce(own.c.own, 0) + func.coalesce(kids.c.kids, 0)
        stmt = (
            select(t.c.name, t.c.digest, t.c.updated_at, m.c.media_type, size.label("size"))
            .select_from(
                join.outerjoin(own, own.c.digest == t.c.digest).outerjoin(
                    kids, kids.c.digest == t.c.digest
                )
            )
            .where(*where)
            .order_by(size.desc(), t.c.name)
            .limit(limit)
            .offset(offset)
        )
        return [_tag_row(r) for r in await self._exec(stmt)]

    async def _sized(
        self, repository_id: int, join: Any, where: list[Any], order: tuple[Any, ...]
    ) -> list[TagRow]:
        """The tags `where` selects (one page), with their sizes computed for them alone."""
        t, m, mr, b = s.tags, s.manifests, s.manifest_references, s.blobs
        rows = list(
            await self._exec(
                select(t.c.name, t.c.digest, t.c.updated_at, m.c.media_type, m.c.size)
                .select_from(join)
                .where(*where)
                .order_by(*order)
            )
        )
        digests = {r.digest for r in rows}
        refs = list(
            await self._exec(
                select(mr.c.manifest_digest, mr.c.child_digest, mr.c.is_manifest).where(
                    mr.c.repository_id == repository_id, mr.c.manifest_digest.in_(digests)
                )
            )
        )
        children = {r.child_digest for r in refs if r.is_manifest}
        if children:
            refs += list(
                await self._exec(
                    select(mr.c.manifest_digest, mr.c.child_digest, mr.c.is_manifest).where(
                        mr.c.repository_id == repository_id,
                        mr.c.manifest_digest.in_(children),
                        mr.c.is_manifest == false(),
                    )
                )
            )
        blob_digests = {r.child_digest for r in refs if not r.is_manifest}
        sizes: dict[Any, int] = {}
        if blob_digests:
            sizes = {
                r.digest: int(r.size)
                for r in await self._exec(
                    select(b.c.digest, b.c.size).where(b.c.digest.in_(blob_digests))
                )
            }
        own: dict[Any, int] = {}
        kids: dict[Any, list[Any]] = {}
        for ref in refs:
            if ref.is_manifest:
                kids.setdefault(ref.manifest_digest, []).append(ref.child_digest)
            else:
                own[ref.manifest_digest] = own.get(ref.manifest_digest, 0) + sizes.get(
                    ref.child_digest, 0
                )
        out = []
        for r in rows:
            total = int(r.size) + own.get(r.digest, 0)
            total += sum(own.get(child, 0) for child in kids.get(r.digest, ()))
            out.append(TagRow(r.name, r.digest, r.media_type, total, as_utc(r.updated_at)))
        return out

    async def manifest_contents(
        self, repository_id: int, digests: list[Digest]
    ) -> dict[Digest, tuple[str, bytes]]:
        """(media type, bytes) of the repository's manifests among `digests`."""
        if not digests:
            return {}
        m = s.manifests
        rows = await self._exec(
            select(m.c.digest, m.c.media_type, m.c.content).where(
                m.c.repository_id == repository_id, m.c.digest.in_(digests)
            )
        )
        return {r.digest: (r.media_type, bytes(r.content)) for r in rows}


def _tag_row(r: Row[Any]) -> TagRow:
    return TagRow(r.name, r.digest, r.media_type, int(r.size), as_utc(r.updated_at))
