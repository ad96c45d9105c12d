"""Turn an ImportImageParameters request into a validated ImportRequest, refusing bad input
before any job exists (Invalid naming the field, NotFound for an unknown source registry)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from transship.errors import Invalid
from transship.imports.model import ImportRequest, ReferrerSelection, SourceSpec, TargetTag
from transship.imports.ports import Credentials
from transship.imports.subsets import platform_subset
from transship.oci.digest import Digest
from transship.oci.reference import ImageReference, InvalidReference, normalize_docker_hub
from transship.oci.referrers import is_media_type
from transship.registry.registries import RegistryService, parse_registry_id

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?"
)
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class ImportParameters:
    """The fields of ImportImageParameters, as received."""

    resource_id: str | None
    registry_uri: str | None
    credentials_given: bool
    username: str | None
    password: str | None
    source_image: str
    target_tags: tuple[str, ...] | None
    untagged_repositories: tuple[str, ...] | None
    force: bool
    # Transship extensions: a platform subset (None when not asked for).
    platforms: tuple[str, ...] | None = None
    platform_mode: str | None = None
    include_attestations: bool | None = None
    # Transship extensions: referrers (None when not asked for).
    include_referrers: bool | None = None
    referrer_artifact_types: tuple[str, ...] | None = None


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(field, message)


async def intake(
    params: ImportParameters, registries: RegistryService
) -> tuple[ImportRequest, Credentials | None]:
    """Validate and resolve. Raises Invalid (naming the field) or NotFound("registry")."""
    if (params.resource_id is None) == (params.registry_uri is None):
        raise _invalid(
            "source", "Exactly one of source.resourceId and source.registryUri must be given."
        )
    credentials = None
    if params.credentials_given:
        if not params.password:
            raise _invalid(
                "source.credentials.password",
                "source.credentials.password is required when credentials are given.",
            )
        credentials = Credentials(params.username or None, params.password)
    scheme = _URL_SCHEME.match(params.source_image)
    if scheme:
        # A URL pasted as an image (`https://registry.example.com/app:1`): the grammar error
        # alone would not say what to change.
        bare = params.source_image[scheme.end() :]
        raise _invalid(
            "source.sourceImage",
            f"source.sourceImage {params.source_image!r} starts with the URL scheme "
            f"{scheme.group(0)!r}: a URL scheme is not part of an image reference. Write the "
            f"image as {bare!r}.",
        )
    try:
        image = ImageReference.parse(params.source_image, allow_host=False)
    except InvalidReference as exc:
        raise _invalid(
            "source.sourceImage",
            f"source.sourceImage {params.source_image!r} is not a valid image reference: {exc}",
        ) from None
    source = await _source(params, registries, image.repository, image.reference)
    if source.is_local:
        credentials = None  # the service reads its own registries directly
    targets, untagged = _targets(params, image)
    subset = platform_subset(params.platforms, params.platform_mode, params.include_attestations)
    referrers = referrer_selection(params.include_referrers, params.referrer_artifact_types)
    return ImportRequest(source, targets, untagged, params.force, subset, referrers), credentials


def referrer_selection(
    include: bool | None, artifact_types: tuple[str, ...] | None
) -> ReferrerSelection | None:
    """The referrers an import copies (None: none). Raises Invalid naming
    `referrerArtifactTypes[i]` for a type that is not a media type, or
    `referrerArtifactTypes` when given without `includeReferrers`."""
    if not include:
        if artifact_types:
            raise _invalid(
                "referrerArtifactTypes",
                "referrerArtifactTypes filters the referrers an import copies: it needs "
                "includeReferrers true.",
            )
        return None
    for index, text in enumerate(artifact_types or ()):
        if not is_media_type(text):
            raise _invalid(
                f"referrerArtifactTypes[{index}]",
                f"referrerArtifactTypes[{index}] {text!r} is not a media type "
                "(type/subtype, e.g. application/spdx+json).",
            )
    return ReferrerSelection(tuple(dict.fromkeys(artifact_types or ())))


async def _source(
    params: ImportParameters,
    registries: RegistryService,
    repository: str,
    reference: Digest | str,
) -> SourceSpec:
    if params.resource_id is not None:
        parts = parse_registry_id(params.resource_id)
        if parts is None:
            raise _invalid(
                "source.resourceId",
                f"source.resourceId {params.resource_id!r} is not a registry resource id.",
            )
        sub, rg, name = parts
        record = await registries.require(sub, rg, name)
        return SourceSpec(None, record.id, repository, reference)
    assert params.registry_uri is not None
    host = params.registry_uri.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if not _HOST.fullmatch(host):
        raise _invalid(
            "source.registryUri",
            f"source.registryUri {params.registry_uri!r} is not a registry host[:port].",
        )
    local = await registries.by_login_server(host)
    if local is not None:
        return SourceSpec(None, local.id, repository, reference)
    host, repository = normalize_docker_hub(host, repository)
    return SourceSpec(host.lower(), None, repository, reference)


def _targets(
    params: ImportParameters, image: ImageReference
) -> tuple[tuple[TargetTag, ...], tuple[str, ...]]:
    # A reference with neither tag nor digest means `latest`, and so does its target.
    source_tag = image.tag or (None if image.digest else "latest")
    tags: list[TargetTag] = []
    untagged: list[str] = list(params.untagged_repositories or ())
    for index, text in enumerate(params.untagged_repositories or ()):
        try:
            untagged_target = ImageReference.parse(text, allow_host=False)
        except InvalidReference as exc:
            raise _invalid(
                f"untaggedTargetRepositories[{index}]", f"{text!r} is not a valid repository: {exc}"
            ) from None
        if untagged_target.tag is not None or untagged_target.digest is not None:
            raise _invalid(
                f"untaggedTargetRepositories[{index}]",
                f"{text!r} must be a repository without a tag.",
            )
    requested = params.target_tags
    if not requested and not params.untagged_repositories:
        # ACR's default: the source's repository (without library/ for Docker Hub) and tag.
        name = image.repository
        requested = (f"{name}:{source_tag}" if source_tag else name,)
    for index, text in enumerate(requested or ()):
        try:
            target = ImageReference.parse(text, allow_host=False)
        except InvalidReference as exc:
            raise _invalid(
                f"targetTags[{index}]", f"{text!r} is not a valid target: {exc}"
            ) from None
        if target.digest is not None:
            raise _invalid(
                f"targetTags[{index}]", f"{text!r} names a digest; targets are repository[:tag]."
            )
        tag = target.tag or source_tag
        if tag is None:
            untagged.append(target.repository)  # by digest with no tag to give: copy untagged
        else:
            tags.append(TargetTag(target.repository, tag))
    return tuple(dict.fromkeys(tags)), tuple(dict.fromkeys(untagged))
