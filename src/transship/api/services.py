"""The composition root: builds the whole object graph from settings, once."""

from __future__ import annotations

from dataclasses import dataclass

from transship.config import Settings
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.registry.blobs import BlobService
from transship.registry.check import Checker
from transship.registry.gc import GarbageCollector
from transship.registry.manifests import ManifestService
from transship.registry.resolver import RegistryResolver
from transship.storage.filesystem import FilesystemBlobStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    meta: MetadataStore
    store: FilesystemBlobStore
    resolver: RegistryResolver
    blobs: BlobService
    manifests: ManifestService
    gc: GarbageCollector
    checker: Checker

    async def close(self) -> None:
        await self.db.close()


async def build_services(settings: Settings) -> Services:
    """Create the data directory, migrate the schema and wire every service.

    Raises DatabaseUrlError for an unusable database URL, and whatever the database driver
    raises when it cannot connect.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url, durable=settings.durable_writes)
    try:
        await db.migrate()
        meta = MetadataStore(db)
        store = FilesystemBlobStore(
            settings.blob_dir, settings.staging_dir, durable=settings.durable_writes
        )
        resolver = RegistryResolver(meta, settings.default_registry)
        await resolver.start()
    except BaseException:
        await db.close()
        raise
    return Services(
        settings=settings,
        db=db,
        meta=meta,
        store=store,
        resolver=resolver,
        blobs=BlobService(meta, store),
        manifests=ManifestService(meta, settings.max_manifest_bytes, settings.tags_page_max),
        gc=GarbageCollector(
            meta,
            store,
            grace_seconds=settings.gc_grace_seconds,
            upload_expiry_seconds=settings.upload_expiry_seconds,
        ),
        checker=Checker(meta, store),
    )
