"""Sync rule bodies and answers (Transship's own API: scheduled sync has no ACR equivalent).

`PUT /transship/v1/registries/{registry}/syncRules/{rule}` takes a `SyncRuleBody` (every
field it needs given); `PATCH` the same body with only the fields to change. A rule answers
as `SyncRule` (its credentials' user name only, never the password); a run as `SyncRun`,
with one entry per tag. See `transship.cache.sync`."""

from __future__ import annotations

from typing import Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field, NonNegativeInt

from transship.wire.base import Answer, DateTime, extensible
from transship.wire.bodies import JsonBool, JsonInt


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SyncTagFilter(_Body):
    include: str | None = Field(
        default=None,
        description="A regular expression (Python syntax) a tag must match whole to be kept.",
    )
    exclude: str | None = Field(
        default=None, description="A regular expression; a tag it matches whole is dropped."
    )
    semver: str | None = Field(
        default=None,
        description="A semantic version range (`>=1.2 <2`, `^1.4`, `~2.1`, `1.x`, `a || b`); "
        "tags that are no version are dropped.",
    )
    newest: JsonInt | None = Field(
        default=None, description="Keep only the N highest semantic versions (1 to 10000)."
    )


class SyncCredentials(_Body):
    username: str | None = None
    password: str = Field(min_length=1)


class SyncRuleBody(_Body):
    """A sync rule's fields. PUT: `sourceRegistry` and `sourceRepositories` are required;
    PATCH: only the fields given change (`credentials: null` removes them)."""

    source_registry: str | None = Field(
        default=None,
        alias="sourceRegistry",
        description="The upstream registry's host[:port] (`docker.io`, `ghcr.io`, …).",
    )
    source_repositories: list[str] | None = Field(
        default=None,
        alias="sourceRepositories",
        max_length=100,
        description="The upstream repositories to mirror (Docker Hub's `alpine` is "
        "`library/alpine`).",
    )
    target_repository: str | None = Field(
        default=None,
        alias="targetRepository",
        description="Where the tags land: with one source repository, this repository; with "
        "several, `<targetRepository>/<source repository>`. Default: the source's name.",
    )
    tag_filter: SyncTagFilter | None = Field(default=None, alias="tagFilter")
    platforms: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Copy only these platforms of an index (`os/arch[/variant]`), as an "
        "import's `platforms`.",
    )
    platform_mode: Literal["sparse", "rewritten"] | None = Field(default=None, alias="platformMode")
    include_attestations: JsonBool | None = Field(default=None, alias="includeAttestations")
    include_referrers: JsonBool | None = Field(
        default=None,
        alias="includeReferrers",
        description="Also copy the referrers (signatures, SBOMs…) of what is copied.",
    )
    referrer_artifact_types: list[str] | None = Field(
        default=None, alias="referrerArtifactTypes", max_length=32
    )
    interval_seconds: JsonInt | None = Field(
        default=None,
        alias="intervalSeconds",
        description="Run every this many seconds (at least the setting "
        "sync_min_interval_seconds). Omitted or null: on demand only.",
    )
    mirror_deletions: JsonBool | None = Field(
        default=None,
        alias="mirrorDeletions",
        description="Untag the target tags this rule created whose upstream tag was deleted "
        "(default false).",
    )
    credentials: SyncCredentials | None = Field(
        default=None,
        description="Upstream credentials, kept sealed with the service key; never answered.",
    )


class SyncRunCounts(Answer):
    total: NonNegativeInt
    unchanged: NonNegativeInt
    copying: NonNegativeInt
    copied: NonNegativeInt
    deleted: NonNegativeInt
    failed: NonNegativeInt


class SyncRequestCounts(Answer):
    """The upstream requests a run's comparison sent (tag lists, HEADs, token requests); the
    copies' requests are their import operations'."""

    total: NonNegativeInt
    manifest_heads: NonNegativeInt
    manifest_gets: NonNegativeInt
    blob_gets: NonNegativeInt
    auth: NonNegativeInt
    other: NonNegativeInt = Field(description="Tag list pages, and anything else.")
    pulls: NonNegativeInt = Field(
        description="Manifest GETs that count against rate-limited upstreams (zero by design)."
    )


class SyncRunError(Answer):
    code: str
    message: str


class SyncRunSummary(Answer):
    name: str
    trigger: str = extensible("manual", "scheduled")
    state: str = extensible("queued", "running", "succeeded", "completedWithFailures", "failed")
    created_time: DateTime
    end_time: DateTime | None


class SyncRunTag(Answer):
    source_repository: str
    tag: str | None = Field(description="null: the repository's tags could not be listed.")
    target_repository: str
    outcome: str = extensible("unchanged", "copying", "copied", "deleted", "failed")
    upstream_digest: str | None
    digest: str | None = Field(description="What the target tag names after the run.")
    reason: str | None
    operation: str | None = Field(description="The import operation that copied the tag.")


class SyncRun(Answer):
    """One run of a sync rule; `importBatch` is the import batch that copied what changed
    (its items are ordinary import operations)."""

    id: str
    name: str
    rule: str
    registry: str
    trigger: str = extensible("manual", "scheduled")
    state: str = extensible("queued", "running", "succeeded", "completedWithFailures", "failed")
    created_time: DateTime
    start_time: DateTime | None
    end_time: DateTime | None
    import_batch: str | None
    error: SyncRunError | None
    counts: SyncRunCounts
    upstream_requests: SyncRequestCounts | None = Field(
        description="What listing and comparing cost upstream; null until known."
    )
    tags: list[SyncRunTag] | MISSING = MISSING


class SyncRunList(Answer):
    value: list[SyncRun]


class SyncRuleCredentials(Answer):
    username: str | None


class SyncRuleProperties(Answer):
    source_registry: str
    source_repositories: list[str]
    target_repository: str | None
    tag_filter: SyncTagFilterAnswer
    platforms: list[str] | None
    platform_mode: str | None
    include_attestations: bool
    include_referrers: bool
    referrer_artifact_types: list[str] | None
    interval_seconds: int | None
    mirror_deletions: bool
    credentials: SyncRuleCredentials | None
    next_run_time: DateTime | None
    last_run: SyncRunSummary | None
    created_time: DateTime
    updated_time: DateTime


class SyncTagFilterAnswer(Answer):
    include: str | None
    exclude: str | None
    semver: str | None
    newest: int | None


class SyncRule(Answer):
    id: str
    name: str
    registry: str
    properties: SyncRuleProperties


class SyncRuleList(Answer):
    value: list[SyncRule]


SyncRuleProperties.model_rebuild()
