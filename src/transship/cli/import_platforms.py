"""The platform-subset flags of `transship import` (a Transship extension of importImage:
`platforms`, `platformMode`, `includeAttestations`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from transship.wire.arm import OperationStatus
from transship.wire.bodies import ImportImageParameters

F = TypeVar("F", bound=Callable[..., Any])


def platform_options(command: F) -> F:
    """Add --platform, --platform-mode and --include-attestations to `command`."""
    command = click.option(
        "--include-attestations",
        is_flag=True,
        default=None,
        help="With --platform: also copy the buildx attestation manifests (SBOM, "
        "provenance) of the selected platforms.",
    )(command)
    command = click.option(
        "--platform-mode",
        type=click.Choice(["sparse", "rewritten"]),
        default=None,
        help="With --platform: 'sparse' (default) stores the source index unchanged (same "
        "digest) with only the selected platforms present; 'rewritten' stores a new index "
        "listing only them, annotated with the source index digest.",
    )(command)
    command = click.option(
        "--platform",
        "platforms",
        multiple=True,
        metavar="OS/ARCH[/VARIANT]",
        help="Copy only this platform of a multi-arch index (e.g. linux/arm64/v8); "
        "repeatable. Default: every platform, as az acr import.",
    )(command)
    return command


def with_platforms(
    parameters: ImportImageParameters,
    platforms: tuple[str, ...],
    platform_mode: str | None,
    include_attestations: bool | None,
) -> ImportImageParameters:
    """`parameters` with the platform-subset fields of the flags (none when not given).

    Raises click.UsageError for --platform-mode or --include-attestations without
    --platform. The server validates the platforms themselves (naming `platforms[i]`).
    """
    if not platforms:
        for flag, value in (
            ("--platform-mode", platform_mode),
            ("--include-attestations", include_attestations),
        ):
            if value:
                raise click.UsageError(f"{flag} needs --platform")
        return parameters
    return parameters.model_copy(
        update={
            "platforms": list(platforms),
            "platform_mode": platform_mode,
            "include_attestations": include_attestations or None,
        }
    )


def source_text(operation: OperationStatus) -> str:
    """The operation's source, with its platform subset when it has one:
    `docker.io/library/alpine:3.20 [linux/amd64, linux/arm64/v8; sparse]`."""
    properties = operation.properties
    if not isinstance(properties.platforms, list):
        return properties.source
    mode: str = properties.platform_mode if isinstance(properties.platform_mode, str) else "sparse"
    if properties.include_attestations is True:
        mode += ", with attestations"
    return f"{properties.source} [{', '.join(properties.platforms)}; {mode}]"
