"""The one way verified staged bytes become a blob of the service (pushed uploads and
imported blobs alike)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from transship.metadata.queries import MetadataStore, Transaction
from transship.oci.digest import Digest
from transship.storage.base import BlobStore

Hold = Callable[[Transaction], Awaitable[object]]
"""What keeps a new blob referenced, run in the commit's transaction: a link into a
repository (a push), a pin to a job (an import)."""


async def commit_staged_blob(
    meta: MetadataStore, store: BlobStore, staging_id: str, digest: Digest, size: int, hold: Hold
) -> None:
    """Place the staged bytes of `staging_id` — already verified to be `size` bytes with
    digest `digest` — as that blob, held by `hold`, in one transaction.

    The staged bytes are made durable first, outside the transaction. Then the blob row is
    written (on PostgreSQL, locked) and `hold` runs before the bytes move into place, so
    garbage collection never sees the file without a row, nor the row without a holder;
    a crash or an error at any point leaves either nothing visible or the blob complete
    and held. The staging area stays: the caller drops it after this returns.

    Raises StagingUnknown when the staging area is gone, and whatever `hold` raises; the
    transaction then rolls back.
    """
    await store.sync_staging(staging_id)
    async with meta.writing() as q:
        await q.record_blob(digest, size)
        await hold(q)
        await store.commit_staging(staging_id, digest)
