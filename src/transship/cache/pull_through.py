"""Pull-through: the first pull of a repository under a cache rule copies from the upstream.

A manifest pull that finds nothing locally, in a repository a cache rule covers, fetches
the image's manifests from the rule's upstream (verified, through the import engine's
upstream client: egress policy, rate-limit budget, retries), answers at once, and queues
an ordinary import job (source: the upstream by digest; target: the tag, or untagged for a
pull by digest) that copies the blobs and commits the image. Until that job commits, the
image is a *fill* of this process: its manifests are answered from memory, and a blob of it
that is not stored yet is fetched as the client asks for it, streamed to the client while
it is written and verified (the last chunk is held back until the blob is verified and
committed, so a client never receives a complete-looking answer of wrong bytes).

A blob of a repository under a rule that is not stored and belongs to no fill of this
process (another process is filling it, or a client asks for it by digest) is fetched the
same way from the rule's upstream repository (its size asked with one HEAD) and linked
into the repository as it is committed.

One upstream fetch per blob, whatever the number of pullers: the first puller of a blob
tees it, through the import engine's single-flight fetch, and the import job waits for it
to commit. A puller that comes while a blob is being fetched (by the job, or for another
puller) follows that fetch's local staging file: it is sent the bytes as they are written,
the last one once the blob is committed (where staging is no local file, it waits for the
commit and reads the store).

A tag pulled through is re-checked upstream with one HEAD (never a GET) when a pull finds
its last check older than the TTL; a changed tag is pulled through again. When the check
fails (an outage, an error), the cached image is served, a warning logged and
`stale_served` counted. Pulls by digest are never re-checked.

Authorization is the API's: only callers allowed to pull the repository reach this module;
the content is written on the rule's behalf (the caller needs no push right).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar, cast

from transship.cache.errors import CredentialSetUnavailable
from transship.cache.ports import CachedUpstream, CacheRuleLookup
from transship.errors import NotFound, UpstreamFailure
from transship.imports.engine import RunningFetch, SourceFactory
from transship.imports.errors import ImportFailure, Step
from transship.imports.held import HeldFirstSource
from transship.imports.model import BlobOrder, ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits, build_plan
from transship.imports.ports import (
    Credentials,
    FetchedManifest,
    FollowableBlob,
    ImageSink,
    PendingBlob,
)
from transship.imports.shelf import ManifestShelf
from transship.metadata.jobs import FINAL_STATES
from transship.metadata.queries import BlobMissing, MetadataStore
from transship.metadata.records import ImportJobRecord, ManifestRecord, RegistryRecord
from transship.oci.digest import Digest, DigestError
from transship.oci.reference import InvalidReference, parse_tag_or_digest
from transship.registry.blobs import BlobLocation
from transship.registry.manifests import ManifestService
from transship.storage.base import BlobStore

log = logging.getLogger("transship.cache")

T = TypeVar("T")

# How often the sweep each new fill makes looks again at the jobs of fills no pull asked
# about since (so fills of repositories nobody pulls any more are forgotten too).
_JOB_RECHECK_SECONDS = 1.0
# How long after a fill's job ended a lookup that finds nothing looks at the repository again
# (its miss may have raced the job's commit).
_ENDED_LATELY_SECONDS = 60.0
# How often a client following a blob another fetch is writing looks for new bytes.
_FOLLOW_POLL_SECONDS = 0.01
# Tags whose last check is remembered (the oldest are forgotten first; a forgotten tag is
# re-checked at its next pull).
_CHECKED_TAGS_MAX = 100_000


class BlobReceiver(Protocol):
    """Where a blob fetched for a client goes: the client's answer."""

    async def begin(self, size: int) -> None:
        """Start the answer: the blob has `size` bytes."""
        ...

    async def send(self, chunk: bytes) -> None:
        """Send the next bytes. Raises what the connection raises."""
        ...

    async def send_file(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send the next `count` bytes, read from `file` at `offset` (zero copy where the
        connection allows). Raises what the connection raises."""
        ...


class JobLookup(Protocol):
    """The import jobs fills queue (ImportService)."""

    async def submit(
        self,
        registry_id: int,
        request: ImportRequest,
        credentials: Credentials | None,
        manifests: Iterable[FetchedManifest] = (),
    ) -> ImportJobRecord:
        """Queue the job; `manifests` (verified) are read by it in any process."""
        ...

    async def get(self, job_id: str) -> ImportJobRecord | None: ...


class BlobSink(ImageSink, Protocol):
    """Where pulled-through blobs go (RegistrySink)."""

    def linked_blob(
        self, registry_id: int, repository: str, digest: Digest, size: int
    ) -> PendingBlob:
        """A writer whose `commit` links the blob into the repository (no job)."""
        ...


class SharedFetch(Protocol):
    """The import engine's one fetch per (registry, blob) (ImportEngine.fetch_once)."""

    def running(self, registry_id: int, digest: Digest) -> RunningFetch | None: ...

    async def fetch_once(
        self,
        registry_id: int,
        digest: Digest,
        fetch: Callable[[RunningFetch], Awaitable[None]],
    ) -> bool: ...


@dataclass
class _Fill:
    """An image being pulled through, answered from memory until its import job commits."""

    job_id: str
    registry_id: int
    repository: str
    tag: str | None
    root: Digest
    manifests: dict[Digest, FetchedManifest]
    blobs: dict[Digest, int]  # digest → size
    checked: float  # when the job was last looked at

    def manifest_for(self, reference: Digest | str) -> FetchedManifest | None:
        if isinstance(reference, Digest):
            return self.manifests.get(reference)
        return self.manifests[self.root] if reference == self.tag else None


@dataclass
class _Tee:
    """A BlobWriter over `inner` that passes what it receives on to `receiver` too: all but
    the last chunk at once, that one only in `finish`, after the blob was verified. Bytes
    the client already has are not sent again when the upstream restarts the blob."""

    receiver: BlobReceiver
    size: int
    inner: PendingBlob | None = None  # set by the one fetch that runs
    begun: bool = False
    _forwarded: int = 0  # bytes given to the client (sent, or held back)
    _held: bytes = field(default=b"", repr=False)

    def _pending(self) -> PendingBlob:
        assert self.inner is not None, "the tee has no blob to write to"
        return self.inner

    @property
    def offset(self) -> int:
        return self._pending().offset

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        pending = self._pending()
        await pending.append(self._teed(chunks, pending.offset))

    async def _teed(self, chunks: AsyncIterator[bytes], position: int) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            end = position + len(chunk)
            if end > self._forwarded and self._forwarded < self.size:
                fresh = chunk[self._forwarded - position :] if self._forwarded > position else chunk
                await self._forward(fresh[: self.size - self._forwarded])
            position = end
            yield chunk

    async def _forward(self, data: bytes) -> None:
        await self._begin()
        if self._held:
            await self.receiver.send(self._held)
        self._held = data
        self._forwarded += len(data)

    async def _begin(self) -> None:
        if not self.begun:
            self.begun = True
            await self.receiver.begin(self.size)

    async def reset(self) -> None:
        await self._pending().reset()

    async def finish(self) -> None:
        """The blob is verified and committed: send what was held back."""
        await self._begin()
        if self._held:
            await self.receiver.send(self._held)
            self._held = b""


class PullThrough:
    """Pull-through for every registry of the service (see the module docstring). One per
    process; its fills and tag checks are this process's."""

    def __init__(
        self,
        rules: CacheRuleLookup,
        meta: MetadataStore,
        store: BlobStore,
        manifests: ManifestService,
        sink: BlobSink,
        sources: SourceFactory,
        engine: SharedFetch,
        jobs: JobLookup,
        shelf: ManifestShelf,
        limits: ImportLimits,
        *,
        tag_ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = rules
        self._meta = meta
        self._store = store
        self._manifests = manifests
        self._sink = sink
        self._sources = sources
        self._engine = engine
        self._jobs = jobs
        self._shelf = shelf
        self._limits = limits
        self._ttl = tag_ttl_seconds
        self._clock = clock
        self._fills: dict[tuple[int, str], list[_Fill]] = {}
        self._running: dict[tuple[object, ...], asyncio.Future[object]] = {}
        self._checked: OrderedDict[tuple[int, str, str], float] = OrderedDict()
        # When the last fill of a repository ended (a lookup that raced its commit looks again).
        self._ended: dict[tuple[int, str], float] = {}
        # Pulls answered from the cache because re-checking the tag upstream failed.
        self.stale_served = 0

    # -- manifests ---------------------------------------------------------------------------
    async def get_manifest(
        self, registry: RegistryRecord, repository: str, reference: str
    ) -> ManifestRecord:
        """ManifestService.get, pulling through when the repository is under a cache rule:
        a missing manifest is fetched from the upstream, a cached tag re-checked when its
        TTL has passed. Raises what ManifestService.get raises (NotFound when no rule covers
        the repository, or the upstream has no such manifest), UpstreamFailure when the
        upstream cannot be read for a manifest not cached, and CredentialSetUnavailable."""
        try:
            record = await self._manifests.get(registry, repository, reference)
        except NotFound as missing:
            return await self._on_miss(registry, repository, reference, missing)
        ref = parse_tag_or_digest(reference)
        if isinstance(ref, Digest):
            return record  # content-addressed: never re-checked
        return await self._fresh(registry, repository, ref, record)

    async def _on_miss(
        self, registry: RegistryRecord, repository: str, reference: str, missing: NotFound
    ) -> ManifestRecord:
        try:
            ref = parse_tag_or_digest(reference)
        except (DigestError, InvalidReference):
            raise missing from None  # no such name upstream either
        found = await self._pending(registry.id, repository, ref)
        if found is not None:
            return found
        if self._ended_lately(registry.id, repository):
            # A fill's job ended lately: it may have committed this since the lookup missed.
            with contextlib.suppress(NotFound):
                return await self._manifests.get(registry, repository, reference)
        upstream = await self._upstream_for(registry.id, repository)
        if upstream is None:
            raise missing
        fill = await self._fill_once(registry, repository, ref, upstream)
        manifest = fill.manifest_for(ref)
        if manifest is None:  # a digest other than the one asked: cannot happen (verified)
            raise missing
        return _record(manifest)

    async def _pending(
        self, registry_id: int, repository: str, ref: Digest | str
    ) -> ManifestRecord | None:
        for fill in await self._live_fills(registry_id, repository):
            manifest = fill.manifest_for(ref)
            if manifest is not None:
                return _record(manifest)
        return None

    async def _fresh(
        self, registry: RegistryRecord, repository: str, tag: str, record: ManifestRecord
    ) -> ManifestRecord:
        key = (registry.id, repository, tag)
        checked = self._checked.get(key)
        if checked is not None and self._clock() - checked < self._ttl:
            return record
        return await self._once(
            ("check", *key), lambda: self._recheck(registry, repository, tag, record)
        )

    async def _recheck(
        self, registry: RegistryRecord, repository: str, tag: str, record: ManifestRecord
    ) -> ManifestRecord:
        pending = await self._pending(registry.id, repository, tag)
        if pending is not None:
            return pending  # being pulled through right now: as fresh as it gets
        # Remembered for repositories under no rule too: one rule lookup per TTL, not per pull.
        self._mark_checked(registry.id, repository, tag)
        try:
            upstream = await self._upstream_for(registry.id, repository)
        except UpstreamFailure as exc:
            self.stale_served += 1
            log.warning("serving cached %s:%s (%s): %s", repository, tag, record.digest, exc)
            return record
        if upstream is None:
            return record
        spec = SourceSpec(upstream.host, None, upstream.repository, tag)
        try:
            async with self._sources.open(spec, upstream.credentials, registry.id) as source:
                current = (
                    await source.head_manifest(tag) if isinstance(source, HeldFirstSource) else None
                )
        except ImportFailure as exc:
            return self._stale(repository, tag, upstream, exc.message, record)
        if current is None:
            return self._stale(repository, tag, upstream, "the HEAD did not name a digest", record)
        if current == record.digest:
            return record
        try:
            fill = await self._fill_once(registry, repository, tag, upstream)
        except (UpstreamFailure, NotFound) as exc:
            return self._stale(repository, tag, upstream, exc.message, record)
        return _record(fill.manifests[fill.root])

    async def _upstream_for(self, registry_id: int, repository: str) -> CachedUpstream | None:
        """The rule's upstream, or None. Raises UpstreamFailure (naming the credential set,
        never the secret) when the rule's credentials cannot be resolved."""
        try:
            return await self._rules.upstream_for(registry_id, repository)
        except CredentialSetUnavailable as exc:
            raise UpstreamFailure(f"the cache rule of {repository} cannot be used: {exc}") from None

    def _stale(
        self,
        repository: str,
        tag: str,
        upstream: CachedUpstream,
        why: str,
        record: ManifestRecord,
    ) -> ManifestRecord:
        self.stale_served += 1
        log.warning(
            "serving cached %s:%s (%s): re-checking it on %s/%s failed: %s",
            repository,
            tag,
            record.digest,
            upstream.host,
            upstream.repository,
            why,
        )
        return record

    def _mark_checked(self, registry_id: int, repository: str, tag: str) -> None:
        key = (registry_id, repository, tag)
        self._checked[key] = self._clock()
        self._checked.move_to_end(key)
        while len(self._checked) > _CHECKED_TAGS_MAX:
            self._checked.popitem(last=False)

    async def _fill_once(
        self,
        registry: RegistryRecord,
        repository: str,
        ref: Digest | str,
        upstream: CachedUpstream,
    ) -> _Fill:
        return await self._once(
            ("fill", registry.id, repository, str(ref)),
            lambda: self._fill(registry, repository, ref, upstream),
        )

    async def _fill(
        self,
        registry: RegistryRecord,
        repository: str,
        ref: Digest | str,
        upstream: CachedUpstream,
    ) -> _Fill:
        """Fetch the image's manifests, verified, and queue the import job that copies its
        blobs. Raises NotFound (the upstream has no such manifest) or UpstreamFailure."""
        spec = SourceSpec(upstream.host, None, upstream.repository, ref)
        try:
            async with self._sources.open(spec, upstream.credentials, registry.id) as source:
                plan = await build_plan(source, ref, self._limits, None, spec.describe())
        except ImportFailure as exc:
            raise _domain_error(exc, "manifest", repository, str(ref)) from None
        manifests = {m.digest: m.fetched for m in plan.manifests}
        tag = None if isinstance(ref, Digest) else ref
        request = ImportRequest(
            source=SourceSpec(upstream.host, None, upstream.repository, plan.root.digest),
            target_tags=() if tag is None else (TargetTag(repository, tag),),
            untagged_repositories=(repository,) if tag is None else (),
            # A moved upstream tag moves the cached one.
            force=True,
            # The client pulling it waits for its images in turn, following these fetches.
            blob_order=BlobOrder.IMAGE_BY_IMAGE,
        )
        self._shelf.put(registry.id, manifests.values())
        try:
            job = await self._jobs.submit(
                registry.id, request, upstream.credentials, manifests.values()
            )
        except BaseException:
            self._shelf.drop(registry.id, manifests)
            raise
        log.info(
            "pulling %s through cache rule %s: import job %s copies it into %s",
            spec.describe(),
            upstream.rule_name,
            job.id,
            repository,
        )
        fill = _Fill(
            job.id,
            registry.id,
            repository,
            tag,
            plan.root.digest,
            manifests,
            {blob.digest: blob.size for blob in plan.blobs},
            self._clock(),
        )
        self._fills.setdefault((registry.id, repository), []).append(fill)
        if tag is not None:
            self._mark_checked(registry.id, repository, tag)
        await self._forget_ended(time_bound=True)
        return fill

    async def _live_fills(self, registry_id: int, repository: str) -> list[_Fill]:
        """The repository's fills whose jobs have not ended (as last looked at)."""
        fills = self._fills.get((registry_id, repository))
        if not fills:
            return []
        # Looked at every time: a fill whose job has ended is never served (the image is
        # committed, or the job failed and the next pull must start again).
        await self._forget_ended(time_bound=False, only=fills)
        return list(self._fills.get((registry_id, repository), ()))

    async def _forget_ended(self, *, time_bound: bool, only: list[_Fill] | None = None) -> None:
        """Forget fills whose import job has ended (it committed the image, or failed: the
        next pull starts again), looking at each job at most once per second."""
        now = self._clock()
        candidates = (
            list(only) if only is not None else [f for fs in self._fills.values() for f in fs]
        )
        for fill in candidates:
            if time_bound and now - fill.checked < _JOB_RECHECK_SECONDS:
                continue
            fill.checked = now
            job = await self._jobs.get(fill.job_id)
            if job is None or job.state in FINAL_STATES:
                self._forget(fill)

    def _ended_lately(self, registry_id: int, repository: str) -> bool:
        at = self._ended.get((registry_id, repository))
        return at is not None and self._clock() - at <= _ENDED_LATELY_SECONDS

    def _forget(self, fill: _Fill) -> None:
        key = (fill.registry_id, fill.repository)
        fills = self._fills.get(key, [])
        if fill in fills:
            fills.remove(fill)
            now = self._clock()
            self._ended[key] = now
            for old in [k for k, at in self._ended.items() if now - at > _ENDED_LATELY_SECONDS]:
                del self._ended[old]
            self._shelf.drop(fill.registry_id, fill.manifests)
        if not fills:
            self._fills.pop(key, None)

    # -- blobs -------------------------------------------------------------------------------
    async def blob(
        self,
        registry: RegistryRecord,
        repository: str,
        digest: Digest,
        missing: NotFound,
        receiver: BlobReceiver | None,
    ) -> BlobLocation | None:
        """A blob the repository does not hold (`missing` is why), in a repository under a
        cache rule: of an image being pulled through (its size is known), or any other (its
        size is asked upstream with one HEAD). Returns where it is stored now (serve it from
        there), or None when it was fetched and streamed to `receiver` (the answer is
        complete). Without `receiver` (a HEAD), only its size is looked up.

        Raises `missing` when no rule covers the repository or the upstream has no such
        blob, UpstreamFailure (or NotFound) when the upstream fails before `receiver`
        began; after it began, the failure propagates and the answer must be aborted
        (never completed)."""
        fill = await self._fill_with_blob(registry.id, repository, digest)
        if fill is not None:
            size = fill.blobs[digest]
        else:
            if self._ended_lately(registry.id, repository):
                # A fill's job ended lately: it may have committed this since the lookup missed.
                found = await self._linked_size(registry.id, repository, digest)
                if found is not None:
                    return BlobLocation(digest, found)
            # Not one this process is filling (another process may be: its blob requests
            # can land here), or asked for on its own: the upstream repository's blob.
            upstream = await self._upstream_for(registry.id, repository)
            if upstream is None:
                raise missing
            sized = await self._upstream_size(registry.id, repository, digest, upstream)
            if sized is None:
                raise missing
            size = sized
        if receiver is None:
            return BlobLocation(digest, size)
        for _ in range(3):
            if fill is not None and await self._link_held(fill, digest):
                return BlobLocation(digest, size)
            if fill is None:
                found = await self._linked_size(registry.id, repository, digest)
                if found is not None:
                    return BlobLocation(digest, found)
            running = self._engine.running(registry.id, digest)
            if running is not None:
                # Fetched already (by the fill's job, or for another client): send its bytes
                # as they are written rather than wait for the whole blob.
                if await _follow(running, digest, size, receiver):
                    return None
                continue  # it ended before anything was sent: look again
            tee = _Tee(receiver, size)
            fetch = functools.partial(self._tee, registry.id, repository, fill, digest, tee)
            try:
                committed = await self._engine.fetch_once(registry.id, digest, fetch)
            except ImportFailure as exc:
                if tee.begun:
                    raise  # the client has part of the blob: its answer must break off
                raise _domain_error(exc, "blob", repository, str(digest)) from None
            if tee.begun:
                return None
            if not committed:
                continue  # the fetch it waited for failed: fetch it itself
        # Another fetch committed the blob and it could not be linked from there: rare
        # (collected at once); the client may simply pull again.
        raise UpstreamFailure(f"blob {digest} of {repository} could not be pulled through")

    async def _linked_size(self, registry_id: int, repository: str, digest: Digest) -> int | None:
        async with self._meta.reading() as q:
            return await q.repository_blob_size(registry_id, repository, digest)

    async def _upstream_size(
        self, registry_id: int, repository: str, digest: Digest, upstream: CachedUpstream
    ) -> int | None:
        """The blob's size on the rule's upstream by one HEAD, or None when it has no such
        blob (or does not tell). Raises UpstreamFailure or NotFound."""
        spec = SourceSpec(upstream.host, None, upstream.repository, digest)
        try:
            async with self._sources.open(spec, upstream.credentials, registry_id) as source:
                if not isinstance(source, HeldFirstSource):
                    return None
                return await source.head_blob(digest)
        except ImportFailure as exc:
            raise _domain_error(exc, "blob", repository, str(digest)) from None

    async def _fill_with_blob(
        self, registry_id: int, repository: str, digest: Digest
    ) -> _Fill | None:
        # A blob is never fetched for a fill whose job has ended (nothing would commit the
        # image; the next manifest pull starts a new one).
        for fill in await self._live_fills(registry_id, repository):
            if digest in fill.blobs:
                return fill
        return None

    async def _link_held(self, fill: _Fill, digest: Digest) -> bool:
        """Link into the fill's repository a blob the service holds and the fill's import job
        may link without fetching (it fetched it, or it is linked in the registry): False
        when it must be fetched."""
        if await self._store.size(digest) is None:
            return False
        async with self._meta.writing() as q:
            if not await q.jobs.pin_present(fill.job_id, [digest], fill.registry_id):
                return False
            repo_id = await q.ensure_repository(fill.registry_id, fill.repository)
            try:
                await q.link_blob(repo_id, digest)
            except BlobMissing:
                return False
            # Linked, it is held: no pin may outlive the job (it may end before this commits).
            await q.jobs.unpin_blob(fill.job_id, digest)
        return True

    async def _tee(
        self,
        registry_id: int,
        repository: str,
        fill: _Fill | None,
        digest: Digest,
        tee: _Tee,
        running: RunningFetch,
    ) -> None:
        """Fetch the blob from the rule's upstream into `tee` (the store and the client),
        commit it verified, link it into the repository, then let the client have its last
        bytes. A blob of a fill is pinned to the fill's job until linked; any other is
        linked as it is committed. Raises ImportFailure (nothing is kept)."""
        try:
            upstream = await self._upstream_for(registry_id, repository)
        except UpstreamFailure as exc:
            raise ImportFailure("CredentialSetUnavailable", exc.message, step=Step.COPY) from None
        if upstream is None:
            raise ImportFailure(
                "CacheRuleGone",
                f"no cache rule covers {repository} any more",
                step=Step.COPY,
                obj=str(digest),
            )
        reference = digest if fill is None else fill.root
        spec = SourceSpec(upstream.host, None, upstream.repository, reference)
        pending = tee.inner = (
            self._sink.linked_blob(registry_id, repository, digest, tee.size)
            if fill is None
            else self._sink.pending_blob(fill.job_id, digest, tee.size)
        )
        running.writer = pending  # other clients of the blob follow what it writes
        try:
            async with self._sources.open(spec, upstream.credentials, registry_id) as source:
                await source.fetch_blob(digest, tee.size, tee)
            await pending.commit()
        finally:
            await pending.discard()
        if fill is not None:
            async with self._meta.writing() as q:
                repo_id = await q.ensure_repository(registry_id, repository)
                await q.link_blob(repo_id, digest)
                # Linked, it is held; the job links it from the registry like its other blobs.
                await q.jobs.unpin_blob(fill.job_id, digest)
        await tee.finish()

    # -- single flight -----------------------------------------------------------------------
    async def _once(self, key: tuple[object, ...], work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` once for every concurrent caller with the same `key`: the first runs
        it, the others wait for its answer (or its error). When the first caller is
        cancelled, one of the others runs it."""
        while True:
            running = self._running.get(key)
            if running is None:
                break
            try:
                return cast(T, await asyncio.shield(running))
            except _LeaderGone:
                continue
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.set_exception(_LeaderGone())
            future.exception()  # retrieved: nobody may be waiting
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]


async def _follow(running: RunningFetch, digest: Digest, size: int, receiver: BlobReceiver) -> bool:
    """Send `receiver` the blob `running` is receiving, as it is written to its local file:
    all but the last byte as it arrives, that one once the blob is verified and committed.

    True when the answer is complete. False, with nothing sent, when the caller must look
    again: the fetch ended first having failed, or it keeps no local file to follow (this
    then waited for its end). Raises ImportFailure once the answer began when the fetch
    fails or restarts the blob (the answer must break off, never end complete-looking)."""
    growing = await _open_growing(running)
    if growing is None:
        await running.done.wait()
        return False
    file, writer = growing
    with file:
        restarts, sent, begun = writer.restarts, 0, False
        while True:
            ended = running.done.is_set()  # before the size: then the size read is final
            have = os.fstat(file.fileno()).st_size
            whole = ended and running.succeeded and have == size
            if (ended and not whole) or writer.restarts != restarts or have < sent:
                if not begun:
                    return False
                raise ImportFailure(
                    "BlobFetchFailed",
                    f"the upstream transfer of blob {digest} failed while it was being sent",
                    step=Step.COPY,
                    obj=str(digest),
                )
            ready = size if whole else min(have, size - 1)
            if ready > sent or not begun:
                if not begun:
                    begun = True
                    await receiver.begin(size)
                if ready > sent:
                    await receiver.send_file(file, sent, ready - sent)
                    sent = ready
            if whole:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FOLLOW_POLL_SECONDS):
                    await running.done.wait()


async def _open_growing(running: RunningFetch) -> tuple[BinaryIO, FollowableBlob] | None:
    """The fetch's local file, opened for reading once it exists, with its writer; None when
    the fetch keeps none or ends first."""
    while not running.done.is_set():
        writer = running.writer
        if isinstance(writer, FollowableBlob):
            path = writer.growing_file()
            if path is not None:
                with contextlib.suppress(FileNotFoundError):  # marked created before it is
                    return await asyncio.to_thread(path.open, "rb"), writer
        elif writer is not None:
            return None  # it writes no local file
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FOLLOW_POLL_SECONDS):
                await running.done.wait()
    return None


class _LeaderGone(Exception):
    """The caller running a single-flight step was cancelled; a waiting one takes over."""


def _record(manifest: FetchedManifest) -> ManifestRecord:
    return ManifestRecord(manifest.digest, manifest.media_type, manifest.content)


def _domain_error(exc: ImportFailure, what: str, repository: str, reference: str) -> Exception:
    """What a pull answers when the upstream failed: the upstream has no such manifest or
    blob (NotFound), or anything else (UpstreamFailure, with the import's message, which
    never holds credentials)."""
    if exc.upstream_status == 404:
        return NotFound(
            what,
            reference,
            f"{reference} is not in repository {repository} nor in its cache rule's upstream",
            detail={"reference": reference},
        )
    return UpstreamFailure(f"the cache rule's upstream failed: {exc.message}")
