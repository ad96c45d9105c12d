"""Scheduled sync's change detection: a tag is copied only when its upstream digest or the
target tag moved since the rule copied it; an upstream serving another (equivalent)
encoding than the one stored does not cause a copy on every run."""

from __future__ import annotations

from transship.cache.sync import (
    COMPLETED_WITH_FAILURES,
    FAILED_TAG,
    SUCCEEDED,
    UNCHANGED,
    Decision,
    TagCheck,
    TagReport,
    decide,
    run_state,
    vanished,
)
from transship.metadata.sync_rules import FAILED, SyncedTag
from transship.oci.digest import Digest

UP = Digest.of(b"upstream manifest")
UP2 = Digest.of(b"upstream manifest, moved")
STORED = Digest.of(b"what the import stored (a rewritten platform subset)")
OTHER = Digest.of(b"pushed by someone else")


def check(upstream: Digest | None, recorded: SyncedTag | None, local: Digest | None) -> TagCheck:
    return TagCheck("library/app", "1.0", "mirror/app", upstream, recorded, local)


def synced(upstream: Digest | None, local: Digest) -> SyncedTag:
    return SyncedTag("library/app", "1.0", "mirror/app", upstream, local)


def test_unchanged_when_upstream_and_target_are_as_recorded() -> None:
    # The stored digest differs from the upstream's: still no copy (no resync loop).
    assert decide(check(UP, synced(UP, STORED), STORED)) == Decision(copy=False)


def test_a_moved_upstream_tag_is_copied_with_force() -> None:
    assert decide(check(UP2, synced(UP, STORED), STORED)) == Decision(copy=True, force=True)


def test_a_new_tag_is_copied_without_force() -> None:
    assert decide(check(UP, None, None)) == Decision(copy=True, force=False)


def test_a_tag_already_holding_the_upstream_digest_is_adopted() -> None:
    assert decide(check(UP, None, UP)) == Decision(copy=False, adopt=True)


def test_a_tag_moved_outside_the_rule_is_not_overwritten() -> None:
    # Copied again, but without Force: the import refuses with TagAlreadyExists.
    assert decide(check(UP, synced(UP, STORED), OTHER)) == Decision(copy=True, force=False)
    # Somebody else's tag of the same name, never the rule's.
    assert decide(check(UP, None, OTHER)) == Decision(copy=True, force=False)


def test_a_tag_untagged_here_is_copied_again() -> None:
    assert decide(check(UP, synced(UP, STORED), None)) == Decision(copy=True, force=False)


def test_an_upstream_head_without_digest_is_left_to_the_import() -> None:
    assert decide(check(None, synced(UP, STORED), STORED)) == Decision(copy=True, force=True)


def test_vanished_only_counts_repositories_that_were_listed() -> None:
    kept = SyncedTag("a", "1", "m/a", UP, UP)
    gone = SyncedTag("a", "2", "m/a", UP, UP)
    unlisted = SyncedTag("b", "1", "m/b", UP, UP)
    listed = {"a": frozenset({"1", "3"})}
    assert vanished([kept, gone, unlisted], listed) == [gone]


def test_run_state() -> None:
    ok = TagReport("a", "1", "m/a", UNCHANGED)
    bad = TagReport("a", "2", "m/a", FAILED_TAG, reason="x")
    unlisted = TagReport("b", None, "m/b", FAILED_TAG, reason="UpstreamUnauthorized: …")
    assert run_state([ok]) == SUCCEEDED
    assert run_state([]) == SUCCEEDED
    assert run_state([ok, bad]) == COMPLETED_WITH_FAILURES
    assert run_state([ok, unlisted]) == COMPLETED_WITH_FAILURES
    assert run_state([unlisted]) == FAILED


def test_reports_round_trip() -> None:
    entry = TagReport("a", "1", "m/a", "copied", UP, STORED, None, "job1")
    assert TagReport.from_dict(entry.to_dict()) == entry
