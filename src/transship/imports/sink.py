"""Where imported content lands: staged, verified blobs pinned for the job, then one
transaction that links blobs, stores manifests bottom-up and moves tags."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from transship.errors import Denied
from transship.imports.errors import ImportFailure, Step, tag_exists_failure
from transship.imports.model import ImportRequest, TargetTag
from transship.imports.plan import ImportPlan
from transship.imports.ports import LinkScope
from transship.imports.subsets import absent_children
from transship.metadata.db import finish_then_cancel
from transship.metadata.queries import BlobMissing, MetadataStore, Transaction
from transship.metadata.webhooks import EventDraft, webhook_queries
from transship.oci.digest import CountingHasher, Digest
from transship.registry import locks
from transship.registry.blob_commit import Hold, commit_blob, commit_staged_blob
from transship.registry.manifests import store_manifest
from transship.storage.base import (
    BlobStore,
    BlockingSource,
    DirectBlobWrites,
    LocalStagingFiles,
    StagingFromSource,
)
from transship.storage.presence import held_digests


class _ReceivedBlob:
    """What both kinds of PendingBlob share: the running hash and byte count of what was
    received, checked against the expected digest and size."""

    def __init__(
        self, meta: MetadataStore, job_id: str, digest: Digest, size: int, hold: Hold | None
    ) -> None:
        self._meta = meta
        self._job_id = job_id
        self._hold = hold
        self.digest = digest
        self.size = size
        self._counter = CountingHasher(digest.algorithm)

    @property
    def offset(self) -> int:
        return self._counter.count

    def _restart_count(self) -> None:
        self._counter = CountingHasher(self.digest.algorithm)

    def _verify(self) -> None:
        """Raises ImportFailure SIZE_INVALID or DIGEST_INVALID naming the blob."""
        if self.offset != self.size:
            raise ImportFailure(
                "SIZE_INVALID",
                f"upstream sent {self.offset} bytes for blob {self.digest}, expected {self.size}",
                step=Step.COPY,
                obj=str(self.digest),
            )
        actual = self._counter.hasher.hexdigest()
        if actual != self.digest.encoded:
            raise ImportFailure(
                "DIGEST_INVALID",
                f"upstream sent content with digest {self.digest.algorithm}:{actual} "
                f"for blob {self.digest}",
                step=Step.COPY,
                obj=str(self.digest),
            )

    async def _pin(self, q: Transaction) -> None:
        """The commit's hold: run after the blob's row is recorded in `q`."""
        if self._hold is not None:
            await self._hold(q)
            return
        await q.jobs.pin_recorded_blob(self._job_id, self.digest)


class StagedBlob(_ReceivedBlob):
    """A PendingBlob in a staging area of the blob store; `commit` verifies size and
    digest, then records the blob pinned to the job (visible to no repository until the
    import commits). A FollowableBlob when the store's staging areas are local files."""

    def __init__(
        self,
        meta: MetadataStore,
        store: BlobStore,
        job_id: str,
        digest: Digest,
        size: int,
        hold: Hold | None = None,
    ) -> None:
        super().__init__(meta, job_id, digest, size, hold)
        self._store = store
        self._staging = uuid.uuid4().hex
        self._created = False
        # Whether the last write ended with the staged bytes durable: each append asks the
        # store to sync at its end (in the same hop), so the commit need not again.
        self._synced = False
        self._restarts = 0

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        self._synced = False
        self._created = True  # before the hop: see `_create`
        await self._store.append_staging(
            self._staging, chunks, self._counter, create=True, sync=True
        )
        self._synced = True

    def receives_from_source(self) -> bool:
        return isinstance(self._store, StagingFromSource)

    async def receive(self, source: BlockingSource, count: int) -> None:
        """Raises TypeError when the store cannot (see `receives_from_source`)."""
        if not isinstance(self._store, StagingFromSource):
            raise TypeError("this blob store cannot write from a blocking source")
        self._synced = False
        self._created = True  # before the hop: see `_create`
        await self._store.append_staging_from(
            self._staging, source, count, self._counter, create=True, sync=True
        )
        self._synced = True

    async def reset(self) -> None:
        self._restarts += 1
        self._synced = False
        if self._created:
            await self._store.truncate_staging(self._staging, 0)
        self._restart_count()

    def growing_file(self) -> Path | None:
        """See `FollowableBlob`: the staging file, when the store keeps it on this machine."""
        if self._created and isinstance(self._store, LocalStagingFiles):
            return self._store.staging_path(self._staging)
        return None

    @property
    def restarts(self) -> int:
        return self._restarts

    async def commit(self) -> None:
        """Raises ImportFailure SIZE_INVALID or DIGEST_INVALID naming the blob."""
        self._verify()
        if not self._created:  # an empty blob
            await self._create()
        # The staging area goes in the commit's own step where the store can: `discard`
        # would delete it right after, whatever the outcome.
        dropped = await commit_staged_blob(
            self._meta,
            self._store,
            self._staging,
            self.digest,
            self.size,
            self._pin,
            synced=self._synced,
            keep_staging=False,
        )
        if dropped:
            self._created = False

    async def _create(self) -> None:
        # Marked first: a cancel that lands while the thread creates the file must still
        # leave `discard` something to delete (deleting a file never made is a no-op).
        self._created = True
        await self._store.create_staging(self._staging)

    async def discard(self) -> None:
        """Delete the staged bytes; runs to its end even when the caller is cancelled
        meanwhile (an import stopping its other transfers after a failure waits for this,
        then reports the failure: nothing may be left behind by then)."""
        if self._created:
            self._created = False
            await finish_then_cancel(self._store.delete_staging(self._staging))


class DirectBlob(_ReceivedBlob):
    """A PendingBlob written straight to its place in a store that can
    (`DirectBlobWrites`: one multipart upload on an object store), completed only once
    `commit` has verified size and digest, in the transaction that pins it to the job."""

    def __init__(
        self,
        meta: MetadataStore,
        store: DirectBlobWrites,
        job_id: str,
        digest: Digest,
        size: int,
        hold: Hold | None = None,
    ) -> None:
        super().__init__(meta, job_id, digest, size, hold)
        self._write = store.open_blob_write(digest)

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        await self._write.append(chunks, self._counter)

    async def reset(self) -> None:
        await self._write.abort()
        self._restart_count()

    async def commit(self) -> None:
        """Raises ImportFailure SIZE_INVALID or DIGEST_INVALID naming the blob (the write
        is then aborted by `discard`), or StorageError."""
        self._verify()
        await commit_blob(self._meta, self.digest, self.size, self._pin, self._write.complete)

    async def discard(self) -> None:
        # After `complete` there is nothing left to abort: a no-op.
        await self._write.abort()


class RegistrySink:
    """The ImageSink of this service: the metadata store and the blob store."""

    def __init__(self, meta: MetadataStore, store: BlobStore) -> None:
        self._meta = meta
        self._store = store

    async def check_targets(
        self, registry_id: int, request: ImportRequest, *, resumed: bool = False
    ) -> None:
        await self._meta.read_at_once(
            functools.partial(self._check_targets_in, registry_id, request, resumed)
        )

    @staticmethod
    async def _check_targets_in(
        registry_id: int, request: ImportRequest, resumed: bool, q: Transaction
    ) -> None:
        """`check_targets`' reads, in `q` (one step on SQLite's read thread)."""
        for repository in request.target_repositories:
            repo_id = await q.repository_id(registry_id, repository)
            if repo_id is None:
                continue
            targets = [t for t in request.target_tags if t.repository == repository]
            await _check_writable(q, repo_id, repository, targets, Step.RESOLVE)
            if request.force or resumed:
                continue
            for target in targets:
                if await q.tag_digest(repo_id, target.tag) is not None:
                    raise tag_exists_failure(target)

    async def pin_existing(self, scope: LinkScope, digest: Digest) -> bool:
        """Pin a blob the import may link without fetching it (see `pin_present`). False
        when it may not, or the service does not have it (or its file is gone)."""
        return bool(await self.pin_present(scope, [digest]))

    async def pin_present(self, scope: LinkScope, digests: list[Digest]) -> set[Digest]:
        """Pin, in one transaction, every listed blob the service holds (row and file) that
        `scope` allows linking without fetching; returns their digests. The rest must be
        fetched and verified: a digest the store holds for another registry is not access."""
        on_disk = await held_digests(self._store, digests)
        if not on_disk:
            return set()
        return await self._meta.write_at_once(
            lambda q: q.jobs.pin_present(scope.job_id, on_disk, scope.registry_id, scope.source)
        )

    async def pin_fetched(self, job_id: str, digest: Digest) -> bool:
        """Pin a blob another import into the same registry has just fetched and verified
        (the engine's de-duplicated fetch). False when it is gone again."""
        if await self._store.size(digest) is None:
            return False

        async def pin(q: Transaction) -> bool:
            if await q.blob_size(digest) is None:
                return False
            return await q.jobs.pin_blob(job_id, digest)

        return await self._meta.write_at_once(pin)

    def pending_blob(self, job_id: str, digest: Digest, size: int) -> StagedBlob | DirectBlob:
        """Where a fetched blob goes: straight to its place when the store can write it
        there before it is verified (an object store), else a staging area."""
        if isinstance(self._store, DirectBlobWrites):
            return DirectBlob(self._meta, self._store, job_id, digest, size)
        return StagedBlob(self._meta, self._store, job_id, digest, size)

    def linked_blob(
        self, registry_id: int, repository: str, digest: Digest, size: int
    ) -> StagedBlob | DirectBlob:
        """A writer for one blob fetched for no job (a pull through a cache rule): on
        `commit` it is linked into `repository` of `registry_id`, as a pushed blob is."""

        async def link(q: Transaction) -> None:
            repo_id = await q.ensure_repository(registry_id, repository)
            await q.link_blob(repo_id, digest)

        if isinstance(self._store, DirectBlobWrites):
            return DirectBlob(self._meta, self._store, "", digest, size, link)
        return StagedBlob(self._meta, self._store, "", digest, size, link)

    async def commit(
        self, registry_id: int, plan: ImportPlan, request: ImportRequest, *, resumed: bool = False
    ) -> None:
        """Make the image visible in every target repository and move the tags, in one
        transaction. Raises ImportFailure TagAlreadyExists (NoForce), OperationDisallowed
        (a target repository or tag is locked against writes: `--force` does not override
        a lock) or BlobMissing."""
        await self._meta.write_at_once(
            functools.partial(self._commit_in, registry_id, plan, request, resumed)
        )

    @staticmethod
    async def _commit_in(
        registry_id: int, plan: ImportPlan, request: ImportRequest, resumed: bool, q: Transaction
    ) -> None:
        """`commit`'s statements, in transaction `q` (one step on SQLite's write thread)."""
        repository_ids: dict[str, int] = {}
        for repository in request.target_repositories:
            repo_id = await q.ensure_repository(registry_id, repository)
            await q.lock_repository(repo_id, exclusive=False)
            repository_ids[repository] = repo_id
            targets = [t for t in request.target_tags if t.repository == repository]
            await _check_writable(q, repo_id, repository, targets, Step.COMMIT)
            try:
                await q.link_blobs(repo_id, [blob.digest for blob in plan.blobs])
            except BlobMissing as exc:
                raise ImportFailure(
                    "BlobMissing",
                    f"blob {exc} vanished before the import committed",
                    step=Step.COMMIT,
                    obj=str(exc),
                    retryable=True,
                ) from None
            for manifest in plan.manifests:
                await store_manifest(
                    q, repo_id, manifest.digest, manifest.fetched.content, manifest.parsed
                )
            if plan.absent:
                await q.record_absent_children(
                    repo_id, plan.root.digest, absent_children(plan.absent)
                )
        for target in request.target_tags:
            repo_id = repository_ids[target.repository]
            if not request.force:
                current = await q.tag_digest(repo_id, target.tag)
                if current is not None and not (resumed and current == plan.root.digest):
                    raise tag_exists_failure(target, Step.COMMIT)
            await q.set_tag(repo_id, target.tag, plan.root.digest)
        for repository, repo_id in repository_ids.items():
            await _set_referrer_tags(q, repo_id, repository, plan, request.force)
        await webhook_queries(q).record_events(registry_id, _pushed(plan, request), None)


async def _check_writable(
    q: Transaction, repo_id: int, repository: str, targets: list[TargetTag], step: Step
) -> None:
    """Raises ImportFailure OperationDisallowed when the repository or one of the target
    tags is locked against writes."""
    try:
        await locks.check_writable(q, repo_id, repository, [t.tag for t in targets])
    except Denied as exc:
        raise ImportFailure("OperationDisallowed", exc.message, step=step, obj=repository) from None


async def _set_referrer_tags(
    q: Transaction, repo_id: int, repository: str, plan: ImportPlan, force: bool
) -> None:
    """cosign's tags (`sha256-<hex>.sig`…) in a repository the image lands in. Locks and
    NoForce apply as to target tags, except that a tag already naming the very manifest is
    no conflict (the tag is derived from the image digest: a re-import sets it again).
    Raises ImportFailure OperationDisallowed or TagAlreadyExists."""
    if not plan.referrer_tags:
        return
    try:
        await locks.check_writable(q, repo_id, repository, [t for t, _ in plan.referrer_tags])
    except Denied as exc:
        raise ImportFailure(
            "OperationDisallowed", exc.message, step=Step.COMMIT, obj=repository
        ) from None
    for tag, digest in plan.referrer_tags:
        current = await q.tag_digest(repo_id, tag)
        if current == digest:
            continue
        if current is not None and not force:
            raise ImportFailure(
                "TagAlreadyExists",
                f"Tag {tag} (a signature, attestation or SBOM of the image) already exists "
                "in target registry and names another manifest. Import with --force (mode "
                "Force) to overwrite it.",
                step=Step.COMMIT,
                obj=tag,
            )
        await q.set_tag(repo_id, tag, digest)


def _pushed(plan: ImportPlan, request: ImportRequest) -> list[EventDraft]:
    """An import is a push for webhooks (as on ACR): one `push` event per target tag, and
    one untagged per repository the image lands in without a tag. No `request` object:
    no client request made the change (the import job did)."""
    root = plan.root
    size = len(root.fetched.content)
    drafts = [
        EventDraft("push", t.repository, root.digest, t.tag, root.parsed.media_type, size)
        for t in request.target_tags
    ]
    drafts += [
        EventDraft("push", repository, root.digest, None, root.parsed.media_type, size)
        for repository in request.untagged_repositories
    ]
    return drafts
