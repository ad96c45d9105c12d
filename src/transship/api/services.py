"""The composition root: builds the whole object graph from settings, once."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from transship.cache.ports import CacheRuleLookup
from transship.cache.pull_through import PullThrough
from transship.cache.rule_lookup import DatabaseCacheRuleLookup
from transship.cache.secrets import SecretStore
from transship.cache.service import CacheRuleService
from transship.cache.sync import SyncService, SyncSettings
from transship.config import Settings
from transship.filemodes import private_dir
from transship.identity.access import AccessControl
from transship.identity.bootstrap import ServiceIdentity, bootstrap
from transship.identity.dataplane import DataPlaneAuth
from transship.identity.directory import Directory
from transship.identity.entra import EntraTokens
from transship.identity.import_policy import ImportPolicy
from transship.identity.portal_sessions import PortalSessions
from transship.identity.registry_access import RegistryAccess
from transship.identity.secrets import SecretBox, SecretHasher
from transship.identity.throttle import FailureThrottle
from transship.identity.tokens import SigningKeys, TokenService
from transship.imports.batch import BatchService
from transship.imports.budgets import UpstreamBudgets
from transship.imports.dry_run import DryRunPlanner, RegistryTargetView
from transship.imports.egress import EgressPolicies, policy_from_settings
from transship.imports.engine import ImportEngine
from transship.imports.plan import ImportLimits
from transship.imports.retry import RetryPolicy
from transship.imports.service import ImportService, RunnerSettings
from transship.imports.shelf import ManifestShelf
from transship.imports.signals import JobSignals
from transship.imports.sink import RegistrySink
from transship.imports.sources import Sources
from transship.metadata.changes import ChangeHub, ChangeListener
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.oci.reference import DOCKER_HUB_ALIASES
from transship.registry.blobs import BlobService
from transship.registry.browse import BrowseService
from transship.registry.check import Checker
from transship.registry.gc import GarbageCollector
from transship.registry.listings import ListingService
from transship.registry.manifests import ManifestService
from transship.registry.registries import RegistryService
from transship.registry.resolver import RegistryResolver
from transship.storage.base import BlobStore
from transship.storage.filesystem import FilesystemBlobStore
from transship.storage.location import open_object_store, probe_object_store
from transship.webhooks.delivery import WebhookDispatcher
from transship.webhooks.service import WebhookService


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    meta: MetadataStore
    store: BlobStore
    identity: ServiceIdentity
    directory: Directory
    access: AccessControl
    registry_access: RegistryAccess
    tokens: TokenService
    entra: EntraTokens
    dataplane: DataPlaneAuth
    import_policy: ImportPolicy
    resolver: RegistryResolver
    registries: RegistryService
    blobs: BlobService
    manifests: ManifestService
    listings: ListingService
    imports: ImportService
    # Upstream rate-limit budgets (None when upstream_rate_limit_budgets is off).
    budgets: UpstreamBudgets | None
    batches: BatchService
    dry_runs: DryRunPlanner
    gc: GarbageCollector
    checker: Checker
    hasher: SecretHasher
    webhooks: WebhookService
    webhook_dispatcher: WebhookDispatcher
    # The artifact cache: the sealed secrets credential sets name, the cache rules and
    # credential sets of registries, and which upstream backs a repository under a rule.
    secrets: SecretStore
    cache_rules: CacheRuleService
    cache_rule_lookup: CacheRuleLookup
    # Tells this process's caches what other processes change (supervised in every process).
    change_listener: ChangeListener
    # Sync rules and their runs (scheduled sync).
    sync: SyncService
    # Pull-through: the first pull of a repository under a cache rule copies it.
    pull_through: PullThrough
    # The web portal's sign-in sessions (server-side rows; transship.portal).
    portal_sessions: PortalSessions
    # Paged listings and manifest views of the portal (read-only).
    browse: BrowseService

    async def close(self) -> None:
        await self.db.close()
        # A hash still running finishes first (a few tens of milliseconds); off the loop.
        await asyncio.to_thread(self.hasher.close)


def reserved_hosts(settings: Settings) -> set[str]:
    """Hosts no registry's login server may ever be: the service's own addresses and the
    upstream registries imports name (a registry there would capture their imports)."""
    port = settings.port
    names = {*settings.hosts, "localhost", "127.0.0.1", "[::1]"}
    own = {f"[{h}]" if ":" in h and not h.startswith("[") else h for h in names}
    return {
        settings.effective_login_server_suffix,
        *own,
        *(f"{h}:{port}" for h in own),
        *settings.upstreams,
        *DOCKER_HUB_ALIASES,
        "mcr.microsoft.com",
    }


async def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store `storage_url` names: the filesystem under `data_dir` (or a `file://`
    root), or an object store reached once here so a wrong bucket or credential stops
    startup. Credentials come from the process environment. Raises StorageConnectError."""
    location = settings.storage_location
    if location is None:
        return FilesystemBlobStore(
            settings.blob_dir, settings.staging_dir, durable=settings.durable_writes
        )
    if location.kind == "file":
        assert location.path is not None
        return FilesystemBlobStore(
            location.path / "blobs", location.path / "uploads", durable=settings.durable_writes
        )
    store = open_object_store(location, os.environ)
    await probe_object_store(store, location)
    logging.getLogger("transship").info("blobs are stored in %s", location.describe())
    return store


async def build_services(
    settings: Settings,
    *,
    inner_resolver: Callable[[], AbstractResolver] = DefaultResolver,
    cache_rule_lookup: CacheRuleLookup | None = None,
) -> Services:
    """Create the data directory, migrate the schema, bootstrap the service identity and wire
    every service.

    `cache_rule_lookup`: where the pull path looks cache rules up (None: the database).

    Raises DatabaseUrlError for an unusable database URL, StorageConnectError when the
    object store of `storage_url` cannot be reached, and whatever the database driver
    raises when it cannot connect.
    """
    # 0700, and tightened if an older version left it open: it holds keys and private images.
    private_dir(settings.data_dir)
    db = Database(settings.effective_database_url, durable=settings.durable_writes)
    # Every scrypt hash and check runs on this pool, never the default one (file work), and
    # failed sign-ins are counted in one throttle for every surface.
    hasher = SecretHasher(
        settings.credential_hash_workers,
        settings.credential_hash_max_waiting,
        settings.credential_hash_cost,
    )
    throttle = FailureThrottle(
        settings.auth_failure_limit_per_client,
        settings.auth_failure_limit_per_principal,
        settings.auth_failure_window_seconds,
    )
    try:
        await db.migrate()
        # The caches of every service subscribe to it; the listener feeds it.
        changes = ChangeHub()
        meta = MetadataStore(db, changes)
        store = await open_blob_store(settings)
        resolver = RegistryResolver(
            meta, settings.default_registry, settings.effective_login_server_suffix
        )
        await resolver.start()
        box = SecretBox.from_key_file(settings.effective_service_key_file)
        directory = Directory(meta, hasher=hasher, throttle=throttle)
        identity = await bootstrap(meta, directory, settings.owner_credential_file)
        await resolver.refresh()  # the default registry may just have joined the default group
        keys = SigningKeys(meta, box)
        await keys.load()
    except BaseException:
        await db.close()
        hasher.close()
        raise
    egress = EgressPolicies(
        policy_from_settings(
            settings.egress.rules, settings.egress.default, settings.egress.deny_private
        ),
        {
            name: policy_from_settings(
                policy.rules,
                policy.default,
                policy.deny_private,
                setting=f"egress_registries.{name}",
            )
            for name, policy in settings.egress_registries.items()
        },
        inner_resolver,
    )
    budgets = UpstreamBudgets(meta) if settings.upstream_rate_limit_budgets else None
    shelf = ManifestShelf()
    sources = Sources(
        meta,
        store,
        settings.upstreams,
        retry=RetryPolicy(attempts=settings.upstream_retry_attempts),
        max_manifest_bytes=settings.max_manifest_bytes,
        read_timeout=settings.upstream_read_timeout,
        egress=egress,
        max_header_bytes=settings.upstream_max_header_bytes,
        budgets=budgets,
        max_rate_limit_wait=settings.upstream_rate_limit_max_wait,
        rate_limit_recheck=settings.upstream_rate_limit_recheck,
        shelf=shelf,
    )
    limits = ImportLimits(
        max_manifests=settings.import_max_manifests,
        max_index_depth=settings.max_index_depth,
        max_index_children=settings.max_index_children,
        max_bytes=settings.import_max_bytes,
        max_referrers=settings.import_max_referrers,
        max_referrer_depth=settings.import_max_referrer_depth,
    )
    sink = RegistrySink(meta, store)
    engine = ImportEngine(
        sink,
        sources,
        blob_concurrency=settings.import_blob_concurrency,
        limits=limits,
    )
    imports = ImportService(
        meta,
        engine,
        box,
        RunnerSettings(
            workers=settings.import_workers,
            max_running=settings.import_max_running,
            max_running_per_registry=settings.import_max_running_per_registry,
            lease=timedelta(seconds=settings.import_lease_seconds),
        ),
        # One per process: the API's submits and follows, the worker's claims and progress.
        signals=JobSignals(),
    )
    tokens = TokenService(keys)
    access = AccessControl(meta)
    registry_access = RegistryAccess(meta, box, hasher=hasher, throttle=throttle)
    entra = EntraTokens(directory, tokens)
    blobs = BlobService(meta, store, settings.max_blob_bytes)
    dataplane = DataPlaneAuth(
        directory, access, registry_access, entra, tokens, changes=meta.changes
    )
    hooks = settings.webhooks
    webhook_egress = policy_from_settings(
        hooks.egress.rules, hooks.egress.default, hooks.egress.deny_private
    )
    webhooks = WebhookService(meta, box, hooks, webhook_egress)
    webhook_dispatcher = WebhookDispatcher(meta, webhooks, hooks, webhook_egress, inner_resolver)
    webhooks.wake = webhook_dispatcher.wake
    secrets = SecretStore(meta, box)
    manifests = ManifestService(
        meta, settings.max_manifest_bytes, settings.tags_page_max, settings.max_index_children
    )
    rule_lookup = (
        cache_rule_lookup
        if cache_rule_lookup is not None
        else DatabaseCacheRuleLookup(meta, secrets)
    )
    pull_through = PullThrough(
        rule_lookup,
        meta,
        store,
        manifests,
        sink,
        sources,
        engine,
        imports,
        shelf,
        limits,
        tag_ttl_seconds=settings.cache_tag_ttl_seconds,
    )
    registries = RegistryService(
        meta, settings.effective_login_server_suffix, reserved_hosts(settings)
    )
    batches = BatchService(meta, imports)
    return Services(
        settings=settings,
        db=db,
        meta=meta,
        store=store,
        identity=identity,
        directory=directory,
        access=access,
        registry_access=registry_access,
        tokens=tokens,
        entra=entra,
        dataplane=dataplane,
        import_policy=ImportPolicy(access, registry_access, dataplane),
        resolver=resolver,
        registries=registries,
        blobs=blobs,
        manifests=manifests,
        listings=ListingService(meta, store),
        imports=imports,
        budgets=budgets,
        batches=batches,
        dry_runs=DryRunPlanner(RegistryTargetView(meta, store), sources, limits),
        gc=GarbageCollector(
            meta,
            store,
            grace_seconds=settings.gc_grace_seconds,
            upload_expiry_seconds=settings.upload_expiry_seconds,
            on_upload_expired=blobs.forget_upload,
        ),
        checker=Checker(meta, store),
        hasher=hasher,
        webhooks=webhooks,
        webhook_dispatcher=webhook_dispatcher,
        secrets=secrets,
        cache_rules=CacheRuleService(meta, secrets),
        cache_rule_lookup=rule_lookup,
        change_listener=ChangeListener(db, meta.changes),
        sync=SyncService(
            meta,
            sources,
            batches,
            manifests,
            registries,
            box,
            SyncSettings(
                poll_seconds=settings.sync_poll_seconds,
                max_running=settings.sync_max_running,
                history=settings.sync_run_history,
                lease=timedelta(seconds=settings.sync_lease_seconds),
                head_concurrency=settings.sync_head_concurrency,
                tag_page_size=settings.sync_tag_page_size,
                min_interval_seconds=settings.sync_min_interval_seconds,
            ),
        ),
        pull_through=pull_through,
        portal_sessions=PortalSessions(meta, directory, settings.portal_session_ttl_seconds),
        browse=BrowseService(meta, store, manifests),
    )
