"""The answer of an importImage dry run (`dryRun: true`, a Transship extension)."""

from __future__ import annotations

from pydantic import MISSING, NonNegativeInt

from transship.wire.base import Answer, extensible


class DryRunManifest(Answer):
    """One manifest the import would copy; `present`: every target repository holds it."""

    digest: str
    media_type: str
    platform: str | None
    size: NonNegativeInt
    present: bool
    root: bool


class DryRunBlobs(Answer):
    """The image's distinct blobs (foreign layers apart): those present are linked without
    their bytes (zero-copy), the rest fetched from the source."""

    total: NonNegativeInt
    present: NonNegativeInt
    to_fetch: NonNegativeInt
    bytes_total: NonNegativeInt
    bytes_present: NonNegativeInt
    bytes_to_fetch: NonNegativeInt
    foreign: NonNegativeInt


class DryRunRequests(Answer):
    """Requests to the upstream, by kind. `pulls`: manifest GETs Docker Hub would count
    against its rate limit (not HEADs, not 401 challenges); `challenged`: requests answered
    401 (counted in their kind too); `auth`: token requests."""

    total: NonNegativeInt
    manifest_gets: NonNegativeInt
    manifest_heads: NonNegativeInt
    blob_gets: NonNegativeInt
    blob_heads: NonNegativeInt
    auth: NonNegativeInt
    other: NonNegativeInt
    challenged: NonNegativeInt
    pulls: NonNegativeInt


class DryRunTag(Answer):
    """What the import would do to one target tag: `create`, `move` (from `current`),
    `unchanged`, or `refused` (`reason` says why: NoForce and the tag exists, or a lock)."""

    tag: str
    action: str = extensible("create", "move", "unchanged", "refused")
    current: str | None
    reason: str | None


class DryRunReferrer(Answer):
    """A referrer the import would copy (with includeReferrers); `tag`: cosign's tag it
    would set on it (`sha256-<hex>.sig`…), else null."""

    digest: str
    tag: str | None


class ImportDryRun(Answer):
    """The plan of an import, computed without writing anything. `predictedRequests` is
    what the real import would send upstream now (the plan step as measured, plus one GET
    per blob to fetch; redirect hops to storage hosts not included); `spentRequests` is what
    this dry run sent. `wouldSucceed` is false when a target tag is refused."""

    source: str
    mode: str = extensible("NoForce", "Force")
    root: str
    manifests: list[DryRunManifest]
    blobs: DryRunBlobs
    target_tags: list[DryRunTag]
    untagged_target_repositories: list[str]
    predicted_requests: DryRunRequests
    spent_requests: DryRunRequests
    would_succeed: bool
    # Transship extension of the dry run, present only with includeReferrers.
    referrers: list[DryRunReferrer] | MISSING = MISSING
