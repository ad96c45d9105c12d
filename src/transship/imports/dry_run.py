"""The dry run of an import: its plan, what the target registry already holds, what it would
cost upstream and what it would do to the target tags — with nothing written.

`DryRunPlanner.plan` walks the image exactly as the real import does (`build_plan`, through
the same `Sources`: endpoint, egress policy, credentials), so the requests it spends are the
real import's plan step, counted by a `RequestLog`. It then reads, without pinning or
locking anything, what the import would link rather than fetch (the blobs `pin_present`
would pin: linked in the target registry, or in the source repository of a same-service
import) and where each target tag points. `build_report` turns those facts into the report;
it is pure, so the rules are tested on their own.

The prediction of the real import's upstream requests is the plan step as measured by a
client that starts without a token (as the import does in a process that has not talked to
that upstream with those credentials within the token's lifetime; otherwise its challenged
requests and token requests are spared) plus one blob GET per blob to fetch (tokens are
cached by then). Redirect hops of blob GETs (to a storage host) cannot be known without
fetching and are not predicted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from transship.errors import Denied
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits, ImportPlan, build_plan
from transship.imports.ports import Credentials, ImageSource, LinkScope
from transship.imports.referrers import add_referrers
from transship.imports.request_log import RequestCount, RequestLog
from transship.metadata.queries import MetadataStore
from transship.oci.digest import Digest
from transship.registry import locks
from transship.storage.base import BlobStore
from transship.storage.presence import held_digests


class TagAction(enum.StrEnum):
    """What the import would do to one target tag."""

    CREATE = "create"  # the tag does not exist
    MOVE = "move"  # it exists, points elsewhere, and the import is forced
    UNCHANGED = "unchanged"  # it already points at the image, and the import is forced
    REFUSED = "refused"  # the import would fail: see the reason


@dataclass(frozen=True, slots=True)
class TagState:
    """Where a target tag points now, and whether it is locked against writes (the lock's
    message, else None)."""

    current: Digest | None
    locked: str | None = None


@dataclass(frozen=True, slots=True)
class TagPlan:
    repository: str
    tag: str
    action: TagAction
    current: Digest | None  # where the tag points now, if it exists
    reason: str | None  # why it is refused

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True, slots=True)
class ManifestPlan:
    digest: Digest
    media_type: str
    platform: str | None  # as the index listing it names it ("linux/arm64/v8")
    size: int
    present: bool  # every target repository already holds it
    root: bool


@dataclass(frozen=True, slots=True)
class BlobTotals:
    """Blobs of the image (distinct, foreign layers excluded); `present` ones are linked
    without their bytes (zero-copy), the rest fetched."""

    total: int
    present: int
    bytes_total: int
    bytes_present: int
    foreign: int

    @property
    def to_fetch(self) -> int:
        return self.total - self.present

    @property
    def bytes_to_fetch(self) -> int:
        return self.bytes_total - self.bytes_present


@dataclass(frozen=True, slots=True)
class DryRunReport:
    source: SourceSpec
    root: Digest
    manifests: tuple[ManifestPlan, ...]  # the root first, then children in index order
    blobs: BlobTotals
    tags: tuple[TagPlan, ...]
    untagged_repositories: tuple[str, ...]
    force: bool
    predicted: RequestCount  # what the real import would send upstream
    spent: RequestCount  # what this dry run sent upstream
    # With includeReferrers: the referrer manifests it would copy (also in `manifests`),
    # and cosign's tags it would set on them; None when referrers are not asked for.
    referrers: tuple[Digest, ...] | None = None
    referrer_tags: tuple[tuple[str, Digest], ...] = ()

    @property
    def would_fail(self) -> bool:
        """The real import would fail now (a target tag refused)."""
        return any(t.action is TagAction.REFUSED for t in self.tags)


def tag_plan(target: TargetTag, state: TagState, root: Digest, force: bool) -> TagPlan:
    """The real import's rule for one tag: a lock refuses it whatever the mode; under
    NoForce an existing tag is refused, even one already naming the image (as ACR, and as
    `RegistrySink.check_targets`); under Force it moves, or stays when it names the image."""
    current = state.current
    if state.locked is not None:
        return TagPlan(target.repository, target.tag, TagAction.REFUSED, current, state.locked)
    if current is None:
        return TagPlan(target.repository, target.tag, TagAction.CREATE, None, None)
    if not force:
        same = " (already this image)" if current == root else ""
        reason = f"the tag exists{same}; NoForce refuses existing tags (use Force)"
        return TagPlan(target.repository, target.tag, TagAction.REFUSED, current, reason)
    action = TagAction.UNCHANGED if current == root else TagAction.MOVE
    return TagPlan(target.repository, target.tag, action, current, None)


def predict_requests(plan_step: RequestCount, blobs_to_fetch: int) -> RequestCount:
    """The real import's upstream requests: its plan step (as measured: the same HEADs, and
    GETs of only the manifests the target does not hold) and one GET per blob to fetch."""
    return plan_step.plus(RequestCount(blob_gets=blobs_to_fetch))


def build_report(
    plan: ImportPlan,
    request: ImportRequest,
    *,
    present_blobs: set[Digest],
    present_manifests: set[Digest],
    tags: Mapping[TargetTag, TagState],
    spent: RequestCount,
) -> DryRunReport:
    """The report of one dry run from its facts. `tags` must hold every target tag."""
    platforms: dict[Digest, str] = {}
    for manifest in plan.manifests:
        for child in manifest.parsed.manifests:
            if child.platform is not None:
                platforms.setdefault(child.digest, str(child.platform))
    # The plan lists children before their indexes; people read the root first.
    ordered = [plan.root, *(m for m in plan.manifests if m.digest != plan.root.digest)]
    manifests = tuple(
        ManifestPlan(
            digest=m.digest,
            media_type=m.fetched.media_type,
            platform=platforms.get(m.digest),
            size=len(m.fetched.content),
            present=m.digest in present_manifests,
            root=m.digest == plan.root.digest,
        )
        for m in ordered
    )
    present = [b for b in plan.blobs if b.digest in present_blobs]
    blobs = BlobTotals(
        total=len(plan.blobs),
        present=len(present),
        bytes_total=plan.total_bytes,
        bytes_present=sum(b.size for b in present),
        foreign=len(plan.foreign),
    )
    return DryRunReport(
        source=request.source,
        root=plan.root.digest,
        manifests=manifests,
        blobs=blobs,
        tags=tuple(
            tag_plan(t, tags[t], plan.root.digest, request.force) for t in request.target_tags
        ),
        untagged_repositories=request.untagged_repositories,
        force=request.force,
        predicted=predict_requests(spent, blobs.to_fetch),
        spent=spent,
        referrers=plan.referrers if request.referrers is not None else None,
        referrer_tags=plan.referrer_tags,
    )


class TracedSources(Protocol):
    def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        request_log: RequestLog | None = None,
        wait_for_budget: bool = True,
        shared_auth: bool = True,
    ) -> AbstractAsyncContextManager[ImageSource]:
        """As SourceFactory.open, counting the upstream requests in `request_log`; without
        `wait_for_budget`, failing at once where a rate-limit budget would make it wait;
        without `shared_auth`, with no challenge or token learnt by earlier clients."""
        ...


class TargetView(Protocol):
    """What a dry run reads of the target registry; never writes."""

    async def present_blobs(self, scope: LinkScope, digests: list[Digest]) -> set[Digest]:
        """Those of `digests` an import in `scope` would link without fetching."""
        ...

    async def present_manifests(
        self, registry_id: int, repositories: tuple[str, ...], digests: list[Digest]
    ) -> set[Digest]:
        """Those of `digests` every one of `repositories` holds."""
        ...

    async def tag_states(
        self, registry_id: int, targets: tuple[TargetTag, ...]
    ) -> dict[TargetTag, TagState]:
        """Where each target tag points, and its lock if any."""
        ...


class RegistryTargetView:
    """The TargetView of this service: the metadata store and the blob store, read only."""

    def __init__(self, meta: MetadataStore, store: BlobStore) -> None:
        self._meta = meta
        self._store = store

    async def present_blobs(self, scope: LinkScope, digests: list[Digest]) -> set[Digest]:
        # `RegistrySink.pin_present`'s question (file on disk and a link the scope allows),
        # asked without pinning.
        on_disk = await held_digests(self._store, digests)
        if not on_disk:
            return set()
        async with self._meta.reading() as q:
            return await q.jobs.linked_blobs(on_disk, scope.registry_id, scope.source)

    async def present_manifests(
        self, registry_id: int, repositories: tuple[str, ...], digests: list[Digest]
    ) -> set[Digest]:
        held = set(digests)
        async with self._meta.reading() as q:
            for repository in repositories:
                repo_id = await q.repository_id(registry_id, repository)
                if repo_id is None:
                    return set()
                held &= await q.existing_manifests(repo_id, held)
        return held

    async def tag_states(
        self, registry_id: int, targets: tuple[TargetTag, ...]
    ) -> dict[TargetTag, TagState]:
        states: dict[TargetTag, TagState] = {}
        async with self._meta.reading() as q:
            for repository in dict.fromkeys(t.repository for t in targets):
                mine = [t for t in targets if t.repository == repository]
                repo_id = await q.repository_id(registry_id, repository)
                if repo_id is None:
                    states.update((t, TagState(None)) for t in mine)
                    continue
                locked = None
                try:
                    await locks.check_writable(q, repo_id, repository, [t.tag for t in mine])
                except Denied as exc:
                    locked = exc.message
                for target in mine:
                    states[target] = TagState(await q.tag_digest(repo_id, target.tag), locked)
        return states


class DryRunPlanner:
    """Plans imports without running them: no job, no blob, no tag is written."""

    def __init__(self, view: TargetView, sources: TracedSources, limits: ImportLimits) -> None:
        self._view = view
        self._sources = sources
        self._limits = limits

    async def plan(
        self, registry_id: int, request: ImportRequest, credentials: Credentials | None
    ) -> DryRunReport:
        """The report of importing `request` into `registry_id` now. Raises ImportFailure
        as the real import's resolve and plan steps do (ManifestUnknown, egress refusals,
        UpstreamUnauthorized, the import limits…); a refused tag is reported, not raised."""
        log = RequestLog()
        async with self._sources.open(
            request.source,
            credentials,
            registry_id,
            request_log=log,
            wait_for_budget=False,
            # Measured as a client that starts without a token spends: the prediction then
            # holds for an import whatever its process has learnt (an upper bound where the
            # token is known already: its challenge and token request are spared).
            shared_auth=False,
        ) as source:
            plan = await build_plan(
                source,
                request.source.reference,
                self._limits,
                request.platform_subset,
                request.source.describe(),
            )
            if request.referrers is not None:
                # Their lookups are requests the real import spends too: counted here.
                plan = await add_referrers(source, plan, request.referrers, self._limits)
        # The job id is never used to read: a dry run has no job and no pins.
        scope = LinkScope.of("", registry_id, request.source)
        present_blobs = await self._view.present_blobs(scope, [b.digest for b in plan.blobs])
        present_manifests = await self._view.present_manifests(
            registry_id, request.target_repositories, [m.digest for m in plan.manifests]
        )
        tags = await self._view.tag_states(registry_id, request.target_tags)
        return build_report(
            plan,
            request,
            present_blobs=present_blobs,
            present_manifests=present_manifests,
            tags=tags,
            spent=log.counts(),
        )
