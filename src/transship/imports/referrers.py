"""Referrers and signatures of an import (the `includeReferrers` extension of importImage).

For every manifest an import copies, and recursively for every referrer it adds, three
places are looked at, each through the import's own source (so auth, egress policy, the
request log and the rate-limit budget apply to them as to the image):

1. the OCI 1.1 referrers API, `GET /v2/<name>/referrers/<digest>` (every page);
2. when the source has no referrers API (404), the fallback tag `sha256-<hex>`, an index
   of referrer descriptors (OCI distribution spec, "referrers tag schema");
3. cosign's tags `sha256-<hex>.sig`, `.att`, `.sbom` (manifests without a `subject`,
   found only by their tag, which the import sets downstream too).

Missing ones are normal. A referrer passes the artifact-type filter by its artifact type
(the manifest's `artifactType`, else its config's media type) or, for cosign's manifests,
by one of their layers' media types (`application/vnd.dev.cosign.simplesigning.v1+json`
selects signatures). Referrers of referrers are followed `max_referrer_depth` levels deep;
one found deeper, or more than `max_referrers` in all, fails the import before any blob is
fetched.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from transship.imports.errors import ImportFailure, Step
from transship.imports.model import ReferrerSelection
from transship.imports.plan import (
    ImportLimits,
    ImportPlan,
    PlannedManifest,
    build_plan,
    parse_fetched,
)
from transship.imports.ports import FetchedManifest, ImageSource
from transship.imports.upstream import INVALID_REFERRERS, MANIFEST_UNKNOWN
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor, ManifestError
from transship.oci.referrers import (
    cosign_tags,
    fallback_tag,
    matches_types,
    parse_referrers_index,
)

# Subjects whose referrers are looked up at once.
_PARALLEL_LOOKUPS = 4

TOO_MANY_REFERRERS = "TooManyReferrers"
REFERRERS_TOO_DEEP = "ReferrersTooDeep"


@dataclass(frozen=True, slots=True)
class _Found:
    """One referrer of `subject`: by digest (listed), or already fetched under cosign's
    `tag`."""

    subject: Digest
    digest: Digest
    fetched: FetchedManifest | None = None
    tag: str | None = None


async def add_referrers(
    source: ImageSource, plan: ImportPlan, selection: ReferrerSelection, limits: ImportLimits
) -> ImportPlan:
    """`plan` with the referrers of every manifest it copies, recursively, added: their
    manifests (after the image's, children before the indexes that list them), their blobs,
    and cosign's tags to set. Raises ImportFailure: TooManyReferrers, ReferrersTooDeep,
    InvalidReferrers (an unreadable referrers list), and what the source and `build_plan`
    raise (an upstream 5xx is retried by the source, then fails the import)."""
    seen: set[Digest] = {manifest.digest for manifest in plan.manifests}
    manifests: list[PlannedManifest] = []
    referrers: list[Digest] = []
    tags: dict[str, Digest] = {}
    level: list[Digest] = [manifest.digest for manifest in plan.manifests]
    depth = 0
    gate = asyncio.Semaphore(_PARALLEL_LOOKUPS)

    async def lookup(subject: Digest) -> list[_Found]:
        async with gate:
            return await _referrers_of(source, subject, selection)

    while level:
        depth += 1
        found_lists = await asyncio.gather(*(lookup(subject) for subject in level))
        fresh: dict[Digest, _Found] = {}
        for found in (item for items in found_lists for item in items):
            if found.tag is not None:
                tags[found.tag] = found.digest
            if found.digest not in seen and found.digest not in fresh:
                fresh[found.digest] = found
        if not fresh:
            break
        if depth > limits.max_referrer_depth:
            deepest = next(iter(fresh.values()))
            raise ImportFailure(
                REFERRERS_TOO_DEEP,
                f"referrers nest deeper than {limits.max_referrer_depth} levels (the import "
                f"limit): {deepest.digest} refers to {deepest.subject}",
                step=Step.PLAN,
                obj=str(deepest.digest),
            )
        if len(referrers) + len(fresh) > limits.max_referrers:
            raise ImportFailure(
                TOO_MANY_REFERRERS,
                f"the image has more than {limits.max_referrers} referrers (the import limit)",
                step=Step.PLAN,
                obj=str(plan.root.digest),
            )
        seen.update(fresh)
        plans = await asyncio.gather(
            *(
                build_plan(source, found.digest, limits, fetched_root=found.fetched)
                for found in fresh.values()
            )
        )
        level = []
        for referrer_plan in plans:
            referrers.append(referrer_plan.root.digest)
            for manifest in referrer_plan.manifests:
                if manifest.digest == referrer_plan.root.digest or manifest.digest not in seen:
                    seen.add(manifest.digest)
                    manifests.append(manifest)
                    level.append(manifest.digest)
    return _extended(plan, manifests, referrers, tags, limits)


def _extended(
    plan: ImportPlan,
    added: Sequence[PlannedManifest],
    referrers: Sequence[Digest],
    tags: dict[str, Digest],
    limits: ImportLimits,
) -> ImportPlan:
    blobs = {blob.digest: blob for blob in plan.blobs}
    foreign = {blob.digest: blob for blob in plan.foreign}
    for manifest in added:
        for descriptor in manifest.parsed.blobs:
            (foreign if descriptor.is_foreign else blobs).setdefault(descriptor.digest, descriptor)
    extended = dataclasses.replace(
        plan,
        manifests=plan.manifests + tuple(added),
        blobs=tuple(blobs.values()),
        foreign=tuple(foreign.values()),
        referrers=tuple(referrers),
        referrer_tags=tuple(sorted(tags.items())),
    )
    if len(extended.manifests) > limits.max_manifests:
        raise ImportFailure(
            "TooManyManifests",
            f"the image and its referrers have more than {limits.max_manifests} manifests "
            "(the import limit)",
            step=Step.PLAN,
            obj=str(plan.root.digest),
        )
    if extended.total_bytes > limits.max_bytes:
        raise ImportFailure(
            "ImageTooLarge",
            f"the image and its referrers hold {extended.total_bytes} bytes of blobs; "
            f"the import limit is {limits.max_bytes}",
            step=Step.PLAN,
            obj=str(plan.root.digest),
        )
    return extended


async def _referrers_of(
    source: ImageSource, subject: Digest, selection: ReferrerSelection
) -> list[_Found]:
    """The wanted referrers of `subject`: listed ones (API, else fallback tag) and cosign's."""
    wanted = selection.wanted
    # The server-side filter takes one type; more are filtered here only.
    one_type = selection.artifact_types[0] if len(selection.artifact_types) == 1 else None
    listed = await source.list_referrers(subject, one_type)
    if listed is None:
        listed = await _fallback_index(source, subject)
    found = [
        _Found(subject, descriptor.digest)
        for descriptor in listed
        if matches_types(descriptor.artifact_type, (), wanted)
    ]
    if subject.algorithm != "sha256":
        return found  # cosign names sha256 digests only
    for tag in cosign_tags(subject):
        fetched = await _optional_manifest(source, tag)
        if fetched is None:
            continue
        parsed = parse_fetched(fetched)
        layer_types = tuple(layer.media_type for layer in parsed.layers)
        if matches_types(parsed.referrer_artifact_type, layer_types, wanted):
            found.append(_Found(subject, fetched.digest, fetched, tag))
    return found


async def _fallback_index(source: ImageSource, subject: Digest) -> tuple[Descriptor, ...]:
    fetched = await _optional_manifest(source, fallback_tag(subject))
    if fetched is None:
        return ()
    try:
        return parse_referrers_index(fetched.content, fetched.media_type)
    except ManifestError as exc:
        raise ImportFailure(
            INVALID_REFERRERS,
            f"the referrers index of {subject} (tag {fallback_tag(subject)}) is not valid: {exc}",
            step=Step.PLAN,
            obj=fallback_tag(subject),
        ) from None


async def _optional_manifest(source: ImageSource, tag: str) -> FetchedManifest | None:
    """The manifest tagged `tag`, or None when there is none."""
    try:
        return await source.get_manifest(tag)
    except ImportFailure as exc:
        if exc.code == MANIFEST_UNKNOWN:
            return None
        raise
