"""The reference ceiling of an import: a plain aiohttp download of the same blobs.

Run by ``bench/imports.py`` as a subprocess (its CPU is then its own), against the source
docker-registry of the import benchmark::

    python -m bench.import_ceiling URL REPO CONCURRENCY MODE OUTDIR DIGEST...

- ``discard``: GET every blob (``CONCURRENCY`` at a time, ``iter_any``) and drop the bytes:
  what the upstream and one event loop deliver, with no work on the bytes.
- ``store``: the same, each blob hashed (sha256) and written to a file under ``OUTDIR`` in
  a worker thread, one 1 MiB batch per hop, as an import does, with no database, no fsync,
  no job bookkeeping: what the transfer itself costs in Python on this machine.
- ``threads``: no event loop at all: one thread per blob (``CONCURRENCY`` at a time) sends
  a plain HTTP/1.1 GET on a blocking socket and receives into one reused 1 MiB buffer,
  hashing and writing from it: no bytes object per read, no HTTP parser in Python, the GIL
  taken a few times per MiB. What moving the body off the loop could buy (plain HTTP with
  Content-Length only; a sketch to measure, not a client).

Prints one JSON object: ``seconds`` (wall), ``cpu_s`` (this process, all threads),
``loop_cpu_s`` (the event-loop thread alone), ``bytes``. Exits non-zero when a digest does
not match.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import resource
import socket
import sys
import time
import urllib.parse
from pathlib import Path

import aiohttp

BATCH_BYTES = 1 << 20


async def _one(
    session: aiohttp.ClientSession, url: str, digest: str, mode: str, outdir: Path
) -> int:
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status}")
        if mode == "discard":
            total = 0
            async for chunk in response.content.iter_any():
                total += len(chunk)
            return total
        hasher = hashlib.sha256()
        loop = asyncio.get_running_loop()
        path = outdir / digest.partition(":")[2]
        handle = await loop.run_in_executor(None, path.open, "wb")

        def write(parts: list[bytes]) -> None:
            for part in parts:
                handle.write(part)
                hasher.update(part)

        pending: asyncio.Future[None] | None = None
        batch: list[bytes] = []
        batch_bytes = total = 0
        try:
            async for chunk in response.content.iter_any():
                batch.append(chunk)
                batch_bytes += len(chunk)
                total += len(chunk)
                if batch_bytes >= BATCH_BYTES:
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(None, write, batch)
                    batch, batch_bytes = [], 0
            if pending is not None:
                await pending
            if batch:
                await loop.run_in_executor(None, write, batch)
        finally:
            await loop.run_in_executor(None, handle.close)
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise RuntimeError(f"blob {digest} hashed to sha256:{hasher.hexdigest()}")
        return total


async def _download(
    base: str, repo: str, concurrency: int, mode: str, outdir: Path, digests: list[str]
) -> tuple[int, float]:
    gate = asyncio.Semaphore(concurrency)
    loop_cpu0 = time.thread_time()

    async def one(session: aiohttp.ClientSession, digest: str) -> int:
        async with gate:
            return await _one(session, f"{base}/v2/{repo}/blobs/{digest}", digest, mode, outdir)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sizes = await asyncio.gather(*(one(session, d) for d in digests))
    return sum(sizes), time.thread_time() - loop_cpu0


def _thread_get(host: str, port: int, path: str, digest: str, outdir: Path) -> int:
    """One blob over a blocking socket: headers parsed by hand, the body received into one
    reused buffer, hashed and written from it."""
    hasher = hashlib.sha256()
    buffer = bytearray(BATCH_BYTES)
    view = memoryview(buffer)
    with socket.create_connection((host, port)) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: identity\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(65536)
            if not got:
                raise RuntimeError(f"GET {path}: the connection closed in the headers")
            head += got
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            raise RuntimeError(f"GET {path}: {lines[0]}")
        length = next(
            int(line.partition(":")[2])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        total = 0
        with (outdir / digest.partition(":")[2]).open("wb") as handle:
            if rest:
                handle.write(rest)
                hasher.update(rest)
                total += len(rest)
            while total < length:
                count = sock.recv_into(view, min(len(view), length - total))
                if count == 0:
                    raise RuntimeError(f"GET {path}: body ended after {total} of {length}")
                handle.write(view[:count])
                hasher.update(view[:count])
                total += count
    if f"sha256:{hasher.hexdigest()}" != digest:
        raise RuntimeError(f"blob {digest} hashed to sha256:{hasher.hexdigest()}")
    return total


def _threads(base: str, repo: str, concurrency: int, outdir: Path, digests: list[str]) -> int:
    url = urllib.parse.urlsplit(base)
    assert url.hostname is not None and url.port is not None
    host, port = url.hostname, url.port
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        sizes = pool.map(
            lambda d: _thread_get(host, port, f"/v2/{repo}/blobs/{d}", d, outdir), digests
        )
        return sum(sizes)


def main(argv: list[str]) -> None:
    base, repo, concurrency, mode, outdir, *digests = argv
    if mode not in ("discard", "store", "threads"):
        raise SystemExit(f"mode must be discard, store or threads, not {mode!r}")
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    if mode == "threads":
        loop_cpu = 0.0
        size = _threads(base.rstrip("/"), repo, int(concurrency), Path(outdir), digests)
    else:
        size, loop_cpu = asyncio.run(
            _download(base.rstrip("/"), repo, int(concurrency), mode, Path(outdir), digests)
        )
    seconds = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "loop_cpu_s": loop_cpu, "bytes": size}))


if __name__ == "__main__":
    main(sys.argv[1:])
