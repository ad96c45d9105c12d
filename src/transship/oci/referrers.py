"""Names and documents of the ways a registry records what refers to a manifest: the OCI 1.1
referrers API (an image index of descriptors), its fallback tag scheme, and cosign's tag
convention. Everything here is pure."""

from __future__ import annotations

import re

from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor, ManifestError, parse_manifest

# cosign stores signatures, attestations and SBOMs under these suffixes of the digest tag.
COSIGN_SUFFIXES = ("sig", "att", "sbom")
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"

# RFC 6838 section 4.2: type "/" subtype, restricted-name characters, at most 127 each;
# parameters are not part of an artifact type.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(f"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")


def is_media_type(text: str) -> bool:
    """Whether `text` is a media type without parameters (`type/subtype`, RFC 6838)."""
    return bool(_MEDIA_TYPE.fullmatch(text))


def fallback_tag(digest: Digest) -> str:
    """The tag the OCI distribution spec's referrers tag schema keeps the referrers index of
    `digest` under: `<alg>-<ref>`, the algorithm cut to 32 and the encoded part to 64
    characters (so a sha512 digest still makes a valid tag)."""
    return f"{digest.algorithm[:32]}-{digest.encoded[:64]}"


def cosign_tags(digest: Digest) -> tuple[str, ...]:
    """cosign's tags for `digest`: `sha256-<hex>.sig`, `.att`, `.sbom` (full digest: cosign
    names only sha256 images, whose tags fit the 128-character limit)."""
    base = f"{digest.algorithm}-{digest.encoded}"
    return tuple(f"{base}.{suffix}" for suffix in COSIGN_SUFFIXES)


def parse_referrers_index(
    content: bytes, content_type: str | None = None
) -> tuple[Descriptor, ...]:
    """The descriptors an image index of referrers lists (the referrers API's answer, or
    the index under the fallback tag). Raises ManifestError when it is not an index."""
    parsed = parse_manifest(content, content_type or None)
    if not parsed.is_index:
        raise ManifestError(f"a referrers list must be an image index, not {parsed.media_type}")
    return parsed.manifests


def next_link(header: str | None) -> str | None:
    """The target of the `rel="next"` entry of a `Link` header (RFC 8288), or None."""
    if not header:
        return None
    for entry in header.split(","):
        target, _, params = entry.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').split():
                return target[1:-1]
    return None


def matches_types(
    artifact_type: str | None, media_types: tuple[str, ...], wanted: frozenset[str] | None
) -> bool:
    """Whether a referrer passes the artifact-type filter `wanted` (None: no filter): its
    artifact type, or (for cosign's manifests, which have none of their own) one of its
    layers' media types, is wanted."""
    if wanted is None:
        return True
    if artifact_type is not None and artifact_type in wanted:
        return True
    return any(media_type in wanted for media_type in media_types)
