"""What an import copies and where to: validated, serialisable, free of secrets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from transship.oci.digest import Digest
from transship.oci.platforms import PlatformSpec
from transship.oci.reference import parse_tag_or_digest


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """The source image. Exactly one of `host` (a remote registry) and `registry_id` (a
    registry of this service) is set."""

    host: str | None
    registry_id: int | None
    repository: str
    reference: Digest | str  # a digest, or a tag

    @property
    def is_local(self) -> bool:
        return self.registry_id is not None

    @property
    def is_digest(self) -> bool:
        return isinstance(self.reference, Digest)

    def describe(self, local_name: str | None = None) -> str:
        where = (
            self.host if self.host is not None else (local_name or f"registry #{self.registry_id}")
        )
        separator = "@" if self.is_digest else ":"
        return f"{where}/{self.repository}{separator}{self.reference}"


@dataclass(frozen=True, slots=True)
class TargetTag:
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


class PlatformMode(StrEnum):
    """How a platform subset of an index lands: `sparse` stores the source index
    byte-for-byte with only the selected children present; `rewritten` stores a new index
    listing only them."""

    SPARSE = "sparse"
    REWRITTEN = "rewritten"


class BlobOrder(StrEnum):
    """In which order an import fetches its blobs.

    `largest_first` (every import asked for through the API): the transfers end together
    instead of one big layer, started last, running on its own at the end.
    `image_by_image` (a pull through a cache rule): the blobs of the index's first image
    before those of its second, and so on, the largest of each image first, because a client
    pulling the image waits for each of its images in turn and follows the import's fetches
    as they are written."""

    LARGEST_FIRST = "largestFirst"
    IMAGE_BY_IMAGE = "imageByImage"


@dataclass(frozen=True, slots=True)
class PlatformSubset:
    """A Transship extension of importImage: copy only these platforms of an index."""

    platforms: tuple[PlatformSpec, ...]
    mode: PlatformMode = PlatformMode.SPARSE
    include_attestations: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "platforms": [str(p) for p in self.platforms],
            "platformMode": self.mode.value,
            "includeAttestations": self.include_attestations,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlatformSubset:
        return cls(
            tuple(PlatformSpec.parse(p) for p in data["platforms"]),
            PlatformMode(data.get("platformMode", PlatformMode.SPARSE.value)),
            bool(data.get("includeAttestations", False)),
        )


@dataclass(frozen=True, slots=True)
class ReferrerSelection:
    """A Transship extension of importImage: also copy what refers to every copied
    manifest (OCI referrers, the fallback tag scheme, cosign's tags), recursively.
    `artifact_types` empty: every referrer; else only those of these artifact types."""

    artifact_types: tuple[str, ...] = ()

    @property
    def wanted(self) -> frozenset[str] | None:
        """The artifact-type filter, None when every referrer is wanted."""
        return frozenset(self.artifact_types) if self.artifact_types else None

    def to_dict(self) -> dict[str, Any]:
        return {"artifactTypes": list(self.artifact_types)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferrerSelection:
        return cls(tuple(data.get("artifactTypes") or ()))


@dataclass(frozen=True, slots=True)
class ImportRequest:
    source: SourceSpec
    target_tags: tuple[TargetTag, ...]
    untagged_repositories: tuple[str, ...]
    force: bool
    # None: every platform (as `az acr import`).
    platform_subset: PlatformSubset | None = None
    # None: no referrers (as `az acr import`).
    referrers: ReferrerSelection | None = None
    blob_order: BlobOrder = BlobOrder.LARGEST_FIRST

    @property
    def target_repositories(self) -> tuple[str, ...]:
        """Every repository the image lands in, in a stable order without repeats."""
        seen: dict[str, None] = {}
        for target in self.target_tags:
            seen.setdefault(target.repository)
        for repository in self.untagged_repositories:
            seen.setdefault(repository)
        return tuple(seen)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "source": {
                "host": self.source.host,
                "registryId": self.source.registry_id,
                "repository": self.source.repository,
                "reference": str(self.source.reference),
            },
            "targetTags": [[t.repository, t.tag] for t in self.target_tags],
            "untaggedTargetRepositories": list(self.untagged_repositories),
            "force": self.force,
        }
        if self.platform_subset is not None:
            data["platformSubset"] = self.platform_subset.to_dict()
        if self.referrers is not None:
            data["referrers"] = self.referrers.to_dict()
        if self.blob_order is not BlobOrder.LARGEST_FIRST:
            data["blobOrder"] = self.blob_order.value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ImportRequest:
        data: dict[str, Any] = json.loads(text)
        source = data["source"]
        return cls(
            source=SourceSpec(
                source["host"],
                source["registryId"],
                source["repository"],
                parse_tag_or_digest(source["reference"]),
            ),
            target_tags=tuple(TargetTag(repo, tag) for repo, tag in data["targetTags"]),
            untagged_repositories=tuple(data["untaggedTargetRepositories"]),
            force=bool(data["force"]),
            # Jobs stored before platform subsets existed lack the key: every platform.
            platform_subset=(
                PlatformSubset.from_dict(data["platformSubset"])
                if data.get("platformSubset")
                else None
            ),
            # Likewise for jobs stored before referrers could be imported: none.
            referrers=(
                ReferrerSelection.from_dict(data["referrers"])
                if data.get("referrers") is not None
                else None
            ),
            blob_order=BlobOrder(data.get("blobOrder", BlobOrder.LARGEST_FIRST.value)),
        )


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What a succeeded import copied besides the image, kept on its job: the referrer
    manifests (with includeReferrers) and cosign's tags it set on them."""

    referrers: tuple[Digest, ...] = ()
    referrer_tags: tuple[tuple[str, Digest], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "referrers": [str(d) for d in self.referrers],
                "referrerTags": [[tag, str(d)] for tag, d in self.referrer_tags],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ImportResult:
        data: dict[str, Any] = json.loads(text)
        return cls(
            tuple(Digest.parse(d) for d in data.get("referrers") or ()),
            tuple((tag, Digest.parse(d)) for tag, d in data.get("referrerTags") or ()),
        )
