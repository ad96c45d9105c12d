"""What an import copies and where to: validated, serialisable, free of secrets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from transship.oci.digest import Digest
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


@dataclass(frozen=True, slots=True)
class ImportRequest:
    source: SourceSpec
    target_tags: tuple[TargetTag, ...]
    untagged_repositories: tuple[str, ...]
    force: bool

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
        return json.dumps(
            {
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
        )

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
        )
