"""The background loops of a server or worker process, built from its services and run under
one Supervisor (`transship.worker.supervisor`)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from transship.cache.sync import SyncService
from transship.identity.tokens import SigningKeys
from transship.imports.service import ImportService
from transship.registry.gc import GarbageCollector
from transship.webhooks.delivery import WebhookDispatcher
from transship.worker.gc_loop import run_periodically
from transship.worker.import_loop import ImportWorker
from transship.worker.key_loop import refresh_keys_periodically
from transship.worker.supervisor import Backoff, Loop, Supervisor
from transship.worker.sync_loop import SyncWorker

# How crashed loops are restarted: 0.5 s, doubling to 30 s; a minute of health resets it.
RESTART_BACKOFF = Backoff()

# Loop names, as /readyz reports them.
IMPORTS = "imports"
IMPORT_HEARTBEATS = "import-heartbeats"
SIGNING_KEYS = "signing-keys"
GC = "gc"
WEBHOOKS = "webhooks"
SYNC = "sync"
# Not background work: every process with caches runs it (see transship.metadata.changes).
CHANGE_FEED = "change-feed"


def background_loops(
    imports: ImportService,
    keys: SigningKeys,
    gc: GarbageCollector,
    *,
    gc_interval_seconds: float,
    backoff: Backoff | None = None,
    webhooks: WebhookDispatcher | None = None,
    background_work: bool = True,
    change_feed: Loop | None = None,
    extra: Mapping[str, Loop] | None = None,
    sync: SyncService | None = None,
) -> Supervisor:
    """A Supervisor (not started) with the signing-key refresh, the `extra` loops (e.g. the
    child processes of `serve --workers N`) and, when `background_work`, the service's
    background work: the import claim and heartbeat loops, the webhook deliveries (given
    `webhooks`), the sync rules (given `sync`) and, when `gc_interval_seconds` > 0,
    periodic GC (which also expires idle uploads). Its `stop()` hands this process's
    running import jobs back to the queue.

    The key refresh and the `change_feed` (given) run in every process, doing background
    work or not: they keep this process's copy of the keys current, so it verifies tokens
    signed by the others, and its caches following what the others change."""
    supervisor = Supervisor(backoff or RESTART_BACKOFF)
    if background_work:
        worker = ImportWorker(imports)
        supervisor.add(IMPORTS, worker.claim_forever)
        supervisor.add(IMPORT_HEARTBEATS, worker.heartbeat_forever)
        supervisor.on_stop(worker.close)
    supervisor.add(SIGNING_KEYS, partial(refresh_keys_periodically, keys))
    if change_feed is not None:
        supervisor.add(CHANGE_FEED, change_feed)
    if background_work and webhooks is not None:
        supervisor.add(WEBHOOKS, webhooks.run_forever)
    if background_work and sync is not None:
        sync_worker = SyncWorker(sync)
        supervisor.add(SYNC, sync_worker.run_forever)
        supervisor.on_stop(sync_worker.close)
    if background_work and gc_interval_seconds > 0:
        supervisor.add(GC, partial(run_periodically, gc, gc_interval_seconds))
    for name, loop in (extra or {}).items():
        supervisor.add(name, loop)
    return supervisor
