"""The composition root: builds the whole object graph from settings, once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from transship.config import Settings
from transship.identity.bootstrap import AdminVerifier, ServiceIdentity, bootstrap
from transship.identity.secrets import SecretBox
from transship.imports.egress import EgressPolicies, policy_from_settings
from transship.imports.engine import ImportEngine
from transship.imports.plan import ImportLimits
from transship.imports.retry import RetryPolicy
from transship.imports.service import ImportService, RunnerSettings
from transship.imports.sink import RegistrySink
from transship.imports.sources import Sources
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.registry.blobs import BlobService
from transship.registry.check import Checker
from transship.registry.gc import GarbageCollector
from transship.registry.listings import ListingService
from transship.registry.manifests import ManifestService
from transship.registry.registries import RegistryService
from transship.registry.resolver import RegistryResolver
from transship.storage.filesystem import FilesystemBlobStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    meta: MetadataStore
    store: FilesystemBlobStore
    identity: ServiceIdentity
    admin: AdminVerifier
    resolver: RegistryResolver
    registries: RegistryService
    blobs: BlobService
    manifests: ManifestService
    listings: ListingService
    imports: ImportService
    gc: GarbageCollector
    checker: Checker

    async def close(self) -> None:
        await self.db.close()


async def build_services(
    settings: Settings, *, inner_resolver: Callable[[], AbstractResolver] = DefaultResolver
) -> Services:
    """Create the data directory, migrate the schema, bootstrap the service identity and wire
    every service.

    Raises DatabaseUrlError for an unusable database URL, and whatever the database driver
    raises when it cannot connect.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url, durable=settings.durable_writes)
    try:
        await db.migrate()
        meta = MetadataStore(db)
        store = FilesystemBlobStore(settings.blob_dir, settings.staging_dir, durable=settings.durable_writes)
        resolver = RegistryResolver(meta, settings.default_registry, settings.effective_login_server_suffix)
        await resolver.start()
        identity = await bootstrap(meta, settings.admin_credential_file)
    except BaseException:
        await db.close()
        raise
    egress = EgressPolicies(
        policy_from_settings(settings.egress.rules, settings.egress.default, settings.egress.deny_private),
        {
            name: policy_from_settings(policy.rules, policy.default, policy.deny_private)
            for name, policy in settings.egress_registries.items()
        },
        inner_resolver,
    )
    sources = Sources(
        meta,
        store,
        settings.upstreams,
        retry=RetryPolicy(attempts=settings.upstream_retry_attempts),
        max_manifest_bytes=settings.max_manifest_bytes,
        read_timeout=settings.upstream_read_timeout,
        egress=egress,
        max_header_bytes=settings.upstream_max_header_bytes,
    )
    engine = ImportEngine(
        RegistrySink(meta, store),
        sources,
        blob_concurrency=settings.import_blob_concurrency,
        limits=ImportLimits(
            max_manifests=settings.import_max_manifests,
            max_index_depth=settings.max_index_depth,
            max_index_children=settings.max_index_children,
            max_bytes=settings.import_max_bytes,
        ),
    )
    imports = ImportService(
        meta,
        engine,
        SecretBox.from_key_file(settings.effective_service_key_file),
        RunnerSettings(
            workers=settings.import_workers,
            max_running=settings.import_max_running,
            max_running_per_registry=settings.import_max_running_per_registry,
            lease=timedelta(seconds=settings.import_lease_seconds),
        ),
    )
    return Services(
        settings=settings,
        db=db,
        meta=meta,
        store=store,
        identity=identity,
        admin=AdminVerifier(identity),
        resolver=resolver,
        registries=RegistryService(meta, settings.effective_login_server_suffix),
        blobs=BlobService(meta, store, settings.max_blob_bytes),
        manifests=ManifestService(
            meta, settings.max_manifest_bytes, settings.tags_page_max, settings.max_index_children
        ),
        listings=ListingService(meta, store),
        imports=imports,
        gc=GarbageCollector(
            meta, store, grace_seconds=settings.gc_grace_seconds, upload_expiry_seconds=settings.upload_expiry_seconds
        ),
        checker=Checker(meta, store),
    )
