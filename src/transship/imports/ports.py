"""The seams of the import engine: where bytes go, where images come from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from transship.imports.model import SourceSpec
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor
from transship.storage.base import BlockingSource

if TYPE_CHECKING:  # plan.py depends on this module's ImageSource
    from transship.imports.model import ImportRequest
    from transship.imports.plan import ImportPlan


@dataclass(frozen=True, slots=True)
class Credentials:
    """Upstream credentials from the import request. Never logged, never returned."""

    username: str | None
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    content: bytes
    media_type: str
    digest: Digest


class BlobWriter(Protocol):
    """Receives one blob's bytes, verifying them as they arrive."""

    @property
    def offset(self) -> int:
        """Bytes kept so far: where a resumed download must continue."""
        ...

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        """Append chunks. May raise part way; `offset` then counts only what was kept."""
        ...

    async def reset(self) -> None:
        """Drop everything received (the upstream ignored a Range request)."""
        ...


@runtime_checkable
class SourceReceiver(Protocol):
    """A BlobWriter that can also take its bytes from a blocking source (an upstream
    connection handed over by the event loop) in a worker thread."""

    def receives_from_source(self) -> bool:
        """Whether `receive` can be used (its store writes from a thread)."""
        ...

    async def receive(self, source: BlockingSource, count: int) -> None:
        """Append `count` bytes read from `source`. Raises OSError, or EOFError when
        `source` ends first; `offset` then counts only what was kept (as `append`)."""
        ...


@runtime_checkable
class FollowableBlob(Protocol):
    """A BlobWriter whose bytes land in a local file, appended in order as they arrive, so
    that a reader may send them on while the blob is still being received (unverified
    until the writer commits)."""

    def growing_file(self) -> Path | None:
        """The file, once created (None before, or when the store keeps none locally)."""
        ...

    @property
    def restarts(self) -> int:
        """How often the writer dropped what it had received (`reset`): bytes a reader took
        before a restart may differ from the ones that get verified."""
        ...


class ImageSource(Protocol):
    """Where an import reads from: a remote registry, or a registry of this service."""

    async def get_manifest(self, reference: Digest | str) -> FetchedManifest:
        """The manifest by digest or tag. Raises ImportFailure (e.g. ManifestUnknown)."""
        ...

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        """Stream a blob into `writer`, resuming after dropped connections. Raises
        ImportFailure."""
        ...

    async def list_referrers(
        self, subject: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...] | None:
        """What refers to `subject` by its referrers API (`artifact_type`: a filter the
        source may ignore), or None when the source has no referrers API. Raises
        ImportFailure."""
        ...


class PendingBlob(BlobWriter, Protocol):
    """A BlobWriter whose bytes become a blob of the service on `commit`, pinned to the
    job (visible to no repository until the import commits)."""

    async def commit(self) -> None:
        """Verify size and digest, then keep the blob. Raises ImportFailure SIZE_INVALID or
        DIGEST_INVALID naming the blob."""
        ...

    async def discard(self) -> None:
        """Drop what was received and not committed; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class LinkScope:
    """What one import may link without receiving the bytes: blobs linked somewhere in its
    target registry, blobs of its source repository when that is a registry of this
    service (`source` = (registry id, repository name); the import policy checked the
    importer may pull it), and blobs the job itself already pinned."""

    job_id: str
    registry_id: int
    source: tuple[int, str] | None

    @classmethod
    def of(cls, job_id: str, registry_id: int, spec: SourceSpec) -> LinkScope:
        local = None if spec.registry_id is None else (spec.registry_id, spec.repository)
        return cls(job_id, registry_id, local)


class ImageSink(Protocol):
    """Where an import writes: blobs pinned to the job as they are verified, then one
    commit that makes the image visible and moves the tags. Knowing a digest is never
    access: only what `LinkScope` allows is linked without its bytes."""

    async def check_targets(
        self, registry_id: int, request: ImportRequest, *, resumed: bool = False
    ) -> None:
        """Before anything is copied: raise ImportFailure OperationDisallowed when a target
        repository or tag is locked against writes (whatever `force`), or TagAlreadyExists
        when a target tag exists and neither `request.force` nor `resumed` is set. `commit`
        checks again, in its transaction."""
        ...

    async def pin_present(self, scope: LinkScope, digests: list[Digest]) -> set[Digest]:
        """Pin, at once, every listed blob the service holds that `scope` allows linking
        without fetching; returns their digests. The rest must be fetched and verified."""
        ...

    async def pin_existing(self, scope: LinkScope, digest: Digest) -> bool:
        """`pin_present` for one blob: False when it must be fetched."""
        ...

    async def pin_fetched(self, job_id: str, digest: Digest) -> bool:
        """Pin a blob another import into the same registry has just fetched and verified.
        False when it is gone again."""
        ...

    def pending_blob(self, job_id: str, digest: Digest, size: int) -> PendingBlob:
        """A writer for one blob the import fetches."""
        ...

    async def commit(
        self, registry_id: int, plan: ImportPlan, request: ImportRequest, *, resumed: bool = False
    ) -> None:
        """Make the image visible in every target repository and move the tags, in one
        transaction. Raises ImportFailure TagAlreadyExists (unless forced, or `resumed`
        and the tag already names this image) or BlobMissing (retryable)."""
        ...
