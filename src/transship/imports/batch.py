"""Batch imports (a Transship extension): many sources in one operation.

A batch is one row plus one ordinary import job per item, written in one transaction (all
items or none). The worker(s) of any process claim the items as any import, within the
same limits (service-wide and per registry), so items run concurrently, are retried,
canceled and resumed like single imports, and one item's failure never stops the others.

A batch's state follows from its items' (`batch_state`): `running` until every item has
ended; then `succeeded` when all succeeded, `canceled` when a cancel was requested and no
item failed, else `completedWithFailures`.

An item is reported `unchanged` when it succeeded without fetching a byte of blob and its
first target already named, when the batch was queued, the digest it names now: the
re-run of a batch whose images did not change (upstream traffic then is a HEAD per
manifest: the import reads a manifest it holds from its own store).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from transship.imports.model import ImportRequest
from transship.imports.ports import Credentials
from transship.imports.service import ImportService, job_version
from transship.imports.signals import ChangeWatch
from transship.metadata.batches import BatchItemRecord, BatchRecord, NewBatchItem
from transship.metadata.jobs import FINAL_STATES
from transship.metadata.queries import MetadataStore, Transaction
from transship.oci.digest import Digest

RUNNING = "running"
SUCCEEDED = "succeeded"
CANCELED = "canceled"
COMPLETED_WITH_FAILURES = "completedWithFailures"
BATCH_STATES = (RUNNING, SUCCEEDED, COMPLETED_WITH_FAILURES, CANCELED)
# How long a follower waits after a change for the rest of its burst (see BatchService.follow).
BATCH_FOLLOW_SETTLE_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One queued item: what to import and the source's credentials (sealed when stored)."""

    request: ImportRequest
    credentials: Credentials | None


@dataclass(frozen=True, slots=True)
class ItemView:
    """An item as reported: its record, the digest its first target names now (or its
    source digest when it has no tag), and whether it was unchanged."""

    record: BatchItemRecord
    digest: Digest | None
    unchanged: bool


@dataclass(frozen=True, slots=True)
class BatchView:
    record: BatchRecord
    state: str
    items: tuple[ItemView, ...]

    @property
    def ended(self) -> bool:
        return self.state != RUNNING


def batch_state(states: Sequence[str], cancel_requested: bool) -> str:
    """The batch's state from its items' job states (see the module docstring)."""
    if any(state not in FINAL_STATES for state in states):
        return RUNNING
    if all(state == "succeeded" for state in states):
        return SUCCEEDED
    if cancel_requested and not any(state == "failed" for state in states):
        return CANCELED
    return COMPLETED_WITH_FAILURES


def first_target(request: ImportRequest) -> tuple[str, str] | None:
    """(repository, tag) of the item's first target tag, or None when it is untagged."""
    if not request.target_tags:
        return None
    target = request.target_tags[0]
    return (target.repository, target.tag)


def batch_version(view: BatchView) -> str:
    """A short fingerprint of everything a follower sees change in a batch."""
    parts = [view.state, *(job_version(item.record.job) for item in view.items)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


class BatchService:
    """Submit, inspect, follow and cancel batches; the items run as ordinary jobs of
    `imports` (the process's ImportService)."""

    def __init__(self, meta: MetadataStore, imports: ImportService) -> None:
        self._meta = meta
        self._imports = imports

    async def submit(self, registry_id: int, items: Sequence[BatchItem]) -> BatchView:
        """Queue the batch: one job per item, all in one transaction (nothing is queued when
        it fails). Raises what the database raises."""
        batch_id = uuid.uuid4().hex
        requests = [item.request for item in items]

        async def create(q: Transaction) -> BatchView | None:
            prior = await _current_digests(q, registry_id, requests)
            rows = [
                NewBatchItem(
                    uuid.uuid4().hex,
                    item.request.to_json(),
                    self._imports.seal(item.credentials),
                    prior[position],
                )
                for position, item in enumerate(items)
            ]
            await q.batches.create_batch(batch_id, registry_id, rows)
            return await _view(q, batch_id)

        # In one step, as ImportService.submit: a POST must not hold the write lock across
        # turns of the loop.
        view = await self._meta.write_at_once(create)
        assert view is not None
        self._imports.wake()
        return view

    async def get(self, batch_id: str) -> BatchView | None:
        async with self._meta.reading() as q:
            return await _view(q, batch_id)

    async def cancel(self, batch_id: str) -> BatchView | None:
        """Cancel every queued item at once and ask running ones to stop (at their runner's
        next heartbeat). Returns the batch after the change (None if unknown)."""

        async def cancel(q: Transaction) -> BatchView | None:
            await q.batches.request_cancel(batch_id)
            return await _view(q, batch_id)

        view = await self._meta.write_at_once(cancel)
        if view is not None:
            self._imports.signals.jobs_changed(i.record.job.id for i in view.items)
        return view

    async def follow(
        self, batch_id: str, seen_version: str | None, wait_seconds: float
    ) -> BatchView | None:
        """The batch as soon as its version (`batch_version`) differs from `seen_version`;
        at once when `seen_version` is None, the batch has ended or the process is shutting
        down; after `wait_seconds` (at most the runner's `max_follow_seconds`) without a
        change, the batch as it is. None when there is no such batch. The batch is read
        again when this process changes one of its unfinished items, and at least every
        `follow_poll_seconds` (its items may run in any process)."""
        settings = self._imports.settings
        signals = self._imports.signals
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait_seconds, 0.0), settings.max_follow_seconds)
        while True:
            view = await self.get(batch_id)
            if (
                view is None
                or seen_version is None
                or view.ended
                or batch_version(view) != seen_version
                or signals.closed
            ):
                return view
            remaining = deadline - loop.time()
            if remaining <= 0:
                return view
            unfinished = [
                item.record.job.id
                for item in view.items
                if item.record.job.state not in FINAL_STATES
            ]
            with contextlib.ExitStack() as stack:
                watches = [stack.enter_context(signals.watch(job_id)) for job_id in unfinished]
                changed = await _any_change(watches, min(remaining, settings.follow_poll_seconds))
            if changed:
                # Items change in bursts (a batch's jobs start and end together): gather a
                # burst into one answer. Each answer reads and describes the whole batch,
                # so answering every item's change would cost the server O(items²).
                await asyncio.sleep(min(BATCH_FOLLOW_SETTLE_SECONDS, max(remaining, 0.0)))


async def _any_change(watches: Sequence[ChangeWatch], timeout: float) -> bool:
    """Return True when one of `watches` fires, False after `timeout` seconds without."""
    waits = [asyncio.create_task(watch.wait(timeout)) for watch in watches]
    if not waits:
        await asyncio.sleep(timeout)
        return False
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return any(not w.cancelled() and w.exception() is None and w.result() for w in done)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def _current_digests(
    q: Transaction, registry_id: int, requests: Sequence[ImportRequest]
) -> list[Digest | None]:
    """For each request, the digest its first target names in the registry now: its first
    target tag's, or, untagged, its source digest when its first repository holds it."""
    tagged = [t for t in map(first_target, requests) if t is not None]
    tags = await q.batches.tag_digests(registry_id, tagged)
    by_digest = [
        (r.untagged_repositories[0], r.source.reference)
        for r in requests
        if not r.target_tags and r.untagged_repositories and isinstance(r.source.reference, Digest)
    ]
    held = await q.batches.held_digests(registry_id, by_digest)
    found: list[Digest | None] = []
    for request in requests:
        target = first_target(request)
        if target is not None:
            found.append(tags.get(target))
        elif (
            request.untagged_repositories
            and isinstance(request.source.reference, Digest)
            and (request.untagged_repositories[0], request.source.reference) in held
        ):
            found.append(request.source.reference)
        else:
            found.append(None)
    return found


async def _view(q: Transaction, batch_id: str) -> BatchView | None:
    record = await q.batches.batch(batch_id)
    if record is None:
        return None
    requests = [ImportRequest.from_json(item.job.request) for item in record.items]
    now = await _current_digests(q, record.registry_id, requests)
    items = tuple(
        ItemView(
            item,
            digest if item.job.state == "succeeded" else None,
            item.job.state == "succeeded"
            and item.job.bytes_fetched == 0
            and digest is not None
            and digest == item.prior_digest,
        )
        for item, digest in zip(record.items, now, strict=True)
    )
    state = batch_state([item.job.state for item in record.items], record.cancel_requested)
    return BatchView(record, state, items)
