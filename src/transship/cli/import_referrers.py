"""The referrer flags of `transship import` (a Transship extension of importImage:
`includeReferrers`, `referrerArtifactTypes`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from transship.cli.output import plural
from transship.wire.arm import ImportReferrers, OperationStatus
from transship.wire.bodies import ImportImageParameters

F = TypeVar("F", bound=Callable[..., Any])


def referrer_options(command: F) -> F:
    """Add --include-referrers and --referrer-artifact-type to `command`."""
    command = click.option(
        "--referrer-artifact-type",
        "referrer_artifact_types",
        multiple=True,
        metavar="MEDIA_TYPE",
        help="With --include-referrers: copy only referrers of this artifact type (e.g. "
        "application/spdx+json; application/vnd.dev.cosign.simplesigning.v1+json selects "
        "cosign signatures); repeatable.",
    )(command)
    command = click.option(
        "--include-referrers",
        is_flag=True,
        default=None,
        help="Also copy, recursively, what refers to every copied manifest: OCI referrers "
        "(signatures, SBOMs, attestations; via the upstream's referrers API or its "
        "sha256-<hex> fallback tag) and cosign's sha256-<hex>.sig/.att/.sbom tags. "
        "az acr import copies none.",
    )(command)
    return command


def with_referrers(
    parameters: ImportImageParameters,
    include_referrers: bool | None,
    referrer_artifact_types: tuple[str, ...],
) -> ImportImageParameters:
    """`parameters` with the referrer fields of the flags (none when not given).

    Raises click.UsageError for --referrer-artifact-type without --include-referrers. The
    server validates the types themselves (naming `referrerArtifactTypes[i]`)."""
    if not include_referrers:
        if referrer_artifact_types:
            raise click.UsageError("--referrer-artifact-type needs --include-referrers")
        return parameters
    return parameters.model_copy(
        update={
            "include_referrers": True,
            "referrer_artifact_types": list(referrer_artifact_types) or None,
        }
    )


def referrers_text(operation: OperationStatus | None) -> str | None:
    """What an import with --include-referrers copied, for people: `2 referrers copied
    (tags: sha256-….sig)`; None for an import without the flag."""
    copied = operation.properties.referrers if operation is not None else None
    if not isinstance(copied, ImportReferrers):
        return None
    text = f"{plural(copied.count, 'referrer')} copied"
    if copied.tags:
        text += f" (tags: {', '.join(t.tag for t in copied.tags)})"
    return text
