"""Plumbing shared by the client commands: the login in use, and errors → exit codes."""

from __future__ import annotations

import functools
import sys
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


def registry_name(function: F) -> F:
    """`-n/--name REGISTRY`, as az acr names it, or — kept for scripts written before — a
    positional NAME; exactly one (or both the same). The command receives `name`."""

    @functools.wraps(function)
    def wrapper(*args: Any, name: str | None, name_argument: str | None, **kwargs: Any) -> Any:
        if name and name_argument and name != name_argument:
            raise click.UsageError(
                f"two registry names: NAME {name_argument!r} and --name {name!r}; give one"
            )
        chosen = name or name_argument
        if not chosen:
            raise click.UsageError("missing the registry's name: give -n/--name REGISTRY")
        return function(*args, name=chosen, **kwargs)

    decorated = click.option(
        "--name", "-n", "name", metavar="REGISTRY", help="Name of the registry."
    )(wrapper)
    decorated = click.argument("name_argument", metavar="[NAME]", required=False)(decorated)
    return cast(F, decorated)


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
        if detail.code:
            details.append(f"  ({detail.code}) {detail.message}")
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


registry_option = click.option(
    "--registry", "-r", required=True, metavar="REGISTRY", help="Name of the registry."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")


def confirm(question: str, yes: bool) -> None:
    """Ask on stderr unless `yes`; "no" aborts (exit 1)."""
    if not yes:
        click.confirm(question, abort=True, err=True)


def read_secret(value: str | None, from_stdin: bool, prompt: str, *, twice: bool) -> str:
    """A password from the option, the first line of stdin, or a prompt (hidden; typed
    `twice` to confirm it)."""
    if value is not None and from_stdin:
        raise click.UsageError("use only one of --password, --password-stdin")
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError("--password-stdin: stdin held no password")
        return line
    if value is not None:
        return value
    text: str = click.prompt(prompt, hide_input=True, confirmation_prompt=twice, err=True)
    return text


class GreedyCommand(click.Command):
    """A command some of whose options take several words, as az's do
    (`--repository team/app content/read metadata/read`, `--ids ID ID`).

    Click options take a fixed number of values, so the words after such an option, up to
    the next one starting with `-`, are joined with spaces into its one value before
    parsing; the command splits them again."""

    greedy_options: tuple[str, ...] = ()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, join_greedy(args, self.greedy_options))


class RepositoryActionsCommand(GreedyCommand):
    """`--repository`, `--add-repository` and `--remove-repository` take a repository and
    the actions after it."""

    greedy_options = ("--repository", "--add-repository", "--remove-repository")


class IdsCommand(GreedyCommand):
    """`--ids` takes every id after it."""

    greedy_options = ("--ids",)


def join_greedy(args: list[str], options: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        name, equals, inline = arg.partition("=")
        if name not in options or arg == "--":
            out.append(arg)
            if arg == "--":
                out += args[index:]
                break
            continue
        words = [inline] if equals else []
        while index < len(args) and not (args[index].startswith("-") and args[index] != "-"):
            words.append(args[index])
            index += 1
        out.append(name)
        if words:
            out.append(" ".join(words))
    return out
