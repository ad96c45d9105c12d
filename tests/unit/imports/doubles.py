"""Test doubles for the import engine's ports: an in-memory BlobWriter, a recording sleep,
an in-memory ImageSource and an in-memory ImageSink."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from transship.imports.errors import ImportFailure, Step, tag_exists_failure
from transship.imports.model import ImportRequest
from transship.imports.plan import ImportPlan
from transship.imports.ports import BlobWriter, FetchedManifest, LinkScope
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

    async def get_manifest(self, reference: Digest | str) -> FetchedManifest:
        self.requests.append(str(reference))
        digest = self.tags.get(str(reference), str(reference))
        if digest not in self.manifests:
            raise ImportFailure(
                "ManifestUnknown", f"no {reference}", step=Step.PLAN, obj=str(reference)
            )
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


class MemoryPendingBlob(MemoryWriter):
    """A PendingBlob of `MemorySink`: verified on commit, then held and pinned to the job."""

    def __init__(self, sink: MemorySink, job_id: str, digest: Digest, size: int) -> None:
        super().__init__(digest.algorithm)
        self._sink = sink
        self._job_id = job_id
        self.expected = digest
        self.size = size

    async def commit(self) -> None:
        if self.offset != self.size:
            raise ImportFailure(
                "SIZE_INVALID", "wrong size", step=Step.COPY, obj=str(self.expected)
            )
        if self.digest != self.expected:
            raise ImportFailure(
                "DIGEST_INVALID", "wrong digest", step=Step.COPY, obj=str(self.expected)
            )
        self._sink.blobs[str(self.expected)] = bytes(self.data)
        self._sink.pins.setdefault(self._job_id, set()).add(str(self.expected))

    async def discard(self) -> None:
        self.data.clear()


class MemorySink:
    """An ImageSink over dicts, for engine tests that need no database: blobs held by the
    service, blobs linked per (registry id, repository), pins per job, tags."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.links: dict[tuple[int, str], set[str]] = {}
        self.pins: dict[str, set[str]] = {}
        self.tags: dict[tuple[int, str, str], Digest] = {}
        self.manifests: dict[tuple[int, str], list[Digest]] = {}

    async def check_targets(
        self, registry_id: int, request: ImportRequest, *, resumed: bool = False
    ) -> None:
        if request.force or resumed:
            return
        for target in request.target_tags:
            if (registry_id, target.repository, target.tag) in self.tags:
                raise tag_exists_failure(target)

    def _may_link(self, scope: LinkScope, digest: str) -> bool:
        if digest in self.pins.get(scope.job_id, set()):
            return True
        in_target = any(
            digest in linked
            for (registry_id, _), linked in self.links.items()
            if registry_id == scope.registry_id
        )
        return in_target or (
            scope.source is not None and digest in self.links.get(scope.source, set())
        )

    async def pin_present(self, scope: LinkScope, digests: list[Digest]) -> set[Digest]:
        present = {d for d in digests if str(d) in self.blobs and self._may_link(scope, str(d))}
        self.pins.setdefault(scope.job_id, set()).update(map(str, present))
        return present

    async def pin_existing(self, scope: LinkScope, digest: Digest) -> bool:
        return bool(await self.pin_present(scope, [digest]))

    async def pin_fetched(self, job_id: str, digest: Digest) -> bool:
        if str(digest) not in self.blobs:
            return False
        self.pins.setdefault(job_id, set()).add(str(digest))
        return True

    def pending_blob(self, job_id: str, digest: Digest, size: int) -> MemoryPendingBlob:
        return MemoryPendingBlob(self, job_id, digest, size)

    async def commit(
        self, registry_id: int, plan: ImportPlan, request: ImportRequest, *, resumed: bool = False
    ) -> None:
        for target in request.target_tags:
            current = self.tags.get((registry_id, target.repository, target.tag))
            same = resumed and current == plan.root.digest
            if not (current is None or request.force or same):
                raise tag_exists_failure(target, Step.COMMIT)
        for repository in request.target_repositories:
            linked = self.links.setdefault((registry_id, repository), set())
            for blob in plan.blobs:
                if str(blob.digest) not in self.blobs:
                    raise ImportFailure(
                        "BlobMissing", "gone", step=Step.COMMIT, obj=str(blob.digest)
                    )
                linked.add(str(blob.digest))
            self.manifests[(registry_id, repository)] = [m.digest for m in plan.manifests]
        for target in request.target_tags:
            self.tags[(registry_id, target.repository, target.tag)] = plan.root.digest
