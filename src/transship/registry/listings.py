"""ACR-style repository listings (`az acr repository show-tags|show-manifests`) and
repository deletion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from transship import errors as e
from transship.errors import OciError
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord, TagRecord
from transship.oci.manifest import ManifestError, parse_manifest
from transship.storage.base import BlobStore

_MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ManifestListing:
    digest: str
    media_type: str
    image_size: int
    created: datetime
    architecture: str | None
    os: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeletedRepository:
    manifests: list[str]
    tags: list[str]


class ListingService:
    def __init__(self, meta: MetadataStore, store: BlobStore) -> None:
        self._meta = meta
        self._store = store

    async def _repository_id(self, registry: RegistryRecord, repository: str) -> int:
        async with self._meta.reading() as q:
            repo_id = await q.repository_id(registry.id, repository)
        if repo_id is None:
            raise OciError(e.NAME_UNKNOWN, f"repository {repository} is not known", {"name": repository})
        return repo_id

    async def tags(self, registry: RegistryRecord, repository: str) -> list[TagRecord]:
        """Raises NAME_UNKNOWN."""
        repo_id = await self._repository_id(registry, repository)
        async with self._meta.reading() as q:
            return await q.tags_of(repo_id)

    async def manifests(self, registry: RegistryRecord, repository: str) -> list[ManifestListing]:
        """Every manifest with its tags, size and platform. Raises NAME_UNKNOWN."""
        repo_id = await self._repository_id(registry, repository)
        async with self._meta.reading() as q:
            rows = await q.manifests_in(repo_id)
            tags = await q.tags_of(repo_id)
        by_digest: dict[str, list[str]] = {}
        for tag in tags:
            by_digest.setdefault(tag.digest, []).append(tag.name)
        listings = []
        for record, size, created in rows:
            architecture, os_ = await self._platform(record.content, record.media_type)
            listings.append(
                ManifestListing(
                    record.digest, record.media_type, size, created, architecture, os_, tuple(by_digest.get(record.digest, ()))
                )
            )
        return listings

    async def _platform(self, content: bytes, media_type: str) -> tuple[str | None, str | None]:
        try:
            parsed = parse_manifest(content, media_type)
        except ManifestError:
            return None, None
        config = parsed.config
        if config is None or config.size > _MAX_CONFIG_BYTES or await self._store.size(config.digest) is None:
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

    async def delete_repository(self, registry: RegistryRecord, repository: str) -> DeletedRepository:
        """Raises NAME_UNKNOWN."""
        async with self._meta.writing() as q:
            repo_id = await q.repository_id(registry.id, repository)
            if repo_id is None:
                raise OciError(e.NAME_UNKNOWN, f"repository {repository} is not known", {"name": repository})
            await q.lock_repository(repo_id, exclusive=True)
            manifests, tags = await q.delete_repository(repo_id)
        return DeletedRepository(manifests, tags)
