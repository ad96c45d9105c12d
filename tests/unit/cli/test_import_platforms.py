"""`transship import --platform …`: the flags become the importImage extension fields, are
refused without --platform, and are documented in --help."""

from __future__ import annotations

import json
from typing import Any

import click
import pytest
from click.testing import CliRunner

from tests.unit.cli.live_service import SUFFIX, LiveService, run
from tests.unit.cli.operations import operation_status
from transship.cli.client import dump_body, unchecked
from transship.cli.commands_import import operation_row
from transship.cli.import_platforms import with_platforms
from transship.cli.main import main
from transship.wire.arm import OperationStatus
from transship.wire.bodies import ImportImageParameters, ImportSource

SOURCE_LOGIN = f"mysourceregistry.{SUFFIX}"


def base() -> ImportImageParameters:
    source = unchecked(ImportSource, registry_uri="docker.io", source_image="library/alpine:3")
    return unchecked(ImportImageParameters, source=source, target_tags=["alpine:3"], mode="NoForce")


def test_without_platform_the_body_is_unchanged() -> None:
    body = with_platforms(base(), (), None, None)
    assert dump_body(body) == dump_body(base())
    assert "platforms" not in dump_body(body)


def test_platforms_mode_and_attestations_are_sent_by_their_json_names() -> None:
    body = with_platforms(base(), ("linux/amd64", "linux/arm64/v8"), "rewritten", True)
    sent = dump_body(body)
    assert sent["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert sent["platformMode"] == "rewritten" and sent["includeAttestations"] is True
    # The defaults are the server's: not sent when not given.
    sent = dump_body(with_platforms(base(), ("linux/amd64",), None, None))
    assert "platformMode" not in sent and "includeAttestations" not in sent


@pytest.mark.parametrize(
    ("mode", "attestations", "flag"),
    [("sparse", None, "--platform-mode"), (None, True, "--include-attestations")],
)
def test_subset_flags_need_platform(mode: str | None, attestations: bool | None, flag: str) -> None:
    with pytest.raises(click.UsageError) as caught:
        with_platforms(base(), (), mode, attestations)
    assert flag in caught.value.message and "--platform" in caught.value.message


def test_help_documents_the_flags_with_an_example() -> None:
    result = CliRunner().invoke(main, ["import", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in (
        "--platform OS/ARCH[/VARIANT]",
        "--platform-mode [sparse|rewritten]",
        "--include-attestations",
        "--platform linux/amd64 --platform linux/arm64/v8",
        "--platform-mode rewritten --include-attestations",
    ):
        assert text in result.output, text


def test_bad_platform_mode_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        main, ["import", "-n", "r", "--source", "docker.io/a:1", "--platform-mode", "dense"]
    )
    assert result.exit_code == 2 and "dense" in result.output


def test_operation_rows_show_the_subset() -> None:
    def operation(**extra: Any) -> OperationStatus:
        return operation_status("Succeeded", state="succeeded", **extra)

    assert operation_row(operation())[2] == "docker.io/library/alpine:3.20"
    row = operation_row(
        operation(
            platforms=["linux/amd64", "linux/arm64/v8"],
            platformMode="rewritten",
            includeAttestations=True,
        )
    )
    assert row[2] == (
        "docker.io/library/alpine:3.20 [linux/amd64, linux/arm64/v8; rewritten, with attestations]"
    )


def test_import_with_platform_against_the_service(logged_in: LiveService) -> None:
    """The flags reach the real server: a single linux/amd64 image imports with
    `--platform linux/amd64`, another platform is refused naming it, a malformed one names
    `platforms[0]`, and `import list` shows the subset."""
    for name in ("myregistry", "mysourceregistry"):
        assert run("registry", "create", "-n", name).exit_code == 0
    logged_in.push_images(SOURCE_LOGIN, [("app", "1")])
    source = f"{SOURCE_LOGIN}/app:1"
    result = run("import", "-n", "myregistry", "--source", source, "--platform", "linux/amd64")
    assert result.exit_code == 0, result.output
    sent = logged_in.import_bodies()[-1]
    assert sent["platforms"] == ["linux/amd64"] and "platformMode" not in sent

    result = run(
        "import", "-n", "myregistry", "--source", source, "-t", "app:s390x",
        "--platform", "linux/s390x",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "(PlatformMismatch)" in result.stderr and "linux/s390x" in result.stderr

    result = run("import", "-n", "myregistry", "--source", source, "--platform", "linux")
    assert result.exit_code == 1 and "platforms[0]" in result.stderr, result.stderr

    listed = json.loads(run("import", "list", "-n", "myregistry", "-o", "json").stdout)
    assert {tuple(op["properties"].get("platforms", ())) for op in listed} == {
        ("linux/amd64",),
        ("linux/s390x",),
    }
