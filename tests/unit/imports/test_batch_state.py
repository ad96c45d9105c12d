"""A batch's state from its items' states, and the target an item is judged by."""

from __future__ import annotations

import pytest

from transship.imports.batch import (
    CANCELED,
    COMPLETED_WITH_FAILURES,
    RUNNING,
    SUCCEEDED,
    batch_state,
    first_target,
)
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.oci.digest import Digest


@pytest.mark.parametrize(
    ("states", "cancel_requested", "expected"),
    [
        (["succeeded", "succeeded"], False, SUCCEEDED),
        (["succeeded", "running"], False, RUNNING),
        (["queued", "failed"], False, RUNNING),
        (["failed", "succeeded"], False, COMPLETED_WITH_FAILURES),
        (["failed", "failed"], False, COMPLETED_WITH_FAILURES),
        (["canceled", "succeeded"], True, CANCELED),
        (["canceled", "failed"], True, COMPLETED_WITH_FAILURES),
        (["canceled", "running"], True, RUNNING),
        # An item canceled on its own (its operation's cancel), not the batch.
        (["canceled", "succeeded"], False, COMPLETED_WITH_FAILURES),
        (["succeeded"], True, SUCCEEDED),
    ],
)
def test_batch_state(states: list[str], cancel_requested: bool, expected: str) -> None:
    assert batch_state(states, cancel_requested) == expected


def _request(tags: tuple[TargetTag, ...], untagged: tuple[str, ...] = ()) -> ImportRequest:
    digest = Digest.parse("sha256:" + "a" * 64)
    return ImportRequest(SourceSpec("upstream.test", None, "team/a", digest), tags, untagged, False)


def test_first_target_is_the_first_tag_or_none_when_untagged() -> None:
    tags = (TargetTag("a", "v1"), TargetTag("b", "v2"))
    assert first_target(_request(tags)) == ("a", "v1")
    assert first_target(_request((), ("a",))) is None
