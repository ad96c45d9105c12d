"""Plumbing shared by the client commands: the login in use, and errors → exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from transship.cli import profile as profiles
from transship.cli.client import ApiError, ManagementApi, TransportError
from transship.cli.output import CommandFailed

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

resource_group_option = click.option(
    "--resource-group",
    "-g",
    metavar="RG",
    help="Resource group of the registry (default: the service's default resource group).",
)
name_option = click.option(
    "--name", "-n", "registry", required=True, metavar="REGISTRY", help="Name of the registry."
)


def api() -> ManagementApi:
    """The management API for the saved login (with TRANSSHIP_* overrides)."""
    try:
        return ManagementApi(profiles.resolve())
    except profiles.ProfileError as exc:
        raise CommandFailed(str(exc)) from None


def failure(exc: ApiError) -> CommandFailed:
    details: list[str] = []
    if exc.target:
        details.append(f"Target: {exc.target}")
    for detail in exc.details:
        if isinstance(detail, dict) and detail.get("code"):
            details.append(f"  ({detail['code']}) {detail.get('message', '')}")
    return CommandFailed(exc.message, code=exc.code, details=details)


def service_command(function: F) -> F:
    """Turn service, transport and profile errors into `ERROR: …` and exit 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ApiError as exc:
            raise failure(exc) from None
        except (TransportError, profiles.ProfileError) as exc:
            raise CommandFailed(str(exc)) from None

    return cast(F, wrapper)
