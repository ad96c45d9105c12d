"""Platform subsets of an import (a Transship extension of importImage): validate the
request fields, and narrow a planned root to the selected platforms.

Nested indexes (an index listing an index) are refused when platforms are given: a
selection applies to one level, and guessing what a platform of an inner index means for
the outer one would copy less, or more, than asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

from transship.errors import Invalid
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import PlatformMode, PlatformSubset
from transship.imports.ports import FetchedManifest, ImageSource
from transship.oci import mediatypes as mt
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor, ManifestError, ParsedManifest, parse_manifest
from transship.oci.platforms import (
    SOURCE_ANNOTATION,
    SOURCE_INDEX_ANNOTATION,
    NoSuchPlatform,
    PlatformSpec,
    PlatformSyntaxError,
    config_platform,
    describe_child,
    rewrite_index,
    select_children,
)

MAX_PLATFORMS = 64
# An image config is a small JSON document; one larger than this is not read into memory.
_MAX_CONFIG_BYTES = 4 << 20


def platform_subset(
    platforms: tuple[str, ...] | None, mode: str | None, include_attestations: bool | None
) -> PlatformSubset | None:
    """The PlatformSubset the request fields ask for, or None (every platform).

    Raises Invalid naming `platforms[i]` for a malformed or repeated platform, `platforms`
    for an empty or too long list, and `platformMode` / `includeAttestations` when given
    without platforms (they would silently do nothing).
    """
    if platforms is None:
        for name, value in (("platformMode", mode), ("includeAttestations", include_attestations)):
            if value is not None:
                raise Invalid(name, f"{name} applies only to an import that gives platforms.")
        return None
    if not platforms:
        raise Invalid(
            "platforms", "platforms must list at least one os/arch[/variant], or be omitted."
        )
    if len(platforms) > MAX_PLATFORMS:
        raise Invalid(
            "platforms", f"platforms lists {len(platforms)}; the limit is {MAX_PLATFORMS}."
        )
    specs: list[PlatformSpec] = []
    for index, text in enumerate(platforms):
        field = f"platforms[{index}]"
        try:
            spec = PlatformSpec.parse(text)
        except PlatformSyntaxError as exc:
            raise Invalid(field, f"{field}: {exc}") from None
        if spec in specs:
            raise Invalid(field, f"{field}: {text!r} is listed twice.")
        specs.append(spec)
    try:
        platform_mode = PlatformMode(mode or PlatformMode.SPARSE.value)
    except ValueError:
        raise Invalid("platformMode", "platformMode must be 'sparse' or 'rewritten'.") from None
    return PlatformSubset(tuple(specs), platform_mode, bool(include_attestations))


@dataclass(frozen=True, slots=True)
class NarrowedRoot:
    """What to plan for a platform subset: the root to store (the source index whose parsed
    form lists only the selected children — its bytes unchanged — for sparse; a new index
    for rewritten; the manifest itself when it is no index), and the children left out."""

    fetched: FetchedManifest
    parsed: ParsedManifest
    absent: tuple[Descriptor, ...]


async def narrow_root(
    source: ImageSource,
    fetched: FetchedManifest,
    parsed: ParsedManifest,
    subset: PlatformSubset,
    source_name: str,
) -> NarrowedRoot:
    """Apply `subset` to the root manifest of an import.

    Raises ImportFailure (step PLAN): PlatformNotFound (a platform no child matches, naming
    it and what the index offers), PlatformMismatch (a single image of another platform, or
    whose config states none), PlatformSubsetUnsupported (a nested index).
    """
    if not parsed.is_index:
        await _check_single(source, fetched, parsed, subset)
        return NarrowedRoot(fetched, parsed, ())
    nested = [d for d in parsed.manifests if d.media_type in mt.INDEXES]
    if nested:
        raise ImportFailure(
            "PlatformSubsetUnsupported",
            f"index {fetched.digest} lists the nested index {nested[0].digest}: platform "
            "subsets apply to an index of images only; import it without platforms",
            step=Step.PLAN,
            obj=str(fetched.digest),
        )
    try:
        selection = select_children(
            parsed, subset.platforms, attestations=subset.include_attestations
        )
    except NoSuchPlatform as exc:
        raise ImportFailure(
            "PlatformNotFound", str(exc), step=Step.PLAN, obj=str(exc.platform)
        ) from None
    if subset.mode is PlatformMode.SPARSE:
        # The bytes stay the source's (same digest); only the planned children narrow.
        narrowed = dataclasses.replace(parsed, manifests=selection.selected)
        return NarrowedRoot(fetched, narrowed, selection.left_out)
    annotations = {
        SOURCE_INDEX_ANNOTATION: str(fetched.digest),
        SOURCE_ANNOTATION: source_name,
    }
    try:
        content = rewrite_index(
            fetched.content, (d.digest for d in selection.selected), annotations
        )
        rewritten = parse_manifest(content, fetched.media_type)
    except ManifestError as exc:
        raise ImportFailure(
            "InvalidManifest",
            f"index {fetched.digest} cannot be rewritten: {exc}",
            step=Step.PLAN,
            obj=str(fetched.digest),
        ) from None
    digest = Digest.of(content, fetched.digest.algorithm)
    return NarrowedRoot(FetchedManifest(content, fetched.media_type, digest), rewritten, ())


async def _check_single(
    source: ImageSource, fetched: FetchedManifest, parsed: ParsedManifest, subset: PlatformSubset
) -> None:
    config = parsed.config
    if config is None or config.size > _MAX_CONFIG_BYTES:
        raise ImportFailure(
            "PlatformMismatch",
            f"manifest {fetched.digest} is no index and has no image config stating its "
            "platform; import it without platforms",
            step=Step.PLAN,
            obj=str(fetched.digest),
        )
    buffer = _ConfigBuffer()
    await source.fetch_blob(config.digest, config.size, buffer)
    content = bytes(buffer.data)
    if Digest.of(content, config.digest.algorithm) != config.digest:
        raise ImportFailure(
            "DIGEST_INVALID",
            f"the source answered config {config.digest} with other content",
            step=Step.PLAN,
            obj=str(config.digest),
        )
    try:
        platform = config_platform(content)
    except ManifestError as exc:
        raise ImportFailure(
            "PlatformMismatch",
            f"manifest {fetched.digest} is no index and {exc}; import it without platforms",
            step=Step.PLAN,
            obj=str(fetched.digest),
        ) from None
    if not any(spec.matches(platform) for spec in subset.platforms):
        asked = ", ".join(str(p) for p in subset.platforms)
        raise ImportFailure(
            "PlatformMismatch",
            f"manifest {fetched.digest} is a single image for {platform}, not for {asked}",
            step=Step.PLAN,
            obj=str(fetched.digest),
        )


class _ConfigBuffer:
    """A BlobWriter for the one small blob a subset reads whole: an image config (its
    size is bounded above)."""

    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def offset(self) -> int:
        return len(self.data)

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            if len(self.data) + len(chunk) > _MAX_CONFIG_BYTES:
                raise ImportFailure(
                    "SIZE_INVALID",
                    "the source sent more bytes for an image config than its size",
                    step=Step.PLAN,
                )
            self.data += chunk

    async def reset(self) -> None:
        self.data.clear()


def absent_children(absent: tuple[Descriptor, ...]) -> list[tuple[Digest, str]]:
    """The left-out children of a sparse index as (digest, what it is) for the metadata."""
    return [(d.digest, describe_child(d)) for d in absent]
