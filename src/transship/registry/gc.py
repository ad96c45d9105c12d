"""Online garbage collection: expired uploads, untagged manifests past their registry's
retention, unreferenced links, orphan blobs and files.

Safe while the server keeps serving: every removal re-checks its condition in the same
transaction that removes it, content younger than the grace period is never touched, and a
blob row is deleted before its file (a concurrent link fails on the foreign key instead of
pointing at nothing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from transship.metadata.queries import MetadataStore
from transship.metadata.records import ManifestGraph
from transship.metadata.scope import utcnow
from transship.oci.digest import Digest
from transship.storage.base import BlobStore

log = logging.getLogger(__name__)

# Blob files checked between two yields to the event loop in the orphan-file sweep.
_SCAN_SLICE = 500


@dataclass
class GcReport:
    dry_run: bool
    expired_uploads: list[str] = field(default_factory=list)
    stray_staging: list[str] = field(default_factory=list)
    # (repository id, digest) of untagged manifests removed by a retention policy.
    expired_manifests: list[tuple[int, Digest]] = field(default_factory=list)
    dropped_links: list[tuple[int, Digest]] = field(default_factory=list)
    deleted_blobs: list[Digest] = field(default_factory=list)
    freed_bytes: int = 0
    orphan_files: list[Digest] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {len(self.expired_manifests)} untagged manifests past retention, "
            f"{len(self.deleted_blobs)} blobs ({self.freed_bytes} bytes), "
            f"{len(self.orphan_files)} orphan files, {len(self.dropped_links)} unreferenced links, "
            f"{len(self.expired_uploads)} expired uploads, "
            f"{len(self.stray_staging)} stray staging files"
        )


def expired_untagged(graph: ManifestGraph, cutoff: datetime) -> set[Digest]:
    """The manifests a retention policy removes: untagged ones created before `cutoff`,
    except any a kept manifest needs. Kept are the tagged, the locked and the younger
    manifests, and, until nothing changes, the children of a kept index (deleting them would
    break it) and the referrers of a kept subject (its signatures, SBOMs… stay with it). A referrer
    whose subject goes, goes with it unless kept on its own."""
    children: dict[Digest, list[Digest]] = {}
    for parent, child in graph.edges:
        children.setdefault(parent, []).append(child)
    referrers: dict[Digest, list[Digest]] = {}
    for node in graph.manifests:
        if node.subject is not None:
            referrers.setdefault(node.subject, []).append(node.digest)
    kept = {
        n.digest
        for n in graph.manifests
        if n.digest in graph.tagged or n.digest in graph.locked or n.created_at >= cutoff
    }
    pending = list(kept)
    while pending:
        digest = pending.pop()
        for needed in (*children.get(digest, ()), *referrers.get(digest, ())):
            if needed not in kept:
                kept.add(needed)
                pending.append(needed)
    return {n.digest for n in graph.manifests} - kept


class GarbageCollector:
    def __init__(
        self,
        meta: MetadataStore,
        store: BlobStore,
        *,
        grace_seconds: int,
        upload_expiry_seconds: int,
        on_upload_expired: Callable[[str], None] | None = None,
    ) -> None:
        """`on_upload_expired` is called with the id of every upload session this collector
        removes (after its row and staged bytes are gone), so in-process state kept for the
        session (`BlobService.forget_upload`) goes with it."""
        self._meta = meta
        self._store = store
        self._on_upload_expired = on_upload_expired
        self._grace = timedelta(seconds=grace_seconds)
        self._upload_expiry = timedelta(seconds=upload_expiry_seconds)

    async def run(self, *, dry_run: bool = False, now: datetime | None = None) -> GcReport:
        now = now or utcnow()
        report = GcReport(dry_run)
        await self._expire_uploads(report, now - self._upload_expiry)
        # Monolithic uploads stage without a session row; they count as idle sessions do.
        await self._stray_staging(report, now - self._upload_expiry)
        # Before the link sweep: the blobs of expired manifests go in this same run.
        await self._retention(report, now)
        await self._unreferenced_links(report, now - self._grace)
        await self._orphan_blobs(report, now - self._grace)
        await self._orphan_files(report, now - self._grace)
        log.info("garbage collection: %s", report.summary())
        return report

    async def _expire_uploads(self, report: GcReport, cutoff: datetime) -> None:
        async with self._meta.reading() as q:
            expired = await q.uploads_idle_since(cutoff)
        for upload in expired:
            report.expired_uploads.append(upload.id)
            if not report.dry_run:
                async with self._meta.writing() as q:
                    await q.delete_upload(upload.id)
                await self._store.delete_staging(upload.id)
                if self._on_upload_expired is not None:
                    self._on_upload_expired(upload.id)

    async def _stray_staging(self, report: GcReport, cutoff: datetime) -> None:
        """Staging files with no session row: monolithic uploads cut off by a crash."""
        async with self._meta.reading() as q:
            sessions = await q.upload_ids()
        for upload_id in await self._store.list_staging():
            if upload_id in sessions:
                continue
            mtime = await self._store.staging_mtime(upload_id)
            if mtime is not None and mtime < cutoff.timestamp():
                report.stray_staging.append(upload_id)
                if not report.dry_run:
                    await self._store.delete_staging(upload_id)

    async def _retention(self, report: GcReport, now: datetime) -> None:
        """Apply each registry's retention policy of untagged manifests. The grace period
        still holds (days=0 never removes a manifest a push in progress is about to tag or
        list in an index), and each repository is decided again under its lock, in the
        transaction that deletes."""
        async with self._meta.reading() as q:
            registries = await q.registries_with_retention()
        for registry in registries:
            cutoff = min(now - timedelta(days=registry.retention.days), now - self._grace)
            async with self._meta.reading() as q:
                repository_ids = await q.repository_ids(registry.id)
            for repository_id in repository_ids:
                if report.dry_run:
                    async with self._meta.reading() as q:
                        graph = await q.manifest_graph(repository_id)
                    expired = expired_untagged(graph, cutoff)
                else:
                    async with self._meta.writing() as q:
                        await q.lock_repository(repository_id, exclusive=True)
                        expired = expired_untagged(await q.manifest_graph(repository_id), cutoff)
                        for digest in sorted(expired, key=str):
                            await q.delete_manifest(repository_id, digest)
                report.expired_manifests.extend(
                    (repository_id, d) for d in sorted(expired, key=str)
                )

    async def _unreferenced_links(self, report: GcReport, cutoff: datetime) -> None:
        async with self._meta.reading() as q:
            candidates = await q.unreferenced_links(cutoff)
        for repository_id, digest in candidates:
            if report.dry_run:
                report.dropped_links.append((repository_id, digest))
                continue
            async with self._meta.writing() as q:
                await q.lock_repository(repository_id, exclusive=True)
                if await q.drop_link_if_unreferenced(repository_id, digest, cutoff):
                    report.dropped_links.append((repository_id, digest))

    async def _orphan_blobs(self, report: GcReport, cutoff: datetime) -> None:
        async with self._meta.reading() as q:
            candidates = await q.orphan_blobs(cutoff)
            if report.dry_run:
                # Nothing was dropped, so count blobs whose every link this run would drop.
                dropping: dict[Digest, set[int]] = {}
                for repository_id, digest in report.dropped_links:
                    dropping.setdefault(digest, set()).add(repository_id)
                for digest, repository_ids in dropping.items():
                    if await q.link_holders(digest) <= repository_ids:
                        candidates.append((digest, await q.blob_size(digest) or 0))
        for digest, size in candidates:
            if not report.dry_run:
                async with self._meta.writing() as q:
                    if not await q.delete_blob_row_if_orphan(digest, cutoff):
                        continue
                    # Still inside the transaction: the row goes first (locked on PostgreSQL).
                    await self._store.delete(digest)
            report.deleted_blobs.append(digest)
            report.freed_bytes += size

    async def _orphan_files(self, report: GcReport, cutoff: datetime) -> None:
        """Files with no blob row: a crash between moving a blob into place and committing."""
        async with self._meta.reading() as q:
            known = await q.blob_digests()
        scanned = 0
        async for digest, mtime in self._store.iter_blobs():
            scanned += 1
            if scanned % _SCAN_SLICE == 0:
                # Known files are skipped without an await: let other callbacks run between
                # slices, or a store of 20,000 blobs holds the loop for ~40 ms.
                await asyncio.sleep(0)
            if digest in known or mtime >= cutoff.timestamp():
                continue
            async with self._meta.writing() as q:
                # Re-check under the write lock: a commit may have recorded it since.
                if await q.blob_size(digest) is not None:
                    continue
                report.orphan_files.append(digest)
                if not report.dry_run:
                    await self._store.delete(digest)
