"""The `--from-file` list: its format, the errors naming a line, the target prefix, and a
server refusal of item i mapped back to its line."""

from __future__ import annotations

import click
import pytest

from transship.cli.client import ApiError
from transship.cli.import_batch import (
    BatchLine,
    _line_error,
    build_batch,
    parse_batch_file,
    with_prefix,
)
from transship.cli.output import CommandFailed
from transship.wire.bodies import ImportImageParameters, ImportSource

LISTING = """\
# base images
docker.io/library/alpine:3.20

docker.io/library/busybox:1.36   busybox:1.36 busybox:stable  # two tags
   ghcr.io/example/app@sha256:abc   app:pinned
"""


def test_lines_comments_blank_lines_and_targets() -> None:
    assert parse_batch_file(LISTING, "images.txt") == [
        BatchLine(2, "docker.io/library/alpine:3.20", ()),
        BatchLine(4, "docker.io/library/busybox:1.36", ("busybox:1.36", "busybox:stable")),
        BatchLine(5, "ghcr.io/example/app@sha256:abc", ("app:pinned",)),
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a.io/x:1\na.io/y:1 Y:1\n", 2, "'Y:1' is not a target"),
        ("a.io/x:1\n\n# c\na.io/y:1 y@sha256:00\n", 4, "'y@sha256:00'"),
        ("a.io/x:1 y:tag:again\n", 1, "'y:tag:again'"),
    ],
)
def test_a_bad_target_names_its_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(click.UsageError) as raised:
        parse_batch_file(text, "images.txt")
    assert f"images.txt line {line}: " in raised.value.message
    assert fragment in raised.value.message


def test_a_file_without_images_is_refused() -> None:
    with pytest.raises(click.UsageError, match="lists no image"):
        parse_batch_file("# only comments\n\n   \n", "images.txt")


def _params(tags: list[str] | None, untagged: list[str] | None = None) -> ImportImageParameters:
    return ImportImageParameters(
        source=ImportSource(registryUri="a.io", sourceImage="x:1"),
        targetTags=tags,
        untaggedTargetRepositories=untagged,
    )


def test_target_prefix_goes_before_every_target_repository() -> None:
    prefixed = with_prefix(_params(["x:1", "y:2"], ["z"]), "mirror/")
    assert prefixed.target_tags == ["mirror/x:1", "mirror/y:2"]
    assert prefixed.untagged_target_repositories == ["mirror/z"]
    assert with_prefix(_params(["x:1"]), None).target_tags == ["x:1"]


def test_a_line_the_flags_refuse_is_named() -> None:
    lines = [BatchLine(3, "a.io/x:1", ()), BatchLine(7, "https://a.io/y:1", ())]

    def build(source: str, *, images: tuple[str, ...]) -> ImportImageParameters:
        if source.startswith("https://"):
            raise click.UsageError(f"--source {source!r} starts with 'https://'")
        return _params(list(images) or ["x:1"])

    with pytest.raises(click.UsageError) as raised:
        build_batch(
            "images.txt",
            lines,
            build,
            target_prefix=None,
            platforms=(),
            platform_mode=None,
            include_attestations=None,
        )
    assert raised.value.message.startswith("images.txt line 7: the source 'https://a.io/y:1'")
    body = build_batch(
        "images.txt",
        lines[:1],
        build,
        target_prefix="m/",
        platforms=("linux/amd64",),
        platform_mode=None,
        include_attestations=None,
    )
    assert body.images[0].target_tags == ["m/x:1"]
    assert body.images[0].platforms == ["linux/amd64"]


def test_a_server_refusal_of_item_i_names_its_line() -> None:
    lines = [BatchLine(2, "a.io/x:1", ()), BatchLine(5, "a.io/y:1", ())]
    refused = ApiError(
        400, "InvalidParameter", "images[1]: bad platform", target="images[1].platforms[0]"
    )
    named = _line_error(refused, "images.txt", lines)
    assert isinstance(named, CommandFailed)
    assert named.message == "images.txt line 5 (a.io/y:1): bad platform"
    assert named.code == "InvalidParameter"
    other = ApiError(403, "AuthorizationFailed", "no", target=None)
    assert _line_error(other, "images.txt", lines) is other
