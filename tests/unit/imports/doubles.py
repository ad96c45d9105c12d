"""Test doubles for the import engine's ports: an in-memory BlobWriter, a recording sleep,
and an in-memory ImageSource."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from transship.imports.errors import ImportFailure, Step
from transship.imports.ports import BlobWriter, FetchedManifest
from transship.oci.digest import Digest, new_hasher


class MemoryWriter:
    """A BlobWriter that keeps bytes in memory and hashes exactly what it keeps."""

    def __init__(self, algorithm: str = "sha256", prefill: bytes = b"") -> None:
        self.algorithm = algorithm
        self.data = bytearray()
        self._hasher = new_hasher(algorithm)
        self.resets = 0
        self.append_offsets: list[int] = []
        self.chunk_sizes: list[int] = []
        self.on_progress: Callable[[int], None] | None = None
        if prefill:
            self.data += prefill
            self._hasher.update(prefill)

    @property
    def offset(self) -> int:
        return len(self.data)

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        self.append_offsets.append(self.offset)
        async for chunk in chunks:
            self.data += chunk
            self._hasher.update(chunk)
            self.chunk_sizes.append(len(chunk))
            if self.on_progress is not None:
                self.on_progress(self.offset)

    async def reset(self) -> None:
        self.data.clear()
        self._hasher = new_hasher(self.algorithm)
        self.resets += 1

    @property
    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hasher.hexdigest())


class Sleeps:
    """An injected sleep that records delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemorySource:
    """An ImageSource over dicts; counts blob fetches and can corrupt one blob."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}
        self.blobs: dict[str, bytes] = {}
        self.fetches: list[str] = []
        self.corrupt: set[str] = set()
        self.gate: asyncio.Event | None = None
        # Every manifest reference asked for, and bytes answered instead of a digest's own
        # (a source that does not verify what it serves).
        self.requests: list[str] = []
        self.swapped: dict[str, bytes] = {}

    def blob(self, data: bytes) -> dict[str, Any]:
        self.blobs[sha(data)] = data
        return {"mediaType": "application/octet-stream", "digest": sha(data), "size": len(data)}

    def manifest(
        self, document: dict[str, Any], media_type: str, tag: str | None = None
    ) -> dict[str, Any]:
        content = json.dumps(document).encode()
        self.manifests[sha(content)] = (content, media_type)
        if tag:
            self.tags[tag] = sha(content)
        return {"mediaType": media_type, "digest": sha(content), "size": len(content)}

    def image(
        self, seed: str, tag: str | None = None, extra_layers: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        config = self.blob(
            json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
        )
        layer = self.blob(f"layer {seed}".encode() * 50)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer, *(extra_layers or [])],
        }
        return self.manifest(document, OCI_MANIFEST, tag)

    def index(self, children: list[dict[str, Any]], tag: str | None = None) -> dict[str, Any]:
        return self.manifest(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, OCI_INDEX, tag
        )

    async def get_manifest(self, reference: str) -> FetchedManifest:
        self.requests.append(reference)
        digest = self.tags.get(reference, reference)
        if digest not in self.manifests:
            raise ImportFailure("ManifestUnknown", f"no {reference}", step=Step.PLAN, obj=reference)
        content, media_type = self.manifests[digest]
        return FetchedManifest(self.swapped.get(digest, content), media_type, Digest.parse(digest))

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        self.fetches.append(str(digest))
        if self.gate is not None:
            await self.gate.wait()
        data = self.blobs[str(digest)]
        if str(digest) in self.corrupt:
            data = bytes(len(data))

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await writer.append(chunks())
