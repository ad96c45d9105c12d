"""Spend upstream pulls only on manifests the target registry does not hold yet.

Registries that ration pulls (Docker Hub) count manifest GETs, not HEADs. `HeldFirstSource`
puts the target registry in front of an upstream: a tag is resolved with a HEAD (its
Docker-Content-Digest), and a manifest whose digest the target registry already holds is
read from there, so a re-import of an unchanged image costs one HEAD and no pull. A manifest
read locally is the digest's bytes (checked again here), so it is the same one the upstream
would have sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from transship.imports.ports import BlobWriter, FetchedManifest
from transship.imports.upstream import UpstreamClient
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor

# The target registry's copy of a manifest, by digest, or None.
HeldLookup = Callable[[Digest], Awaitable[FetchedManifest | None]]


class HeldFirstSource:
    """An ImageSource over `upstream` that asks `held` first (see the module docstring).
    `served_locally` counts the manifests read from `held`."""

    def __init__(self, upstream: UpstreamClient, held: HeldLookup) -> None:
        self._upstream = upstream
        self._held = held
        self.served_locally = 0

    async def get_manifest(self, reference: Digest | str) -> FetchedManifest:
        """As `UpstreamClient.get_manifest`; raises what it raises (a HEAD that answers 404
        is ManifestUnknown at once)."""
        digest = (
            reference
            if isinstance(reference, Digest)
            else await self._upstream.head_manifest(reference)
        )
        if digest is not None:
            held = await self._held(digest)
            if held is not None and Digest.of(held.content, digest.algorithm) == digest:
                self.served_locally += 1
                return FetchedManifest(held.content, held.media_type, digest)
        return await self._upstream.get_manifest(reference)

    async def head_manifest(self, reference: str) -> Digest | None:
        """As `UpstreamClient.head_manifest` (scheduled sync compares tags by HEAD)."""
        return await self._upstream.head_manifest(reference)

    async def list_tags(self, page_size: int | None = None) -> tuple[str, ...]:
        """As `UpstreamClient.list_tags` (scheduled sync lists what to compare)."""
        return await self._upstream.list_tags(page_size)

    async def head_blob(self, digest: Digest) -> int | None:
        """The blob's size by one HEAD (see `UpstreamClient.head_blob`), or None."""
        return await self._upstream.head_blob(digest)

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        await self._upstream.fetch_blob(digest, size, writer)

    async def list_referrers(
        self, subject: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...] | None:
        """As `UpstreamClient.list_referrers`: always asked upstream (a referrer may have
        been added since the target registry got its copy)."""
        return await self._upstream.list_referrers(subject, artifact_type)
