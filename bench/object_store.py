"""The object-store driver on SeaweedFS: stage, commit and read one large blob.

    python bench/object_store.py [--mib 256]

Starts SeaweedFS (tests/peers/object_stores.py) on free loopback ports, then through
`ObjectBlobStore` (obstore underneath) appends MIB of random bytes in 1 MiB chunks (8 MiB
parts, hashed as they go), commits them (a multipart upload fed from the parts) and reads
the blob back. Prints MiB/s and this process's CPU seconds for each step. SeaweedFS runs
on the same cores, so the figures are a floor for a separate store.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.peers.object_stores import SeaweedFS
from transship.oci.digest import Digest
from transship.storage.location import open_object_store, parse_storage_url

CHUNK = 1 << 20


async def _chunks(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


async def run(mib: int) -> None:
    with SeaweedFS() as weed:
        location = parse_storage_url(f"s3://{weed.bucket}/bench?endpoint={weed.endpoint}")
        store = open_object_store(location, weed.environ)
        block = os.urandom(CHUNK)  # repeated: content does not matter to the store
        upload_id = uuid.uuid4().hex
        hasher = hashlib.sha256()
        await store.create_staging(upload_id)

        async def timed(name: str, step: object) -> None:
            wall, cpu = time.perf_counter(), time.process_time()
            await step  # type: ignore[misc]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{name:8} {mib / wall:8.1f} MiB/s  {cpu:6.2f} CPU s  ({wall:.2f} s)")

        await timed("append", store.append_staging(upload_id, _chunks(block, mib), hasher))
        digest = Digest.parse(f"sha256:{hasher.hexdigest()}")
        await timed("commit", store.commit_staging(upload_id, digest))

        async def read() -> None:
            async for _ in store.read(digest):
                pass

        await timed("read", read())
        await store.delete_staging(upload_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="blob size in MiB")
    args = parser.parse_args()
    print(f"obstore on SeaweedFS, {args.mib} MiB, nproc={os.cpu_count()}")
    asyncio.run(run(args.mib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
