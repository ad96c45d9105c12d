"""The import engine: resolve the source, plan, copy blobs, commit. Independent of HTTP."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from typing import Protocol

from transship.imports.budgets import WaitReporter
from transship.imports.model import BlobOrder, ImportRequest, SourceSpec
from transship.imports.plan import ImportLimits, ImportPlan, build_plan
from transship.imports.ports import (
    BlobWriter,
    Credentials,
    ImageSink,
    ImageSource,
    LinkScope,
    PendingBlob,
)
from transship.imports.referrers import add_referrers
from transship.metadata.records import JobProgress
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor


class SourceFactory(Protocol):
    def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        on_wait: WaitReporter | None = None,
    ) -> AbstractAsyncContextManager[ImageSource]:
        """An image source for `spec` (an import into `target_registry_id`, whose egress
        policy applies), closed when the block exits; `on_wait` is told when the import
        waits for an upstream's rate-limit budget. Raises ImportFailure (step RESOLVE)
        when the source cannot be reached or named."""
        ...


@dataclass
class Progress:
    """Live counters of one running import; read by the job runner to persist them.

    What `snapshot` publishes never decreases, field by field, whatever happens to the live
    counters underneath: bytes of a transfer that is abandoned (a cancel, a stream
    restarted from zero after a failed resume) drop out of the in-flight sum, but what was
    reported stays reported. `floor` is what an earlier attempt of the job had published
    (a resumed job starts from it, not from zero), and `freeze` fixes the counters when
    the job is stopped, so the cleanup that follows cannot lower them either."""

    bytes_total: int = 0
    blobs_total: int = 0
    manifests_total: int = 0
    manifests_done: int = 0
    blobs_done: int = 0
    bytes_completed: int = 0
    bytes_fetched_completed: int = 0
    active: set[PendingBlob] = field(default_factory=set)
    floor: JobProgress = field(default_factory=JobProgress)
    # Told when the job starts or stops waiting for an upstream's rate-limit budget.
    on_wait: WaitReporter | None = field(default=None, repr=False)
    _frozen: bool = field(default=False, repr=False)

    def snapshot(self) -> JobProgress:
        """The counters to publish: the live ones, but never below an earlier snapshot (or
        the floor); once frozen, always the frozen counters."""
        if self._frozen:
            return self.floor
        in_flight = sum(blob.offset for blob in self.active)
        live = JobProgress(
            bytes_total=self.bytes_total,
            bytes_done=self.bytes_completed + in_flight,
            blobs_total=self.blobs_total,
            blobs_done=self.blobs_done,
            manifests_total=self.manifests_total,
            manifests_done=self.manifests_done,
            bytes_fetched=self.bytes_fetched_completed + in_flight,
        )
        self.floor = _at_least(live, self.floor)
        return self.floor

    def freeze(self) -> JobProgress:
        """Take a last snapshot and publish only it from now on (the job is being stopped:
        its transfers are about to be discarded)."""
        final = self.snapshot()
        self._frozen = True
        return final


def _at_least(live: JobProgress, floor: JobProgress) -> JobProgress:
    """`live`, each counter raised to `floor`'s where that is higher."""
    return JobProgress(
        **{f.name: max(getattr(live, f.name), getattr(floor, f.name)) for f in fields(JobProgress)}
    )


@dataclass
class RunningFetch:
    """One blob fetch in progress; imports into the same registry that need the blob wait
    for it, and link its result only if it `succeeded`. `writer` is where its bytes go, once
    it has one (a reader may follow it when it is a FollowableBlob)."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    succeeded: bool = False
    writer: BlobWriter | None = None


SMALL_BLOB_LANES = 2
"""Transfers of small blobs an import runs beside its `blob_concurrency` large ones."""
SMALL_BLOB_BYTES = 4 << 20
"""At most this size a blob may take a small-blob lane: at the hundreds of MB/s an import
moves, its bytes take less time than its round trips and durable commit."""


class ImportEngine:
    """Runs imports. One instance serves every job of the process, so two imports into the
    same registry that need the same blob fetch it once. Each import fetches up to
    `blob_concurrency` blobs at once in its request's `blob_order`, plus up to
    `small_blob_lanes` blobs of at most `small_blob_bytes` (smallest first, or for
    `image_by_image` the first in turn)."""

    def __init__(
        self,
        sink: ImageSink,
        sources: SourceFactory,
        *,
        blob_concurrency: int,
        limits: ImportLimits,
        small_blob_lanes: int = SMALL_BLOB_LANES,
        small_blob_bytes: int = SMALL_BLOB_BYTES,
    ) -> None:
        self._sink = sink
        self._sources = sources
        self._blob_concurrency = blob_concurrency
        self._small_blob_lanes = small_blob_lanes
        self._small_blob_bytes = small_blob_bytes
        self._limits = limits
        # By (target registry id, digest).
        self._fetching: dict[tuple[int, Digest], RunningFetch] = {}

    def running(self, registry_id: int, digest: Digest) -> RunningFetch | None:
        """The fetch of blob `digest` for `registry_id` in progress now, if any."""
        return self._fetching.get((registry_id, digest))

    async def fetch_once(
        self,
        registry_id: int,
        digest: Digest,
        fetch: Callable[[RunningFetch], Awaitable[None]],
    ) -> bool:
        """Run `fetch` (which fetches, verifies and commits blob `digest`, and may set the
        RunningFetch's `writer` it is given) as the one fetch of that blob for
        `registry_id`, as imports share theirs: while an import (or another caller) is
        fetching it already, wait for that fetch instead, and imports that need the blob
        meanwhile wait for this one. True when whichever fetch ran committed the blob, False
        when the other one failed. Raises what `fetch` raises."""
        key = (registry_id, digest)
        other = self._fetching.get(key)
        if other is not None:
            await other.done.wait()
            return other.succeeded
        fetch_ = RunningFetch()
        self._fetching[key] = fetch_
        try:
            await fetch(fetch_)
            fetch_.succeeded = True
            return True
        finally:
            del self._fetching[key]
            fetch_.done.set()

    async def run(
        self,
        job_id: str,
        registry_id: int,
        request: ImportRequest,
        credentials: Credentials | None,
        progress: Progress,
        *,
        resumed: bool = False,
    ) -> ImportPlan:
        """Copy the image and move the tags. Raises ImportFailure; nothing is visible in the
        target registry unless it returns.

        `resumed`: an earlier attempt of this job was interrupted, possibly after it had
        already moved the tags; tags that point at the very image are then not a conflict.
        """
        await self._sink.check_targets(registry_id, request, resumed=resumed)
        async with self._sources.open(
            request.source, credentials, registry_id, on_wait=progress.on_wait
        ) as source:
            plan = await build_plan(
                source,
                request.source.reference,
                self._limits,
                request.platform_subset,
                request.source.describe(),
            )
            if request.referrers is not None:
                plan = await add_referrers(source, plan, request.referrers, self._limits)
            progress.manifests_total = len(plan.manifests)
            progress.blobs_total = len(plan.blobs)
            progress.bytes_total = plan.total_bytes
            await self._copy_blobs(
                LinkScope.of(job_id, registry_id, request.source),
                source,
                plan,
                request.blob_order,
                progress,
            )
        await self._sink.commit(registry_id, plan, request, resumed=resumed)
        progress.manifests_done = len(plan.manifests)
        return plan

    async def _copy_blobs(
        self,
        scope: LinkScope,
        source: ImageSource,
        plan: ImportPlan,
        order: BlobOrder,
        progress: Progress,
    ) -> None:
        # Blobs this import may link are linked, not fetched: pin them all at once (a re-import
        # or a same-service import then costs one transaction, not one per blob). A blob the
        # store holds only for other registries is fetched and verified like any other.
        present = await self._sink.pin_present(scope, [blob.digest for blob in plan.blobs])
        for blob in plan.blobs:
            if blob.digest in present:
                progress.blobs_done += 1
                progress.bytes_completed += blob.size
        # In the request's order (largest first unless a client waits for the images in
        # turn). Small blobs (configs, tiny layers) cost more in their round trips and durable
        # commit than in bytes; extra lanes take them meanwhile, so those costs overlap the
        # big transfers instead of trailing them. All lanes draw from one queue: no blob is
        # taken twice, none waits idle.
        queue = collections.deque(
            blob for blob in plan.blobs_in_order(order) if blob.digest not in present
        )

        def next_small() -> Descriptor | None:
            if order is BlobOrder.LARGEST_FIRST:  # from the other end: smallest first
                return queue.pop() if queue[-1].size <= self._small_blob_bytes else None
            for position, blob in enumerate(queue):  # the first small one in turn
                if blob.size <= self._small_blob_bytes:
                    del queue[position]
                    return blob
            return None

        async def lane(small: bool) -> None:
            while queue:
                blob = next_small() if small else queue.popleft()
                if blob is None:
                    return
                await self._copy_blob(scope, source, blob, progress)

        lanes = [False] * self._blob_concurrency + [True] * self._small_blob_lanes
        tasks = [asyncio.create_task(lane(small)) for small in lanes]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # The first failure decides; stop the other transfers and wait for their cleanup.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _copy_blob(
        self, scope: LinkScope, source: ImageSource, blob: Descriptor, progress: Progress
    ) -> None:
        # Fetches are shared only between imports into the same registry: bytes one of them
        # fetched and verified are then as good as the other's. An import into another
        # registry must get the bytes from its own source.
        key = (scope.registry_id, blob.digest)
        while True:
            if await self._sink.pin_existing(scope, blob.digest):
                break
            other = self._fetching.get(key)
            if other is None:
                await self._fetch_blob(scope.job_id, key, source, blob, progress)
                return
            await other.done.wait()  # another import is fetching it: link theirs if it worked
            if other.succeeded and await self._sink.pin_fetched(scope.job_id, blob.digest):
                break
        progress.blobs_done += 1
        progress.bytes_completed += blob.size

    async def _fetch_blob(
        self,
        job_id: str,
        key: tuple[int, Digest],
        source: ImageSource,
        blob: Descriptor,
        progress: Progress,
    ) -> None:
        staged = self._sink.pending_blob(job_id, blob.digest, blob.size)
        fetch = RunningFetch(writer=staged)
        self._fetching[key] = fetch
        progress.active.add(staged)
        try:
            await source.fetch_blob(blob.digest, blob.size, staged)
            await staged.commit()
            fetch.succeeded = True
            progress.blobs_done += 1
            progress.bytes_completed += blob.size
            progress.bytes_fetched_completed += staged.offset
        finally:
            progress.active.discard(staged)
            del self._fetching[key]
            fetch.done.set()
            await staged.discard()
