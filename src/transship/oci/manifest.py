"""Parse and validate image manifests and indexes without re-serialising them.

The registry stores the exact bytes it received; this module only reads them to learn what
they reference. Everything here is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transship.oci import mediatypes as mt
from transship.oci.digest import Digest, DigestError


class ManifestError(ValueError):
    """The bytes are not a manifest this registry accepts; the message says why."""


class UnsupportedSchema1(ManifestError):
    """A Docker schema 1 manifest: deprecated and refused."""


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def is_foreign(self) -> bool:
        """Foreign / non-distributable content lives at `urls` and need not be in a registry."""
        return bool(self.urls)


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers: the blobs this manifest references (foreign ones included)."""
        return ((self.config,) if self.config else ()) + self.layers

    @property
    def referrer_artifact_type(self) -> str | None:
        """The artifactType the referrers API reports: the field, else the config's type."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and not self.is_index:
            return self.config.media_type
        return None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ManifestError(message)


def _str_map(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    _require(isinstance(value, dict), f"{where} must be an object")
    items: list[tuple[str, str]] = []
    for key, item in value.items():
        _require(isinstance(item, str), f"{where}.{key} must be a string")
        items.append((key, item))
    return tuple(items)


def _platform(value: Any, where: str) -> Platform | None:
    if value is None:
        return None
    _require(isinstance(value, dict), f"{where}.platform must be an object")
    os_, arch = value.get("os"), value.get("architecture")
    _require(
        isinstance(os_, str) and isinstance(arch, str),
        f"{where}.platform needs os and architecture strings",
    )
    variant, os_version = value.get("variant"), value.get("os.version")
    return Platform(
        os_,
        arch,
        variant if isinstance(variant, str) else None,
        os_version if isinstance(os_version, str) else None,
    )


def parse_descriptor(value: Any, where: str) -> Descriptor:
    """Validate one descriptor object. Raises ManifestError naming `where`."""
    _require(isinstance(value, dict), f"{where} must be an object")
    media_type = value.get("mediaType")
    _require(
        isinstance(media_type, str) and bool(media_type),
        f"{where}.mediaType must be a non-empty string",
    )
    digest_text = value.get("digest")
    _require(isinstance(digest_text, str), f"{where}.digest must be a string")
    try:
        digest = Digest.parse(digest_text)
    except DigestError as exc:
        raise ManifestError(f"{where}.digest: {exc}") from None
    size = value.get("size")
    _require(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0,
        f"{where}.size must be a non-negative integer",
    )
    urls = value.get("urls") or []
    _require(
        isinstance(urls, list) and all(isinstance(u, str) for u in urls),
        f"{where}.urls must be a list of strings",
    )
    artifact_type = value.get("artifactType")
    _require(
        artifact_type is None or isinstance(artifact_type, str),
        f"{where}.artifactType must be a string",
    )
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(urls),
        artifact_type=artifact_type,
        platform=_platform(value.get("platform"), where),
        annotations=_str_map(value.get("annotations"), f"{where}.annotations"),
    )


def _descriptor_list(value: Any, where: str) -> tuple[Descriptor, ...]:
    if value is None:
        return ()
    _require(isinstance(value, list), f"{where} must be a list")
    return tuple(parse_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


def _effective_media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    _require(declared is None or isinstance(declared, str), "mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower() or None
    if (
        declared in mt.SCHEMA1_TYPES
        or header in mt.SCHEMA1_TYPES
        or document.get("schemaVersion") == 1
    ):
        raise UnsupportedSchema1(
            "Docker image manifest schema 1 is deprecated and not accepted; push schema 2 or OCI"
        )
    if declared and header and header in mt.MANIFEST_TYPES and declared != header:
        raise ManifestError(f"mediaType {declared!r} does not match Content-Type {header!r}")
    if isinstance(declared, str) and declared:
        return declared
    if header is not None and header in mt.MANIFEST_TYPES:
        return header
    # OCI allows mediaType to be omitted; infer it from the shape.
    if "manifests" in document:
        return mt.OCI_INDEX
    if "config" in document:
        return mt.OCI_MANIFEST
    raise ManifestError(
        "cannot tell the manifest's media type: no mediaType field and no Content-Type"
    )


def parse_manifest(data: bytes, content_type: str | None = None) -> ParsedManifest:
    """Parse manifest bytes as received.

    `content_type` is the Content-Type the client sent (or None). Raises UnsupportedSchema1 for
    Docker schema 1 and ManifestError for anything malformed, naming the field.
    """
    try:
        document = json.loads(data)
    except ValueError as exc:  # bad JSON, bad UTF-8, or an integer too long to convert
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestError("manifest JSON is nested too deeply") from None
    _require(isinstance(document, dict), "manifest must be a JSON object")
    media_type = _effective_media_type(document, content_type)
    _require(media_type in mt.MANIFEST_TYPES, f"unsupported manifest media type {media_type!r}")
    _require(document.get("schemaVersion") == 2, "schemaVersion must be 2")
    artifact_type = document.get("artifactType")
    _require(
        artifact_type is None or isinstance(artifact_type, str), "artifactType must be a string"
    )
    subject = document.get("subject")
    parsed_subject = None if subject is None else parse_descriptor(subject, "subject")
    annotations = _str_map(document.get("annotations"), "annotations")
    if media_type in mt.INDEXES:
        _require("manifests" in document, "an index needs a manifests list")
        children = _descriptor_list(document.get("manifests"), "manifests")
        return ParsedManifest(
            media_type, None, (), children, parsed_subject, artifact_type, annotations
        )
    _require("config" in document, "an image manifest needs a config descriptor")
    config = parse_descriptor(document.get("config"), "config")
    _require("layers" in document, "an image manifest needs a layers list")
    layers = _descriptor_list(document.get("layers"), "layers")
    return ParsedManifest(
        media_type, config, layers, (), parsed_subject, artifact_type, annotations
    )
