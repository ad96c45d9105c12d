"""Which object-store client for the driver, by measurement: obstore against aiobotocore
(S3, on SeaweedFS) and against azure-storage-blob (Azure Blob, on Azurite).

    python bench/object_clients.py [--service s3|azure] [--mib 256] [--runs 3]

Starts the service (tests/peers/object_stores.py) on free loopback ports and, with each
client importable in this Python (obstore is a dependency; aiobotocore and
azure-storage-blob are not: `pip install --target DIR aiobotocore azure-storage-blob` and
run with `PYTHONPATH=DIR` to compare), PUTs MIB of bytes as a streamed upload (S3: a
multipart upload of 8 MiB parts, 4 in flight; Azure: 8 MiB blocks, 4 in flight, then the
block list) and GETs them back as a stream. Prints the median wall time as MiB/s and this
process's CPU seconds per step. The service shares the cores, so the absolute figures are
a floor; the CPU column is what the registry process pays.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.object_stores import Azurite, SeaweedFS

PART = 8 << 20
CHUNK = 1 << 20


async def _chunks(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


def _obstore_steps(store: Any, key: str, mib: int, block: bytes) -> Steps:
    import obstore

    async def put() -> None:
        await obstore.put_async(store, key, _chunks(block, mib), chunk_size=PART, max_concurrency=4)

    async def get() -> None:
        result = await obstore.get_async(store, key)
        async for _ in result.stream(min_chunk_size=CHUNK):
            pass

    return {"put": put, "get": get}


async def obstore_put_get(weed: SeaweedFS, key: str, mib: int, block: bytes) -> Steps:
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
    return _obstore_steps(store, key, mib, block)


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


async def obstore_azure_put_get(azurite: Azurite, key: str, mib: int, block: bytes) -> Steps:
    from obstore.store import AzureStore

    store = AzureStore(
        azurite.new_container("obstore"),
        account_name="devstoreaccount1",
        account_key=azurite.environ["AZURE_STORAGE_ACCOUNT_KEY"],
        endpoint=azurite.endpoint,
        client_options={"allow_http": True},
    )
    return _obstore_steps(store, key, mib, block)


async def azure_blob_put_get(azurite: Azurite, key: str, mib: int, block: bytes) -> Steps:
    from azure.storage.blob.aio import BlobServiceClient

    container = azurite.new_container("sdk")
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={azurite.environ['AZURE_STORAGE_ACCOUNT_KEY']};"
        f"BlobEndpoint={azurite.endpoint};"
    )

    def client():  # type: ignore[no-untyped-def]
        return BlobServiceClient.from_connection_string(
            connection, max_block_size=PART, max_single_put_size=PART
        )

    async def put() -> None:
        async with client() as service:
            blob = service.get_blob_client(container, key)
            await blob.upload_blob(_chunks(block, mib), overwrite=True, max_concurrency=4)

    async def get() -> None:
        async with client() as service:
            blob = service.get_blob_client(container, key)
            stream = await blob.download_blob()
            async for _ in stream.chunks():
                pass

    return {"put": put, "get": get}


Steps = dict[str, Callable[[], Awaitable[None]]]
Maker = Callable[[Any, str, int, bytes], Awaitable[Steps]]
CLIENTS: dict[str, dict[str, tuple[str, Maker]]] = {
    "s3": {
        "obstore": ("obstore", obstore_put_get),
        "aiobotocore": ("aiobotocore", aiobotocore_put_get),
    },
    "azure": {
        "obstore": ("obstore", obstore_azure_put_get),
        "azure-storage-blob": ("azure.storage.blob", azure_blob_put_get),
    },
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is absent
        return False


async def run(service: str, mib: int, runs: int) -> None:
    block = os.urandom(CHUNK)
    with SeaweedFS() if service == "s3" else Azurite() as peer:
        for name, (module, make) in CLIENTS[service].items():
            if not _installed(module):
                print(f"{name:18} not installed here: skipped")
                continue
            steps = await make(peer, f"bench/{name}", mib, block)
            for step, action in steps.items():
                walls, cpus = [], []
                for _ in range(runs):
                    wall, cpu = time.perf_counter(), time.process_time()
                    await action()
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                wall, cpu = statistics.median(walls), statistics.median(cpus)
                print(f"{name:18} {step:4} {mib / wall:8.1f} MiB/s  {cpu:6.2f} CPU s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", choices=sorted(CLIENTS), default="s3")
    parser.add_argument("--mib", type=int, default=256, help="object size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs per step (median)")
    args = parser.parse_args()
    where = "S3 clients on SeaweedFS" if args.service == "s3" else "Azure clients on Azurite"
    print(f"{where}, {args.mib} MiB, nproc={os.cpu_count()}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    asyncio.run(run(args.service, args.mib, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
