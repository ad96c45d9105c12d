"""ACR-style repository listings (`az acr repository show-tags|show-manifests`) and
repository deletion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from transship.errors import NotFound
from transship.metadata.queries import (
    AttributeSubject,
    ListingOrder,
    MetadataStore,
    RegistryQueries,
)
from transship.metadata.records import (
    UNLOCKED,
    Attributes,
    ManifestRecord,
    RegistryRecord,
    TagRecord,
)
from transship.metadata.webhooks import EventDraft, EventRequest, webhook_queries
from transship.oci.digest import Digest
from transship.oci.manifest import ManifestError, parse_manifest
from transship.registry import locks
from transship.storage.base import BlobStore

__all__ = [
    "AttributeChanges",
    "DeletedRepository",
    "ListingOrder",
    "ListingPage",
    "ListingService",
    "ManifestListing",
    "RepositorySummary",
]

_MAX_CONFIG_BYTES = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ManifestListing:
    digest: Digest
    media_type: str
    image_size: int
    created: datetime
    architecture: str | None
    os: str | None
    tags: tuple[str, ...]
    attributes: Attributes = UNLOCKED


@dataclass(frozen=True, slots=True)
class ListingPage(Generic[T]):
    """One page of a listing; `more` when items follow it."""

    items: list[T]
    more: bool


@dataclass(frozen=True, slots=True)
class RepositorySummary:
    manifest_count: int
    tag_count: int
    created: datetime | None
    last_update: datetime | None
    attributes: Attributes = UNLOCKED


@dataclass(frozen=True, slots=True)
class AttributeChanges:
    """The changeable attributes an update sets; None leaves one as it is."""

    delete_enabled: bool | None = None
    write_enabled: bool | None = None
    read_enabled: bool | None = None
    list_enabled: bool | None = None

    def columns(self) -> dict[str, bool]:
        values = {
            "delete_enabled": self.delete_enabled,
            "write_enabled": self.write_enabled,
            "read_enabled": self.read_enabled,
            "list_enabled": self.list_enabled,
        }
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class DeletedRepository:
    manifests: list[Digest]
    tags: list[str]


class ListingService:
    """ACR listings answered by keyed or paginated queries: the cost of a request grows
    with the page it returns, never with the size of the repository."""

    def __init__(self, meta: MetadataStore, store: BlobStore, *, page_max: int = 1000) -> None:
        self._meta = meta
        self._store = store
        self._page_max = page_max

    async def _repository_id(
        self, q: RegistryQueries, registry: RegistryRecord, repository: str
    ) -> int:
        repo_id = await q.repository_id(registry.id, repository)
        if repo_id is None:
            raise NotFound(
                "repository",
                repository,
                f"repository {repository} is not known",
                detail={"name": repository},
            )
        return repo_id

    def _limit(self, n: int | None) -> int:
        """ACR's default page is 100 items; larger asks are served a page at a time."""
        return min(100 if n is None else n, self._page_max)

    async def tags(
        self,
        registry: RegistryRecord,
        repository: str,
        order: ListingOrder,
        last: str | None,
        n: int | None,
    ) -> ListingPage[TagRecord]:
        """The tags after the one named `last`, in `order`. Raises NotFound("repository")."""
        limit = self._limit(n)
        async with self._meta.reading() as q:
            repo_id = await self._repository_id(q, registry, repository)
            rows = await q.tags_page(repo_id, order, last, limit + 1)
        return ListingPage(rows[:limit], len(rows) > limit)

    async def tag(self, registry: RegistryRecord, repository: str, name: str) -> TagRecord | None:
        """One tag, or None. Raises NotFound("repository")."""
        async with self._meta.reading() as q:
            return await q.tag(await self._repository_id(q, registry, repository), name)

    async def manifests(
        self,
        registry: RegistryRecord,
        repository: str,
        order: ListingOrder,
        last: str | None,
        n: int | None,
    ) -> ListingPage[ManifestListing]:
        """The manifests after the one whose digest is `last`, in `order`, with their tags,
        size and platform. Raises NotFound("repository")."""
        limit = self._limit(n)
        async with self._meta.reading() as q:
            repo_id = await self._repository_id(q, registry, repository)
            rows = await q.manifests_page(repo_id, order, last, limit + 1)
            more, rows = len(rows) > limit, rows[:limit]
            tags = await q.tags_on(repo_id, (record.digest for record, _, _, _ in rows))
        return ListingPage([await self._listing(row, tags) for row in rows], more)

    async def manifest(
        self, registry: RegistryRecord, repository: str, digest: Digest
    ) -> ManifestListing | None:
        """One manifest with its tags, size and platform, or None. Raises NotFound("repository")."""
        async with self._meta.reading() as q:
            repo_id = await self._repository_id(q, registry, repository)
            row = await q.manifest_listing(repo_id, digest)
            tags = {} if row is None else await q.tags_on(repo_id, [digest])
        return None if row is None else await self._listing(row, tags)

    async def summary(self, registry: RegistryRecord, repository: str) -> RepositorySummary:
        """Counts and times of a repository, counted in SQL. Raises NotFound("repository")."""
        async with self._meta.reading() as q:
            repo_id = await self._repository_id(q, registry, repository)
            manifests, tags, first, last = await q.repository_summary(repo_id)
            attributes = await q.attributes("repository", repo_id)
        return RepositorySummary(manifests, tags, first, last, attributes or UNLOCKED)

    async def update_attributes(
        self,
        registry: RegistryRecord,
        repository: str,
        subject: AttributeSubject,
        key: str | Digest | None,
        changes: AttributeChanges,
    ) -> Attributes:
        """Set changeable attributes of the repository (`key` None), one of its tags (`key`
        the tag's name) or manifests (`key` its digest); returns them as they now are.
        Unlocking is always allowed: a lock guards content, not itself.

        Raises NotFound("repository"), NotFound("tag") or NotFound("manifest")."""
        async with self._meta.writing() as q:
            repo_id = await self._repository_id(q, registry, repository)
            await q.lock_repository(repo_id, exclusive=True)
            attributes = await q.set_attributes(subject, repo_id, key, changes.columns())
        if attributes is None:
            name = f"{repository}{'@' if subject == 'manifest' else ':'}{key}"
            raise NotFound(
                subject,
                name,
                f"{subject} {key} is not in repository {repository}",
                detail={subject: str(key)},
            )
        return attributes

    async def _listing(
        self,
        row: tuple[ManifestRecord, int, datetime, Attributes],
        tags: dict[Digest, list[str]],
    ) -> ManifestListing:
        record, size, created, attributes = row
        architecture, os_ = await self._platform(record.content, record.media_type)
        return ManifestListing(
            record.digest,
            record.media_type,
            size,
            created,
            architecture,
            os_,
            tuple(tags.get(record.digest, ())),
            attributes,
        )

    async def _platform(self, content: bytes, media_type: str) -> tuple[str | None, str | None]:
        try:
            parsed = parse_manifest(content, media_type)
        except ManifestError:
            return None, None
        config = parsed.config
        if (
            config is None
            or config.size > _MAX_CONFIG_BYTES
            or await self._store.size(config.digest) is None
        ):
            return None, None
        chunks = [chunk async for chunk in self._store.read(config.digest)]
        try:
            document = json.loads(b"".join(chunks))
        except ValueError:
            return None, None
        if not isinstance(document, dict):
            return None, None
        arch, os_ = document.get("architecture"), document.get("os")
        return (arch if isinstance(arch, str) else None), (os_ if isinstance(os_, str) else None)

    async def delete_repository(
        self,
        registry: RegistryRecord,
        repository: str,
        event_request: EventRequest | None = None,
    ) -> DeletedRepository:
        """Delete a repository with a webhook `delete` event per manifest (same
        transaction). Raises NotFound("repository"), or Denied (reason "locked") when the
        repository or anything in it is locked against deletion; nothing is deleted then."""
        async with self._meta.writing() as q:
            repo_id = await q.repository_id(registry.id, repository)
            if repo_id is None:
                raise NotFound(
                    "repository",
                    repository,
                    f"repository {repository} is not known",
                    detail={"name": repository},
                )
            await q.lock_repository(repo_id, exclusive=True)
            await locks.check_repository_deletable(q, repo_id, repository)
            manifests, tags = await q.delete_repository(repo_id)
            drafts = [EventDraft("delete", repository, digest) for digest in manifests]
            await webhook_queries(q).record_events(registry.id, drafts, event_request)
        return DeletedRepository(manifests, tags)
