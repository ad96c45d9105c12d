"""`transship import --include-referrers [--referrer-artifact-type T]…`: the flags become
the importImage extension fields, the type flag is refused alone, --help documents them
with an example, and what was copied is printed."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from tests.unit.cli.operations import operation_status
from transship.cli.client import dump_body, unchecked
from transship.cli.import_referrers import referrers_text, with_referrers
from transship.cli.main import main
from transship.wire.arm import OperationStatus
from transship.wire.bodies import ImportImageParameters, ImportSource

SPDX = "application/spdx+json"


def base() -> ImportImageParameters:
    source = unchecked(ImportSource, registry_uri="docker.io", source_image="library/alpine:3")
    return unchecked(ImportImageParameters, source=source, target_tags=["alpine:3"], mode="NoForce")


def test_without_the_flag_the_body_is_unchanged() -> None:
    body = with_referrers(base(), None, ())
    assert dump_body(body) == dump_body(base())
    assert "includeReferrers" not in dump_body(body)


def test_flags_are_sent_by_their_json_names() -> None:
    sent = dump_body(with_referrers(base(), True, ()))
    assert sent["includeReferrers"] is True and "referrerArtifactTypes" not in sent
    sent = dump_body(with_referrers(base(), True, (SPDX, "application/x+json")))
    assert sent["referrerArtifactTypes"] == [SPDX, "application/x+json"]


def test_artifact_type_needs_include_referrers() -> None:
    with pytest.raises(click.UsageError) as caught:
        with_referrers(base(), None, (SPDX,))
    assert "--include-referrers" in caught.value.message


def test_help_documents_the_flags_with_an_example() -> None:
    result = CliRunner().invoke(main, ["import", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in (
        "--include-referrers",
        "--referrer-artifact-type MEDIA_TYPE",
        "--source ghcr.io/acme/app:1.2 --include-referrers",
        f"--referrer-artifact-type {SPDX}",
    ):
        assert text in result.output, text


def operation(**extra: Any) -> OperationStatus:
    return operation_status("Succeeded", state="succeeded", **extra)


def test_what_was_copied_is_printed() -> None:
    assert referrers_text(operation()) is None
    assert referrers_text(None) is None
    digest = "sha256:" + "a" * 64
    tag = "sha256-" + "b" * 64 + ".sig"
    copied = operation(
        includeReferrers=True,
        referrerArtifactTypes=[],
        referrers={
            "count": 2,
            "digests": [digest, digest],
            "tags": [{"tag": tag, "digest": digest}],
        },
    )
    assert referrers_text(copied) == f"2 referrers copied (tags: {tag})"
