"""Which S3 client for the object-store driver: obstore against aiobotocore, by measurement.

    python bench/object_clients.py [--mib 256] [--runs 3]

Starts SeaweedFS (tests/peers/object_stores.py) on free loopback ports and, with each
client importable in this Python (obstore is a dependency; aiobotocore is not, install it
into a scratch venv to compare), PUTs MIB of bytes as a streamed multipart upload (8 MiB
parts, 4 in flight) and GETs them back as a stream. Prints the median wall time as MiB/s
and this process's CPU seconds per step. SeaweedFS shares the cores, so the absolute
figures are a floor; the CPU column is what the registry process pays.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.object_stores import SeaweedFS

PART = 8 << 20
CHUNK = 1 << 20


async def _chunks(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


async def obstore_put_get(weed: SeaweedFS, key: str, mib: int, block: bytes) -> Steps:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        weed.bucket,
        config={
            "endpoint": weed.endpoint,
            "virtual_hosted_style_request": "false",
            "region": "us-east-1",
            "access_key_id": weed.environ["AWS_ACCESS_KEY_ID"],
            "secret_access_key": weed.environ["AWS_SECRET_ACCESS_KEY"],
        },
        client_options={"allow_http": True},
    )

    async def put() -> None:
        await obstore.put_async(store, key, _chunks(block, mib), chunk_size=PART, max_concurrency=4)

    async def get() -> None:
        result = await obstore.get_async(store, key)
        async for _ in result.stream(min_chunk_size=CHUNK):
            pass

    return {"put": put, "get": get}


async def aiobotocore_put_get(weed: SeaweedFS, key: str, mib: int, block: bytes) -> Steps:
    from aiobotocore.session import get_session

    session = get_session()

    def client():  # type: ignore[no-untyped-def]
        return session.create_client(
            "s3",
            endpoint_url=weed.endpoint,
            region_name="us-east-1",
            aws_access_key_id=weed.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=weed.environ["AWS_SECRET_ACCESS_KEY"],
        )

    async def put() -> None:
        async with client() as s3:
            upload = await s3.create_multipart_upload(Bucket=weed.bucket, Key=key)
            limit = asyncio.Semaphore(4)
            parts: list[dict[str, object]] = []

            async def one(number: int, body: bytes) -> None:
                async with limit:
                    done = await s3.upload_part(
                        Bucket=weed.bucket,
                        Key=key,
                        UploadId=upload["UploadId"],
                        PartNumber=number,
                        Body=body,
                    )
                parts.append({"PartNumber": number, "ETag": done["ETag"]})

            tasks = []
            buffer: list[bytes] = []
            number = 0
            async for chunk in _chunks(block, mib):
                buffer.append(chunk)
                if sum(map(len, buffer)) >= PART:
                    number += 1
                    await limit.acquire()  # back-pressure: at most 4 parts buffered
                    limit.release()
                    tasks.append(asyncio.create_task(one(number, b"".join(buffer))))
                    buffer = []
            if buffer:
                number += 1
                tasks.append(asyncio.create_task(one(number, b"".join(buffer))))
            await asyncio.gather(*tasks)
            parts.sort(key=lambda p: p["PartNumber"])  # type: ignore[arg-type, return-value]
            await s3.complete_multipart_upload(
                Bucket=weed.bucket,
                Key=key,
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": parts},
            )

    async def get() -> None:
        async with client() as s3:
            answer = await s3.get_object(Bucket=weed.bucket, Key=key)
            async with answer["Body"] as body:
                while await body.read(CHUNK):
                    pass

    return {"put": put, "get": get}


Steps = dict[str, Callable[[], Awaitable[None]]]
CLIENTS: dict[str, tuple[str, Callable[[SeaweedFS, str, int, bytes], Awaitable[Steps]]]] = {
    "obstore": ("obstore", obstore_put_get),
    "aiobotocore": ("aiobotocore", aiobotocore_put_get),
}


async def run(mib: int, runs: int) -> None:
    block = os.urandom(CHUNK)
    with SeaweedFS() as weed:
        for name, (module, make) in CLIENTS.items():
            if importlib.util.find_spec(module) is None:
                print(f"{name:12} not installed here: skipped")
                continue
            steps = await make(weed, f"bench/{name}", mib, block)
            for step, action in steps.items():
                walls, cpus = [], []
                for _ in range(runs):
                    wall, cpu = time.perf_counter(), time.process_time()
                    await action()
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                wall, cpu = statistics.median(walls), statistics.median(cpus)
                print(f"{name:12} {step:4} {mib / wall:8.1f} MiB/s  {cpu:6.2f} CPU s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="object size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs per step (median)")
    args = parser.parse_args()
    print(f"S3 clients on SeaweedFS, {args.mib} MiB, nproc={os.cpu_count()}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    asyncio.run(run(args.mib, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
