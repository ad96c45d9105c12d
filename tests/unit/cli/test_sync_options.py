"""`transship sync rule` option parsing: durations, and --source values split into one
upstream registry and its repositories (Docker Hub's names without a host)."""

from __future__ import annotations

import click
import pytest

from transship.cli.commands_sync import parse_interval, split_sources


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), (" 2h ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "1.5h", "h", "10w", "-1", "1h30m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_interval(text)


def test_sources_name_one_registry() -> None:
    assert split_sources(["ghcr.io/acme/cli", "ghcr.io/acme/agent"]) == (
        "ghcr.io",
        ["acme/cli", "acme/agent"],
    )
    assert split_sources(["alpine", "library/busybox"]) == (
        "docker.io",
        ["alpine", "library/busybox"],
    )
    assert split_sources(["localhost:5000/team/app"]) == ("localhost:5000", ["team/app"])


@pytest.mark.parametrize(
    ("sources", "fragment"),
    [
        (["ghcr.io/a", "quay.io/b"], "several registries"),
        (["ghcr.io/a", "alpine"], "several registries"),
        (["ghcr.io/acme/cli:1.0"], "without tag or digest"),
        (["alpine@sha256:" + "0" * 64], "without tag or digest"),
    ],
)
def test_bad_sources(sources: list[str], fragment: str) -> None:
    with pytest.raises(click.UsageError) as caught:
        split_sources(sources)
    assert fragment in caught.value.message
