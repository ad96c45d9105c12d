"""Manifests already fetched and verified for an import that has not run yet.

A pull through a cache rule fetches the image's manifests itself (the client is waiting
for them), then queues an import job to copy the blobs. The job reads the manifests from
this shelf instead of spending upstream pulls on them again. The shelf belongs to one
process; the manifests are queued with the job too (`job_manifests`), where a job claimed
by another process finds them (`MetadataStore.held_manifest`)."""

from __future__ import annotations

from collections.abc import Iterable

from transship.imports.ports import FetchedManifest
from transship.oci.digest import Digest


class ManifestShelf:
    """Verified manifests by (target registry id, digest), put and taken by their owner."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, Digest], tuple[FetchedManifest, int]] = {}

    def put(self, registry_id: int, manifests: Iterable[FetchedManifest]) -> None:
        """Hold `manifests` for imports into `registry_id` until `drop`ped (as many times
        as they are put: two fills may share a child manifest)."""
        for manifest in manifests:
            key = (registry_id, manifest.digest)
            held = self._held.get(key)
            self._held[key] = (manifest, 1 if held is None else held[1] + 1)

    def drop(self, registry_id: int, digests: Iterable[Digest]) -> None:
        """Release one `put` of each of `digests`."""
        for digest in digests:
            key = (registry_id, digest)
            held = self._held.get(key)
            if held is None:
                continue
            if held[1] <= 1:
                del self._held[key]
            else:
                self._held[key] = (held[0], held[1] - 1)

    def get(self, registry_id: int, digest: Digest) -> FetchedManifest | None:
        held = self._held.get((registry_id, digest))
        return None if held is None else held[0]

    def __len__(self) -> int:
        return len(self._held)
