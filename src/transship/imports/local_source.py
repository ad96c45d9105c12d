"""A registry of this service as an import source: manifests from metadata, blobs already
in the shared store (so they are linked, never copied)."""

from __future__ import annotations

from transship.imports.errors import ImportFailure, Step
from transship.imports.ports import BlobWriter, FetchedManifest
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor
from transship.storage.base import BlobStore


class LocalSource:
    def __init__(
        self, meta: MetadataStore, store: BlobStore, registry: RegistryRecord, repository: str
    ) -> None:
        self._meta = meta
        self._store = store
        self._registry = registry
        self._repository = repository

    async def get_manifest(self, reference: Digest | str) -> FetchedManifest:
        by_digest = isinstance(reference, Digest)
        async with self._meta.reading() as q:
            record = await q.manifest(self._registry.id, self._repository, reference)
        if record is None:
            raise ImportFailure(
                "ManifestUnknown",
                f"manifest {self._repository}{'@' if by_digest else ':'}{reference} "
                f"is not in registry {self._registry.name}",
                step=Step.PLAN,
                obj=f"{self._repository}:{reference}",
                upstream_status=404,
            )
        if not record.readable:
            # Image locking: readEnabled false refuses every pull, an import's included.
            raise ImportFailure(
                "OperationDisallowed",
                f"{self._repository}{'@' if by_digest else ':'}{reference} in registry "
                f"{self._registry.name} is locked (readEnabled is false): the operation is "
                "disallowed on this registry, repository or image",
                step=Step.PLAN,
                obj=f"{self._repository}:{reference}",
            )
        return FetchedManifest(record.content, record.media_type, record.digest)

    async def list_referrers(
        self, subject: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...]:
        """The manifests of the source repository whose subject is `subject` (this service
        always answers the referrers API)."""
        async with self._meta.reading() as q:
            found = await q.referrers(self._registry.id, self._repository, subject, artifact_type)
        return tuple(
            Descriptor(item.media_type, item.digest, item.size, artifact_type=item.artifact_type)
            for item in found
        )

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        """Only reached when the shared store lost a blob the source still lists."""
        async with self._meta.reading() as q:
            visible = await q.repository_blob_size(self._registry.id, self._repository, digest)
        if visible is None or await self._store.size(digest) is None:
            raise ImportFailure(
                "BlobUnknown",
                f"blob {digest} is not available in {self._registry.name}/{self._repository}",
                step=Step.COPY,
                obj=str(digest),
            )
        await writer.reset()
        await writer.append(self._store.read(digest))
