"""Walk an image from its root manifest: every child manifest and every blob to copy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from transship.imports.errors import ImportFailure, Step
from transship.imports.model import BlobOrder, PlatformSubset
from transship.imports.ports import FetchedManifest, ImageSource
from transship.imports.subsets import narrow_root
from transship.oci.digest import Digest
from transship.oci.manifest import Descriptor, ManifestError, ParsedManifest, parse_manifest

_PARALLEL_FETCHES = 8


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What one import may copy; exceeding any fails the plan before a blob is fetched."""

    max_manifests: int = 500
    max_index_depth: int = 8
    max_index_children: int = 1000
    max_bytes: int = 1 << 40
    # With includeReferrers: referrers copied in all, and levels of referrers of referrers.
    max_referrers: int = 100
    max_referrer_depth: int = 4


@dataclass(frozen=True, slots=True)
class PlannedManifest:
    fetched: FetchedManifest
    parsed: ParsedManifest

    @property
    def digest(self) -> Digest:
        return self.fetched.digest


@dataclass(frozen=True, slots=True)
class ImportPlan:
    root: PlannedManifest
    manifests: tuple[PlannedManifest, ...]  # children before the indexes that list them
    blobs: tuple[Descriptor, ...]  # distinct, foreign layers excluded
    foreign: tuple[Descriptor, ...]
    # Children of a sparse root index a platform subset leaves out (not fetched, not stored).
    absent: tuple[Descriptor, ...] = ()
    # With includeReferrers (see `referrers.add_referrers`): the referrer manifests copied
    # (also in `manifests`), and cosign's tags to set on them in every target repository.
    referrers: tuple[Digest, ...] = ()
    referrer_tags: tuple[tuple[str, Digest], ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)

    def blobs_in_order(self, order: BlobOrder) -> list[Descriptor]:
        """The blobs in the order an import fetches them (see BlobOrder). For
        `image_by_image`, a blob belongs to the first manifest that lists it, in the order
        a client pulls them: an index's children as it lists them."""
        if order is BlobOrder.LARGEST_FIRST:
            return sorted(self.blobs, key=lambda blob: blob.size, reverse=True)
        image_of: dict[Digest, int] = {}
        for position, manifest in enumerate(self.manifests):
            for descriptor in manifest.parsed.blobs:
                image_of.setdefault(descriptor.digest, position)
        return sorted(self.blobs, key=lambda blob: (image_of[blob.digest], -blob.size))


def parse_fetched(fetched: FetchedManifest) -> ParsedManifest:
    """`fetched` parsed. Raises ImportFailure InvalidManifest (step PLAN) naming it."""
    try:
        return parse_manifest(fetched.content, fetched.media_type)
    except ManifestError as exc:
        raise ImportFailure(
            "InvalidManifest",
            f"manifest {fetched.digest} is not valid: {exc}",
            step=Step.PLAN,
            obj=str(fetched.digest),
        ) from None


async def build_plan(
    source: ImageSource,
    reference: Digest | str,
    limits: ImportLimits,
    subset: PlatformSubset | None = None,
    source_name: str = "",
    *,
    fetched_root: FetchedManifest | None = None,
) -> ImportPlan:
    """Fetch the root by tag or digest and every child by digest, nested indexes included;
    with `subset`, only the selected platforms' children (see `subsets.narrow_root`;
    `source_name` is what a rewritten index records as its source). `fetched_root`: the
    root manifest, already fetched by `reference` (it is not fetched again).

    Raises ImportFailure: ManifestUnknown (from the source), InvalidManifest, and for the
    limits TooManyManifests, IndexTooDeep, TooManyChildren, ImageTooLarge; with a subset
    also PlatformNotFound, PlatformMismatch, PlatformSubsetUnsupported.
    """
    max_manifests = limits.max_manifests
    fetched = fetched_root if fetched_root is not None else await source.get_manifest(reference)
    parsed = parse_fetched(fetched)
    absent: tuple[Descriptor, ...] = ()
    if subset is not None:
        narrowed = await narrow_root(source, fetched, parsed, subset, source_name)
        fetched, parsed, absent = narrowed.fetched, narrowed.parsed, narrowed.absent
    root = PlannedManifest(fetched, parsed)
    ordered: list[PlannedManifest] = []
    seen: set[Digest] = {root.digest}
    gate = asyncio.Semaphore(_PARALLEL_FETCHES)

    async def fetch(descriptor: Descriptor) -> PlannedManifest:
        async with gate:
            child = await source.get_manifest(descriptor.digest)
        # Manifests are stored under their digest: bytes that are not the digest's must never
        # be planned, whatever the source (sources verify too; this holds for every one).
        actual = Digest.of(child.content, descriptor.digest.algorithm)
        if actual != descriptor.digest:
            raise ImportFailure(
                "DIGEST_INVALID",
                f"the source answered manifest {descriptor.digest} with content of digest {actual}",
                step=Step.PLAN,
                obj=str(descriptor.digest),
            )
        return PlannedManifest(child, parse_fetched(child))

    async def visit(node: PlannedManifest, depth: int) -> None:
        if node.parsed.is_index:
            if depth >= limits.max_index_depth:
                raise ImportFailure(
                    "IndexTooDeep",
                    f"index {node.digest} nests deeper than {limits.max_index_depth} levels "
                    "(the import limit)",
                    step=Step.PLAN,
                    obj=str(node.digest),
                )
            if len(node.parsed.manifests) > limits.max_index_children:
                raise ImportFailure(
                    "TooManyChildren",
                    f"index {node.digest} lists {len(node.parsed.manifests)} manifests; "
                    f"the limit is {limits.max_index_children}",
                    step=Step.PLAN,
                    obj=str(node.digest),
                )
            # Each digest once, even when one index lists it twice.
            fresh = list(
                {d.digest: d for d in node.parsed.manifests if d.digest not in seen}.values()
            )
            seen.update(d.digest for d in fresh)
            if len(seen) > max_manifests:
                raise ImportFailure(
                    "TooManyManifests",
                    f"the image has more than {max_manifests} manifests (the import limit)",
                    step=Step.PLAN,
                    obj=str(root.digest),
                )
            children = await asyncio.gather(*(fetch(d) for d in fresh))
            for child in children:
                await visit(child, depth + 1)
        ordered.append(node)

    await visit(root, 0)
    blobs: dict[Digest, Descriptor] = {}
    foreign: dict[Digest, Descriptor] = {}
    for manifest in ordered:
        for descriptor in manifest.parsed.blobs:
            (foreign if descriptor.is_foreign else blobs).setdefault(descriptor.digest, descriptor)
    plan = ImportPlan(root, tuple(ordered), tuple(blobs.values()), tuple(foreign.values()), absent)
    if plan.total_bytes > limits.max_bytes:
        raise ImportFailure(
            "ImageTooLarge",
            f"the image holds {plan.total_bytes} bytes of blobs; "
            f"the import limit is {limits.max_bytes}",
            step=Step.PLAN,
            obj=str(root.digest),
        )
    return plan
