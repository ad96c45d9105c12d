"""Platform subsets of an image index: parse `os/arch[/variant]`, pick an index's children
for a set of platforms (with their buildx attestation manifests), and write the index that
lists only those. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor, ManifestError, ParsedManifest, Platform

# buildx marks the attestation manifests it adds to an index with these annotations; the
# descriptor's platform is unknown/unknown and the digest annotation names the image.
ATTESTATION_TYPE_KEY = "vnd.docker.reference.type"
ATTESTATION_TYPE = "attestation-manifest"
ATTESTATION_SUBJECT_KEY = "vnd.docker.reference.digest"

SOURCE_INDEX_ANNOTATION = "io.transship.import.source-index"
SOURCE_ANNOTATION = "io.transship.import.source"

_COMPONENT = re.compile(r"[a-z0-9][a-z0-9._-]*")
# The variant an arm64 descriptor without one has (as containerd normalises it).
_DEFAULT_VARIANTS = {"arm64": "v8"}


class PlatformSyntaxError(ValueError):
    """A platform string is not `os/arch[/variant]`; the message says why."""


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    """A requested platform. Without a variant it matches every variant of os/arch."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> PlatformSpec:
        """Parse `os/arch` or `os/arch/variant` (lower case, as in image indexes).

        Raises PlatformSyntaxError.
        """
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise PlatformSyntaxError(
                f"{text!r} is not a platform: write os/arch or os/arch/variant, "
                "such as linux/amd64 or linux/arm64/v8"
            )
        for part in parts:
            if not _COMPONENT.fullmatch(part):
                raise PlatformSyntaxError(
                    f"{text!r} is not a platform: {part!r} must be lower-case letters, digits, "
                    "'.', '_' or '-'"
                )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, platform: Platform) -> bool:
        if platform.os != self.os or platform.architecture != self.architecture:
            return False
        if self.variant is None:
            return True
        variant = platform.variant or _DEFAULT_VARIANTS.get(platform.architecture)
        return variant == self.variant

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def is_attestation(descriptor: Descriptor) -> bool:
    """A buildx attestation manifest entry of an index."""
    return dict(descriptor.annotations).get(ATTESTATION_TYPE_KEY) == ATTESTATION_TYPE


def describe_child(descriptor: Descriptor) -> str:
    """What a child of an index is, for people: its platform, or what it attests."""
    if is_attestation(descriptor):
        subject = dict(descriptor.annotations).get(ATTESTATION_SUBJECT_KEY, "?")
        return f"attestation manifest of {subject}"
    if descriptor.platform is None:
        return "no platform"
    return str(descriptor.platform)


@dataclass(frozen=True, slots=True)
class Selection:
    """The children of an index a platform subset keeps, in index order, and the rest."""

    selected: tuple[Descriptor, ...]
    left_out: tuple[Descriptor, ...]


class NoSuchPlatform(ValueError):
    """A requested platform matches no child of the index."""

    def __init__(self, platform: PlatformSpec, offered: tuple[str, ...]) -> None:
        listing = ", ".join(offered) if offered else "no platforms"
        super().__init__(f"the index has no manifest for platform {platform}; it offers {listing}")
        self.platform = platform
        self.offered = offered


def offered_platforms(index: ParsedManifest) -> tuple[str, ...]:
    """The distinct platforms an index lists (attestations excepted), in index order."""
    seen: dict[str, None] = {}
    for child in index.manifests:
        if child.platform is not None and not is_attestation(child):
            seen.setdefault(str(child.platform))
    return tuple(seen)


def select_children(
    index: ParsedManifest, platforms: Iterable[PlatformSpec], *, attestations: bool
) -> Selection:
    """The children of `index` for `platforms`, plus, with `attestations`, the attestation
    manifests whose subject is one of them. Raises NoSuchPlatform for a platform no child
    matches (attestation entries, whose platform is unknown/unknown, never match)."""
    wanted = list(platforms)
    chosen: set[Digest] = set()
    for spec in wanted:
        hits = [
            d.digest
            for d in index.manifests
            if d.platform is not None and not is_attestation(d) and spec.matches(d.platform)
        ]
        if not hits:
            raise NoSuchPlatform(spec, offered_platforms(index))
        chosen.update(hits)
    if attestations:
        for d in index.manifests:
            subject = dict(d.annotations).get(ATTESTATION_SUBJECT_KEY)
            if is_attestation(d) and subject is not None and subject in {str(c) for c in chosen}:
                chosen.add(d.digest)
    selected = tuple(d for d in index.manifests if d.digest in chosen)
    left_out = tuple(d for d in index.manifests if d.digest not in chosen)
    return Selection(selected, left_out)


def rewrite_index(content: bytes, keep: Iterable[Digest], annotations: dict[str, str]) -> bytes:
    """A new index from the source index's bytes: the same mediaType and fields, only the
    children whose digest is in `keep` (their descriptors copied unchanged, in order), and
    `annotations` added to the index's own. Raises ManifestError for bytes that are not an
    index object."""
    try:
        document: Any = json.loads(content)
    except ValueError as exc:
        raise ManifestError(f"the index is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("manifests"), list):
        raise ManifestError("the index has no manifests list")
    kept = {str(d) for d in keep}
    document["manifests"] = [
        d for d in document["manifests"] if isinstance(d, dict) and d.get("digest") in kept
    ]
    merged = dict(document.get("annotations") or {})
    merged.update(annotations)
    document["annotations"] = merged
    return json.dumps(document, indent=2, sort_keys=False).encode()


def config_platform(config: bytes) -> Platform:
    """The platform an image config states (`os`, `architecture`, `variant`). Raises
    ManifestError when it states none."""
    try:
        document: Any = json.loads(config)
    except ValueError as exc:
        raise ManifestError(f"the image config is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError("the image config is not a JSON object")
    os_, arch, variant = document.get("os"), document.get("architecture"), document.get("variant")
    if not isinstance(os_, str) or not isinstance(arch, str):
        raise ManifestError("the image config states no os and architecture")
    return Platform(os_, arch, variant if isinstance(variant, str) else None)
