"""The one way verified bytes become a blob of the service (pushed uploads and imported
blobs alike)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from transship.metadata.queries import MetadataStore, Transaction
from transship.oci.digest import Digest
from transship.storage.base import BlobStore, BlockingStagingCommit

Hold = Callable[[Transaction], Awaitable[object]]
"""What keeps a new blob referenced, run in the commit's transaction: a link into a
repository (a push), a pin to a job (an import)."""

Place = Callable[[], Awaitable[None]]
"""What makes the verified bytes visible in the blob store as the blob."""


async def commit_blob(
    meta: MetadataStore, digest: Digest, size: int, hold: Hold, place: Place
) -> None:
    """Record blob `digest` (`size` bytes, already verified), held by `hold`, and `place`
    its bytes, in one transaction.

    The blob row is written (on PostgreSQL, locked) and `hold` runs before the bytes are
    placed, so garbage collection never sees the stored blob without a row, nor the row
    without a holder; a crash or an error at any point leaves either nothing visible or
    the blob complete and held.

    Raises whatever `hold` or `place` raises; the transaction then rolls back.
    """
    async with meta.writing() as q:
        await q.record_blob(digest, size)
        await hold(q)
        await place()


async def commit_staged_blob(
    meta: MetadataStore,
    store: BlobStore,
    staging_id: str,
    digest: Digest,
    size: int,
    hold: Hold,
    *,
    synced: bool = False,
    keep_staging: bool = True,
) -> bool:
    """`commit_blob` for bytes in the staging area `staging_id`: they are made durable
    first (unless `synced`: the caller's last append did it), outside the transaction, then
    moved into place in it.

    The staging area stays for the caller to drop, except that with `keep_staging` False a
    store that can (local files with SQLite) deletes it in the commit's own step; returns
    True when it did. When this raises the area may or may not be left: `keep_staging`
    False is only for a caller that drops it after a failed commit anyway (deleting an
    absent area is no error) and never retries from it.

    `hold` runs on SQLite's write thread there (see `MetadataStore.write_at_once`): it may
    only run queries of its transaction.

    Raises StagingUnknown when the staging area is gone, and whatever `hold` raises.
    """
    if not synced:
        await store.sync_staging(staging_id)
    if meta.db.writes_in_thread and isinstance(store, BlockingStagingCommit):
        # SQLite and local files: the transaction, the bytes' move included, in one step on
        # the database's write thread. Through `writing()` each of its five statements and
        # the move is a hop between the loop and a thread, and the file-wide write lock is
        # held across all of them.
        blocking = store

        async def in_one_step(q: Transaction) -> None:
            await q.record_blob(digest, size)
            await hold(q)
            blocking.commit_staging_blocking(staging_id, digest, keep_staging=keep_staging)

        await meta.write_at_once(in_one_step)
        return not keep_staging

    async def place() -> None:
        await store.commit_staging(staging_id, digest)

    await commit_blob(meta, digest, size, hold, place)
    return False
