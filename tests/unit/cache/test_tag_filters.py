"""Sync rules' tag filters: regular expressions, semver ranges, newest N, and the errors
that name the field at fault."""

from __future__ import annotations

import pytest

from transship.cache.tag_filters import SemverRange, TagFilter, Version
from transship.errors import Invalid

TAGS = [
    "latest",
    "1.0.0",
    "v1.2",
    "1.2.3",
    "1.10.0",
    "2.0.0-rc.1",
    "2.0.0",
    "2.1.0-alpine",
    "0.9.1",
    "nightly-2026",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2", Version(1, 2, 0)),
        ("3", Version(3, 0, 0)),
        ("2.0.0-rc.1", Version(2, 0, 0, ("rc", 1))),
        ("1.0.0+build.7", Version(1, 0, 0)),
        ("latest", None),
        ("01.2.3", None),
        ("1.2.3.4", None),
        ("v", None),
    ],
)
def test_versions_parse_as_tags_name_them(text: str, expected: Version | None) -> None:
    assert Version.parse(text) == expected


def test_version_precedence_puts_prereleases_before_their_release() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1"]
    parsed = [Version.parse(t) for t in ordered]
    assert parsed == sorted(parsed)  # type: ignore[type-var]
    assert Version.parse("1.0.0-2") < Version.parse("1.0.0-10")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("range_text", "inside", "outside"),
    [
        (">=1.2 <2", ["1.2.0", "1.10.0", "v1.2"], ["1.0.0", "2.0.0", "2.0.0-rc.1"]),
        ("^1.2", ["1.2.3", "1.10.0"], ["2.0.0", "1.0.0"]),
        ("^0.9", ["0.9.1"], ["1.0.0", "0.10.0"]),
        ("~1.2", ["1.2.3", "v1.2"], ["1.10.0"]),
        ("1.x", ["1.0.0", "1.10.0"], ["2.0.0", "0.9.1"]),
        ("1.2.*", ["1.2.3"], ["1.10.0"]),
        ("=2.0.0", ["2.0.0"], ["2.0.0-rc.1"]),
        ("<1 || >=2", ["0.9.1", "2.0.0"], ["1.2.3", "2.0.0-rc.1"]),
        (">=2.0.0-rc.0", ["2.0.0-rc.1", "2.0.0"], ["1.10.0"]),
        (">= 1.10", ["1.10.0", "2.0.0"], ["1.2.3"]),
        ("*", ["0.9.1", "2.0.0"], ["2.0.0-rc.1"]),
    ],
)
def test_semver_ranges(range_text: str, inside: list[str], outside: list[str]) -> None:
    wanted = SemverRange.parse(range_text)
    for tag in inside:
        version = Version.parse(tag)
        assert version is not None and wanted.contains(version), (range_text, tag)
    for tag in outside:
        version = Version.parse(tag)
        assert version is not None and not wanted.contains(version), (range_text, tag)


def test_filters_apply_in_order_include_exclude_semver_newest() -> None:
    assert TagFilter().select(TAGS) == TAGS
    assert TagFilter.parse(include=r"v?\d+(\.\d+)*").select(TAGS) == [
        "1.0.0",
        "v1.2",
        "1.2.3",
        "1.10.0",
        "2.0.0",
        "0.9.1",
    ]
    assert TagFilter.parse(exclude=r".*-.*").select(TAGS) == [
        "latest",
        "1.0.0",
        "v1.2",
        "1.2.3",
        "1.10.0",
        "2.0.0",
        "0.9.1",
    ]
    # Partial matches do not count: the expression must match the whole tag.
    assert TagFilter.parse(include="1").select(TAGS) == []
    assert TagFilter.parse(semver="^1").select(TAGS) == ["1.0.0", "v1.2", "1.2.3", "1.10.0"]
    assert TagFilter.parse(newest=3).select(TAGS) == ["2.1.0-alpine", "2.0.0", "2.0.0-rc.1"]
    assert TagFilter.parse(semver="<2", newest=2).select(TAGS) == ["1.10.0", "1.2.3"]
    assert TagFilter.parse(exclude=".*-.*", newest=2).select(TAGS) == ["2.0.0", "1.10.0"]


def test_newest_orders_equal_versions_by_name() -> None:
    assert TagFilter.parse(newest=2).select(["v1.2", "1.2.0", "1.2", "1.1"]) == ["1.2", "1.2.0"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"include": "("}, "tagFilter.include"),
        ({"exclude": "[a-"}, "tagFilter.exclude"),
        ({"include": "a" * 300}, "tagFilter.include"),
        ({"semver": "banana"}, "tagFilter.semver"),
        ({"semver": ">=1 ||"}, "tagFilter.semver"),
        ({"semver": "  "}, "tagFilter.semver"),
        ({"semver": "1.2-rc.1"}, "tagFilter.semver"),
        ({"newest": 0}, "tagFilter.newest"),
        ({"newest": 10_001}, "tagFilter.newest"),
    ],
)
def test_bad_filters_name_their_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        TagFilter.parse(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert field in caught.value.message
