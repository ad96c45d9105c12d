"""Which of many blobs a store holds, asked at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from transship.oci.digest import Digest
from transship.storage.base import BlobStore, LocalBlobFiles


async def held_digests(store: BlobStore, digests: Sequence[Digest]) -> list[Digest]:
    """Those of `digests` whose committed bytes `store` holds, in their order. Local files
    are looked at in one hop to a thread, not one per blob; other stores are asked blob by
    blob (`BlobStore.size`). Raises what the store raises."""
    if isinstance(store, LocalBlobFiles):
        local = store
        return await asyncio.to_thread(lambda: [d for d in digests if local.local_path(d).exists()])
    return [d for d in digests if await store.size(d) is not None]
