"""`transship check`: verify that metadata and blob bytes agree (an fsck for the registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow
from transship.oci.digest import new_hasher
from transship.storage.base import BlobStore


@dataclass
class CheckReport:
    checked_blobs: int = 0
    checked_manifests: int = 0
    checked_tags: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Checker:
    def __init__(self, meta: MetadataStore, store: BlobStore) -> None:
        self._meta = meta
        self._store = store

    async def run(
        self, *, verify_digests: bool = False, stuck_after: timedelta = timedelta(minutes=5)
    ) -> CheckReport:
        """Report every inconsistency; change nothing.

        Checks: each blob row has a file of that size (and, with `verify_digests`, of that
        digest); each tag names a manifest; each manifest's blobs are linked in its
        repository and its children exist there; each upload session has its staging bytes.
        """
        report = CheckReport()
        async with self._meta.reading() as q:
            blob_rows = await q.all_blobs()
            dangling_tags = await q.dangling_tags()
            missing_refs = await q.missing_references()
            report.checked_manifests = await q.count_manifests()
            report.checked_tags = await q.count_tags()
            sessions = await q.all_uploads()
            stuck = await q.jobs.stuck_jobs(utcnow() - stuck_after)
        for repository, tag, target in dangling_tags:
            report.problems.append(f"tag {repository}:{tag} points at missing manifest {target}")
        for repository, manifest, child, is_manifest in missing_refs:
            what = "child manifest" if is_manifest else "blob"
            report.problems.append(
                f"manifest {repository}@{manifest} needs {what} {child}, which the repository lacks"
            )
        for digest, size in blob_rows:
            report.checked_blobs += 1
            actual = await self._store.size(digest)
            if actual is None:
                report.problems.append(f"blob {digest} is recorded but its file is missing")
            elif actual != size:
                report.problems.append(
                    f"blob {digest} is recorded with {size} bytes but its file has {actual}"
                )
            elif verify_digests:
                hasher = new_hasher(digest.algorithm)
                async for chunk in self._store.read(digest):
                    hasher.update(chunk)
                if hasher.hexdigest() != digest.encoded:
                    report.problems.append(
                        f"blob {digest} has content with digest "
                        f"{digest.algorithm}:{hasher.hexdigest()}"
                    )
        for job in stuck:
            report.problems.append(
                f"import job {job.id} has been running without a live process "
                "since its lease expired"
            )
        for upload in sessions:
            try:
                staged = await self._store.staging_size(upload.id)
            except Exception:
                report.problems.append(
                    f"upload {upload.id} in {upload.repository} has lost its staged bytes"
                )
                continue
            if staged < upload.offset:
                report.problems.append(
                    f"upload {upload.id} is at offset {upload.offset} but holds {staged} bytes"
                )
        return report
