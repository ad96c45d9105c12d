"""Blob reads, deletes, cross-repository mounts and resumable upload sessions."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

from transship.errors import Conflict, Invalid, NotFound, TooLarge
from transship.metadata.queries import BlobMissing, MetadataStore, Transaction
from transship.metadata.records import RegistryRecord, UploadRecord
from transship.oci.digest import SUPPORTED_ALGORITHMS, CountingHasher, Digest, Hasher, new_hasher
from transship.registry.blob_commit import commit_staged_blob
from transship.storage.base import BlobStore, StagingUnknown


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """A blob a repository can see: its digest and size. How its bytes are served is the
    serving layer's choice (a driver with local files allows sendfile)."""

    digest: Digest
    size: int


class ChunkOutOfOrder(Invalid):
    """A chunk that does not start at the session's offset (field "range"); the session is
    kept, and the answer tells the client where it stands (`offset`)."""

    def __init__(self, upload_id: str, repository: str, start: int, offset: int) -> None:
        super().__init__(
            "range",
            f"chunk starts at {start} but upload {upload_id} is at offset {offset}",
            subject="upload",
            reason="out_of_order",
        )
        self.upload_id = upload_id
        self.repository = repository
        self.offset = offset


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: str
    repository: str
    offset: int


@dataclass
class _HashState:
    """The incremental hash of a session's staged bytes, valid at `offset`."""

    offset: int
    hasher: Hasher


class BlobService:
    """Blob operations of one service. Every method takes the registry it acts in."""

    def __init__(
        self, meta: MetadataStore, store: BlobStore, max_blob_bytes: int | None = None
    ) -> None:
        self._meta = meta
        self._store = store
        self._max_blob_bytes = max_blob_bytes
        # Hash state per session, so a PATCH need not re-read what earlier ones wrote. After a
        # restart (or on another process) the state is rebuilt from the staged bytes.
        self._hash_states: dict[str, _HashState] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- reads -------------------------------------------------------------------------------
    async def stat(self, registry: RegistryRecord, repository: str, digest: Digest) -> BlobLocation:
        """Raises NotFound("blob") when the repository cannot see the blob."""
        # The pull path's keyed lookup: inline on the loop (see MetadataStore.fast_read).
        async with self._meta.fast_read() as q:
            size = await q.repository_blob_size(registry.id, repository, digest)
        if size is None:
            raise NotFound(
                "blob",
                str(digest),
                f"blob {digest} is not in repository {repository}",
                detail={"digest": str(digest)},
            )
        return BlobLocation(digest, size)

    async def delete(self, registry: RegistryRecord, repository: str, digest: Digest) -> None:
        """Unlink a blob from a repository; the bytes go when garbage collection finds them
        unreferenced. Raises NotFound("blob"), or Conflict (reason "in_use") while a manifest
        of the repository still needs it: a tag must never point at missing content."""
        async with self._meta.writing() as q:
            repo_id = await q.repository_id(registry.id, repository)
            if repo_id is not None:
                await q.lock_repository(repo_id, exclusive=True)
                user = await q.blob_referenced_in(repo_id, digest)
                if user is not None:
                    raise Conflict(
                        f"blob {digest} is referenced by manifest {user} in {repository}; "
                        "delete the manifest first",
                        subject="blob",
                        reason="in_use",
                        detail={"digest": str(digest), "manifest": str(user)},
                    )
            if not await q.unlink_blob(registry.id, repository, digest):
                raise NotFound(
                    "blob",
                    str(digest),
                    f"blob {digest} is not in repository {repository}",
                    detail={"digest": str(digest)},
                )

    async def mount(
        self, registry: RegistryRecord, repository: str, digest: Digest, source: str | None
    ) -> bool:
        """Link a blob that the repository `source` of the same registry holds (the caller's
        right to pull `source` is the API's to check). False when nothing could be mounted:
        the caller then opens a plain upload session, as the spec allows.

        Without `source` (an automatic mount) only a blob the repository itself already
        links counts: knowing a digest is never access, and this layer does not know which
        other repositories the caller may read."""
        holder = repository if source is None else source
        async with self._meta.writing() as q:
            holder_id = await q.repository_id(registry.id, holder)
            linked = holder_id is not None and bool(await q.touch_links(holder_id, [digest]))
            if not linked or await self._store.size(digest) is None:
                return False
            repo_id = await q.ensure_repository(registry.id, repository)
            try:
                await q.link_blob(repo_id, digest)
            except BlobMissing:
                return False
        return True

    # -- upload sessions ---------------------------------------------------------------------
    async def start_upload(
        self, registry: RegistryRecord, repository: str, algorithm: str = "sha256"
    ) -> UploadStatus:
        """Open a resumable session. Raises Invalid("digest") for an unknown digest algorithm."""
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise Invalid(
                "digest", f"unsupported digest algorithm {algorithm!r}", reason="algorithm"
            )
        upload_id = uuid.uuid4().hex
        await self._store.create_staging(upload_id)
        async with self._meta.writing() as q:
            await q.create_upload(upload_id, registry.id, repository, algorithm)
        return UploadStatus(upload_id, repository, 0)

    async def _session(
        self, registry: RegistryRecord, repository: str, upload_id: str
    ) -> UploadRecord:
        async with self._meta.reading() as q:
            record = await q.upload(upload_id) if len(upload_id) == 32 else None
        if record is None or record.registry_id != registry.id or record.repository != repository:
            raise NotFound(
                "upload", upload_id, f"upload {upload_id} is unknown in repository {repository}"
            )
        return record

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[upload_id] = lock
        return lock

    async def status(
        self, registry: RegistryRecord, repository: str, upload_id: str
    ) -> UploadStatus:
        record = await self._session(registry, repository, upload_id)
        return UploadStatus(record.id, repository, record.offset)

    async def _hash_state(self, record: UploadRecord) -> _HashState:
        """The hash state at the session's committed offset. Bytes past it were left by an
        interrupted request and are dropped."""
        state = self._hash_states.get(record.id)
        try:
            # Checked even with a saved state: a PATCH of this session that landed on another
            # process and failed may have left bytes past the offset since, and appending
            # after them would commit bytes the hash never saw.
            if await self._store.staging_size(record.id) != record.offset:
                await self._store.truncate_staging(record.id, record.offset)
            if state is not None and state.offset == record.offset:
                return state
            hasher = new_hasher(record.algorithm)
            async for chunk in self._store.read_staging(record.id):
                hasher.update(chunk)
        except StagingUnknown:
            raise _expired(record.id) from None
        state = _HashState(record.offset, hasher)
        self._hash_states[record.id] = state
        return state

    async def append(
        self,
        registry: RegistryRecord,
        repository: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        start: int | None,
        length: int | None,
    ) -> UploadStatus:
        """Append a chunk. `start` (from Content-Range) must equal the current offset, else
        416 with the offset kept; `length`, when known, must match what arrived."""
        async with self._lock(upload_id):
            record = await self._session(registry, repository, upload_id)
            if start is not None and start != record.offset:
                raise ChunkOutOfOrder(upload_id, repository, start, record.offset)
            await self._write(record, body, length)
            return UploadStatus(upload_id, repository, self._hash_states[upload_id].offset)

    async def _write(
        self, record: UploadRecord, body: AsyncIterator[bytes], length: int | None
    ) -> None:
        state = await self._hash_state(record)
        # Hash into a copy: if the request fails half way, the saved state stays valid.
        hasher = state.hasher.copy()
        counter = CountingHasher(resume=hasher)
        try:
            try:
                await self._store.append_staging(
                    record.id, self._capped(body, record.offset, length), counter
                )
            except StagingUnknown:
                raise _expired(record.id) from None
            if length is not None and counter.count != length:
                raise Invalid("size", f"chunk declared {length} bytes but {counter.count} arrived")
            async with self._meta.writing() as q:
                if not await q.advance_upload(
                    record.id, record.offset, record.offset + counter.count
                ):
                    raise Conflict(f"upload {record.id} was changed concurrently", subject="upload")
        except BaseException:
            self._hash_states.pop(record.id, None)
            raise
        self._hash_states[record.id] = _HashState(record.offset + counter.count, hasher)

    async def finish(
        self,
        registry: RegistryRecord,
        repository: str,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes],
        start: int | None,
        length: int | None,
    ) -> BlobLocation:
        """Append the last chunk (if any; `start` as for `append`), verify the digest and
        commit the blob.

        On DIGEST_INVALID the session is discarded and nothing is stored.
        """
        async with self._lock(upload_id):
            record = await self._session(registry, repository, upload_id)
            if start is not None and start != record.offset:
                raise ChunkOutOfOrder(upload_id, repository, start, record.offset)
            await self._write(record, body, length)
            state = self._hash_states[upload_id]
            if digest.algorithm == record.algorithm:
                actual = state.hasher.hexdigest()
            else:
                actual = await self._rehash(upload_id, digest.algorithm)
            if actual != digest.encoded:
                await self.cancel(registry, repository, upload_id, locked=True)
                raise Invalid(
                    "digest",
                    f"uploaded content has digest {digest.algorithm}:{actual}, not {digest}",
                    detail={"digest": str(digest)},
                )
            await self._commit(registry, repository, upload_id, digest, state.offset, session=True)
            self._hash_states.pop(upload_id, None)
            await self._store.delete_staging(upload_id)
            return BlobLocation(digest, state.offset)

    async def _rehash(self, upload_id: str, algorithm: str) -> str:
        hasher = new_hasher(algorithm)
        async for chunk in self._store.read_staging(upload_id):
            hasher.update(chunk)
        return hasher.hexdigest()

    def _capped(
        self, body: AsyncIterator[bytes], offset: int, declared: int | None
    ) -> AsyncIterator[bytes]:
        """The body, refused with 413 as soon as the blob would exceed the size limit."""
        limit = self._max_blob_bytes
        if limit is None:
            return body
        if declared is not None and offset + declared > limit:
            raise _too_large(limit)

        async def capped() -> AsyncIterator[bytes]:
            total = offset
            async for chunk in body:
                total += len(chunk)
                if total > limit:
                    raise _too_large(limit)
                yield chunk

        return capped()

    async def upload_whole(
        self,
        registry: RegistryRecord,
        repository: str,
        digest: Digest,
        body: AsyncIterator[bytes],
        length: int | None,
    ) -> BlobLocation:
        """A monolithic upload (POST with `digest`): no session row, nothing kept on failure."""
        upload_id = uuid.uuid4().hex
        dropped = False
        try:
            counter = CountingHasher(digest.algorithm)
            # Made, written and synced in one step where the store can (local files: one hop
            # to a thread for a body under a MiB).
            await self._store.append_staging(
                upload_id, self._capped(body, 0, length), counter, create=True, sync=True
            )
            if length is not None and counter.count != length:
                raise Invalid("size", f"declared {length} bytes but {counter.count} arrived")
            actual = counter.hasher.hexdigest()
            if actual != digest.encoded:
                raise Invalid(
                    "digest",
                    f"uploaded content has digest {digest.algorithm}:{actual}, not {digest}",
                    detail={"digest": str(digest)},
                )
            dropped = await self._commit(registry, repository, upload_id, digest, counter.count)
            return BlobLocation(digest, counter.count)
        finally:
            if not dropped:
                await self._store.delete_staging(upload_id)

    async def _commit(
        self,
        registry: RegistryRecord,
        repository: str,
        upload_id: str,
        digest: Digest,
        size: int,
        *,
        session: bool = False,
    ) -> bool:
        """Record and link the verified blob. A session's staging area stays for the caller
        to drop (a failed commit must leave the session as it was); a whole upload's bytes,
        synced by their append, are committed without another sync and their staging area
        goes in the commit's own step where the store can: returns True when it went.
        Raises NotFound("upload") when the staging area is gone."""

        async def hold(q: Transaction) -> None:
            # The session row goes in the blob's transaction, so a crash never leaves a
            # session whose staged bytes have already moved.
            if session:
                await q.delete_upload(upload_id)
            repo_id = await q.ensure_repository(registry.id, repository)
            await q.link_blob(repo_id, digest)

        try:
            return await commit_staged_blob(
                self._meta,
                self._store,
                upload_id,
                digest,
                size,
                hold,
                synced=not session,
                keep_staging=session,
            )
        except StagingUnknown:
            raise _expired(upload_id) from None

    async def cancel(
        self, registry: RegistryRecord, repository: str, upload_id: str, *, locked: bool = False
    ) -> None:
        """Discard a session and its staged bytes. Raises NotFound("upload")."""
        if not locked:
            await self._session(registry, repository, upload_id)
        async with self._meta.writing() as q:
            await q.delete_upload(upload_id)
        await self._store.delete_staging(upload_id)
        self._hash_states.pop(upload_id, None)

    def forget_upload(self, upload_id: str) -> None:
        """Drop the in-process hash state of a session that ended elsewhere (garbage
        collection expired it). Idempotent; a session with no state is ignored."""
        self._hash_states.pop(upload_id, None)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"blob is larger than the limit of {limit} bytes", subject="blob")


def _expired(upload_id: str) -> NotFound:
    return NotFound(
        "upload",
        upload_id,
        f"upload {upload_id} expired or lost its data; start it again",
        reason="expired",
    )
