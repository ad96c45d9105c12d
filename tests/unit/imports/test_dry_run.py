"""The dry run's report: tag rules, blob and manifest totals, platforms, the request
prediction, and the planner over in-memory seams (nothing written, failures raised)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from yarl import URL

from tests.unit.imports.doubles import MemorySource
from transship.imports.dry_run import (
    DryRunPlanner,
    TagAction,
    TagState,
    build_report,
    predict_requests,
    tag_plan,
)
from transship.imports.errors import ImportFailure
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.plan import ImportLimits, build_plan
from transship.imports.ports import Credentials, ImageSource, LinkScope
from transship.imports.request_log import RequestCount, RequestLog, classify
from transship.imports.subsets import platform_subset
from transship.oci.digest import Digest

ROOT = Digest.of(b"root")
OTHER = Digest.of(b"other")
TARGET = TargetTag("app", "v1")


def request(*tags: TargetTag, force: bool = False, reference: str = "multi") -> ImportRequest:
    return ImportRequest(SourceSpec("upstream.test", None, "app", reference), tags, (), force)


# -- tag rules -------------------------------------------------------------------------------
def test_a_missing_tag_is_created_in_either_mode() -> None:
    for force in (False, True):
        plan = tag_plan(TARGET, TagState(None), ROOT, force)
        assert (plan.action, plan.current, plan.reason) == (TagAction.CREATE, None, None)


def test_noforce_refuses_an_existing_tag_even_one_naming_the_image() -> None:
    elsewhere = tag_plan(TARGET, TagState(OTHER), ROOT, False)
    assert elsewhere.action is TagAction.REFUSED and elsewhere.current == OTHER
    assert elsewhere.reason is not None and "NoForce" in elsewhere.reason
    same = tag_plan(TARGET, TagState(ROOT), ROOT, False)
    assert same.action is TagAction.REFUSED
    assert same.reason is not None and "already this image" in same.reason


def test_force_moves_a_tag_pointing_elsewhere_and_keeps_one_naming_the_image() -> None:
    moved = tag_plan(TARGET, TagState(OTHER), ROOT, True)
    assert (moved.action, moved.current) == (TagAction.MOVE, OTHER)
    kept = tag_plan(TARGET, TagState(ROOT), ROOT, True)
    assert (kept.action, kept.current) == (TagAction.UNCHANGED, ROOT)


def test_a_lock_refuses_whatever_the_mode() -> None:
    for state in (TagState(None, "locked"), TagState(ROOT, "locked")):
        plan = tag_plan(TARGET, state, ROOT, True)
        assert (plan.action, plan.reason) == (TagAction.REFUSED, "locked")


# -- requests --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", "https://r.test/v2/library/app/manifests/v1", "manifest"),
        ("HEAD", "https://r.test/v2/a/b/c/manifests/sha256:" + "0" * 64, "manifest"),
        ("GET", "https://r.test/v2/app/blobs/sha256:" + "0" * 64, "blob"),
        ("GET", "https://auth.test/token?service=r.test&scope=repository:app:pull", "auth"),
        ("POST", "https://auth.test/oauth2/token", "auth"),
        ("GET", "https://r.test/v2/", "other"),
        ("GET", "https://storage.test/bucket/data?sig=x", "other"),
    ],
)
def test_requests_are_classified_by_method_path_and_query(method: str, url: str, kind: str) -> None:
    assert classify(method, URL(url)) == kind


def test_pulls_are_manifest_gets_not_heads_nor_challenges() -> None:
    log = RequestLog()
    manifest = URL("https://r.test/v2/app/manifests/v1")
    log.record("GET", manifest, 401)  # challenged: not a pull
    log.record("GET", URL("https://auth.test/token?scope=repository:app:pull"), 200)
    log.record("GET", manifest, 200)  # a pull
    log.record("HEAD", manifest, 200)  # never a pull
    log.record("GET", manifest, 429)  # refused by the rate limit: not counted
    log.record("GET", manifest, None)  # no answer: the upstream may have counted it
    log.record("GET", URL("https://r.test/v2/app/blobs/sha256:" + "1" * 64), 200)
    counts = log.counts()
    assert counts == RequestCount(
        manifest_gets=4, manifest_heads=1, blob_gets=1, auth=1, challenged=1, pulls=2
    )
    assert counts.total == 7


def test_the_prediction_adds_one_blob_get_per_blob_to_fetch() -> None:
    spent = RequestCount(manifest_gets=4, auth=1, challenged=1, pulls=3)
    assert predict_requests(spent, 5) == RequestCount(
        manifest_gets=4, blob_gets=5, auth=1, challenged=1, pulls=3
    )


# -- the report ------------------------------------------------------------------------------
async def multi_arch() -> tuple[MemorySource, Any, dict[str, Any], dict[str, Any]]:
    src = MemorySource()
    amd, arm = src.image("amd64"), src.image("arm64")
    src.index(
        [
            {**amd, "platform": {"os": "linux", "architecture": "amd64"}},
            {**arm, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
        tag="multi",
    )
    plan = await build_plan(src, "multi", ImportLimits())
    return src, plan, amd, arm


async def test_report_lists_the_root_first_with_platforms_sizes_and_presence() -> None:
    _, plan, amd, arm = await multi_arch()
    report = build_report(
        plan,
        request(TARGET),
        present_blobs=set(),
        present_manifests={Digest.parse(amd["digest"])},
        tags={TARGET: TagState(None)},
        spent=RequestCount(manifest_gets=3, pulls=3),
    )
    rows = [(str(m.digest), m.platform, m.size, m.present, m.root) for m in report.manifests]
    assert rows == [
        (str(plan.root.digest), None, len(plan.root.fetched.content), False, True),
        (amd["digest"], "linux/amd64", amd["size"], True, False),
        (arm["digest"], "linux/arm64/v8", arm["size"], False, False),
    ]
    assert report.root == plan.root.digest
    assert [(str(t), t.action) for t in report.tags] == [("app:v1", TagAction.CREATE)]
    assert not report.would_fail


async def test_blob_totals_split_present_from_to_fetch_and_predict_their_gets() -> None:
    _, plan, _, _ = await multi_arch()
    shared = {b.digest for b in plan.blobs[:2]}
    report = build_report(
        plan,
        request(TARGET),
        present_blobs=shared,
        present_manifests=set(),
        tags={TARGET: TagState(None)},
        spent=RequestCount(manifest_gets=3, pulls=3),
    )
    blobs = report.blobs
    assert (blobs.total, blobs.present, blobs.to_fetch) == (len(plan.blobs), 2, len(plan.blobs) - 2)
    assert blobs.bytes_total == plan.total_bytes
    assert blobs.bytes_present == sum(b.size for b in plan.blobs if b.digest in shared)
    assert blobs.bytes_to_fetch == plan.total_bytes - blobs.bytes_present > 0
    assert report.predicted.blob_gets == blobs.to_fetch
    assert report.predicted.manifest_gets == report.spent.manifest_gets == 3
    assert report.spent.blob_gets == 0


async def test_a_refused_tag_makes_the_import_fail() -> None:
    _, plan, _, _ = await multi_arch()
    second = TargetTag("app", "v2")
    report = build_report(
        plan,
        request(TARGET, second),
        present_blobs=set(),
        present_manifests=set(),
        tags={TARGET: TagState(None), second: TagState(OTHER)},
        spent=RequestCount(),
    )
    assert [t.action for t in report.tags] == [TagAction.CREATE, TagAction.REFUSED]
    assert report.would_fail


# -- the planner -----------------------------------------------------------------------------
class ReadOnlyView:
    """A TargetView that records what it was asked; it has no way to write."""

    def __init__(self, present: set[Digest], tags: dict[TargetTag, TagState]) -> None:
        self.present = present
        self.tags = tags
        self.scopes: list[LinkScope] = []

    async def present_blobs(self, scope: LinkScope, digests: list[Digest]) -> set[Digest]:
        self.scopes.append(scope)
        return self.present & set(digests)

    async def present_manifests(
        self, registry_id: int, repositories: tuple[str, ...], digests: list[Digest]
    ) -> set[Digest]:
        return set()

    async def tag_states(
        self, registry_id: int, targets: tuple[TargetTag, ...]
    ) -> dict[TargetTag, TagState]:
        return {t: self.tags.get(t, TagState(None)) for t in targets}


class LoggedSources:
    """Opens the in-memory source, recording one manifest GET per manifest asked for."""

    def __init__(self, source: MemorySource) -> None:
        self.source = source
        self.opened: list[tuple[SourceSpec, Credentials | None, int]] = []

    @asynccontextmanager
    async def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        request_log: RequestLog | None = None,
        wait_for_budget: bool = True,
        shared_auth: bool = True,
    ) -> AsyncIterator[ImageSource]:
        # A dry run answers an HTTP request: it must never wait for a rate-limit budget.
        assert not wait_for_budget
        # Its requests are measured as a client without a token spends them.
        assert not shared_auth
        self.opened.append((spec, credentials, target_registry_id))
        before = len(self.source.requests)
        try:
            yield self.source
        finally:
            assert request_log is not None
            for reference in self.source.requests[before:]:
                request_log.record("GET", URL(f"https://r.test/v2/app/manifests/{reference}"), 200)


async def test_the_planner_plans_through_the_source_and_reads_the_target() -> None:
    src, plan, _, _ = await multi_arch()
    present = {plan.blobs[0].digest}
    view = ReadOnlyView(present, {TARGET: TagState(OTHER)})
    sources = LoggedSources(src)
    credentials = Credentials("u", "p")
    report = await DryRunPlanner(view, sources, ImportLimits()).plan(
        7, request(TARGET, force=True), credentials
    )
    assert sources.opened == [(request(TARGET).source, credentials, 7)]
    assert [s.registry_id for s in view.scopes] == [7]
    assert report.blobs.present == 1
    assert [(t.action, t.current) for t in report.tags] == [(TagAction.MOVE, OTHER)]
    assert report.spent.manifest_gets == report.spent.pulls == 3
    assert report.predicted.blob_gets == len(plan.blobs) - 1
    assert src.fetches == []  # no blob was fetched


async def test_the_planner_raises_the_plan_steps_failures() -> None:
    src, _, _, _ = await multi_arch()
    planner = DryRunPlanner(ReadOnlyView(set(), {}), LoggedSources(src), ImportLimits())
    with pytest.raises(ImportFailure) as caught:
        await planner.plan(7, request(TARGET, reference="missing"), None)
    assert caught.value.code == "ManifestUnknown"
    with pytest.raises(ImportFailure) as too_many:
        await DryRunPlanner(
            ReadOnlyView(set(), {}), LoggedSources(src), ImportLimits(max_manifests=2)
        ).plan(7, request(TARGET), None)
    assert too_many.value.code == "TooManyManifests"


@pytest.mark.parametrize("mode", ["sparse", "rewritten"])
async def test_the_planner_plans_a_platform_subset_as_the_import_stores_it(mode: str) -> None:
    src, full, amd, _ = await multi_arch()
    subset = platform_subset(("linux/amd64",), mode, None)
    wanted = dataclasses.replace(request(TARGET), platform_subset=subset)
    report = await DryRunPlanner(ReadOnlyView(set(), {}), LoggedSources(src), ImportLimits()).plan(
        7, wanted, None
    )
    assert [m.platform for m in report.manifests] == [None, "linux/amd64"]
    assert report.manifests[1].digest == Digest.parse(amd["digest"])
    root = report.manifests[0]
    if mode == "sparse":
        # The source index itself: the digest the tag will name is the source's.
        assert report.root == root.digest == full.root.digest
    else:
        # The new index the import stores and tags, not the source's.
        assert report.root == root.digest != full.root.digest
    # Only the amd64 image's blobs: the other platform's are neither fetched nor counted.
    assert 0 < report.blobs.total < len(full.blobs)
